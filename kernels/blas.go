package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"

	"gonum.org/v1/gonum/blas"
)

// Float is the element type of the kernels: float32 for training and
// inference, float64 for gradient checks.
type Float interface{ ~float32 | ~float64 }

// BLAS is the dense linear-algebra backend: OpenBLAS through cgo by default,
// gonum's pure-Go implementation when built with the purego tag or without
// cgo (see backend_openblas.go and backend_purego.go, the one switch point).
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
//
// Large products are split into blocks of C's rows (or, when C has few rows,
// of its columns), one per goroutine up to GOMAXPROCS, each a single-threaded
// BLAS call. The backend's own threads are never used (backend_openblas.go):
// OpenBLAS's idle threads spin for a while after every threaded call, and
// would take the cores from the goroutines of the other kernels that run
// between BLAS calls. The split depends only on the shape and GOMAXPROCS.
func Gemm[T Float](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	gemmCalls.Add(1)
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
	workers := gemmWorkers(m, n, k)
	if workers <= 1 {
		gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	if m >= gemmRowBlock*workers {
		// Blocks of rows of C: rows [lo, hi) of op(A).
		parts := splitAligned(m, workers, gemmRowBlock)
		fanOut(len(parts)-1, func(w int) {
			lo, hi := parts[w], parts[w+1]
			aOff := lo * lda
			if transA {
				aOff = lo
			}
			gemm(transA, transB, hi-lo, n, k, alpha, a[aOff:], lda, b, ldb, beta, c[lo*ldc:], ldc)
		})
		return
	}
	// Blocks of columns of C: columns [lo, hi) of op(B).
	parts := splitAligned(n, workers, gemmColBlock)
	fanOut(len(parts)-1, func(w int) {
		lo, hi := parts[w], parts[w+1]
		bOff := lo
		if transB {
			bOff = lo * ldb
		}
		gemm(transA, transB, m, hi-lo, k, alpha, a, lda, b[bOff:], ldb, beta, c[lo:], ldc)
	})
}

// gemmCalls counts the calls of Gemm (see GemmCalls).
var gemmCalls atomic.Uint64

// GemmCalls returns how many times Gemm has been called in this process, so
// that tests can count the products a computation makes.
func GemmCalls() uint64 { return gemmCalls.Load() }

// gemm is one single-threaded backend call of Gemm (k > 0, m, n > 0).
func gemm[T Float](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
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

// Gram computes the n×n Gram matrix C = A Aᵀ of the row-major n×k matrix A
// (transA false) or C = Aᵀ A of the k×n matrix A (transA true), both triangles
// of C, with the backend's SYRK at about half the multiply-adds of Gemm. lda
// and ldc are the row strides of A and C. Large products are split along k,
// one goroutine per block up to GOMAXPROCS, each summing into its own n×n
// buffer; the split and the order of the sums depend only on the shape and
// GOMAXPROCS.
func Gram[T Float](transA bool, n, k int, a []T, lda int, c []T, ldc int) {
	if n == 0 {
		return
	}
	workers := max(1, min(runtime.GOMAXPROCS(0), n*n*k/2/gemmMinWork))
	parts := splitAligned(k, workers, gemmRowBlock)
	partial := make([][]T, len(parts)-1) // worker w > 0 sums into partial[w], n×n
	fanOut(len(parts)-1, func(w int) {
		lo, hi := parts[w], parts[w+1]
		aOff := lo // columns [lo, hi) of A
		if transA {
			aOff = lo * lda // rows [lo, hi) of A
		}
		dst, ldd := c, ldc
		if w > 0 {
			partial[w] = make([]T, n*n)
			dst, ldd = partial[w], n
		}
		syrk(transA, n, hi-lo, a[aOff:], lda, dst, ldd)
	})
	for i := 0; i < n; i++ {
		row := c[i*ldc : i*ldc+n]
		for _, p := range partial[1:] {
			for j, v := range p[i*n+i : i*n+n] {
				row[i+j] += v
			}
		}
		for j := 0; j < i; j++ {
			row[j] = c[j*ldc+i]
		}
	}
}

// syrk is one single-threaded backend call of Gram: the upper triangle of C
// (k may be 0).
func syrk[T Float](transA bool, n, k int, a []T, lda int, c []T, ldc int) {
	switch av := any(a).(type) {
	case []float32:
		backend.Ssyrk(blas.Upper, trans(transA), n, k, 1, av, lda, 0, any(c).([]float32), ldc)
	case []float64:
		backend.Dsyrk(blas.Upper, trans(transA), n, k, 1, av, lda, 0, any(c).([]float64), ldc)
	default:
		panic("kernels: Gram: unsupported element type")
	}
}

// Blocking of Gemm's goroutine split: row blocks are multiples of
// gemmRowBlock rows and column blocks of gemmColBlock columns (the register
// tile sizes of OpenBLAS's AVX-512 sgemm), and a product gets one goroutine
// per gemmMinWork multiply-adds.
const (
	gemmRowBlock = 16
	gemmColBlock = 16
	gemmMinWork  = 1 << 18
)

// gemmWorkers is the number of goroutines Gemm splits an m×n×k product into.
func gemmWorkers(m, n, k int) int {
	return max(1, min(runtime.GOMAXPROCS(0), m*n*k/gemmMinWork, max(m/gemmRowBlock, n/gemmColBlock)))
}

// splitAligned cuts [0, n) into at most parts contiguous ranges whose inner
// boundaries are multiples of align, as even as that allows; it returns the
// boundaries (first 0, last n).
func splitAligned(n, parts, align int) []int {
	units := (n + align - 1) / align
	parts = max(1, min(parts, units))
	bounds := make([]int, parts+1)
	for p := 1; p < parts; p++ {
		bounds[p] = units * p / parts * align
	}
	bounds[parts] = n
	return bounds
}

// fanOut runs fn(0), ..., fn(n-1) on n goroutines (fn(0) on the caller's) and
// waits for all of them.
func fanOut(n int, fn func(i int)) {
	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		wg.Go(func() { fn(i) })
	}
	fn(0)
	wg.Wait()
}

// SetThreads limits the CPU threads used by the kernels to n (n <= 0 means
// all cores): GOMAXPROCS, which bounds the goroutines of every kernel,
// Gemm's included. The BLAS backend runs single-threaded inside them.
func SetThreads(n int) {
	if n <= 0 {
		n = runtime.NumCPU()
	}
	runtime.GOMAXPROCS(n)
}
