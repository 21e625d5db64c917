package kernels

import (
	"math"
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

func TestKernelsSplitAcrossGoroutinesMatchRowByRow(t *testing.T) {
	// At these sizes parallelFor splits the work (on 2+ cores); the results
	// must equal the same kernels called one row at a time (never split), and
	// reductions the sums of the per-row results.
	if runtime.GOMAXPROCS(0) < 2 {
		t.Log("GOMAXPROCS < 2: the kernels run serially and this test checks less")
	}
	rng := testRand(7)
	const n, c = 300, 256
	x, w, dy := randNormal(rng, n*c, 1), randNormal(rng, c, 1), randNormal(rng, n*c, 1)

	// Linear db and RMSNorm: column sums and row-wise outputs.
	db := make([]float64, c)
	LinearBackward(nil, nil, db, dy, nil, nil, n, 0, c)
	y, dx, dw := make([]float64, n*c), make([]float64, n*c), make([]float64, c)
	RMSNormForward(y, x, w, n, c, 1e-5)
	RMSNormBackward(dx, dw, dy, x, w, n, c, 1e-5)
	wantDB, wantDW := make([]float64, c), make([]float64, c)
	rowY, rowDX, rowDW := make([]float64, c), make([]float64, c), make([]float64, c)
	for r := 0; r < n; r++ {
		RMSNormForward(rowY, x[r*c:(r+1)*c], w, 1, c, 1e-5)
		RMSNormBackward(rowDX, rowDW, dy[r*c:(r+1)*c], x[r*c:(r+1)*c], w, 1, c, 1e-5)
		assertClose(t, "RMSNorm y row", y[r*c:(r+1)*c], rowY, 0)
		assertClose(t, "RMSNorm dx row", dx[r*c:(r+1)*c], rowDX, 0)
		for j := range wantDW {
			wantDW[j] += rowDW[j]
			wantDB[j] += dy[r*c+j]
		}
	}
	assertClose(t, "RMSNorm dw", dw, wantDW, 1e-12)
	assertClose(t, "Linear db", db, wantDB, 1e-12)

	// RoPE rows.
	pos := make([]int, n)
	for r := range pos {
		pos[r] = 3 * r
	}
	invFreq := RopeInvFreq(16, 10000, RopeScaling{})
	roped := append([]float64(nil), x...)
	RopeForward(roped, n, c, 0, c/16, 16, pos, invFreq)
	for r := 0; r < n; r++ {
		row := append([]float64(nil), x[r*c:(r+1)*c]...)
		RopeForward(row, 1, c, 0, c/16, 16, pos[r:r+1], invFreq)
		assertClose(t, "RoPE row", roped[r*c:(r+1)*c], row, 0)
	}

	// SwiGLU element-wise, against one call per row.
	sw, dgate, dup := make([]float64, n*c), make([]float64, n*c), make([]float64, n*c)
	SwiGLUForward(sw, x, y)
	SwiGLUBackward(dgate, dup, dy, x, y)
	rowUp := make([]float64, c)
	for r := 0; r < n; r++ {
		g, u, d := x[r*c:(r+1)*c], y[r*c:(r+1)*c], dy[r*c:(r+1)*c]
		SwiGLUForward(rowY, g, u)
		SwiGLUBackward(rowDX, rowUp, d, g, u)
		assertClose(t, "SwiGLU row", sw[r*c:(r+1)*c], rowY, 0)
		assertClose(t, "SwiGLU dgate row", dgate[r*c:(r+1)*c], rowDX, 0)
		assertClose(t, "SwiGLU dup row", dup[r*c:(r+1)*c], rowUp, 0)
	}

	// Cross-entropy, log-softmax and token log-probabilities over [n, c]
	// logits: the loss is the mask-weighted mean of the one-row losses.
	logits := randNormal(rng, n*c, 3)
	targets, mask := make([]int, n), make([]float64, n)
	var total float64
	for r := range targets {
		targets[r], mask[r] = (r*37)%c, float64(r%3)
		total += mask[r]
	}
	loss := CrossEntropyForward(logits, n, c, targets, mask)
	dlogits, logp, tokenLP := make([]float64, n*c), make([]float64, n*c), make([]float64, n)
	CrossEntropyBackward(dlogits, logits, n, c, targets, mask, 0.5)
	LogSoftmax(logp, logits, n, c)
	TokenLogProbs(tokenLP, logits, n, c, targets)
	var wantLoss float64
	rowLP := make([]float64, 1)
	for r := 0; r < n; r++ {
		xr := logits[r*c : (r+1)*c]
		wantLoss += mask[r] * CrossEntropyForward(xr, 1, c, targets[r:r+1], nil) / total
		CrossEntropyBackward(rowDX, xr, 1, c, targets[r:r+1], nil, 0.5*mask[r]/total)
		assertClose(t, "CrossEntropy dlogits row", dlogits[r*c:(r+1)*c], rowDX, 1e-15)
		LogSoftmax(rowY, xr, 1, c)
		assertClose(t, "LogSoftmax row", logp[r*c:(r+1)*c], rowY, 0)
		TokenLogProbs(rowLP, xr, 1, c, targets[r:r+1])
		assertClose(t, "TokenLogProbs row", tokenLP[r:r+1], rowLP, 0)
	}
	if math.Abs(loss-wantLoss) > 1e-12 {
		t.Fatalf("CrossEntropy loss %v, want %v", loss, wantLoss)
	}
}
