package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// gradCheck compares analytic, the claimed gradient of objective with respect
// to x, with float64 central differences (see gradError) and fails the test
// when the worst relative error exceeds tol (about 1e-6 for smooth kernels).
func gradCheck(t *testing.T, name string, x, analytic []float64, objective func() float64, tol float64) {
	t.Helper()
	if len(analytic) != len(x) {
		t.Fatalf("%s: %d analytic gradients for %d inputs", name, len(analytic), len(x))
	}
	worst, at, numeric := gradError(x, analytic, objective)
	if numeric == nil {
		t.Fatalf("%s: numeric gradient is all zero; the check would prove nothing", name)
	}
	if !(worst <= tol) {
		t.Errorf("%s: relative gradient error %.3g at element %d (analytic %.10g, numeric %.10g), tolerance %.1g",
			name, worst, at, analytic[at], numeric[at], tol)
	}
}

// gradError moves each x[i] by ±h, re-evaluates objective (which must read x),
// restores x[i] and compares the central difference with analytic[i]. The error
// of element i is |analytic - numeric| / max(|analytic| + |numeric|,
// 1e-3·max|numeric|); it returns the worst error, its index and the numeric
// gradient (nil when that is identically zero).
func gradError(x, analytic []float64, objective func() float64) (worst float64, at int, numeric []float64) {
	const h = 1e-5
	numeric = make([]float64, len(x))
	var scale float64
	for i := range x {
		orig := x[i]
		x[i] = orig + h
		plus := objective()
		x[i] = orig - h
		minus := objective()
		x[i] = orig
		numeric[i] = (plus - minus) / (2 * h)
		scale = max(scale, math.Abs(numeric[i]))
	}
	if scale == 0 {
		return 0, 0, nil
	}
	for i := range x {
		denom := max(math.Abs(analytic[i])+math.Abs(numeric[i]), 1e-3*scale)
		if err := math.Abs(analytic[i]-numeric[i]) / denom; err > worst || math.IsNaN(err) {
			worst, at = err, i
		}
	}
	return worst, at, numeric
}

// gradTol is the relative tolerance of gradCheck for the layer kernels.
const gradTol = 1e-6

// dotSum returns Σ a[i]·b[i] in float64: the objective Σ out⊙R whose gradient
// with respect to out is R.
func dotSum[T Float](a, b []T) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// randNormal returns n standard normal values times scale.
func randNormal(rng *rand.Rand, n int, scale float64) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = scale * rng.NormFloat64()
	}
	return s
}

// testRand returns a deterministic generator for a test.
func testRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5a17)) }

// maxAbsDiff returns max_i |a[i] - b[i]| with a converted to float64, and the
// index where it occurs (NaN counts as infinitely different).
func maxAbsDiff[T Float](a []T, b []float64) (float64, int) {
	worst, at := 0.0, 0
	for i := range b {
		d := math.Abs(float64(a[i]) - b[i])
		if math.IsNaN(d) {
			return math.Inf(1), i
		}
		if d > worst {
			worst, at = d, i
		}
	}
	return worst, at
}

// assertClose fails the test when got and want differ by more than tol in any
// element (absolute, relative to max(1, |want|)).
func assertClose[T Float](t *testing.T, name string, got []T, want []float64, tol float64) {
	t.Helper()
	if len(got) < len(want) {
		t.Fatalf("%s: got %d values, want %d", name, len(got), len(want))
	}
	for i := range want {
		d := math.Abs(float64(got[i]) - want[i])
		if !(d <= tol*max(1, math.Abs(want[i]))) {
			t.Fatalf("%s: element %d = %.10g, want %.10g (tolerance %.1g)", name, i, float64(got[i]), want[i], tol)
		}
	}
}

// expectPanic fails the test unless fn panics with a message starting with
// "kernels:".
func expectPanic(t *testing.T, name string, fn func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		msg, _ := r.(string)
		if r == nil {
			t.Errorf("%s: no panic", name)
		} else if len(msg) < 8 || msg[:8] != "kernels:" {
			t.Errorf("%s: panic %v does not start with \"kernels:\"", name, r)
		}
	}()
	fn()
}

func TestGradCheckDetectsWrongGradient(t *testing.T) {
	// objective Σ x³: the right gradient passes, one off by 1e-4 does not.
	x := []float64{0.3, -1.2, 2}
	obj := func() float64 { return x[0]*x[0]*x[0] + x[1]*x[1]*x[1] + x[2]*x[2]*x[2] }
	right := []float64{3 * x[0] * x[0], 3 * x[1] * x[1], 3 * x[2] * x[2]}
	gradCheck(t, "cube", x, right, obj, gradTol)
	wrong := []float64{right[0], right[1] * 1.0001, right[2]}
	if worst, at, _ := gradError(x, wrong, obj); worst <= gradTol || at != 1 {
		t.Fatalf("gradError missed a gradient off by 1e-4: worst %.3g at %d", worst, at)
	}
	if _, _, numeric := gradError(x, right, func() float64 { return 1 }); numeric != nil {
		t.Fatal("gradError did not flag a constant objective")
	}
}
