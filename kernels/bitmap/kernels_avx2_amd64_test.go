//go:build amd64 && !purego

package bitmap

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
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

// TestAVX2DotRowGroups: the batch-1 bf16 dots take rows four at a time, so a
// row's result must not depend on the range it is called with (the scheduler
// cuts ranges of any length): every range of 1 to 9 rows, at every start,
// gives bit for bit the result of the whole range.
func TestAVX2DotRowGroups(t *testing.T) {
	if !hasAVX2() {
		t.Skip("no AVX2")
	}
	rng := rand.New(rand.NewPCG(21, 22))
	for _, cols := range []int{16, 40, 256} {
		const rows = 23
		w := randomSparse(rng, rows, cols, 0.5)
		x := randomInput(rng, 1, cols)
		m, err := Encode(w, rows, cols, BF16)
		if err != nil {
			t.Fatal(err)
		}
		d := NewDenseBF16(w, rows, cols)
		m.kern, d.kern = avx2Kernels, avx2Kernels
		for _, f := range []struct {
			name string
			op   rowOps
		}{{"bitmap-bf16", m}, {"dense-bf16", d}} {
			whole := make([]float32, rows)
			f.op.dot(whole, x, 0, rows)
			for n := 1; n <= 9; n++ {
				for r0 := 0; r0+n <= rows; r0++ {
					y := make([]float32, n)
					f.op.dot(y, x, r0, r0+n)
					for i, v := range y {
						if math.Float32bits(v) != math.Float32bits(whole[r0+i]) {
							t.Fatalf("%s cols %d: row %d in [%d, %d): %v, in [0, %d): %v", f.name, cols, r0+i, r0, r0+n, v, rows, whole[r0+i])
						}
					}
				}
			}
		}
	}
}

// TestAVX2DotBatchRowGroups: the bf16 small-batch kernels take rows two at a
// time and rows of x four at a time, so a row's results must not depend on
// the range they are called with: every range of 1 to 5 rows, at every start,
// gives bit for bit the results of the whole range, and row b of a batch of
// nb gives bit for bit what it gives in a batch of 4 at the same position
// within its group of four. The whole range is checked against a float64
// reference; 1048 columns make several blocks of columns at every nb.
func TestAVX2DotBatchRowGroups(t *testing.T) {
	if !hasAVX2() {
		t.Skip("no AVX2")
	}
	rng := rand.New(rand.NewPCG(23, 24))
	for _, cols := range []int{16, 40, 256, 1048} {
		const rows = 13
		w := randomSparse(rng, rows, cols, 0.5)
		m, err := Encode(w, rows, cols, BF16)
		if err != nil {
			t.Fatal(err)
		}
		d := NewDenseBF16(w, rows, cols)
		m.kern, d.kern = avx2Kernels, avx2Kernels
		chunks := ChunksPerRow(cols)
		for _, nb := range []int{4, 8, 16} {
			x := randomInput(rng, nb, cols)
			xT := make([]float32, chunks*nb*ChunkCols)
			packBatch(xT, x, nb, nb, cols)
			for _, f := range []struct {
				name string
				op   rowOps
			}{{"bitmap-bf16", m}, {"dense-bf16", d}} {
				whole := make([]float32, rows*nb)
				f.op.dotBatch(whole, xT, nb, 0, rows)
				dec := make([]float32, rows*cols)
				f.op.decode(dec, 0, rows)
				ref, abs := make([]float64, rows*nb), make([]float64, rows*nb)
				for r := range rows {
					for b := range nb {
						for j := range cols {
							p := float64(dec[r*cols+j]) * float64(x[b*cols+j])
							ref[r*nb+b] += p
							abs[r*nb+b] += math.Abs(p)
						}
					}
				}
				compare(t, fmt.Sprintf("%s cols %d nb %d", f.name, cols, nb), whole, ref, abs, cols)
				for g := 0; g < nb; g += 4 {
					x4T := make([]float32, chunks*4*ChunkCols)
					packBatch(x4T, x[g*cols:], 4, 4, cols)
					y4 := make([]float32, rows*4)
					f.op.dotBatch(y4, x4T, 4, 0, rows)
					for r := range rows {
						for b := range 4 {
							if v, u := y4[r*4+b], whole[r*nb+g+b]; math.Float32bits(v) != math.Float32bits(u) {
								t.Fatalf("%s cols %d: row %d, x row %d: %v in a batch of 4, %v in a batch of %d", f.name, cols, r, g+b, v, u, nb)
							}
						}
					}
				}
				for n := 1; n <= 5; n++ {
					for r0 := 0; r0+n <= rows; r0++ {
						yT := make([]float32, n*nb)
						f.op.dotBatch(yT, xT, nb, r0, r0+n)
						for i, v := range yT {
							if u := whole[r0*nb+i]; math.Float32bits(v) != math.Float32bits(u) {
								t.Fatalf("%s cols %d nb %d: row %d x row %d in [%d, %d): %v, in [0, %d): %v", f.name, cols, nb, r0+i/nb, i%nb, r0, r0+n, v, rows, u)
							}
						}
					}
				}
			}
		}
	}
}
