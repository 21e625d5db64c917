package gop

import (
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// residualChain is a compiled graph h ← h + sqScale(h, w_l) for a few layers,
// loss = Σ sqScale(h, w_out), with every w learnable: gradient sums where h
// fans out, residual sums by our kernel and by gorgonia's own add (which
// overwrites an input in place), and values whose lifetimes span the whole
// forward pass.
type residualChain struct {
	vm    G.VM
	loss  *G.Node
	ws    G.Nodes
	plan  *Plan
	close func()
}

func newResidualChain(t *testing.T, planned bool) *residualChain {
	t.Helper()
	return newResidualChainGrads(t, planned, false)
}

// newResidualChainGrads is newResidualChain whose plan, with transientGrads,
// frees the gradient outputs once they are added to the dual values.
func newResidualChainGrads(t *testing.T, planned, transientGrads bool) *residualChain {
	t.Helper()
	const layers, n, c = 5, 3, 4
	g := G.NewGraph()
	mk := func(name string, data []float64, shape ...int) *G.Node {
		return G.NewTensor(g, tensor.Float64, len(shape), G.WithShape(shape...), G.WithName(name),
			G.WithValue(tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))))
	}
	xs := make([]float64, n*c)
	for i := range xs {
		xs[i] = 0.1 + 0.07*float64(i%5) - 0.03*float64(i%3)
	}
	h := mk("x", xs, n, c)
	inputs := G.Nodes{h}
	var ws G.Nodes
	must := func(node *G.Node, err error) *G.Node {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return node
	}
	for l := 0; l <= layers; l++ {
		w := make([]float64, c)
		for j := range w {
			w[j] = 0.4 + 0.1*float64((j+l)%4)
		}
		wn := mk("w"+string(rune('0'+l)), w, c)
		ws = append(ws, wn)
		a := must(Apply[float64](sqScale[float64]{tag: string(rune('0' + l))}, h, wn))
		if l == layers {
			h = a
			break
		}
		if l%2 == 0 {
			h = must(Apply[float64](Add[float64]{}, h, a))
		} else {
			// gorgonia's own add, which may write into a's buffer in place
			h = must(G.Add(a, h))
		}
	}
	loss := must(Apply[float64](sumAll[float64]{}, h))
	grads, err := G.Grad(loss, ws...)
	if err != nil {
		t.Fatal(err)
	}
	outputs := append(G.Nodes{loss}, grads...)
	prog, locs, err := G.CompileFunction(g, append(inputs, ws...), outputs)
	if err != nil {
		t.Fatal(err)
	}
	r := &residualChain{loss: loss, ws: ws}
	if planned {
		var transient G.Nodes
		if transientGrads {
			transient = grads
		}
		if r.plan, err = NewPlan[float64](g, outputs, transient...); err != nil {
			t.Fatal(err)
		}
	}
	r.vm = G.NewTapeMachine(g, G.WithPrecompiled(prog, locs), G.BindDualValues(ws...))
	t.Cleanup(func() { r.vm.Close() })
	return r
}

// run runs the graph once and returns the loss and every weight's
// accumulated gradient.
func (r *residualChain) run(t *testing.T) (float64, [][]float64) {
	t.Helper()
	if r.plan != nil {
		r.plan.Begin()
	}
	err := r.vm.RunAll()
	r.vm.Reset()
	if err != nil {
		t.Fatal(err)
	}
	var grads [][]float64
	for _, w := range r.ws {
		g, err := w.Grad()
		if err != nil {
			t.Fatal(err)
		}
		grads = append(grads, append([]float64(nil), g.Data().([]float64)...))
	}
	return reflectScalar[float64](r.loss.Value()), grads
}

func TestPlanSharesBuffersWithoutChangingResults(t *testing.T) {
	plain, planned := newResidualChain(t, false), newResidualChain(t, true)
	p := planned.plan
	if p.Buffers >= p.Nodes || p.Bytes >= p.UnsharedBytes {
		t.Fatalf("plan shares nothing: %d buffers for %d nodes, %d of %d bytes", p.Buffers, p.Nodes, p.Bytes, p.UnsharedBytes)
	}
	t.Logf("%d buffers for %d nodes, %d of %d bytes", p.Buffers, p.Nodes, p.Bytes, p.UnsharedBytes)
	for run := 1; run <= 2; run++ { // the second run accumulates gradients
		wantLoss, wantGrads := plain.run(t)
		gotLoss, gotGrads := planned.run(t)
		if gotLoss != wantLoss {
			t.Fatalf("run %d: loss %v, without the plan %v", run, gotLoss, wantLoss)
		}
		for i := range wantGrads {
			for j := range wantGrads[i] {
				if gotGrads[i][j] != wantGrads[i][j] {
					t.Fatalf("run %d: dw%d[%d] = %v, without the plan %v", run, i, j, gotGrads[i][j], wantGrads[i][j])
				}
			}
		}
	}
}

// TestPlanFreesTransientGradients: gradients read only into the dual values
// share buffers with other nodes, and the accumulated gradients stay those
// of the unplanned graph.
func TestPlanFreesTransientGradients(t *testing.T) {
	plain, kept, freed := newResidualChain(t, false), newResidualChain(t, true), newResidualChainGrads(t, true, true)
	if freed.plan.Bytes >= kept.plan.Bytes {
		t.Fatalf("transient gradients: %d bytes of buffers, %d when they stay live", freed.plan.Bytes, kept.plan.Bytes)
	}
	for run := 1; run <= 2; run++ {
		wantLoss, wantGrads := plain.run(t)
		gotLoss, gotGrads := freed.run(t)
		if gotLoss != wantLoss {
			t.Fatalf("run %d: loss %v, without the plan %v", run, gotLoss, wantLoss)
		}
		for i := range wantGrads {
			for j := range wantGrads[i] {
				if gotGrads[i][j] != wantGrads[i][j] {
					t.Fatalf("run %d: dw%d[%d] = %v, without the plan %v", run, i, j, gotGrads[i][j], wantGrads[i][j])
				}
			}
		}
	}
}

func TestPlanRejectsARunItWasNotToldAbout(t *testing.T) {
	r := newResidualChain(t, true)
	r.run(t)
	err := r.vm.RunAll() // no Begin
	r.vm.Reset()
	if err == nil || !strings.Contains(err.Error(), "buffer plan") {
		t.Fatalf("run without Begin: error %v, want one about the buffer plan", err)
	}
}
