package kernels

import (
	"math"
	"testing"
)

// naiveRMSNorm is y = x / sqrt(mean(x²) + eps) ⊙ w by explicit loops.
func naiveRMSNorm(x, w []float64, n, c int, eps float64) []float64 {
	y := make([]float64, n*c)
	for r := 0; r < n; r++ {
		ms := 0.0
		for j := 0; j < c; j++ {
			ms += x[r*c+j] * x[r*c+j]
		}
		ms /= float64(c)
		for j := 0; j < c; j++ {
			y[r*c+j] = x[r*c+j] / math.Sqrt(ms+eps) * w[j]
		}
	}
	return y
}

func TestRMSNormForwardMatchesNaive(t *testing.T) {
	rng := testRand(3)
	n, c, eps := 5, 12, 1e-5
	x, w := randNormal(rng, n*c, 2), randNormal(rng, c, 1)
	want := naiveRMSNorm(x, w, n, c, eps)
	y := make([]float64, n*c)
	RMSNormForward(y, x, w, n, c, eps)
	assertClose(t, "RMSNorm f64", y, want, 1e-13)
	y32 := make([]float32, n*c)
	RMSNormForward(y32, to32(x), to32(w), n, c, eps)
	assertClose(t, "RMSNorm f32", y32, want, 1e-5)
	// In place, and stable for large inputs (squares overflow float32 above ~1.8e19).
	big := to32(x)
	for i := range big {
		big[i] *= 1e20
	}
	RMSNormForward(big, big, to32(w), n, c, 0)
	assertClose(t, "RMSNorm f32 huge in place", big, naiveRMSNorm(x, w, n, c, 0), 1e-5)
}

func TestRMSNormBackwardGradients(t *testing.T) {
	rng := testRand(4)
	n, c, eps := 3, 7, 1e-3
	x, w, R := randNormal(rng, n*c, 1), randNormal(rng, c, 1), randNormal(rng, n*c, 1)
	y := make([]float64, n*c)
	objective := func() float64 {
		RMSNormForward(y, x, w, n, c, eps)
		return dotSum(y, R)
	}
	dx, dw := randNormal(rng, n*c, 1), randNormal(rng, c, 1)
	RMSNormBackward(dx, dw, R, x, w, n, c, eps)
	gradCheck(t, "RMSNorm dx", x, dx, objective, gradTol)
	gradCheck(t, "RMSNorm dw", w, dw, objective, gradTol)

	dw2 := make([]float64, c)
	RMSNormBackward(nil, dw2, R, x, w, n, c, eps)
	assertClose(t, "dw alone", dw2, dw, 0)

	dx32, dw32 := make([]float32, n*c), make([]float32, c)
	RMSNormBackward(dx32, dw32, to32(R), to32(x), to32(w), n, c, eps)
	assertClose(t, "RMSNorm dx f32", dx32, dx, 1e-5)
	assertClose(t, "RMSNorm dw f32", dw32, dw, 1e-5)
}

// bench60M* are the project's bench-60M benchmark shapes: batch 4 × sequence 256
// tokens, hidden 512, 8 heads of 64 (8 KV heads), MLP width 1408, vocabulary
// 32000.
const (
	bench60MRows   = 4 * 256
	bench60MHidden = 512
	bench60MMLP    = 1408
	bench60MVocab  = 32000
)

// randomFloat32 returns n normal float32 values times scale.
func randomFloat32(seed uint64, n int, scale float64) []float32 {
	return to32(randNormal(testRand(seed), n, scale))
}

func BenchmarkRMSNormForward(b *testing.B) {
	n, c := bench60MRows, bench60MHidden
	x, w, y := randomFloat32(1, n*c, 1), randomFloat32(2, c, 1), make([]float32, n*c)
	for b.Loop() {
		RMSNormForward(y, x, w, n, c, 1e-5)
	}
}

func BenchmarkRMSNormBackward(b *testing.B) {
	n, c := bench60MRows, bench60MHidden
	x, w, dy := randomFloat32(1, n*c, 1), randomFloat32(2, c, 1), randomFloat32(3, n*c, 1)
	dx, dw := make([]float32, n*c), make([]float32, c)
	for b.Loop() {
		RMSNormBackward(dx, dw, dy, x, w, n, c, 1e-5)
	}
}
