package kernels

import (
	"runtime"

	"gonum.org/v1/gonum/blas"
)

// Float is the element type of the kernels: float32 for training and
// inference, float64 for gradient checks.
type Float interface{ ~float32 | ~float64 }

// BLAS is the dense linear-algebra backend: OpenBLAS through cgo by default,
// gonum's pure-Go implementation when built with the purego tag
// (see backend_openblas.go and backend_purego.go, the one switch point).
// It carries the complex routines too so that gorgonia can share it.
type BLAS interface {
	blas.Float32
	blas.Float64
	blas.Complex64
	blas.Complex128
}

// Backend returns the dense BLAS implementation this binary was built with.
// Gorgonia is switched to the same implementation by the gop package.
func Backend() BLAS { return backend }

// BackendName names the dense BLAS backend ("openblas" or "gonum").
func BackendName() string { return backendName }

func trans(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}

// Gemm computes C = alpha * op(A) * op(B) + beta * C on row-major matrices,
// where op(A) is m×k, op(B) is k×n and C is m×n; op(X) is X or Xᵀ as transA and
// transB say. lda, ldb and ldc are the row strides of A, B and C as stored.
// With m == 1 and beta handled by the backend it uses GEMV, which is several
// times faster than a 1×k GEMM.
func Gemm[T Float](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		// BLAS leaves C untouched when k is 0 only if beta is 1; be explicit.
		for i := 0; i < m; i++ {
			row := c[i*ldc : i*ldc+n]
			for j := range row {
				row[j] *= beta
			}
		}
		return
	}
	switch av := any(a).(type) {
	case []float32:
		bv, cv := any(b).([]float32), any(c).([]float32)
		if m == 1 {
			// y = alpha * op(B)ᵀ x + beta * y with x = row 0 of op(A) (contiguous when
			// A is not transposed, strided by lda when it is).
			incX := 1
			if transA {
				incX = lda
			}
			// y is cut to its n elements: gonum's GemvT with beta 0 clears all of y.
			if transB {
				backend.Sgemv(blas.NoTrans, n, k, float32(alpha), bv, ldb, av, incX, float32(beta), cv[:n], 1)
			} else {
				backend.Sgemv(blas.Trans, k, n, float32(alpha), bv, ldb, av, incX, float32(beta), cv[:n], 1)
			}
			return
		}
		backend.Sgemm(trans(transA), trans(transB), m, n, k, float32(alpha), av, lda, bv, ldb, float32(beta), cv, ldc)
	case []float64:
		bv, cv := any(b).([]float64), any(c).([]float64)
		backend.Dgemm(trans(transA), trans(transB), m, n, k, float64(alpha), av, lda, bv, ldb, float64(beta), cv, ldc)
	default:
		panic("kernels: Gemm: unsupported element type")
	}
}

// SetThreads limits the CPU threads used by the kernels: Go's scheduler
// (GOMAXPROCS, which bounds the kernels' goroutines) and the BLAS backend's
// own threads. n <= 0 means all cores.
func SetThreads(n int) {
	if n <= 0 {
		n = runtime.NumCPU()
	}
	runtime.GOMAXPROCS(n)
	setBLASThreads(n)
}
