//go:build amd64 && !purego

package bitmap

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// The AVX512-BF16 kernels (kernels_avx512bf16_amd64.s). xb is x rounded to
// bf16 by packBF16 (one row) or packBF16Batch (nb rows, group-major).

//go:noescape
func packBF16(dst []uint16, src []float32)

//go:noescape
func packBF16Batch(dst []uint16, src []float32, chunks, nb int)

//go:noescape
func dotDenseBF16DP(y []float32, w []uint16, xb []uint16, cols int)

//go:noescape
func dotBitmapBF16DP(y []float32, masks []uint16, vals []uint16, xb []uint16, chunks int)

//go:noescape
func dotBitmapBF16DPx4(y []float32, masks []uint16, vals []uint16, xb []uint16, chunks, rows int)

//go:noescape
func dotBitmapBF16DPx8(y []float32, masks []uint16, vals []uint16, xb []uint16, chunks, rows int)

//go:noescape
func dotBitmapBF16DPx12(y []float32, masks []uint16, vals []uint16, xb []uint16, chunks, rows int)

//go:noescape
func dotBitmapBF16DPx16(y []float32, masks []uint16, vals []uint16, xb []uint16, chunks, rows int)

//go:noescape
func dotDenseBF16DPx4(y []float32, w []uint16, xb []uint16, cols, rows int)

//go:noescape
func dotDenseBF16DPx8(y []float32, w []uint16, xb []uint16, cols, rows int)

//go:noescape
func dotDenseBF16DPx12(y []float32, w []uint16, xb []uint16, cols, rows int)

//go:noescape
func dotDenseBF16DPx16(y []float32, w []uint16, xb []uint16, cols, rows int)

var (
	dotBitmapBF16DPBatch = [maxBatch + 1]func(y []float32, masks []uint16, vals []uint16, xb []uint16, chunks, rows int){
		4: dotBitmapBF16DPx4, 8: dotBitmapBF16DPx8, 12: dotBitmapBF16DPx12, 16: dotBitmapBF16DPx16}
	dotDenseBF16DPBatch = [maxBatch + 1]func(y []float32, w []uint16, xb []uint16, cols, rows int){
		4: dotDenseBF16DPx4, 8: dotDenseBF16DPx8, 12: dotDenseBF16DPx12, 16: dotDenseBF16DPx16}
)

// hasAVX512BF16 reports whether the CPU (and OS) support what the dense
// avx512bf16 kernels use besides the avx512 set's needs: AVX-512 BW (word
// masks) and BF16 (VDPBF16PS, VCVTNE2PS2BF16).
func hasAVX512BF16() bool {
	return hasAVX512() && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512BF16
}

// newAVX512BF16Kernels is the avx512bf16 set: the avx512 set with the dot
// products of bf16 weights (dense and bitmap, batch 1 and small batches)
// replaced by VDPBF16PS kernels. The bitmap ones also need VPEXPANDW (AVX-512
// VBMI2): without vbmi2 the bitmap kernels stay the avx512 ones.
func newAVX512BF16Kernels(vbmi2 bool) *kernelSet {
	ks := *avx512Kernels
	ks.name = "avx512bf16"
	ks.fallback = avx512Kernels
	ks.denseBF16X = true
	ks.denseDot = func(d *DenseBF16, y, x []float32, r0, r1 int) {
		if r1 <= r0 {
			return
		}
		xb, buf := bf16Vector(x[:d.cols])
		dotDenseBF16DP(y[:r1-r0], d.w[r0*d.cols:r1*d.cols], xb, d.cols)
		putBuffer(&vectors, buf)
	}
	ks.denseDotBatch = func(d *DenseBF16, yT, xT []float32, nb, r0, r1 int) {
		if r1 <= r0 {
			return
		}
		xb, buf := bf16Batch(xT, ChunksPerRow(d.cols), nb)
		dotDenseBF16DPBatch[nb](yT[:(r1-r0)*nb], d.w[r0*d.cols:r1*d.cols], xb, d.cols, r1-r0)
		putBuffer(&vectors, buf)
	}
	if !vbmi2 {
		return &ks
	}
	ks.bitmapBF16X = true
	ks.bitmapDot = func(m *Matrix, y, x []float32, r0, r1 int) {
		if m.dtype != BF16 {
			avx512Kernels.bitmapDot(m, y, x, r0, r1)
			return
		}
		if r1 <= r0 {
			return
		}
		xb, buf := bf16Vector(x[:m.cols])
		dotBitmapBF16DP(y[:r1-r0], m.rowMasks(r0, r1), m.rowValues16(r0, r1), xb, m.chunks)
		putBuffer(&vectors, buf)
	}
	ks.bitmapDotBatch = func(m *Matrix, yT, xT []float32, nb, r0, r1 int) {
		if m.dtype != BF16 {
			avx512Kernels.bitmapDotBatch(m, yT, xT, nb, r0, r1)
			return
		}
		if r1 <= r0 {
			return
		}
		xb, buf := bf16Batch(xT, m.chunks, nb)
		dotBitmapBF16DPBatch[nb](yT[:(r1-r0)*nb], m.rowMasks(r0, r1), m.rowValues16(r0, r1), xb, m.chunks, r1-r0)
		putBuffer(&vectors, buf)
	}
	return &ks
}

// avx512BF16Kernels is the avx512bf16 set for this CPU (its bitmap kernels
// only with VBMI2); kernelPaths offers it only where hasAVX512BF16.
var avx512BF16Kernels = newAVX512BF16Kernels(cpu.X86.HasAVX512VBMI2)

// bf16Vector returns x rounded to bf16 in a 64-byte aligned scratch vector of
// whole groups of 32 values (zero past len(x)), inside buf, to hand back with
// putBuffer(&vectors, buf).
func bf16Vector(x []float32) (xb []uint16, buf []float32) {
	n := (len(x) + 31) / 32 * 32
	xb, buf = alignedBF16(n)
	packBF16(xb, x)
	return xb, buf
}

// bf16Batch returns the nb rows of x given chunk-major in xT (packBatch)
// rounded to bf16 in the group-major layout of the batch kernels
// (packBF16Batch), like bf16Vector.
func bf16Batch(xT []float32, chunks, nb int) (xb []uint16, buf []float32) {
	xb, buf = alignedBF16((chunks + 1) / 2 * nb * 32)
	packBF16Batch(xb, xT[:chunks*nb*ChunkCols], chunks, nb)
	return xb, buf
}

// alignedBF16 returns n (even) uint16s on a 64-byte boundary, viewing an
// aligned float32 vector of the vectors pool.
func alignedBF16(n int) (xb []uint16, buf []float32) {
	f, buf := aligned(n / 2)
	return unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(f))), n), buf
}
