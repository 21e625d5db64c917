package gop

import (
	"fmt"
	"math"
	"sync/atomic"
	"testing"

	"github.com/salr-go/salr/kernels"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// sqScale is a test kernel: out[i,j] = x[i,j]² · w[j] with x [N,C], w [C].
type sqScale[T kernels.Float] struct {
	tag       string
	backwards *atomic.Int64 // counts Backward calls per input
	wrtW      *atomic.Int64
}

func (k sqScale[T]) Name() string { return "sqScale" + k.tag }

func (k sqScale[T]) OutShape(in []tensor.Shape) (tensor.Shape, error) {
	if len(in) != 2 || in[0].Dims() != 2 || in[1].TotalSize() != in[0][1] {
		return nil, fmt.Errorf("want x [N,C] and w [C], got %v", in)
	}
	return in[0].Clone(), nil
}

func (k sqScale[T]) Forward(out []T, in []Arg[T]) {
	x, w := in[0].Data, in[1].Data
	for i := range out {
		out[i] = x[i] * x[i] * w[i%len(w)]
	}
}

func (k sqScale[T]) Differentiable(i int) bool { return true }

func (k sqScale[T]) Backward(wrt int, dIn, dOut []T, in []Arg[T]) {
	x, w := in[0].Data, in[1].Data
	if k.backwards != nil {
		k.backwards.Add(1)
	}
	switch wrt {
	case 0:
		for i := range dIn {
			dIn[i] = 2 * x[i] * w[i%len(w)] * dOut[i]
		}
	case 1:
		if k.wrtW != nil {
			k.wrtW.Add(1)
		}
		for j := range dIn {
			dIn[j] = 0
		}
		for i := range x {
			dIn[i%len(w)] += x[i] * x[i] * dOut[i]
		}
	}
}

// sumAll is a test kernel reducing a tensor to a scalar.
type sumAll[T kernels.Float] struct{}

func (sumAll[T]) Name() string { return "sumAll" }
func (sumAll[T]) OutShape(in []tensor.Shape) (tensor.Shape, error) {
	return tensor.ScalarShape(), nil
}
func (sumAll[T]) Forward(out []T, in []Arg[T]) {
	var s T
	for _, v := range in[0].Data {
		s += v
	}
	out[0] = s
}
func (sumAll[T]) Differentiable(int) bool { return true }
func (sumAll[T]) Backward(_ int, dIn, dOut []T, _ []Arg[T]) {
	for i := range dIn {
		dIn[i] = dOut[0]
	}
}

func TestCheckGradientsAcceptsAndRejects(t *testing.T) {
	in := []Arg[float64]{
		{Shape: tensor.Shape{3, 4}, Data: []float64{1, -2, 3, 0.5, 1.5, -0.7, 2, 1, -1, 0.3, 0.9, -2.2}},
		{Shape: tensor.Shape{4}, Data: []float64{0.5, -1, 2, 0.1}},
	}
	if err := CheckGradients(sqScale[float64]{}, in, 1, 1e-6); err != nil {
		t.Fatalf("correct kernel rejected: %v", err)
	}
	if err := CheckGradients(brokenSqScale{}, in, 1, 1e-6); err == nil {
		t.Fatal("wrong gradient accepted")
	}
}

// brokenSqScale has a gradient off by a factor of two in x.
type brokenSqScale struct{ sqScale[float64] }

func (brokenSqScale) Backward(wrt int, dIn, dOut []float64, in []Arg[float64]) {
	sqScale[float64]{}.Backward(wrt, dIn, dOut, in)
	if wrt == 0 {
		for i := range dIn {
			dIn[i] /= 2
		}
	}
}

// TestGraphGradientsAndFrozenPruning builds loss = Σ sqScale(sqScale(x, w1), w2)
// with w1 learnable and x, w2 frozen, and checks the gradient of w1 against
// the closed form, that it accumulates over runs through the dual value, and
// that no backward node for the frozen w2 or x is ever run.
func TestGraphGradientsAndFrozenPruning(t *testing.T) {
	for _, dt := range []string{"float32", "float64"} {
		t.Run(dt, func(t *testing.T) {
			if dt == "float32" {
				runGraphTest[float32](t)
			} else {
				runGraphTest[float64](t)
			}
		})
	}
}

func runGraphTest[T kernels.Float](t *testing.T) {
	g := G.NewGraph()
	dt := Dtype[T]()
	xs := []T{1, 2, -1, 0.5, 3, -2}
	w1s := []T{0.5, -1, 2}
	w2s := []T{1.5, 0.25, -0.5}
	mk := func(name string, data []T, shape ...int) *G.Node {
		return G.NewTensor(g, dt, len(shape), G.WithShape(shape...), G.WithName(name),
			G.WithValue(tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))))
	}
	x := mk("x", xs, 2, 3)
	w1 := mk("w1", w1s, 3)
	w2 := mk("w2", w2s, 3)
	var calls, wrtW atomic.Int64
	h, err := Apply[T](sqScale[T]{tag: "1", backwards: &calls}, x, w1)
	if err != nil {
		t.Fatal(err)
	}
	y, err := Apply[T](sqScale[T]{tag: "2", backwards: &calls, wrtW: &wrtW}, h, w2)
	if err != nil {
		t.Fatal(err)
	}
	loss, err := Apply[T](sumAll[T]{}, y)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := G.Grad(loss, w1); err != nil {
		t.Fatal(err)
	}
	prog, locs, err := G.CompileFunction(g, G.Nodes{x, w1, w2}, G.Nodes{loss, w1.Deriv()})
	if err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g, G.WithPrecompiled(prog, locs), G.BindDualValues(w1))
	defer vm.Close()
	for run := 1; run <= 2; run++ {
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		vm.Reset()
		// loss = Σ_ij (x² w1)² w2 = Σ x⁴ w1² w2; dloss/dw1_j = Σ_i 2 x_ij⁴ w1_j w2_j.
		var wantLoss float64
		want := make([]float64, 3)
		for i, xv := range xs {
			j := i % 3
			x4 := math.Pow(float64(xv), 4)
			wantLoss += x4 * float64(w1s[j]*w1s[j]*w2s[j])
			want[j] += 2 * x4 * float64(w1s[j]) * float64(w2s[j]) * float64(run)
		}
		gotLoss := float64(reflectScalar[T](loss.Value()))
		if math.Abs(gotLoss-wantLoss) > 1e-4*math.Abs(wantLoss) {
			t.Fatalf("loss %v, want %v", gotLoss, wantLoss)
		}
		grad, err := w1.Grad()
		if err != nil {
			t.Fatal(err)
		}
		got := grad.Data().([]T)
		for j := range want {
			if math.Abs(float64(got[j])-want[j]) > 1e-4*math.Abs(want[j]) {
				t.Fatalf("run %d: dw1[%d] = %v, want %v (accumulated over runs)", run, j, got[j], want[j])
			}
		}
	}
	// Per run: sqScale2 d/dh, sqScale1 d/dw1. Never d/dw2 or d/dx.
	if wrtW.Load() != 0 {
		t.Errorf("the frozen w2's gradient was computed %d times", wrtW.Load())
	}
	if calls.Load() != 4 {
		t.Errorf("%d backward calls in two runs, want 4", calls.Load())
	}
}

func reflectScalar[T kernels.Float](v G.Value) T {
	switch s := v.(type) {
	case *G.F32:
		return T(*s)
	case *G.F64:
		return T(*s)
	}
	panic(fmt.Sprintf("not a scalar: %T", v))
}
