package gop

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/salr-go/salr/kernels"
	"gorgonia.org/tensor"
)

// headCECase is a small LM head with a mask that skips some rows.
func headCECase(rng *rand.Rand) (HeadCrossEntropy[float64], []Arg[float64]) {
	const n, c, v = 6, 8, 11
	w := randArg(rng, v, c)
	mask := Arg[float64]{Shape: tensor.Shape{n}, Data: []float64{1, 0, 1, 1, 0.5, 1}}
	k := HeadCrossEntropy[float64]{ID: "lm_head", W: kernels.NewDense(w.Data, v, c)}
	return k, []Arg[float64]{randArg(rng, n, c), intArg(rng, n, v), mask}
}

func TestHeadCrossEntropyGradients(t *testing.T) {
	k, in := headCECase(rand.New(rand.NewPCG(2, 1)))
	if err := CheckGradients(k, in, 11, 1e-6); err != nil {
		t.Fatal(err)
	}
	k.Grad = new(HeadGrad[float64])
	if err := CheckGradients(k, in, 11, 1e-6); err != nil {
		t.Fatalf("with Grad: %v", err)
	}
}

// TestHeadCrossEntropyKeptGradient checks that Backward uses the gradient
// kept by Forward only for the inputs Forward saw, and recomputes otherwise.
func TestHeadCrossEntropyKeptGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 3))
	plain, in := headCECase(rng)
	kept := plain
	kept.Grad = new(HeadGrad[float64])
	n, c := in[0].Shape[0], in[0].Shape[1]
	backward := func(k HeadCrossEntropy[float64], in []Arg[float64]) []float64 {
		dx := make([]float64, n*c)
		k.Backward(0, dx, []float64{0.6}, in)
		return dx
	}
	sameGradient := func(what string, in []Arg[float64]) {
		t.Helper()
		want, got := backward(plain, in), backward(kept, in)
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-14 {
				t.Fatalf("%s: dx[%d] = %v, recomputed %v", what, i, got[i], want[i])
			}
		}
	}
	sameGradient("before any Forward", in)
	loss, plainLoss := make([]float64, 1), make([]float64, 1)
	kept.Forward(loss, in)
	plain.Forward(plainLoss, in)
	if math.Abs(loss[0]-plainLoss[0]) > 1e-14 {
		t.Fatalf("loss with Grad %v, without %v", loss[0], plainLoss[0])
	}
	sameGradient("after Forward", in)

	// Each input changed after Forward: the kept gradient must not be used.
	x2 := slices.Clone(in[0].Data)
	x2[3] += 0.5
	t2 := slices.Clone(in[1].Ints)
	t2[0] = (t2[0] + 1) % plain.W.Rows()
	m2 := slices.Clone(in[2].Data)
	m2[1] = 1
	for name, changed := range map[string][]Arg[float64]{
		"x":       {{Shape: in[0].Shape, Data: x2}, in[1], in[2]},
		"targets": {in[0], {Shape: in[1].Shape, Ints: t2}, in[2]},
		"mask":    {in[0], in[1], {Shape: in[2].Shape, Data: m2}},
	} {
		kept.Forward(loss, in)
		sameGradient("changed "+name, changed)
	}
}

// TestHeadCrossEntropyMatchesUnfused compares the fused op with the graph's
// unfused pair FrozenLinear then CrossEntropy, forward and backward.
func TestHeadCrossEntropyMatchesUnfused(t *testing.T) {
	k, in := headCECase(rand.New(rand.NewPCG(2, 2)))
	x, targets, mask := in[0], in[1], in[2]
	n, v, c := x.Shape[0], k.W.Rows(), k.W.Cols()

	proj := FrozenLinear[float64]{ID: "lm_head", W: k.W}
	logits := Arg[float64]{Shape: tensor.Shape{n, v}, Data: make([]float64, n*v)}
	proj.Forward(logits.Data, []Arg[float64]{x})
	ceIn := []Arg[float64]{logits, targets, mask}
	want := make([]float64, 1)
	CrossEntropy[float64]{}.Forward(want, ceIn)
	got := make([]float64, 1)
	k.Forward(got, in)
	if math.Abs(got[0]-want[0]) > 1e-12 {
		t.Fatalf("loss %v, unfused %v", got[0], want[0])
	}

	const dloss = 0.7
	dLogits := make([]float64, n*v)
	CrossEntropy[float64]{}.Backward(0, dLogits, []float64{dloss}, ceIn)
	wantDX := make([]float64, n*c)
	proj.Backward(0, wantDX, dLogits, []Arg[float64]{x})
	dx := make([]float64, n*c)
	k.Backward(0, dx, []float64{dloss}, in)
	for i := range dx {
		if math.Abs(dx[i]-wantDX[i]) > 1e-12 {
			t.Fatalf("dx[%d] = %v, unfused %v", i, dx[i], wantDX[i])
		}
	}
}

func TestHeadCrossEntropyRejectsBadShapes(t *testing.T) {
	k := HeadCrossEntropy[float32]{ID: "lm_head", W: kernels.NewDense(make([]float32, 40), 5, 8)}
	for _, in := range [][]tensor.Shape{
		{{4, 7}, {4}, {4}}, // x width != C
		{{4, 8}, {3}, {4}}, // targets
		{{4, 8}, {4}, {5}}, // mask
		{{4, 8}, {4}},      // missing mask
		{{32}, {4}, {4}},   // x not a matrix
	} {
		if _, err := k.OutShape(in); err == nil {
			t.Errorf("%s accepted shapes %v", k.Name(), in)
		}
	}
	if s, err := k.OutShape([]tensor.Shape{{4, 8}, {4}, {4}}); err != nil || !s.IsScalar() {
		t.Errorf("good shapes: %v, %v", s, err)
	}
}
