package adapters

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/salr-go/salr/kernels"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack/lapack64"
	"gonum.org/v1/gonum/mat"
)

// SVDMethod is how SVD computes a truncated SVD.
type SVDMethod string

// The SVD methods; the zero value "" means SVDAuto.
const (
	// SVDAuto is SVDExact for matrices with min(rows, cols) <=
	// ExactSVDMaxDim and SVDRandomized for larger ones.
	SVDAuto SVDMethod = "auto"
	// SVDExact truncates the full SVD (ExactSVD): the optimum, but its cost
	// grows as rows·cols·min(rows, cols) in pure-Go float64.
	SVDExact SVDMethod = "exact"
	// SVDRandomized is RandomizedSVD with the config's Oversample and
	// PowerIters.
	SVDRandomized SVDMethod = "randomized"
)

// ExactSVDMaxDim is the largest min(rows, cols) for which SVDAuto uses the
// exact SVD: about where the exact SVD becomes slower than the randomized one
// with the default settings (both take about 0.05 s at 128×128 and rank 16;
// at 256×688 the exact SVD takes 4× as long, and its cost grows with the
// cube of the size).
const ExactSVDMaxDim = 128

// SVDConfig configures the truncated SVD of a pruning residual.
type SVDConfig struct {
	// Rank is the number of singular triplets kept, 1 <= Rank <= min(rows, cols).
	Rank int
	// Method chooses the exact or the randomized SVD; "" is SVDAuto.
	Method SVDMethod
	// Oversample (p) is the number of extra random directions of the range
	// finder; the sketch has Rank+Oversample columns (capped at min(rows, cols)).
	Oversample int
	// PowerIters (q) is the number of power iterations, each re-orthonormalised
	// by QR; they sharpen a slowly decaying spectrum (pruning residuals are
	// close to noise, so they need a few).
	PowerIters int
	// Seed makes the Gaussian test matrix, and so the result, reproducible.
	Seed uint64
}

// The randomized settings of DefaultSVDConfig, which are also the defaults of
// the config keys adapters.svd_oversample and adapters.svd_power_iters.
const (
	DefaultSVDOversample = 64
	DefaultSVDPowerIters = 16
)

// DefaultSVDConfig is the configuration SALR uses for the residual adapter:
// SVDAuto, and for large matrices the randomized SVD with oversampling p =
// DefaultSVDOversample and q = DefaultSVDPowerIters power iterations.
// Pruning residuals have flat, noise-like spectra, the hard case for the
// randomized SVD, and the harder the wider the matrix. On 50% magnitude
// residuals of Gaussian matrices at rank 64 these settings capture 99.7% of
// the optimal energy at 4096×4096 and 99.4% at 11008×4096 and 4096×11008
// (the MLP shapes of a 7B Llama; the table in the README); wider models need
// more power iterations. Captured energy is ||E||² − ||E − B A||² of the adapter, equal
// to Energy() up to rounding; the optimum is the sum of the Rank largest
// squared singular values of E.
func DefaultSVDConfig(rank int, seed uint64) SVDConfig {
	return SVDConfig{Rank: rank, Method: SVDAuto, Oversample: DefaultSVDOversample, PowerIters: DefaultSVDPowerIters, Seed: seed}
}

// SVD computes the rank-c.Rank truncated SVD of the rows×cols matrix e
// (row-major) by c.Method.
func SVD(e []float32, rows, cols int, c SVDConfig) (*TruncatedSVD, error) {
	switch c.Method {
	case SVDExact:
		return ExactSVD(e, rows, cols, c.Rank)
	case SVDRandomized:
		return RandomizedSVD(e, rows, cols, c)
	case SVDAuto, "":
		if min(rows, cols) <= ExactSVDMaxDim {
			return ExactSVD(e, rows, cols, c.Rank)
		}
		return RandomizedSVD(e, rows, cols, c)
	}
	return nil, fmt.Errorf("adapters: unknown SVD method %q (want %s, %s or %s)", c.Method, SVDAuto, SVDExact, SVDRandomized)
}

// TruncatedSVD is a rank-Rank factorization U diag(S) Vt of a Rows×Cols
// matrix, singular values in decreasing order; U is Rows×Rank and Vt is
// Rank×Cols, row-major.
type TruncatedSVD struct {
	Rows, Cols, Rank int
	U                []float32
	S                []float64
	Vt               []float32
}

// Energy is Σ S_i², the squared Frobenius norm the factorization captures.
func (t *TruncatedSVD) Energy() float64 {
	var e float64
	for _, s := range t.S {
		e += s * s
	}
	return e
}

// RandomizedSVD computes a rank-c.Rank truncated SVD of the rows×cols matrix
// e (row-major) by randomized subspace iteration (Halko, Martinsson & Tropp
// 2011, Algorithms 4.4 and 5.1) with l = Rank+Oversample columns and q =
// PowerIters, in one of two equivalent forms, whichever takes fewer
// multiply-adds for the shape (the Gram form at a tie; see gramCheaper):
//
//   - on e: Q = qr(e Ω), then q times Q̃ = qr(eᵀ Q), Q = qr(e Q̃); the basis
//     Q spans (e eᵀ)^q e Ω. 2q+2 products with e.
//   - on the Gram matrix G of e's shorter side (eᵀe or e eᵀ, n×n): Z = Ω,
//     then q+1 times Z = qr(G Z). One SYRK and one product with e; the
//     cheaper the smaller the shorter side and the farther e is from square
//     (at the defaults and rank 64: every projection of a 7B Llama, 4096×4096
//     at a tie and 11008×4096 with about 30% fewer multiply-adds).
//     The basis spans G^{q+1} Ω; for a tall e (G = eᵀe) that is the span of
//     eᵀ Q for the first form's Q with the same Ω, so projecting e onto it
//     is at least as close as projecting onto Q.
//
// Either way the factorization ends with the thin SVD of the l×l matrix R of
// Y = Q R, Y the product of e with the final basis (see finishSVD). The
// products, Gram matrices and orthonormalisations (CholeskyQR2, see
// orthonormalizer) run through kernels.Gemm and kernels.Gram in float32;
// only l×l matrices are factored in float64 in gonum. The result is
// deterministic for a given seed, BLAS backend and GOMAXPROCS.
func RandomizedSVD(e []float32, rows, cols int, c SVDConfig) (*TruncatedSVD, error) {
	t, _, err := randomizedSVD(e, rows, cols, c, gramCheaper(rows, cols, min(c.Rank+c.Oversample, rows, cols), c.PowerIters))
	return t, err
}

// gramCheaper reports whether RandomizedSVD's Gram form takes at most as
// many multiply-adds as the form on e for a rows×cols matrix, l columns and q
// power iterations. At a tie (4096×4096, l = 128, q = 16) the Gram form wins:
// SYRK runs faster per multiply-add than the thin GEMMs (about 78 against 60
// GFLOP/s per core with OpenBLAS on an AMD EPYC), and the whole SVD takes
// about 10% less CPU time.
func gramCheaper(rows, cols, l, q int) bool {
	n, long := min(rows, cols), max(rows, cols)
	direct := (2*q + 2) * rows * cols * l
	gram := n*n*long/2 + (q+1)*n*n*l + rows*cols*l
	return gram <= direct
}

// randomizedSVD is RandomizedSVD in the Gram form or the form on e, also
// returning how many of its orthonormalisations left float32 CholeskyQR2.
func randomizedSVD(e []float32, rows, cols int, c SVDConfig, gram bool) (*TruncatedSVD, orthoCounts, error) {
	if err := checkSVDArgs(len(e), rows, cols, c.Rank); err != nil {
		return nil, orthoCounts{}, err
	}
	if c.Oversample < 0 || c.PowerIters < 0 {
		return nil, orthoCounts{}, fmt.Errorf("adapters: randomized SVD: oversample %d and power iterations %d must be >= 0", c.Oversample, c.PowerIters)
	}
	l := min(c.Rank+c.Oversample, rows, cols)
	n, long := min(rows, cols), max(rows, cols)
	rng := rand.New(rand.NewPCG(c.Seed, 0x5bd))
	omega := make([]float32, cols*l)
	if gram {
		omega = omega[:n*l]
	}
	for i := range omega {
		omega[i] = float32(rng.NormFloat64())
	}
	var o orthonormalizer
	scratch := make([]float32, long*l)
	var u, v []float32 // rows×Rank and cols×Rank
	var s []float64
	var err error
	if gram {
		g := make([]float32, n*n)
		kernels.Gram(rows >= cols, n, long, e, cols, g, n)
		z, gz := omega, make([]float32, n*l)
		for it := 0; it <= c.PowerIters; it++ {
			kernels.Gemm(false, false, n, l, n, 1, g, n, z, l, 0, gz, l)
			o.orthonormalize(gz, scratch, n, l)
			z, gz = gz, z
		}
		y := make([]float32, long*l)
		if rows >= cols {
			// e ≈ e Z Zᵀ: Z spans the right singular vectors.
			kernels.Gemm(false, false, rows, l, cols, 1, e, cols, z, l, 0, y, l)
			v, u, s, err = o.finishSVD(z, n, y, long, l, c.Rank, scratch)
		} else {
			// e ≈ Z Zᵀ e: Z spans the left singular vectors.
			kernels.Gemm(true, false, cols, l, rows, 1, e, cols, z, l, 0, y, l)
			u, v, s, err = o.finishSVD(z, n, y, long, l, c.Rank, scratch)
		}
	} else {
		y, yt := make([]float32, rows*l), make([]float32, cols*l) // e Q̃ and eᵀ Q
		kernels.Gemm(false, false, rows, l, cols, 1, e, cols, omega, l, 0, y, l)
		o.orthonormalize(y, scratch, rows, l)
		for it := 0; it < c.PowerIters; it++ {
			kernels.Gemm(true, false, cols, l, rows, 1, e, cols, y, l, 0, yt, l)
			o.orthonormalize(yt, scratch, cols, l)
			kernels.Gemm(false, false, rows, l, cols, 1, e, cols, yt, l, 0, y, l)
			o.orthonormalize(y, scratch, rows, l)
		}
		// e ≈ Q Qᵀ e.
		kernels.Gemm(true, false, cols, l, rows, 1, e, cols, y, l, 0, yt, l)
		u, v, s, err = o.finishSVD(y, rows, yt, cols, l, c.Rank, scratch)
	}
	if err != nil {
		return nil, orthoCounts{}, err
	}
	t := &TruncatedSVD{Rows: rows, Cols: cols, Rank: c.Rank, U: u, S: s, Vt: make([]float32, c.Rank*cols)}
	for i := 0; i < cols; i++ {
		for j := 0; j < c.Rank; j++ {
			t.Vt[j*cols+i] = v[i*c.Rank+j]
		}
	}
	return t, o.orthoCounts, nil
}

// finishSVD factors a matrix X ≈ Z Yᵀ given the nz×l orthonormal basis Z of
// its columns and the ny×l product Y = Xᵀ Z: with Y = Q R (Q orthonormal,
// ny×l) and the SVD R = P Σ Wᵀ of the l×l matrix R, X ≈ (Z W) Σ (Q P)ᵀ. It
// returns the first k columns of Z W (nz×k) and of Q P (ny×k), and the k
// largest singular values. It overwrites scratch (ny×l values).
func (o *orthonormalizer) finishSVD(z []float32, nz int, y []float32, ny, l, k int, scratch []float32) (zw, qp []float32, s []float64, err error) {
	q := make([]float32, ny*l)
	copy(q, y[:ny*l])
	o.orthonormalize(q, scratch, ny, l)
	r := scratch[:l*l]
	kernels.Gemm(true, false, l, l, ny, 1, q, l, y, l, 0, r, l)
	var svd mat.SVD
	if !svd.Factorize(mat.NewDense(l, l, toFloat64(r)), mat.SVDThin) {
		return nil, nil, nil, fmt.Errorf("adapters: randomized SVD: the SVD of the %d×%d sketch did not converge", l, l)
	}
	var p, w mat.Dense
	svd.UTo(&p)
	svd.VTo(&w)
	pk, wk := make([]float32, l*k), make([]float32, l*k)
	for i := 0; i < l; i++ {
		for j := 0; j < k; j++ {
			pk[i*k+j] = float32(p.At(i, j))
			wk[i*k+j] = float32(w.At(i, j))
		}
	}
	zw, qp = make([]float32, nz*k), make([]float32, ny*k)
	kernels.Gemm(false, false, nz, k, l, 1, z, l, wk, k, 0, zw, k)
	kernels.Gemm(false, false, ny, k, l, 1, q, l, pk, k, 0, qp, k)
	return zw, qp, svd.Values(nil)[:k], nil
}

// ExactSVD computes the rank-`rank` truncation of the full SVD of e with
// gonum in float64: the optimum that RandomizedSVD approximates, for tests
// and small matrices. Pass rank = min(rows, cols) for all singular values.
func ExactSVD(e []float32, rows, cols, rank int) (*TruncatedSVD, error) {
	if err := checkSVDArgs(len(e), rows, cols, rank); err != nil {
		return nil, err
	}
	var svd mat.SVD
	if !svd.Factorize(mat.NewDense(rows, cols, toFloat64(e)), mat.SVDThin) {
		return nil, fmt.Errorf("adapters: exact SVD of %d×%d did not converge", rows, cols)
	}
	var u, v mat.Dense
	svd.UTo(&u)
	svd.VTo(&v)
	return newTruncated(rows, cols, rank, &u, svd.Values(nil), &v), nil
}

func checkSVDArgs(n, rows, cols, rank int) error {
	if rows <= 0 || cols <= 0 || n != rows*cols {
		return fmt.Errorf("adapters: SVD of a [%d %d] matrix with %d values", rows, cols, n)
	}
	if rank < 1 || rank > min(rows, cols) {
		return fmt.Errorf("adapters: SVD rank %d must be in [1, %d] for a %d×%d matrix", rank, min(rows, cols), rows, cols)
	}
	return nil
}

// newTruncated keeps the first rank columns of u (rows×k) and v (cols×k).
func newTruncated(rows, cols, rank int, u *mat.Dense, s []float64, v *mat.Dense) *TruncatedSVD {
	t := &TruncatedSVD{Rows: rows, Cols: cols, Rank: rank,
		U: make([]float32, rows*rank), S: append([]float64(nil), s[:rank]...), Vt: make([]float32, rank*cols)}
	for i := 0; i < rows; i++ {
		for j := 0; j < rank; j++ {
			t.U[i*rank+j] = float32(u.At(i, j))
		}
	}
	for j := 0; j < rank; j++ {
		for c := 0; c < cols; c++ {
			t.Vt[j*cols+c] = float32(v.At(c, j))
		}
	}
	return t
}

// NewSVDAdapter turns a truncated SVD of the pruning residual E into the SVD
// residual adapter: B = U Σ^{1/2} (Out×Rank), A = Σ^{1/2} Vᵀ (Rank×In), scale
// 1, no dropout, so that B A = U Σ Vᵀ ≈ E.
func NewSVDAdapter(t *TruncatedSVD, trainable bool) *LowRank {
	l := &LowRank{Kind: KindSVD, Rank: t.Rank, In: t.Cols, Out: t.Rows,
		A: make([]float32, t.Rank*t.Cols), B: make([]float32, t.Rows*t.Rank), Scale: 1, Trainable: trainable}
	for j, s := range t.S {
		root := math.Sqrt(s)
		for i := 0; i < t.Rows; i++ {
			l.B[i*t.Rank+j] = float32(float64(t.U[i*t.Rank+j]) * root)
		}
		for c := 0; c < t.Cols; c++ {
			l.A[j*t.Cols+c] = float32(float64(t.Vt[j*t.Cols+c]) * root)
		}
	}
	return l
}

// orthonormalizer computes orthonormal bases of tall float32 matrices by
// CholeskyQR2 (Fukaya et al. 2014): Y = Q R with R the Cholesky factor of the
// Gram matrix YᵀY, then the same again on Q to restore the orthogonality the
// first pass loses. The Gram matrices and the products Y R⁻¹ are GEMMs; the
// l×l Cholesky factor and its inverse are computed in float64.
//
// In float32 this holds while the condition number κ(Y) stays below about
// 10²–10³. Above that (a steeply decaying spectrum within the sketch; the
// Gram form squares it) the Cholesky factorization breaks down or its first
// pass is far from orthonormal, and it repeats CholeskyQR2 in float64
// (counted in float64Passes), good to κ of about 10⁷, beyond the float32
// values' precision. When that fails too (a numerically rank-deficient
// sketch: e of rank below l, or a zero matrix) it falls back to Householder
// QR (thinQR, counted in fallbacks).
type orthonormalizer struct {
	f32        cholQR[float32]
	f64        cholQR[float64]
	y64, tmp64 []float64
	qr         thinQR
	orthoCounts
}

// orthoCounts counts the orthonormalisations that left float32 CholeskyQR2.
type orthoCounts struct {
	float64Passes int // CholeskyQR2 in float64
	fallbacks     int // Householder QR
}

// orthonormalize overwrites y (m×n, row-major, m >= n) with a matrix whose
// columns are orthonormal and span the columns of y; scratch holds at least
// m×n values and is overwritten.
func (o *orthonormalizer) orthonormalize(y, scratch []float32, m, n int) {
	y, scratch = y[:m*n], scratch[:m*n]
	if o.f32.pass(y, scratch, m, n, 0) && o.f32.pass(scratch, y, m, n, 0.5) {
		return
	}
	o.float64Passes++
	if len(o.y64) < m*n {
		o.y64, o.tmp64 = make([]float64, m*n), make([]float64, m*n)
	}
	y64, tmp64 := o.y64[:m*n], o.tmp64[:m*n]
	for i, v := range y {
		y64[i] = float64(v)
	}
	if o.f64.pass(y64, tmp64, m, n, 0) && o.f64.pass(tmp64, y64, m, n, 0.5) {
		for i, v := range y64 {
			y[i] = float32(v)
		}
		return
	}
	o.fallbacks++
	o.qr.orthonormalize(y, m, n)
}

// cholQR holds the l×l scratch matrices of one CholeskyQR pass in T.
type cholQR[T kernels.Float] struct {
	gram, rinv []T       // l×l
	r          []float64 // l×l
}

// pass is one pass of CholeskyQR: dst = src R⁻¹ with RᵀR = srcᵀ src. When
// maxDev > 0 it first checks that ||srcᵀ src − I||_F <= maxDev, i.e. that src
// is already close to orthonormal. It reports false, leaving dst untouched,
// when the check or the Cholesky factorization fails or R⁻¹ overflows T.
func (c *cholQR[T]) pass(src, dst []T, m, n int, maxDev float64) bool {
	if len(c.gram) < n*n {
		c.gram, c.rinv, c.r = make([]T, n*n), make([]T, n*n), make([]float64, n*n)
	}
	g, r, rinv := c.gram[:n*n], c.r[:n*n], c.rinv[:n*n]
	kernels.Gemm(true, false, n, n, m, 1, src, n, src, n, 0, g, n)
	var dev float64
	for i := 0; i < n; i++ {
		for j := i; j < n; j++ {
			v := (float64(g[i*n+j]) + float64(g[j*n+i])) / 2
			r[i*n+j] = v
			if i == j {
				dev += (v - 1) * (v - 1)
			} else {
				dev += 2 * v * v
			}
		}
	}
	if maxDev > 0 && !(math.Sqrt(dev) <= maxDev) { // NaN fails too
		return false
	}
	tri, ok := lapack64.Potrf(blas64.Symmetric{Uplo: blas.Upper, N: n, Stride: n, Data: r})
	if !ok || !lapack64.Trtri(tri) {
		return false
	}
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			var v T
			if j >= i {
				v = T(r[i*n+j])
			}
			if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
				return false
			}
			rinv[i*n+j] = v
		}
	}
	kernels.Gemm(false, false, m, n, n, 1, src, n, rinv, n, 0, dst, n)
	return true
}

// thinQR computes orthonormal bases with LAPACK's geqrf/orgqr in float64,
// reusing its scratch buffers.
type thinQR struct {
	a, tau, work []float64
}

// orthonormalize overwrites y (m×n, row-major, m >= n) with a matrix whose
// columns are orthonormal and span the columns of y.
func (t *thinQR) orthonormalize(y []float32, m, n int) {
	if len(t.a) < m*n {
		t.a = make([]float64, m*n)
	}
	a := t.a[:m*n]
	for i, v := range y[:m*n] {
		a[i] = float64(v)
	}
	g := blas64.General{Rows: m, Cols: n, Stride: n, Data: a}
	if len(t.tau) < n {
		t.tau = make([]float64, n)
	}
	tau := t.tau[:n]
	query := []float64{0}
	lapack64.Geqrf(g, tau, query, -1)
	lwork := int(query[0])
	lapack64.Orgqr(g, tau, query, -1)
	lwork = max(lwork, int(query[0]), m, n)
	if len(t.work) < lwork {
		t.work = make([]float64, lwork)
	}
	lapack64.Geqrf(g, tau, t.work, lwork)
	lapack64.Orgqr(g, tau, t.work, lwork)
	for i, v := range a {
		y[i] = float32(v)
	}
}

func toFloat64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}
