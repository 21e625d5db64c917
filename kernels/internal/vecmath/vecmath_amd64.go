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
func expShiftedSumAVX2(dst, src *float32, n int, shift float32) float64

//go:noescape
func sigmoidAVX2(dst, src *float32, n int)

//go:noescape
func maxAVX2(src *float32, n int) float32

// available returns the AVX-512F kernels when the CPU and the OS support them,
// then the AVX2+FMA ones when supported, then the Go reference.
func available() []Impl {
	var impls []Impl
	if cpu.X86.HasAVX512F {
		impls = append(impls, asmImpl("avx512", expShiftedSumAVX512, sigmoidAVX512, maxAVX512))
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		impls = append(impls, asmImpl("avx2", expShiftedSumAVX2, sigmoidAVX2, maxAVX2))
	}
	return append(impls, goImpl)
}

// asmImpl wraps assembly kernels taking pointers and lengths as slice
// functions (checking that dst is long enough).
func asmImpl(name string,
	expShiftedSum func(dst, src *float32, n int, shift float32) float64,
	sigmoid func(dst, src *float32, n int),
	maximum func(src *float32, n int) float32,
) Impl {
	return Impl{
		Name: name,
		ExpShiftedSum: func(dst, src []float32, shift float32) float64 {
			dst = dst[:len(src)]
			return expShiftedSum(unsafe.SliceData(dst), unsafe.SliceData(src), len(src), shift)
		},
		Sigmoid: func(dst, src []float32) {
			dst = dst[:len(src)]
			sigmoid(unsafe.SliceData(dst), unsafe.SliceData(src), len(src))
		},
		Max: func(x []float32) float32 { return maximum(unsafe.SliceData(x), len(x)) },
	}
}
