package kernels

import (
	"math"
	"testing"
)

// naiveLogSoftmaxRow is log(exp(x_j)/Σ exp(x_k)) without the max trick (fine
// for the moderate logits it is used with).
func naiveLogSoftmaxRow(x []float64) []float64 {
	var total float64
	for _, v := range x {
		total += math.Exp(v)
	}
	y := make([]float64, len(x))
	for j, v := range x {
		y[j] = v - math.Log(total)
	}
	return y
}

func naiveCrossEntropy(logits []float64, n, v int, targets []int, mask []float64) float64 {
	var loss, total float64
	for r := 0; r < n; r++ {
		if mask[r] == 0 {
			continue
		}
		loss -= mask[r] * naiveLogSoftmaxRow(logits[r*v : (r+1)*v])[targets[r]]
		total += mask[r]
	}
	return loss / total
}

func TestCrossEntropyForward(t *testing.T) {
	rng := testRand(90)
	n, v := 6, 11
	logits := randNormal(rng, n*v, 3)
	targets := []int{3, -100, 0, 10, 7, 99}
	mask := []float64{1, 0, 1, 1, 0.5, 0}
	want := naiveCrossEntropy(logits, n, v, targets, mask)
	if got := CrossEntropyForward(logits, n, v, targets, mask); math.Abs(got-want) > 1e-13 {
		t.Fatalf("f64 loss %v, want %v", got, want)
	}
	if got := CrossEntropyForward(to32(logits), n, v, targets, to32(mask)); math.Abs(float64(got)-want) > 1e-5 {
		t.Fatalf("f32 loss %v, want %v", got, want)
	}
	// Shift invariance at logits far beyond exp's range (a naive sum overflows).
	shifted := to32(logits)
	for i := range shifted {
		shifted[i] += 3e4
	}
	if got := CrossEntropyForward(shifted, n, v, targets, to32(mask)); math.Abs(float64(got)-want) > 1e-2 {
		t.Fatalf("f32 loss at logits+3e4 = %v, want %v", got, want)
	}
	// A nil mask weighs every row; here with valid targets everywhere.
	all := []int{1, 2, 3, 4, 5, 6}
	ones := []float64{1, 1, 1, 1, 1, 1}
	if got, want := CrossEntropyForward(logits, n, v, all, nil), naiveCrossEntropy(logits, n, v, all, ones); math.Abs(got-want) > 1e-13 {
		t.Fatalf("nil mask: loss %v, want %v", got, want)
	}
	if got := CrossEntropyForward(logits, n, v, targets, make([]float64, n)); got != 0 {
		t.Fatalf("all-zero mask: loss %v, want 0", got)
	}
	expectPanic(t, "target out of range on a weighted row", func() {
		CrossEntropyForward(logits, n, v, targets, ones)
	})
}

func TestCrossEntropyBackwardGradients(t *testing.T) {
	rng := testRand(91)
	n, v := 5, 7
	logits := randNormal(rng, n*v, 2)
	targets := []int{6, 0, -1, 3, 3}
	mask := []float64{1, 1, 0, 0.5, 1}
	const dloss = 1.7
	dlogits := randNormal(rng, n*v, 1)
	CrossEntropyBackward(dlogits, logits, n, v, targets, mask, dloss)
	gradCheck(t, "CrossEntropy dlogits", logits, dlogits, func() float64 {
		return dloss * CrossEntropyForward(logits, n, v, targets, mask)
	}, gradTol)
	assertClose(t, "masked row", dlogits[2*v:3*v], make([]float64, v), 0)

	// float32, in place.
	d32 := to32(logits)
	CrossEntropyBackward(d32, d32, n, v, targets, to32(mask), dloss)
	assertClose(t, "dlogits f32 in place", d32, dlogits, 1e-6)

	zero := randNormal(rng, n*v, 1)
	CrossEntropyBackward(zero, logits, n, v, targets, make([]float64, n), dloss)
	assertClose(t, "all-zero mask", zero, make([]float64, n*v), 0)
}

func TestTokenLogProbsAndLogSoftmax(t *testing.T) {
	rng := testRand(92)
	n, v := 4, 9
	logits := randNormal(rng, n*v, 4)
	targets := []int{0, 8, 4, 4}
	want := make([]float64, n*v)
	for r := 0; r < n; r++ {
		copy(want[r*v:], naiveLogSoftmaxRow(logits[r*v:(r+1)*v]))
	}
	y := make([]float64, n*v)
	LogSoftmax(y, logits, n, v)
	assertClose(t, "LogSoftmax f64", y, want, 1e-13)
	y32 := to32(logits)
	LogSoftmax(y32, y32, n, v)
	assertClose(t, "LogSoftmax f32 in place", y32, want, 1e-5)

	lp := make([]float64, n)
	TokenLogProbs(lp, logits, n, v, targets)
	for r, tgt := range targets {
		if math.Abs(lp[r]-want[r*v+tgt]) > 1e-13 {
			t.Fatalf("TokenLogProbs row %d = %v, want %v", r, lp[r], want[r*v+tgt])
		}
	}
	expectPanic(t, "TokenLogProbs target out of range", func() { TokenLogProbs(lp, logits, n, v, []int{0, 9, 0, 0}) })
}

func TestExp32(t *testing.T) {
	worst := 0.0
	for x := float32(-87.3); x < 88.7; x += 0.00731 {
		want := math.Exp(float64(x))
		worst = math.Max(worst, math.Abs(float64(exp32(x))-want)/want)
	}
	if worst > 2.5e-7 { // about 2 ulp of float32
		t.Fatalf("exp32 worst relative error %.3g", worst)
	}
	for _, c := range []struct{ x, want float32 }{
		{0, 1}, {-88, 0}, {float32(math.Inf(-1)), 0}, {89, float32(math.Inf(1))}, {float32(math.Inf(1)), float32(math.Inf(1))},
	} {
		if got := exp32(c.x); got != c.want {
			t.Errorf("exp32(%v) = %v, want %v", c.x, got, c.want)
		}
	}
	for _, x := range []float32{88.72, 88.5, 88.38, -87.33} { // 2ⁿ at the ends of the exponent range
		if got, want := exp32(x), math.Exp(float64(x)); math.Abs(float64(got)/want-1) > 2.5e-7 {
			t.Errorf("exp32(%v) = %v, want %v", x, got, want)
		}
	}
	if got := exp32(float32(math.NaN())); !math.IsNaN(float64(got)) {
		t.Errorf("exp32(NaN) = %v", got)
	}
}

func FuzzExp32(f *testing.F) {
	for _, x := range []float32{0, 1, -1, 88.5, -87.3, 1e-30} {
		f.Add(x)
	}
	f.Fuzz(func(t *testing.T, x float32) {
		if math.IsNaN(float64(x)) || x < -87.33 || x > 88.72 {
			return // outside the normal range: flushed or infinite, covered by TestExp32
		}
		want := math.Exp(float64(x))
		if got := float64(exp32(x)); math.Abs(got-want) > 2.5e-7*want {
			t.Fatalf("exp32(%v) = %v, want %v", x, got, want)
		}
	})
}

// BenchmarkCrossEntropy is one training step's loss: forward and backward over
// logits [N=1024, V=32000].
func BenchmarkCrossEntropy(b *testing.B) {
	n, v := bench60MRows, bench60MVocab
	logits, dlogits := randomFloat32(1, n*v, 3), make([]float32, n*v)
	targets, mask := make([]int, n), make([]float32, n)
	for r := range targets {
		targets[r], mask[r] = (r*7919)%v, 1
	}
	for b.Loop() {
		loss := CrossEntropyForward(logits, n, v, targets, mask)
		CrossEntropyBackward(dlogits, logits, n, v, targets, mask, 1)
		_ = loss
	}
}

func BenchmarkExp32(b *testing.B) {
	x, y := randomFloat32(1, 4096, 3), make([]float32, 4096)
	for b.Loop() {
		expShifted(y, x, 0)
	}
}

func BenchmarkMathExpFloat32(b *testing.B) {
	x, y := randomFloat32(1, 4096, 3), make([]float32, 4096)
	for b.Loop() {
		for j, v := range x {
			y[j] = float32(math.Exp(float64(v)))
		}
	}
}
