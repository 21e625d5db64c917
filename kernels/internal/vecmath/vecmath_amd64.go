//go:build amd64 && !purego

package vecmath

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// Assembly kernels (vecmath_amd64.s) on n elements; the pointers are not
// dereferenced when n == 0.

//go:noescape
func expShiftedSumAVX512(dst, src *float32, n int, shift float32) float64

//go:noescape
func sigmoidAVX512(dst, src *float32, n int)

//go:noescape
func maxAVX512(src *float32, n int) float32

//go:noescape
func scaleAVX512(x *float32, n int, a float32)

//go:noescape
func softmaxBackwardAVX512(dx, p *float32, n int)

//go:noescape
func expShiftedSumAVX2(dst, src *float32, n int, shift float32) float64

//go:noescape
func sigmoidAVX2(dst, src *float32, n int)

//go:noescape
func maxAVX2(src *float32, n int) float32

//go:noescape
func scaleAVX2(x *float32, n int, a float32)

//go:noescape
func softmaxBackwardAVX2(dx, p *float32, n int)

// asmKernels are the assembly kernels of one instruction set.
type asmKernels struct {
	expShiftedSum   func(dst, src *float32, n int, shift float32) float64
	sigmoid         func(dst, src *float32, n int)
	max             func(src *float32, n int) float32
	scale           func(x *float32, n int, a float32)
	softmaxBackward func(dx, p *float32, n int)
}

// available returns the AVX-512F kernels when the CPU and the OS support them,
// then the AVX2+FMA ones when supported, then the Go reference.
func available() []Impl {
	var impls []Impl
	if cpu.X86.HasAVX512F {
		impls = append(impls, asmImpl("avx512", asmKernels{
			expShiftedSumAVX512, sigmoidAVX512, maxAVX512, scaleAVX512, softmaxBackwardAVX512}))
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		impls = append(impls, asmImpl("avx2", asmKernels{
			expShiftedSumAVX2, sigmoidAVX2, maxAVX2, scaleAVX2, softmaxBackwardAVX2}))
	}
	return append(impls, goImpl)
}

// asmImpl wraps assembly kernels taking pointers and lengths as slice
// functions (checking that second slices are long enough).
func asmImpl(name string, k asmKernels) Impl {
	return Impl{
		Name: name,
		ExpShiftedSum: func(dst, src []float32, shift float32) float64 {
			dst = dst[:len(src)]
			return k.expShiftedSum(unsafe.SliceData(dst), unsafe.SliceData(src), len(src), shift)
		},
		Sigmoid: func(dst, src []float32) {
			dst = dst[:len(src)]
			k.sigmoid(unsafe.SliceData(dst), unsafe.SliceData(src), len(src))
		},
		Max:   func(x []float32) float32 { return k.max(unsafe.SliceData(x), len(x)) },
		Scale: func(x []float32, a float32) { k.scale(unsafe.SliceData(x), len(x), a) },
		SoftmaxBackward: func(dx, p []float32) {
			p = p[:len(dx)]
			k.softmaxBackward(unsafe.SliceData(dx), unsafe.SliceData(p), len(dx))
		},
	}
}
