package adapters

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/salr-go/salr/kernels/gop"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// maskedSetup returns a LoRA adapter (nonzero B), its masked kernel in
// float64 with a random half of the mask kept, and the arguments x, A, B.
func maskedSetup(t *testing.T, out, in, n int, dropout float64) (*Fused, *MaskedKernel[float64], []gop.Arg[float64]) {
	t.Helper()
	lora, _ := testAdapters(t, out, in, dropout, true)
	f := mustConcat(t, lora)
	rng := rand.New(rand.NewPCG(9, 9))
	keep := make([]float64, out*in)
	for i := range keep {
		if rng.IntN(2) == 1 {
			keep[i] = 1
		}
	}
	k := NewFusedKernel[float64](f, "m", 5)
	k.SetStep(3)
	m, err := NewMaskedKernel(f, k, keep)
	if err != nil {
		t.Fatal(err)
	}
	return f, m, kernelArgs[float64](f, randomInput(n*in, 2), n, in)
}

// TestMaskedKernelForward checks y = ((s·B A) ⊙ M) x against loops in
// float64 (no dropout).
func TestMaskedKernelForward(t *testing.T) {
	const out, in, n = 5, 7, 4
	f, m, args := maskedSetup(t, out, in, n, 0)
	y := make([]float64, n*out)
	m.Forward(y, args)
	x, a, b := args[0].Data, args[1].Data, args[2].Data
	for r := 0; r < n; r++ {
		for o := 0; o < out; o++ {
			var want float64
			for i := 0; i < in; i++ {
				var d float64
				for k := 0; k < f.Rank; k++ {
					d += float64(f.Scale[k]) * b[o*f.Rank+k] * a[k*in+i]
				}
				want += d * m.Keep[o*in+i] * x[r*in+i]
			}
			if got := y[r*out+o]; math.Abs(got-want) > 1e-12*math.Max(1, math.Abs(want)) {
				t.Fatalf("y[%d,%d] = %v, want %v", r, o, got, want)
			}
		}
	}
}

// TestMaskedKernelGradients checks the gradients of x, A and B, through the
// mask and the dropout, against central differences.
func TestMaskedKernelGradients(t *testing.T) {
	for _, p := range []float64{0, 0.2} {
		_, m, args := maskedSetup(t, 6, 5, 3, p)
		if err := gop.CheckGradients(m, args, 1, 1e-6); err != nil {
			t.Fatalf("dropout %g: %v", p, err)
		}
		// Masked-out entries of D get no gradient: dA and dB must not change
		// when dD changes only there.
		_, m2, _ := maskedSetup(t, 6, 5, 3, p)
		for i := range m2.Keep {
			m2.Keep[i] = 0
		}
		dA := make([]float64, len(args[1].Data))
		m2.Backward(1, dA, randomInput(3*6, 4), args)
		for i, v := range dA {
			if v != 0 {
				t.Fatalf("dropout %g: all-pruned mask gives dA[%d] = %v, want 0", p, i, v)
			}
		}
	}
}

// TestMaskedKernelInGraph: the op's three graph nodes (Apply) give the
// loss and the gradients of x, A and B of the whole kernel (gradient-checked
// above), with and without dropout.
func TestMaskedKernelInGraph(t *testing.T) {
	for _, p := range []float64{0, 0.3} {
		const out, in, n = 5, 4, 3
		lora, _ := testAdapters(t, out, in, p, true)
		f := mustConcat(t, lora)
		keep := make([]float32, out*in)
		for i := range keep {
			keep[i] = float32(i % 3 % 2)
		}
		k := NewFusedKernel[float32](f, "o", 3)
		k.SetStep(2)
		m, err := NewMaskedKernel(f, k, keep)
		if err != nil {
			t.Fatal(err)
		}
		g := G.NewGraph()
		node := func(name string, data []float32, shape ...int) *G.Node {
			return G.NewTensor(g, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName(name),
				G.WithValue(tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))))
		}
		xData, rData := make([]float32, n*in), make([]float32, n*out)
		for i, v := range randomInput(n*in, 4) {
			xData[i] = float32(v)
		}
		for i, v := range randomInput(n*out, 6) {
			rData[i] = float32(v)
		}
		x, a, b, r := node("x", xData, n, in), node("A", f.A, f.Rank, in), node("B", f.B, out, f.Rank), node("R", rData, n, out)
		y, err := m.Apply(x, a, b)
		if err != nil {
			t.Fatal(err)
		}
		loss := G.Must(G.Sum(G.Must(G.HadamardProd(y, r))))
		if _, err := G.Grad(loss, x, a, b); err != nil {
			t.Fatal(err)
		}
		prog, locs, err := G.CompileFunction(g, G.Nodes{x, a, b, r}, G.Nodes{loss, x.Deriv(), a.Deriv(), b.Deriv()})
		if err != nil {
			t.Fatal(err)
		}
		vm := G.NewTapeMachine(g, G.WithPrecompiled(prog, locs), G.BindDualValues(x, a, b))
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		args := kernelArgs(f, xData, n, in)
		wantY := make([]float32, n*out)
		m.Forward(wantY, args)
		var wantLoss float64
		for i, v := range wantY {
			wantLoss += float64(v) * float64(rData[i])
		}
		if got := float64(loss.Value().Data().(float32)); math.Abs(got-wantLoss) > 1e-5*max(1, math.Abs(wantLoss)) {
			t.Fatalf("dropout %g: loss %g, want %g", p, got, wantLoss)
		}
		for wrt, nd := range []*G.Node{x, a, b} {
			want := make([]float32, nd.Shape().TotalSize())
			m.Backward(wrt, want, rData, args)
			grad, err := nd.Grad()
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range grad.Data().([]float32) {
				if math.Abs(float64(v-want[i])) > 1e-5*max(1, math.Abs(float64(want[i]))) {
					t.Fatalf("dropout %g: grad of %s[%d] = %g, want %g", p, nd.Name(), i, v, want[i])
				}
			}
		}
		vm.Close()
	}
}
