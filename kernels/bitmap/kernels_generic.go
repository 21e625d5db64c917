package bitmap

import (
	"math/bits"

	"github.com/salr-go/salr/kernels"
)

// kernelSet is one implementation of the inner loops. Each works on the row
// range [r0, r1) of its matrix and is called concurrently on disjoint ranges.
type kernelSet struct {
	name string

	// bitmapDot sets y[i] = W[r0+i, :] · x for i < r1-r0 (x has Cols values).
	bitmapDot func(m *Matrix, y, x []float32, r0, r1 int)
	// bitmapAxpy adds Σ_i dy[i] W[r0+i, :] to dx[:Cols].
	bitmapAxpy func(m *Matrix, dx, dy []float32, r0, r1 int)
	// bitmapDecode writes rows [r0, r1) densely into dst ((r1-r0) × Cols).
	bitmapDecode func(m *Matrix, dst []float32, r0, r1 int)

	// bitmapDotBatch sets yT[i*nb+b] = W[r0+i, :] · (row b of x) for nb
	// rows of x given chunk-major in xT (see packBatch).
	bitmapDotBatch func(m *Matrix, yT, xT []float32, nb, r0, r1 int)

	// denseDot, denseAxpy, denseDecode and denseDotBatch are the same for
	// DenseBF16.
	denseDot      func(d *DenseBF16, y, x []float32, r0, r1 int)
	denseDotBatch func(d *DenseBF16, yT, xT []float32, nb, r0, r1 int)
	denseAxpy     func(d *DenseBF16, dx, dy []float32, r0, r1 int)
	denseDecode   func(d *DenseBF16, dst []float32, r0, r1 int)

	// denseMulT and bitmapMulT, when set, compute y = x Wᵀ for batches of
	// more than maxBatch rows in place of the fp32 panel pipeline into
	// kernels.Gemm (bitmapMulT returns false for the value types it leaves to
	// the pipeline). They round x to bf16 and accumulate in fp32, with the
	// error bound of denseBF16X.
	denseMulT  func(d *DenseBF16, y, x []float32, n int)
	bitmapMulT func(m *Matrix, y, x []float32, n int) bool
	// denseMul and bitmapMul are the same for Mul (dx = dy W, rounding dy).
	denseMul  func(d *DenseBF16, dx, dy []float32, n int)
	bitmapMul func(m *Matrix, dx, dy []float32, n int) bool

	// denseBF16X and bitmapBF16X say that denseDot/denseDotBatch and, for
	// bf16 values, bitmapDot/bitmapDotBatch round x to bf16 (nearest even,
	// subnormals to zero) and accumulate the exact products in fp32, as
	// VDPBF16PS does: their error bound grows by 2⁻⁸ Σ|w||x|.
	denseBF16X, bitmapBF16X bool

	// nf4Dequant, when set, writes the NF4 values [k0, k1) as bf16 into
	// dst, sc holding the decoded scales from block k0/NF4BlockSize on
	// (dequantGo when nil). NF4 matrices then run the set's bf16 bitmap
	// kernels on the decoded values.
	nf4Dequant func(dst []uint16, codes []uint8, sc []float32, k0, k1 int)
	// nf4Dot, when set, is the fused batch-1 product of NF4 matrices: it
	// sets y[i] = W[r0+i, :] · x for rows [r0, done) straight from the
	// packed codes, with the values bf16(code)·scale (within 2⁻⁸ of the
	// decoder's bf16(code·scale): nf4DotRelW), and returns done; the rows [done, r1) it leaves go through the
	// decoder and the bf16 bitmap kernels.
	nf4Dot func(m *NF4, y, x []float32, r0, r1 int) (done int)

	// fallback, when set, is the set used instead of this one if this one
	// fails its self-check against it (selfcheck.go).
	fallback *kernelSet
}

// roundsX reports whether ks rounds the activation operand to bf16 in some
// of its products (so it is not exact in fp32).
func (ks *kernelSet) roundsX() bool { return ks.denseBF16X || ks.bitmapBF16X }

// goKernels is the pure-Go reference implementation. Every kernel goes
// through one dense fp32 row at a time (decodeRowGo/widenRowGo), which keeps
// the references short and obviously right; speed comes from the assembly.
var goKernels = &kernelSet{
	name:         "go",
	bitmapDot:    func(m *Matrix, y, x []float32, r0, r1 int) { dotRows(m.decodeRowsGo, m.cols, y, x, r0, r1) },
	bitmapAxpy:   func(m *Matrix, dx, dy []float32, r0, r1 int) { axpyRows(m.decodeRowsGo, m.cols, dx, dy, r0, r1) },
	bitmapDecode: func(m *Matrix, dst []float32, r0, r1 int) { m.decodeRowsGo(dst, r0, r1) },
	bitmapDotBatch: func(m *Matrix, yT, xT []float32, nb, r0, r1 int) {
		dotBatchRows(m.decodeRowsGo, m.cols, yT, xT, nb, r0, r1)
	},
	denseDot: func(d *DenseBF16, y, x []float32, r0, r1 int) { dotRows(d.decodeRowsGo, d.cols, y, x, r0, r1) },
	denseDotBatch: func(d *DenseBF16, yT, xT []float32, nb, r0, r1 int) {
		dotBatchRows(d.decodeRowsGo, d.cols, yT, xT, nb, r0, r1)
	},
	denseAxpy:   func(d *DenseBF16, dx, dy []float32, r0, r1 int) { axpyRows(d.decodeRowsGo, d.cols, dx, dy, r0, r1) },
	denseDecode: func(d *DenseBF16, dst []float32, r0, r1 int) { d.decodeRowsGo(dst, r0, r1) },
}

// dotRows computes y[i] = row(r0+i) · x with rows produced by decodeRows.
func dotRows(decodeRows func(dst []float32, r0, r1 int), cols int, y, x []float32, r0, r1 int) {
	row := make([]float32, cols)
	x = x[:cols]
	for r := r0; r < r1; r++ {
		decodeRows(row, r, r+1)
		var s float32
		for j, w := range row {
			s += w * x[j]
		}
		y[r-r0] = s
	}
}

// dotBatchRows computes yT[(r-r0)*nb+b] = row(r) · x_b with the nb rows of x
// in the chunk-major layout of packBatch.
func dotBatchRows(decodeRows func(dst []float32, r0, r1 int), cols int, yT, xT []float32, nb, r0, r1 int) {
	row := make([]float32, cols)
	for r := r0; r < r1; r++ {
		decodeRows(row, r, r+1)
		for b := 0; b < nb; b++ {
			var s float32
			for j, w := range row {
				s += w * xT[(j/ChunkCols*nb+b)*ChunkCols+j%ChunkCols]
			}
			yT[(r-r0)*nb+b] = s
		}
	}
}

// axpyRows adds Σ_i dy[i] row(r0+i) to dx[:cols].
func axpyRows(decodeRows func(dst []float32, r0, r1 int), cols int, dx, dy []float32, r0, r1 int) {
	row := make([]float32, cols)
	dx = dx[:cols]
	for r := r0; r < r1; r++ {
		decodeRows(row, r, r+1)
		a := dy[r-r0]
		for j, w := range row {
			dx[j] += a * w
		}
	}
}

// decodeRowsGo writes rows [r0, r1) of m densely into dst.
func (m *Matrix) decodeRowsGo(dst []float32, r0, r1 int) {
	var wide []float32
	if m.dtype != F32 {
		wide = make([]float32, m.cols)
	}
	for r := r0; r < r1; r++ {
		var vals []float32
		switch m.dtype {
		case F32:
			vals = m.rowValues32(r, r+1)
		case BF16:
			vals = wide[:m.rowPtr[r+1]-m.rowPtr[r]]
			kernels.BF16ToFloat32Slice(vals, m.rowValues16(r, r+1))
		case F16:
			vals = wide[:m.rowPtr[r+1]-m.rowPtr[r]]
			kernels.F16ToFloat32Slice(vals, m.rowValues16(r, r+1))
		}
		scatterRow(dst[(r-r0)*m.cols:(r-r0+1)*m.cols], m.rowMasks(r, r+1), vals)
	}
}

// scatterRow writes the packed values vals to the positions the masks select
// in the dense row dst and zeros elsewhere.
func scatterRow(dst []float32, masks []uint16, vals []float32) {
	clear(dst)
	k := 0
	for c, mask := range masks {
		for mask != 0 {
			dst[c*ChunkCols+bits.TrailingZeros16(mask)] = vals[k]
			k++
			mask &= mask - 1
		}
	}
}

// decodeRowsGo writes rows [r0, r1) of d as fp32 into dst.
func (d *DenseBF16) decodeRowsGo(dst []float32, r0, r1 int) {
	kernels.BF16ToFloat32Slice(dst[:(r1-r0)*d.cols], d.w[r0*d.cols:r1*d.cols])
}
