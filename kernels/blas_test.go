package kernels

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// naiveGemm is the textbook triple loop, the reference for Gemm.
func naiveGemm(transA, transB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				var av, bv float64
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += av * bv
			}
			c[i*ldc+j] = alpha*s + beta*c[i*ldc+j]
		}
	}
}

// TestGemmMatchesNaive checks Gemm against the triple loop for every
// transpose, padded strides and guard values after C, on small shapes (one
// BLAS call) and on shapes that Gemm splits across goroutines by rows, by
// columns and as a GEMV.
func TestGemmMatchesNaive(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	rng := rand.New(rand.NewPCG(1, 2))
	for _, sh := range []struct{ m, n, k, workers int }{
		{1, 5, 7, 1}, {3, 5, 7, 1},
		{70, 96, 200, 4},   // row blocks, the last one short
		{8, 250, 600, 4},   // column blocks
		{1, 1030, 1100, 4}, // GEMV split by columns
	} {
		if got := gemmWorkers(sh.m, sh.n, sh.k); got != sh.workers {
			t.Errorf("gemmWorkers(%d, %d, %d) = %d, want %d", sh.m, sh.n, sh.k, got, sh.workers)
		}
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				checkGemm(t, rng, sh.m, sh.n, sh.k, tA, tB)
			}
		}
	}
}

func checkGemm(t *testing.T, rng *rand.Rand, m, n, k int, tA, tB bool) {
	t.Helper()
	lda, ldb, ldc := k+1, n+2, n+3
	if tA {
		lda = m + 1
	}
	if tB {
		ldb = k + 2
	}
	rowsA, rowsB := m, k
	if tA {
		rowsA = k
	}
	if tB {
		rowsB = n
	}
	a := make([]float64, rowsA*lda)
	b := make([]float64, rowsB*ldb)
	c := make([]float64, m*ldc+3) // guard values after the last row
	for i := range a {
		a[i] = rng.NormFloat64()
	}
	for i := range b {
		b[i] = rng.NormFloat64()
	}
	for i := range c {
		c[i] = rng.NormFloat64()
	}
	want := append([]float64(nil), c...)
	naiveGemm(tA, tB, m, n, k, 0.7, a, lda, b, ldb, 0.3, want, ldc)

	got64 := append([]float64(nil), c...)
	Gemm(tA, tB, m, n, k, 0.7, a, lda, b, ldb, 0.3, got64, ldc)
	a32, b32, c32 := to32(a), to32(b), to32(c)
	Gemm(tA, tB, m, n, k, 0.7, a32, lda, b32, ldb, 0.3, c32, ldc)
	tol32 := 1e-4 + 2e-6*float64(k)
	for i := range want {
		if math.Abs(got64[i]-want[i]) > 1e-10 || math.Abs(float64(c32[i])-want[i]) > tol32 {
			t.Fatalf("%dx%dx%d tA=%v tB=%v: c[%d] = %v (f64) %v (f32), want %v", m, n, k, tA, tB, i, got64[i], c32[i], want[i])
		}
	}
}

func to32(x []float64) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(v)
	}
	return y
}

// TestGramMatchesNaive checks Gram against the triple loop, both ways round,
// with padded strides, guard values after C and stale values in C's lower
// triangle, on one BLAS call and on shapes split across goroutines.
func TestGramMatchesNaive(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(3))
	rng := rand.New(rand.NewPCG(3, 4))
	for _, sh := range []struct{ n, k int }{{1, 1}, {5, 7}, {6, 0}, {70, 300}, {130, 1000}} {
		for _, tA := range []bool{false, true} {
			n, k := sh.n, sh.k
			rowsA, colsA := n, k
			if tA {
				rowsA, colsA = k, n
			}
			lda, ldc := colsA+2, n+3
			a := make([]float64, max(1, rowsA)*lda)
			for i := range a {
				a[i] = rng.NormFloat64()
			}
			c := make([]float64, n*ldc+5)
			for i := range c {
				c[i] = 99
			}
			want := make([]float64, n*n)
			naiveGemm(tA, !tA, n, n, k, 1, a, lda, a, lda, 0, want, n)
			Gram(tA, n, k, a, lda, c, ldc)
			for i := 0; i < n; i++ {
				for j := 0; j < n; j++ {
					if d := math.Abs(c[i*ldc+j] - want[i*n+j]); d > 1e-9*float64(k+1) {
						t.Fatalf("n %d k %d transA %v: C[%d %d] = %g, want %g", n, k, tA, i, j, c[i*ldc+j], want[i*n+j])
					}
				}
			}
			for i := range c {
				if (i >= n*ldc || i%ldc >= n) && c[i] != 99 {
					t.Fatalf("n %d k %d transA %v: Gram wrote outside C", n, k, tA)
				}
			}
		}
	}
}
