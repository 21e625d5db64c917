//go:build amd64 && !purego

package bitmap

import "golang.org/x/sys/cpu"

// The assembly kernels (kernels_amd64.s). Row counts are the lengths of y, dy
// or src; chunks is masks per row. The callers below slice every argument to
// exactly the range the kernel may touch; value slices must keep valuePad
// spare values of capacity after their length.

//go:noescape
func dotBitmapBF16(y []float32, masks []uint16, vals []uint16, x []float32, chunks int)

//go:noescape
func dotBitmapF16(y []float32, masks []uint16, vals []uint16, x []float32, chunks int)

//go:noescape
func dotBitmapF32(y []float32, masks []uint16, vals []float32, x []float32, chunks int)

//go:noescape
func axpyBitmapBF16(dx []float32, masks []uint16, vals []uint16, dy []float32, chunks int)

//go:noescape
func axpyBitmapF16(dx []float32, masks []uint16, vals []uint16, dy []float32, chunks int)

//go:noescape
func axpyBitmapF32(dx []float32, masks []uint16, vals []float32, dy []float32, chunks int)

//go:noescape
func decodeBitmapBF16(dst []float32, masks []uint16, vals []uint16, rows, cols int)

//go:noescape
func decodeBitmapF16(dst []float32, masks []uint16, vals []uint16, rows, cols int)

//go:noescape
func decodeBitmapF32(dst []float32, masks []uint16, vals []float32, rows, cols int)

//go:noescape
func dotDenseBF16(y []float32, w []uint16, x []float32, cols int)

//go:noescape
func axpyDenseBF16(dx []float32, w []uint16, dy []float32, cols int)

//go:noescape
func widenBF16(dst []float32, src []uint16)

// hasAVX512 reports whether the CPU (and OS) support the instructions the
// assembly uses: AVX-512 F and POPCNT.
func hasAVX512() bool { return cpu.X86.HasAVX512F && cpu.X86.HasPOPCNT }

// avx512Kernels wraps the assembly in the kernelSet signatures.
var avx512Kernels = &kernelSet{
	name: "avx512",
	bitmapDot: func(m *Matrix, y, x []float32, r0, r1 int) {
		if r1 <= r0 {
			return
		}
		y, x, masks := y[:r1-r0], x[:m.cols], m.rowMasks(r0, r1)
		switch m.dtype {
		case BF16:
			dotBitmapBF16(y, masks, m.rowValues16(r0, r1), x, m.chunks)
		case F16:
			dotBitmapF16(y, masks, m.rowValues16(r0, r1), x, m.chunks)
		case F32:
			dotBitmapF32(y, masks, m.rowValues32(r0, r1), x, m.chunks)
		}
	},
	bitmapAxpy: func(m *Matrix, dx, dy []float32, r0, r1 int) {
		if r1 <= r0 {
			return
		}
		dx, dy, masks := dx[:m.cols], dy[:r1-r0], m.rowMasks(r0, r1)
		switch m.dtype {
		case BF16:
			axpyBitmapBF16(dx, masks, m.rowValues16(r0, r1), dy, m.chunks)
		case F16:
			axpyBitmapF16(dx, masks, m.rowValues16(r0, r1), dy, m.chunks)
		case F32:
			axpyBitmapF32(dx, masks, m.rowValues32(r0, r1), dy, m.chunks)
		}
	},
	bitmapDecode: func(m *Matrix, dst []float32, r0, r1 int) {
		if r1 <= r0 {
			return
		}
		dst, masks := dst[:(r1-r0)*m.cols], m.rowMasks(r0, r1)
		switch m.dtype {
		case BF16:
			decodeBitmapBF16(dst, masks, m.rowValues16(r0, r1), r1-r0, m.cols)
		case F16:
			decodeBitmapF16(dst, masks, m.rowValues16(r0, r1), r1-r0, m.cols)
		case F32:
			decodeBitmapF32(dst, masks, m.rowValues32(r0, r1), r1-r0, m.cols)
		}
	},
	denseDot: func(d *DenseBF16, y, x []float32, r0, r1 int) {
		if r1 > r0 {
			dotDenseBF16(y[:r1-r0], d.w[r0*d.cols:r1*d.cols], x[:d.cols], d.cols)
		}
	},
	denseAxpy: func(d *DenseBF16, dx, dy []float32, r0, r1 int) {
		if r1 > r0 {
			axpyDenseBF16(dx[:d.cols], d.w[r0*d.cols:r1*d.cols], dy[:r1-r0], d.cols)
		}
	},
	denseDecode: func(d *DenseBF16, dst []float32, r0, r1 int) {
		widenBF16(dst[:(r1-r0)*d.cols], d.w[r0*d.cols:r1*d.cols])
	},
}

// kernelSets lists every implementation this CPU can run (for the tests).
var kernelSets = availableKernelSets()

// defaultKernels is the fastest implementation this CPU can run.
var defaultKernels = kernelSets[len(kernelSets)-1]

func availableKernelSets() []*kernelSet {
	if hasAVX512() {
		return []*kernelSet{goKernels, avx512Kernels}
	}
	return []*kernelSet{goKernels}
}
