//go:build amd64 && !purego

package bitmap

import (
	"math/bits"
	"unsafe"
)

// The fused NF4 GEMV of the avx2 set (nf4_avx2_amd64.s). The decode path
// (nf4Dequant into a bf16 buffer, then the bf16 bitmap kernels) writes every
// value to memory and reads it back; nf4DotAVX2 multiplies from the packed
// codes: per block of 64 stored values it builds the block's bf16 table
// (the 16 codes times the block scale, rounded to bf16 as the decoder
// does), looks the 64 indices up with VPSHUFB, widens them to fp32 in
// registers and accumulates them against x. The weights are therefore
// exactly the decoder's bf16(code·scale); only the order of the fp32 sums
// differs (four accumulators, added at the end of the row), so the results
// are within the same fp32 accumulation bound of the float64 product as
// the decode path's.
//
// It reads whole blocks of 64 values aligned to the block grid, so it needs
// x in that order too: for a row whose stored values are [k, ke), xc holds
// the x values of those values at offsets k-k0 .. ke-k0 (k0 = k rounded
// down to a block), zeros elsewhere, up to a whole block. For bitmap-nf4 the
// x values of the kept columns are gathered by compressXAVX2 (one VPERMPS
// per mask byte); for dense-nf4 they are x itself, used in place when each
// row is whole blocks (Cols a multiple of 64). A row reaching into the last,
// short block of the matrix (NNZ not a multiple of 64) is left to the decode
// path, which does not read past the codes.

//go:noescape
func nf4DotAVX2(codes *uint8, scales *float32, tab *[16]float32, x *float32, blocks int) float32

//go:noescape
func compressXAVX2(dst *float32, masks *uint16, x *float32, tab *[compressTabBytes]byte, halves int)

// compressTabBytes is the size of compressTab: 8 int32 per mask byte.
const compressTabBytes = 256 * 32

// compressTab holds, for each mask byte m, the VPERMPS indices that gather
// the set bits' lanes to the front: lane j takes the position of the j-th
// set bit of m (0 beyond the last).
var compressTab = func() *[compressTabBytes]byte {
	var t [compressTabBytes]byte
	for m := range 256 {
		j := 0
		for b := uint8(m); b != 0; b &= b - 1 {
			t[32*m+4*j] = byte(bits.TrailingZeros8(b))
			j++
		}
	}
	return &t
}()

// nf4DotRows is the number of rows whose scales are decoded at a time.
const nf4DotRows = 64

// avx2NF4Dot is the kernel sets' nf4Dot on AVX2 CPUs.
func avx2NF4Dot(m *NF4, y, x []float32, r0, r1 int) int {
	// Rows ending past the last whole block are left to the decode path.
	full := m.n() / NF4BlockSize * NF4BlockSize
	end := r0
	for end < r1 && m.start(end+1) <= full {
		end++
	}
	if end == r0 {
		return r0
	}
	inPlace := m.masks == nil && m.cols%NF4BlockSize == 0
	var xp, xbuf, xc, cbuf []float32
	if !inPlace {
		// The row's values, a block of zeros before and after, and the
		// spill of the last compressed store.
		xc, cbuf = aligned(m.cols + 2*NF4BlockSize + 8)
		if m.masks != nil {
			xp, xbuf = chunkPadded(x, m.cols)
		}
	}
	for g0 := r0; g0 < end; g0 += nf4DotRows {
		g1 := min(g0+nf4DotRows, end)
		b0 := m.start(g0) / NF4BlockSize
		b1 := (m.start(g1) + NF4BlockSize - 1) / NF4BlockSize
		sc, sbuf := aligned(b1 - b0)
		m.scales(sc, b0, b1)
		for r := g0; r < g1; r++ {
			k, ke := m.start(r), m.start(r+1)
			if k == ke {
				y[r-r0] = 0
				continue
			}
			k0 := k / NF4BlockSize * NF4BlockSize
			blocks := (ke - k0 + NF4BlockSize - 1) / NF4BlockSize
			xr := x
			if !inPlace {
				span := blocks * NF4BlockSize
				clear(xc[:k-k0])
				if m.masks == nil {
					copy(xc[k-k0:], x[:m.cols])
				} else {
					compressXAVX2(&xc[k-k0], &m.masks[r*m.chunks], &xp[0], compressTab, 2*m.chunks)
				}
				clear(xc[ke-k0 : span])
				xr = xc[:span]
			}
			_ = xr[blocks*NF4BlockSize-1]
			_ = m.codes[(k0+blocks*NF4BlockSize)/2-1]
			y[r-r0] = nf4DotAVX2(&m.codes[k0/2], &sc[k0/NF4BlockSize-b0], &NF4Code, unsafe.SliceData(xr), blocks)
		}
		putBuffer(&vectors, sbuf)
	}
	if cbuf != nil {
		putBuffer(&vectors, cbuf)
	}
	putPadded(xbuf)
	return end
}
