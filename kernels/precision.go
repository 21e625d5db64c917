package kernels

import (
	"fmt"
	"sync/atomic"
)

// Precision is the arithmetic of the matrix products of a training step
// (train.precision). FP32 multiplies float32 operands. BF16 is autocast as
// PyTorch's CPU autocast does it for linear and matmul: both operands of a
// product are rounded to bfloat16 (nearest, ties to even), the products are
// accumulated in float32 and the result is float32. Everything else (norms,
// softmax, losses, weights, gradients, optimizer state) stays float32.
type Precision uint8

const (
	FP32 Precision = iota
	BF16
)

// String is the config spelling: "fp32" or "bf16".
func (p Precision) String() string {
	if p == BF16 {
		return "bf16"
	}
	return "fp32"
}

// ParsePrecision reads "fp32" or "bf16".
func ParsePrecision(s string) (Precision, error) {
	switch s {
	case "fp32":
		return FP32, nil
	case "bf16":
		return BF16, nil
	}
	return FP32, fmt.Errorf("precision %q: want fp32 or bf16", s)
}

// RoundBF16 writes src rounded to the nearest bfloat16 (ties to even) into
// dst, as T; dst may be src. A float64 value is first rounded to float32.
func RoundBF16[T Float](dst, src []T) {
	checkLen("RoundBF16 src", src, len(dst))
	for i, v := range src {
		dst[i] = T(BF16ToFloat32(Float32ToBF16(float32(v))))
	}
}

// BF16Gemm is a float32 GEMM with Gemm's arguments whose operands op(A) and
// op(B) are taken as rounded to bfloat16 (see Precision) and whose products
// accumulate in float32.
type BF16Gemm func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)

// bf16Gemm is the bf16 product in use and its name (see SetBF16Gemm).
var bf16Gemm atomic.Pointer[namedBF16Gemm]

type namedBF16Gemm struct {
	name string
	fn   BF16Gemm
}

// SetBF16Gemm replaces the emulated bf16 product (operands rounded, then the
// float32 Gemm) by a native one, e.g. AVX512-BF16 kernels registered at start
// when the CPU has them; name is what BF16GemmPath reports. fn nil restores
// the emulation. A native product must give the same values as the emulation
// up to float32 summation order.
func SetBF16Gemm(name string, fn BF16Gemm) {
	if fn == nil {
		bf16Gemm.Store(nil)
		return
	}
	bf16Gemm.Store(&namedBF16Gemm{name, fn})
}

// BF16GemmPath names the bf16 product in use: "emulated" unless SetBF16Gemm
// installed another.
func BF16GemmPath() string {
	if g := bf16Gemm.Load(); g != nil {
		return g.name
	}
	return "emulated"
}

// MatMul is Gemm in precision p: the one entry point of the products that
// train.precision governs. With BF16 it runs the product installed by
// SetBF16Gemm, by default the emulation: op(A) and op(B) copied rounded to
// bfloat16 (contiguous, pooled scratch), then Gemm. float64 operands (the
// gradient checks) always use the emulation.
func MatMul[T Float](p Precision, transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	if p != BF16 {
		Gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	bf16Product(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, Gemm[T])
}

// bf16Product is MatMul with BF16, emulated with gemm (Gemm, or gemmAuto
// inside kernels that already run in parallel) when no native product is
// installed.
func bf16Product[T Float](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int,
	gemm func(transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int)) {
	if m == 0 || n == 0 || k == 0 {
		gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	if g := bf16Gemm.Load(); g != nil {
		if a32, ok := any(a).([]float32); ok {
			gemmCalls.Add(1)
			g.fn(transA, transB, m, n, k, float32(alpha), a32, lda, any(b).([]float32), ldb, float32(beta), any(c).([]float32), ldc)
			return
		}
	}
	ar, ac := m, k // A as stored
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	ra, rb := getScratch[T](ar*ac), getScratch[T](br*bc)
	defer putScratch(ra)
	defer putScratch(rb)
	roundRows(*ra, a, ar, ac, lda)
	roundRows(*rb, b, br, bc, ldb)
	gemm(transA, transB, m, n, k, alpha, *ra, ac, *rb, bc, beta, c, ldc)
}

// roundRows writes the rows × cols matrix src (row stride ld) rounded to
// bfloat16 into the contiguous dst.
func roundRows[T Float](dst, src []T, rows, cols, ld int) {
	if ld == cols {
		RoundBF16(dst[:rows*cols], src[:rows*cols])
		return
	}
	for r := 0; r < rows; r++ {
		RoundBF16(dst[r*cols:(r+1)*cols], src[r*ld:r*ld+cols])
	}
}

// AutocastBF16 returns m with the activation operand of its products
// rounded to bfloat16 (x in MulT, dy in Mul) before m multiplies it: the
// frozen weights' side of BF16 autocast. m's weights must already be bfloat16
// values (a bf16 base, or a float32 one converted), so the products are
// exactly those of MatMul with BF16.
func AutocastBF16[T Float](m Matrix[T]) Matrix[T] { return autocastBF16[T]{m} }

type autocastBF16[T Float] struct{ Matrix[T] }

func (a autocastBF16[T]) MulT(y, x []T, n int) {
	xr := getScratch[T](n * a.Cols())
	defer putScratch(xr)
	RoundBF16(*xr, x[:n*a.Cols()])
	a.Matrix.MulT(y, *xr, n)
}

func (a autocastBF16[T]) Mul(dx, dy []T, n int) {
	dyr := getScratch[T](n * a.Rows())
	defer putScratch(dyr)
	RoundBF16(*dyr, dy[:n*a.Rows()])
	a.Matrix.Mul(dx, *dyr, n)
}

// BF16ScratchBytes bounds the pooled scratch of the emulated bf16 products
// of a training step whose largest operand is rows × cols float32 values:
// the rounded copies of both operands of one product at a time.
func BF16ScratchBytes(rows, cols int) int64 { return 4 * 2 * pooledElems(rows*cols) }
