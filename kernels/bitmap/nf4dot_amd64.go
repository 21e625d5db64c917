//go:build amd64 && !purego

package bitmap

// The fused NF4 GEMV of the avx2 set for dense-nf4 (nf4_avx2_amd64.s). The
// decode path (nf4Dequant into a bf16 buffer, then the bf16 bitmap kernels)
// writes every value to memory and reads it back; nf4DotAVX2 multiplies
// from the packed codes: it keeps one table of the 16 codes, rounded to
// bf16, in registers for the whole row, looks the 64 indices of a block up
// with VPSHUFB, widens them to fp32 in registers, accumulates them against
// x (permuted once per call to the order the lookups produce) into the
// block's sum and adds scale·sum to the row's. Building a scaled table per
// block instead (bf16(code·scale), the decoder's values) took 19 of the 52
// instructions of a block; without it a block takes 38 (on Zen 3, 64×4096,
// L2-resident: 1.4-1.9 cpu-ns per 16-column chunk against 2.6-3.2 with the
// per-block table, 4.2-4.4 decoded).
//
// Its weights are therefore bf16(code)·scale, not the decoder's
// bf16(code·scale): each is within 2⁻⁹ of code·scale (bf16 keeps 8
// significant bits, round to nearest), so they differ from the decoder's by
// at most 2⁻⁸ relative, and the product by at most 2⁻⁸·Σ|w·x| beyond the
// fp32 accumulation bound (nf4DotRelW, which the self-check and the tests
// allow against the decode path; checkNF4Dot compares with the kernel's
// own values in float64 within the accumulation bound alone).
//
// It reads whole blocks of 64 values, so it takes matrices whose rows are
// whole blocks (Cols a multiple of 64, as every LLM projection); others,
// and bitmap-nf4, stay on the decode path. For bitmap-nf4 the same kernel
// needs each row's x values of the kept columns gathered into packed order
// first (one VPERMPS and one store per mask byte), which costs more than the
// decoder it saves (on Zen 3, 64×4096 at 50%, L2-resident: 4.1-4.4 cpu-ns
// per 16-column chunk fused against 2.6-2.9 decoded).

//go:noescape
func nf4DotAVX2(codes *uint8, scales *float32, tab *[16]float32, xp *float32, blocks int) float32

// nf4DotPerm[i] is the value of a block of 64 that nf4DotAVX2 multiplies
// with xp[i]: register q = i/8 holds, for the even (q < 4) or odd values,
// the low (q%4 < 2) or high 8 index bytes of each 16-byte lane, the even
// (q even) or odd bytes of those; lane j = i%8 takes the one at byte
// 16·(j/4) + 8·(q/2%2) + 2·(j%4) + q%2 of the 32 code bytes.
var nf4DotPerm = func() (p [NF4BlockSize]int) {
	for i := range p {
		q, j := i/8, i%8
		b := 16*(j/4) + 8*(q/2%2) + 2*(j%4) + q%2
		p[i] = 2*b + q/4
	}
	return p
}()

// nf4DotRows is the number of rows whose scales are decoded at a time.
const nf4DotRows = 64

// avx2NF4Dot is the avx2 set's nf4Dot: dense-nf4 matrices of whole blocks.
func avx2NF4Dot(m *NF4, y, x []float32, r0, r1 int) int {
	if m.masks != nil || m.cols == 0 || m.cols%NF4BlockSize != 0 || r1 <= r0 {
		return r0
	}
	xp, xbuf := aligned(m.cols)
	for b := 0; b < m.cols; b += NF4BlockSize {
		for i, v := range nf4DotPerm {
			xp[b+i] = x[b+v]
		}
	}
	blocks := m.cols / NF4BlockSize
	for g0 := r0; g0 < r1; g0 += nf4DotRows {
		g1 := min(g0+nf4DotRows, r1)
		b0, b1 := g0*blocks, g1*blocks
		sc, sbuf := aligned(b1 - b0)
		m.scales(sc, b0, b1)
		for r := g0; r < g1; r++ {
			_ = m.codes[(r+1)*m.cols/2-1]
			y[r-r0] = nf4DotAVX2(&m.codes[r*m.cols/2], &sc[(r-g0)*blocks], &NF4Code, &xp[0], blocks)
		}
		putBuffer(&vectors, sbuf)
	}
	putBuffer(&vectors, xbuf)
	return r1
}
