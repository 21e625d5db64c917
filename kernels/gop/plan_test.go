package gop

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync/atomic"
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
	var plan func(outputs, grads G.Nodes) (*Plan, error)
	if planned {
		plan = func(outputs, grads G.Nodes) (*Plan, error) {
			var transient G.Nodes
			if transientGrads {
				transient = grads
			}
			return NewPlan[float64](g, outputs, transient)
		}
	}
	return compileChain(t, g, inputs, ws, loss, plan)
}

// compileChain differentiates loss with respect to ws, compiles the program
// for the loss and the gradients and returns it as a residualChain whose
// buffers plan plans (nil: no plan).
func compileChain(t *testing.T, g *G.ExprGraph, inputs, ws G.Nodes, loss *G.Node, plan func(outputs, grads G.Nodes) (*Plan, error)) *residualChain {
	t.Helper()
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
	if plan != nil {
		if r.plan, err = plan(outputs, grads); err != nil {
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
	runsAgree(t, plain, planned)
}

// runsAgree runs both chains twice (the second run accumulates gradients)
// and fails unless losses and gradients are bitwise equal.
func runsAgree(t *testing.T, plain, planned *residualChain) {
	t.Helper()
	for run := 1; run <= 2; run++ {
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
	runsAgree(t, plain, freed)
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

// countedSqScale is sqScale counting its Forward calls.
type countedSqScale struct {
	sqScale[float64]
	forwards *atomic.Int64
}

func (k countedSqScale) Forward(out []float64, in []Arg[float64]) {
	k.forwards.Add(1)
	k.sqScale.Forward(out, in)
}

const chainLayers = 4

// newLayerChain is a compiled, planned graph of layers
// h ← h + sqScale(sqScale(h, u_l), w_l) and loss = Σ sqScale(h, w_out), with
// every weight learnable. With checkpoint, each layer's two sqScale nodes are
// a checkpointed segment. It also returns the count of sqScale forward runs.
func newLayerChain(t *testing.T, checkpoint bool) (*residualChain, *atomic.Int64) {
	t.Helper()
	const n, c = 3, 4
	g := G.NewGraph()
	mk := func(name string, data []float64, shape ...int) *G.Node {
		return G.NewTensor(g, tensor.Float64, len(shape), G.WithShape(shape...), G.WithName(name),
			G.WithValue(tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))))
	}
	must := func(node *G.Node, err error) *G.Node {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return node
	}
	weight := func(name string, l int) *G.Node {
		w := make([]float64, c)
		for j := range w {
			w[j] = 0.3 + 0.1*float64((j+l)%4)
		}
		return mk(name, w, c)
	}
	xs := make([]float64, n*c)
	for i := range xs {
		xs[i] = 0.2 + 0.07*float64(i%5) - 0.03*float64(i%3)
	}
	h := mk("x", xs, n, c)
	inputs := G.Nodes{h}
	forwards := new(atomic.Int64)
	var ws G.Nodes
	var segments []G.Nodes
	for l := range chainLayers {
		u, w := weight(fmt.Sprintf("u%d", l), l), weight(fmt.Sprintf("w%d", l), l+1)
		ws = append(ws, u, w)
		a := must(Apply[float64](countedSqScale{sqScale[float64]{tag: fmt.Sprintf("a%d", l)}, forwards}, h, u))
		b := must(Apply[float64](countedSqScale{sqScale[float64]{tag: fmt.Sprintf("b%d", l)}, forwards}, a, w))
		h = must(Apply[float64](Add[float64]{}, h, b))
		segments = append(segments, G.Nodes{a, b})
	}
	wOut := weight("w_out", chainLayers)
	ws = append(ws, wOut)
	loss := must(Apply[float64](sumAll[float64]{}, must(Apply[float64](sqScale[float64]{tag: "out"}, h, wOut))))
	if !checkpoint {
		segments = nil
	}
	r := compileChain(t, g, inputs, ws, loss, func(outputs, _ G.Nodes) (*Plan, error) {
		return NewPlan[float64](g, outputs, nil, segments...)
	})
	return r, forwards
}

func TestPlanCheckpointsWithoutChangingResults(t *testing.T) {
	plain, plainFwd := newLayerChain(t, false)
	ck, ckFwd := newLayerChain(t, true)
	if plain.plan.Recomputed != 0 || ck.plan.Recomputed != 2*chainLayers {
		t.Fatalf("recomputed nodes: %d without segments, %d with; want 0 and %d", plain.plan.Recomputed, ck.plan.Recomputed, 2*chainLayers)
	}
	if ck.plan.Bytes >= plain.plan.Bytes {
		t.Fatalf("checkpointing holds %d bytes, without %d", ck.plan.Bytes, plain.plan.Bytes)
	}
	t.Logf("%d bytes checkpointed, %d without", ck.plan.Bytes, plain.plan.Bytes)
	for run := 1; run <= 2; run++ { // the second run accumulates gradients
		wantLoss, wantGrads := plain.run(t)
		gotLoss, gotGrads := ck.run(t)
		if math.Float64bits(gotLoss) != math.Float64bits(wantLoss) {
			t.Fatalf("run %d: loss %v, without checkpointing %v", run, gotLoss, wantLoss)
		}
		for i := range wantGrads {
			for j := range wantGrads[i] {
				if math.Float64bits(gotGrads[i][j]) != math.Float64bits(wantGrads[i][j]) {
					t.Fatalf("run %d: gradient %d[%d] = %v, without checkpointing %v", run, i, j, gotGrads[i][j], wantGrads[i][j])
				}
			}
		}
		if got, want := ckFwd.Load(), plainFwd.Load()+int64(run*2*chainLayers); got != want {
			t.Fatalf("run %d: %d forward runs of the layers' kernels, want %d", run, got, want)
		}
	}
}

// TestPlanCheckpointTestCanFail skips the recomputation: the backward pass
// then reads buffers that later layers overwrote, and the gradients change.
func TestPlanCheckpointTestCanFail(t *testing.T) {
	plain, _ := newLayerChain(t, false)
	ck, _ := newLayerChain(t, true)
	ck.plan.skipRecompute = true
	_, want := plain.run(t)
	_, got := ck.run(t)
	for i := range want {
		for j := range want[i] {
			if got[i][j] != want[i][j] {
				return
			}
		}
	}
	t.Fatal("gradients unchanged without recomputing the checkpointed segments")
}

func TestPlanRejectsSegmentsItCannotRecompute(t *testing.T) {
	g := G.NewGraph()
	mk := func(name string) *G.Node {
		return G.NewTensor(g, tensor.Float64, 2, G.WithShape(2, 2), G.WithName(name),
			G.WithValue(tensor.New(tensor.WithShape(2, 2), tensor.WithBacking([]float64{0.1, 0.2, 0.3, 0.4}))))
	}
	x, w := mk("x"), G.NewTensor(g, tensor.Float64, 1, G.WithShape(2), G.WithName("w"),
		G.WithValue(tensor.New(tensor.WithShape(2), tensor.WithBacking([]float64{0.5, 0.6}))))
	a, err := Apply[float64](sqScale[float64]{tag: "a"}, x, w)
	if err != nil {
		t.Fatal(err)
	}
	b, err := G.Add(a, x) // gorgonia's own op reads the checkpointed value
	if err != nil {
		t.Fatal(err)
	}
	loss, err := Apply[float64](sumAll[float64]{}, b)
	if err != nil {
		t.Fatal(err)
	}
	grads, err := G.Grad(loss, w)
	if err != nil {
		t.Fatal(err)
	}
	outputs := append(G.Nodes{loss}, grads...)
	for _, tc := range []struct {
		segment G.Nodes
		want    string
	}{
		{G.Nodes{a}, "not a kernel node"},
		{G.Nodes{b}, "not a forward kernel node"},
	} {
		if _, err := NewPlan[float64](g, outputs, nil, tc.segment); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("segment %v: error %v, want one saying %q", tc.segment, err, tc.want)
		}
	}
}

// TestBufferAssignmentsNeverShareLiveValues checks both heuristics on
// random values, some live twice: no buffer holds two values live at the
// same time, and every buffer is as large as its largest value.
func TestBufferAssignmentsNeverShareLiveValues(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		var vals []value
		for from := range 40 {
			v := value{size: 1 + rng.IntN(50), spans: []span{{from, from + rng.IntN(10)}}}
			if rng.IntN(3) == 0 {
				again := 45 + rng.IntN(30)
				v.spans = append(v.spans, span{again, again + rng.IntN(10)})
			}
			vals = append(vals, v)
		}
		for name, assign := range map[string]func([]value) ([]int, []int){"in order": assignInOrder, "by size": assignBySize} {
			sizes, buf := assign(vals)
			for a := range vals {
				if sizes[buf[a]] < vals[a].size {
					t.Fatalf("trial %d, %s: value %d of size %d in a buffer of %d", trial, name, a, vals[a].size, sizes[buf[a]])
				}
				for b := a + 1; b < len(vals); b++ {
					if buf[a] == buf[b] && vals[a].conflicts(vals[b].spans) {
						t.Fatalf("trial %d, %s: values %d %v and %d %v share buffer %d", trial, name, a, vals[a].spans, b, vals[b].spans, buf[a])
					}
				}
			}
		}
	}
}
