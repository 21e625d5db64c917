//go:build amd64 && !purego

package bitmap

import "unsafe"

// The fused NF4 GEMV of the avx2 set for dense-nf4 (nf4_avx2_amd64.s). The
// decode path (nf4Dequant into a bf16 buffer, then the bf16 bitmap kernels)
// writes every value to memory and reads it back; nf4DotAVX2 multiplies
// from the packed codes: per block of 64 values it scales the 16 codes by
// the block's scale and rounds them to bf16 as the decoder does, looks the
// 8 indices of each dword of codes up with two VPERMPS and a blend, and
// accumulates the values against x in registers. The weights are therefore
// exactly the decoder's bf16(code·scale); only the order of the fp32 sums
// differs (four accumulators, added at the end of the row), so the results
// are within the same fp32 accumulation bound of the float64 product as
// the decode path's.
//
// It reads whole blocks of 64 values aligned to the block grid, so x must
// be in that order too: when Cols is a multiple of 64 every row is whole
// blocks and x is used in place; otherwise the row's values [k, ke) get x
// copied to offset k-k0 of a buffer (k0 = k rounded down to a block), zeros
// around it up to whole blocks. A row reaching into the last, short block
// of the matrix (Rows·Cols not a multiple of 64) is left to the decode path,
// which does not read past the codes.
//
// bitmap-nf4 stays on the decode path: the same kernel on it needs the x
// values of each row's kept columns gathered into packed order first (one
// VPERMPS and one store per mask byte), which costs more than the decoder
// it would save (on Zen 3, 64×4096 at 50%, L2-resident: 4.1-4.4 cpu-ns
// per 16-column chunk fused against 2.6-2.9 decoded).

//go:noescape
func nf4DotAVX2(codes *uint8, scales *float32, tab *[16]float32, x *float32, blocks int) float32

// nf4DotRows is the number of rows whose scales are decoded at a time.
const nf4DotRows = 64

// avx2NF4Dot is the avx2 set's nf4Dot: the rows of dense-nf4 matrices.
func avx2NF4Dot(m *NF4, y, x []float32, r0, r1 int) int {
	if m.masks != nil || m.cols == 0 {
		return r0
	}
	// Rows ending past the last whole block are left to the decode path.
	full := m.n() / NF4BlockSize * NF4BlockSize
	end := r0
	for end < r1 && m.start(end+1) <= full {
		end++
	}
	if end == r0 {
		return r0
	}
	inPlace := m.cols%NF4BlockSize == 0
	var xc, cbuf []float32
	if !inPlace {
		// The row's values and up to a block of zeros before and after.
		xc, cbuf = aligned(m.cols + 2*NF4BlockSize)
	}
	for g0 := r0; g0 < end; g0 += nf4DotRows {
		g1 := min(g0+nf4DotRows, end)
		b0 := m.start(g0) / NF4BlockSize
		b1 := (m.start(g1) + NF4BlockSize - 1) / NF4BlockSize
		sc, sbuf := aligned(b1 - b0)
		m.scales(sc, b0, b1)
		for r := g0; r < g1; r++ {
			k, ke := m.start(r), m.start(r+1)
			k0 := k / NF4BlockSize * NF4BlockSize
			blocks := (ke - k0 + NF4BlockSize - 1) / NF4BlockSize
			xr := x
			if !inPlace {
				clear(xc[:k-k0])
				copy(xc[k-k0:], x[:m.cols])
				clear(xc[ke-k0 : blocks*NF4BlockSize])
				xr = xc
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
	return end
}
