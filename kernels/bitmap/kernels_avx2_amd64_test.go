//go:build amd64 && !purego

package bitmap

import (
	"encoding/binary"
	"testing"
)

// TestAVX2Tables applies every table entry the way the instructions do
// (VPSHUFB per 128-bit lane on broadcast bytes, VPERMPS then AND) to 8
// distinct packed values and checks that lane i gets value k (k = set bits of
// m below bit i) where bit i of m is set and zero elsewhere.
func TestAVX2Tables(t *testing.T) {
	tab := avx2Tables[:]
	var src [16]byte // 8 packed 16-bit values 0x1101, 0x1202, ...
	for k := range 8 {
		binary.LittleEndian.PutUint16(src[2*k:], uint16(0x1101*(k+1)))
	}
	shuf := func(idx byte) byte {
		if idx&0x80 != 0 {
			return 0
		}
		return src[idx&15]
	}
	for m := range 256 {
		k := 0
		for i := range 8 {
			var want16 uint16
			var wantK, wantMask uint32
			if m>>i&1 != 0 {
				want16, wantK, wantMask = uint16(0x1101*(k+1)), uint32(k), 0xffffffff
				k++
			}
			bf := tab[tabBF16+32*m+4*i:][:4]
			got := uint32(shuf(bf[0])) | uint32(shuf(bf[1]))<<8 | uint32(shuf(bf[2]))<<16 | uint32(shuf(bf[3]))<<24
			if got != uint32(want16)<<16 {
				t.Fatalf("bf16 table, mask %#x lane %d: %#x, want %#x", m, i, got, uint32(want16)<<16)
			}
			hf := tab[tabF16+16*m+2*i:][:2]
			if got := uint16(shuf(hf[0])) | uint16(shuf(hf[1]))<<8; got != want16 {
				t.Fatalf("fp16 table, mask %#x half %d: %#x, want %#x", m, i, got, want16)
			}
			perm := binary.LittleEndian.Uint32(tab[tabF32+32*m+4*i:])
			mask := binary.LittleEndian.Uint32(tab[tabF32Mask+32*m+4*i:])
			if mask != wantMask || (mask != 0 && perm != wantK) {
				t.Fatalf("fp32 tables, mask %#x lane %d: index %d mask %#x, want %d %#x", m, i, perm, mask, wantK, wantMask)
			}
		}
	}
}
