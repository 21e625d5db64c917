package adapters

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/kernels/gop"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// testAdapters returns a LoRA adapter (rank 3, with a nonzero B as after some
// training) and an SVD-like adapter (rank 2) for an out×in projection.
func testAdapters(t *testing.T, out, in int, dropout float64, svdTrainable bool) (*LowRank, *LowRank) {
	t.Helper()
	lora, err := NewLoRA(out, in, LoRAConfig{Rank: 3, Alpha: 6, Dropout: dropout}, 11)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range lora.B {
		lora.B[i] = float32(rng.NormFloat64() * 0.3)
	}
	svd := &LowRank{Kind: KindSVD, Rank: 2, In: in, Out: out, Scale: 1, Trainable: svdTrainable,
		A: make([]float32, 2*in), B: make([]float32, out*2)}
	for i := range svd.A {
		svd.A[i] = float32(rng.NormFloat64())
	}
	for i := range svd.B {
		svd.B[i] = float32(rng.NormFloat64())
	}
	return lora, svd
}

func mustConcat(t *testing.T, parts ...*LowRank) *Fused {
	t.Helper()
	f, err := Concat(parts...)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func randomInput(n int, seed uint64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 5))
	x := make([]float64, n)
	for i := range x {
		x[i] = rng.NormFloat64()
	}
	return x
}

// kernelArgs wraps x (shape xShape), A_cat and B_cat as kernel arguments.
func kernelArgs[T kernels.Float](f *Fused, x []T, xShape ...int) []gop.Arg[T] {
	a, b := make([]T, len(f.A)), make([]T, len(f.B))
	for i, v := range f.A {
		a[i] = T(v)
	}
	for i, v := range f.B {
		b[i] = T(v)
	}
	return []gop.Arg[T]{
		{Shape: tensor.Shape(xShape), Data: x},
		{Shape: tensor.Shape{f.Rank, f.In}, Data: a},
		{Shape: tensor.Shape{f.Out, f.Rank}, Data: b},
	}
}

func TestFusedKernelGradients(t *testing.T) {
	const out, in = 5, 6
	for _, dropout := range []float64{0, 0.3} {
		lora, svd := testAdapters(t, out, in, dropout, true)
		f := mustConcat(t, lora, svd)
		k := NewFusedKernel[float64](f, "q", 99)
		k.SetStep(4) // fixes the dropout mask for every forward of the check
		args := kernelArgs(f, randomInput(2*3*in, 1), 2, 3, in)
		if err := gop.CheckGradients(k, args, 7, 1e-7); err != nil {
			t.Errorf("dropout %g: %v", dropout, err)
		}
		// The two halves a graph uses.
		if err := gop.CheckGradients(k.Hidden(), args[:2], 8, 1e-7); err != nil {
			t.Errorf("dropout %g: %v", dropout, err)
		}
		h := gop.Arg[float64]{Shape: tensor.Shape{2, 3, f.Rank}, Data: randomInput(2*3*f.Rank, 2)}
		if err := gop.CheckGradients(k.Output(), []gop.Arg[float64]{h, args[2]}, 9, 1e-7); err != nil {
			t.Errorf("dropout %g: %v", dropout, err)
		}
	}
}

func TestFusedKernelFrozenRanksGetNoGradient(t *testing.T) {
	const out, in, n = 4, 5, 3
	lora, svd := testAdapters(t, out, in, 0.2, false)
	frozen := mustConcat(t, lora, svd)
	svd.Trainable = true
	free := mustConcat(t, lora, svd)
	kf, kt := NewFusedKernel[float64](frozen, "p", 1), NewFusedKernel[float64](free, "p", 1)
	args := kernelArgs(free, randomInput(n*in, 2), n, in)
	dy := randomInput(n*out, 3)
	for wrt, size := range []int{n * in, free.Rank * in, out * free.Rank} {
		gf, gt := make([]float64, size), make([]float64, size)
		kf.Backward(wrt, gf, dy, args)
		kt.Backward(wrt, gt, dy, args)
		for i := range gf {
			var frozenRank bool
			switch wrt {
			case 1:
				frozenRank = i/in >= lora.Rank
			case 2:
				frozenRank = i%free.Rank >= lora.Rank
			}
			want := gt[i]
			if frozenRank {
				want = 0
			}
			if gf[i] != want {
				t.Fatalf("input %d element %d: gradient %g, want %g (frozen rank: %v)", wrt, i, gf[i], want, frozenRank)
			}
		}
	}
	if got := frozen.TrainableRanks(); !got[0] || got[3] || got[4] {
		t.Fatalf("TrainableRanks %v", got)
	}
	ta, tb := frozen.TrainableA(), frozen.TrainableB()
	if !ta[0] || ta[3*in] || !tb[0] || tb[3] || tb[frozen.Rank+4] {
		t.Fatal("TrainableA/TrainableB do not follow the ranks")
	}
}

// naiveSeparate is the sum of the adapters applied one by one, PEFT style:
// Σ_p scale_p · ((x̃_p A_pᵀ) B_pᵀ), where x̃ is x⊙keep/(1−p) for adapters
// with dropout (keep from the kernel's mask) and x otherwise; float64 loops.
func naiveSeparate(parts []*LowRank, x []float64, n int, keep func(i int) bool) []float64 {
	out, in := parts[0].Out, parts[0].In
	y := make([]float64, n*out)
	for _, p := range parts {
		for t := 0; t < n; t++ {
			for r := 0; r < p.Rank; r++ {
				var h float64
				for i := 0; i < in; i++ {
					xi := x[t*in+i]
					if p.Dropout > 0 {
						if keep(t*in + i) {
							xi /= 1 - p.Dropout
						} else {
							xi = 0
						}
					}
					h += float64(p.A[r*in+i]) * xi
				}
				for o := 0; o < out; o++ {
					y[t*out+o] += float64(p.Scale) * h * float64(p.B[o*p.Rank+r])
				}
			}
		}
	}
	return y
}

func TestFusedEqualsSumOfSeparateAdapters(t *testing.T) {
	const out, in, n = 24, 32, 10
	for _, dropout := range []float64{0, 0.25} {
		for _, training := range []bool{true, false} {
			lora, svd := testAdapters(t, out, in, dropout, true)
			f := mustConcat(t, lora, svd)
			k := NewFusedKernel[float32](f, "down", 5)
			k.SetTraining(training)
			k.SetStep(17)
			x64 := randomInput(n*in, 8)
			x := make([]float32, len(x64))
			for i, v := range x64 {
				x[i] = float32(v)
				x64[i] = float64(x[i])
			}
			y := make([]float32, n*out)
			k.Forward(y, kernelArgs(f, x, n, in))
			keep := func(int) bool { return true }
			active := training && dropout > 0
			if active {
				bits := k.maskFor(n)
				keep = func(i int) bool { return bits[i>>6]>>(i&63)&1 == 1 }
			} else {
				lora.Dropout = 0
			}
			want := naiveSeparate([]*LowRank{lora, svd}, x64, n, keep)
			for i := range want {
				if d := math.Abs(float64(y[i]) - want[i]); d > 1e-5*max(1, math.Abs(want[i])) {
					t.Fatalf("dropout %g training %v: y[%d] = %g, separate adapters give %g", dropout, training, i, y[i], want[i])
				}
			}
		}
	}
}

func TestDropoutMaskIsAFunctionOfSeedAndStep(t *testing.T) {
	lora, svd := testAdapters(t, 4, 100, 0.3, true)
	f := mustConcat(t, lora, svd)
	bits := func(seed, step uint64) []uint64 {
		k := NewFusedKernel[float32](f, "q", seed)
		k.SetStep(step)
		return append([]uint64(nil), k.maskFor(100)...)
	}
	a, b, c, d := bits(1, 5), bits(1, 5), bits(1, 6), bits(2, 5)
	same := func(x, y []uint64) bool {
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	}
	if !same(a, b) || same(a, c) || same(a, d) {
		t.Fatal("the mask must depend on seed and step only")
	}
	kept := 0
	for i := 0; i < 100*100; i++ {
		kept += int(a[i>>6] >> (i & 63) & 1)
	}
	if frac := float64(kept) / 1e4; math.Abs(frac-0.7) > 0.02 {
		t.Fatalf("kept fraction %g, want 0.7 ± 0.02", frac)
	}
	if a[len(a)-1]>>(10000%64) != 0 {
		t.Fatal("bits beyond the last element are set")
	}
	// The stream, element by element: element i is kept when its 32-bit
	// draw is below 0.7·2³², two draws per PCG(seed, step) Uint64, low half
	// first. Resumed runs depend on it never changing. 99 rows of 100 is an
	// odd element count, so the last draw's high half goes unused.
	k := NewFusedKernel[float32](f, "q", 3)
	k.SetStep(9)
	got := k.maskFor(99)
	rng := rand.NewPCG(3, 9)
	threshold := uint64(math.Round(0.7 * (1 << 32)))
	var u uint64
	for i := range 99 * 100 {
		if i%2 == 0 {
			u = rng.Uint64()
		} else {
			u >>= 32
		}
		want := u&0xffffffff < threshold
		if bit := got[i>>6]>>(i&63)&1 == 1; bit != want {
			t.Fatalf("element %d: kept %v, want %v", i, bit, want)
		}
	}
}

func TestFusedKernelShapes(t *testing.T) {
	lora, svd := testAdapters(t, 4, 6, 0, true)
	k := NewFusedKernel[float32](mustConcat(t, lora, svd), "q", 1)
	got, err := k.OutShape([]tensor.Shape{{2, 3, 6}, {5, 6}, {4, 5}})
	if err != nil || !got.Eq(tensor.Shape{2, 3, 4}) {
		t.Fatalf("OutShape = %v, %v", got, err)
	}
	for _, bad := range [][]tensor.Shape{
		{{2, 5}, {5, 6}, {4, 5}}, {{2, 6}, {4, 6}, {4, 5}}, {{2, 6}, {5, 6}, {5, 4}}, {{2, 6}, {5, 6}},
	} {
		if _, err := k.OutShape(bad); err == nil {
			t.Errorf("OutShape(%v) accepted", bad)
		}
	}
}

// TestFusedKernelInGraph runs the adapter inside a gorgonia graph with the
// tape machine (the two nodes of Apply) and compares the output and the
// gradients of x, A_cat and B_cat with direct calls of the whole kernel, and
// counts the GEMMs of the step: the forward products, then one for dh, one
// for dB and one each for dx and dA (two each for the first product, dx and
// dA with dropout, where the dropped and the clean ranks read different
// inputs), never a recomputed dh or h.
func TestFusedKernelInGraph(t *testing.T) {
	for _, c := range []struct {
		dropout float64
		gemms   uint64
	}{{0, 2 + 4}, {0.5, 3 + 6}} {
		calls := fusedKernelInGraph(t, c.dropout)
		if calls != c.gemms {
			t.Errorf("dropout %g: a forward and backward step made %d GEMMs, want %d", c.dropout, calls, c.gemms)
		}
	}
}

// fusedKernelInGraph is TestFusedKernelInGraph for one dropout probability;
// it returns the number of GEMMs the graph's run made.
func fusedKernelInGraph(t *testing.T, dropout float64) uint64 {
	const out, in, n = 5, 4, 3
	lora, svd := testAdapters(t, out, in, dropout, true)
	f := mustConcat(t, lora, svd)
	k := NewFusedKernel[float32](f, "o", 3)
	k.SetStep(2)
	g := G.NewGraph()
	node := func(name string, data []float32, shape ...int) *G.Node {
		return G.NewTensor(g, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName(name),
			G.WithValue(tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))))
	}
	xData := make([]float32, n*in)
	for i, v := range randomInput(n*in, 4) {
		xData[i] = float32(v)
	}
	rData := make([]float32, n*out)
	for i, v := range randomInput(n*out, 6) {
		rData[i] = float32(v)
	}
	x := node("x", xData, n, in)
	a := node("A_cat", f.A, f.Rank, in)
	b := node("B_cat", f.B, out, f.Rank)
	r := node("R", rData, n, out)
	y, err := k.Apply(x, a, b)
	if err != nil {
		t.Fatal(err)
	}
	prod, err := G.HadamardProd(y, r)
	if err != nil {
		t.Fatal(err)
	}
	loss, err := G.Sum(prod)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := G.Grad(loss, x, a, b); err != nil {
		t.Fatal(err)
	}
	prog, locs, err := G.CompileFunction(g, G.Nodes{x, a, b, r}, G.Nodes{y, loss, x.Deriv(), a.Deriv(), b.Deriv()})
	if err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g, G.WithPrecompiled(prog, locs), G.BindDualValues(x, a, b))
	defer vm.Close()
	before := kernels.GemmCalls()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	calls := kernels.GemmCalls() - before
	args := kernelArgs(f, xData, n, in)
	wantY := make([]float32, n*out)
	k.Forward(wantY, args)
	compare := func(what string, got G.Value, want []float32) {
		t.Helper()
		data := got.Data().([]float32)
		for i := range want {
			if math.Abs(float64(data[i]-want[i])) > 1e-6*max(1, math.Abs(float64(want[i]))) {
				t.Fatalf("%s[%d] = %g, want %g", what, i, data[i], want[i])
			}
		}
	}
	// y itself may have been overwritten in place by the Hadamard product
	// (nothing else reads it), so check it through the loss.
	var wantLoss float64
	for i, v := range wantY {
		wantLoss += float64(v) * float64(rData[i])
	}
	if got := float64(loss.Value().Data().(float32)); math.Abs(got-wantLoss) > 1e-5*max(1, math.Abs(wantLoss)) {
		t.Fatalf("loss %g, want %g", got, wantLoss)
	}
	for wrt, nd := range []*G.Node{x, a, b} {
		want := make([]float32, nd.Shape().TotalSize())
		k.Backward(wrt, want, rData, args)
		grad, err := nd.Grad()
		if err != nil {
			t.Fatal(err)
		}
		compare("grad of "+nd.Name(), grad, want)
	}
	return calls
}

// TestDropoutRows: a kernel told its input is rows [first, first+n) of a
// batch of total rows draws exactly those rows' bits of the whole batch's
// mask (a data-parallel rank drops what one process drops), whatever the
// alignment of the rows to the 64-bit words.
func TestDropoutRows(t *testing.T) {
	lora, svd := testAdapters(t, 4, 100, 0.3, true)
	f := mustConcat(t, lora, svd)
	whole := NewFusedKernel[float32](f, "q", 7)
	whole.SetStep(3)
	all := append([]uint64(nil), whole.maskFor(13)...)
	bit := func(bits []uint64, i int) uint64 { return bits[i/64] >> (i % 64) & 1 }
	k := NewFusedKernel[float32](f, "q", 7)
	k.SetStep(3)
	for _, c := range []struct{ first, n int }{{0, 5}, {5, 5}, {3, 10}, {12, 1}} {
		k.SetRows(c.first, 13)
		got := k.maskFor(c.n)
		for i := range c.n * 100 {
			if bit(got, i) != bit(all, c.first*100+i) {
				t.Fatalf("rows [%d,%d): element %d differs from the whole batch's mask", c.first, c.first+c.n, i)
			}
		}
		if n := c.n * 100; n%64 != 0 && got[len(got)-1]>>(n%64) != 0 {
			t.Fatalf("rows [%d,%d): bits beyond the last element are set", c.first, c.first+c.n)
		}
	}
	k.SetRows(0, 0)
	if got := k.maskFor(13); !slices.Equal(got, all) {
		t.Fatal("SetRows(0, 0) does not restore the whole-input mask")
	}
}

// TestDropoutGatheredRows: a kernel told its input gathers rows of a larger
// one (an expert's tokens) draws those rows' bits of the larger input's
// mask, also as a data-parallel rank's share.
func TestDropoutGatheredRows(t *testing.T) {
	lora, svd := testAdapters(t, 4, 100, 0.3, true)
	f := mustConcat(t, lora, svd)
	whole := NewFusedKernel[float32](f, "q", 7)
	whole.SetStep(3)
	all := append([]uint64(nil), whole.maskFor(13)...)
	bit := func(bits []uint64, i int) uint64 { return bits[i/64] >> (i % 64) & 1 }
	k := NewFusedKernel[float32](f, "q", 7)
	k.SetStep(3)
	for _, c := range []struct {
		first, total int
		rows         []int
	}{{0, 0, []int{1, 4, 12}}, {0, 0, []int{0}}, {5, 13, []int{0, 2, 7}}, {0, 0, nil}} {
		n := 13
		if c.total > 0 {
			n = 8
		}
		k.SetRows(c.first, c.total)
		k.SetGatheredRows(c.rows, n)
		m := len(c.rows)
		if c.rows == nil {
			m = 13
		}
		got := k.maskFor(m)
		for i := range m * 100 {
			r := i / 100
			if c.rows != nil {
				r = c.rows[r]
			}
			if bit(got, i) != bit(all, (c.first+r)*100+i%100) {
				t.Fatalf("%+v: element %d differs from the whole batch's mask", c, i)
			}
		}
	}
}
