package kernels

import (
	"runtime"
	"sync/atomic"
	"testing"
)

// naiveLinear is y = x Wᵀ + b by explicit loops.
func naiveLinear(x, w, b []float64, n, in, out int) []float64 {
	y := make([]float64, n*out)
	for r := 0; r < n; r++ {
		for o := 0; o < out; o++ {
			s := 0.0
			if b != nil {
				s = b[o]
			}
			for i := 0; i < in; i++ {
				s += x[r*in+i] * w[o*in+i]
			}
			y[r*out+o] = s
		}
	}
	return y
}

func TestLinearForwardMatchesNaive(t *testing.T) {
	rng := testRand(1)
	for _, shape := range [][3]int{{1, 5, 4}, {3, 5, 4}, {7, 16, 9}} {
		n, in, out := shape[0], shape[1], shape[2]
		x, w, b := randNormal(rng, n*in, 1), randNormal(rng, out*in, 1), randNormal(rng, out, 1)
		for _, bias := range [][]float64{nil, b} {
			want := naiveLinear(x, w, bias, n, in, out)
			y := randNormal(rng, n*out, 1) // garbage that must be overwritten
			LinearForward(y, x, w, bias, n, in, out)
			assertClose(t, "LinearForward f64", y, want, 1e-12)
			var b32 []float32
			if bias != nil {
				b32 = to32(bias)
			}
			y32 := make([]float32, n*out)
			LinearForward(y32, to32(x), to32(w), b32, n, in, out)
			assertClose(t, "LinearForward f32", y32, want, 1e-5)
		}
	}
}

func TestLinearBackwardGradients(t *testing.T) {
	rng := testRand(2)
	n, in, out := 4, 5, 3
	x, w, b := randNormal(rng, n*in, 1), randNormal(rng, out*in, 1), randNormal(rng, out, 1)
	R := randNormal(rng, n*out, 1)
	y := make([]float64, n*out)
	objective := func() float64 {
		LinearForward(y, x, w, b, n, in, out)
		return dotSum(y, R)
	}
	dx, dw, db := randNormal(rng, n*in, 1), randNormal(rng, out*in, 1), randNormal(rng, out, 1)
	LinearBackward(dx, dw, db, R, x, w, n, in, out)
	gradCheck(t, "Linear dx", x, dx, objective, gradTol)
	gradCheck(t, "Linear dw", w, dw, objective, gradTol)
	gradCheck(t, "Linear db", b, db, objective, gradTol)

	// nil outputs are skipped; the others are unchanged by the skipping.
	dw2 := make([]float64, out*in)
	LinearBackward(nil, dw2, nil, R, x, nil, n, in, out)
	assertClose(t, "dw alone", dw2, dw, 0)
}

func TestLinearLeavesTailsOfLongerOutputsAlone(t *testing.T) {
	// One row (the GEMV path) into outputs longer than needed: the elements
	// past N·Out, N·In and Out·In must keep their values.
	rng := testRand(3)
	n, in, out, tail := 1, 6, 5, 4
	x, w, dy := to32(randNormal(rng, n*in, 1)), to32(randNormal(rng, out*in, 1)), to32(randNormal(rng, n*out, 1))
	y, dx, dw := make([]float32, n*out+tail), make([]float32, n*in+tail), make([]float32, out*in+tail)
	for _, s := range [][]float32{y, dx, dw} {
		for i := range s {
			s[i] = 42
		}
	}
	LinearForward(y, x, w, nil, n, in, out)
	LinearBackward(dx, dw, nil, dy, x, w, n, in, out)
	for name, s := range map[string][]float32{"y": y[n*out:], "dx": dx[n*in:], "dw": dw[out*in:]} {
		for i, v := range s {
			if v != 42 {
				t.Fatalf("%s: element %d past the output was overwritten with %v", name, i, v)
			}
		}
	}
}

func TestParallelForCoversRangeOnce(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 17, 1000} {
		hits := make([]atomic.Int32, n)
		parallelFor(n, n*minParallelWork*runtime.GOMAXPROCS(0), func(lo, hi int) {
			for i := lo; i < hi; i++ {
				hits[i].Add(1)
			}
		})
		for i := range hits {
			if c := hits[i].Load(); c != 1 {
				t.Fatalf("n=%d: index %d visited %d times", n, i, c)
			}
		}
	}
}
