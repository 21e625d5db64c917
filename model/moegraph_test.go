package model

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/salr-go/salr/adapters"
	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/kernels/gop"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// testLowRank is an adapter kernel of inputs x [n, in], A [r, in], B [out, r]:
// y = x Aᵀ Bᵀ, written plainly for the tests.
type testLowRank struct{ name string }

func (k testLowRank) Name() string { return "testLowRank(" + k.name + ")" }
func (k testLowRank) OutShape(in []tensor.Shape) (tensor.Shape, error) {
	return tensor.Shape{in[0][0], in[2][0]}, nil
}
func (testLowRank) Differentiable(i int) bool { return i < 3 }
func (testLowRank) dims(in []gop.Arg[float64]) (n, din, r, out int) {
	return in[0].Shape[0], in[0].Shape[1], in[1].Shape[0], in[2].Shape[0]
}
func (k testLowRank) Forward(y []float64, in []gop.Arg[float64]) {
	n, din, r, out := k.dims(in)
	h := make([]float64, n*r)
	kernels.Gemm(false, true, n, r, din, 1, in[0].Data, din, in[1].Data, din, 0, h, r)
	kernels.Gemm(false, true, n, out, r, 1, h, r, in[2].Data, r, 0, y, out)
}
func (k testLowRank) Backward(wrt int, d, dy []float64, in []gop.Arg[float64]) {
	n, din, r, out := k.dims(in)
	dh := make([]float64, n*r) // dy B
	kernels.Gemm(false, false, n, r, out, 1, dy, out, in[2].Data, r, 0, dh, r)
	switch wrt {
	case 0: // dh A
		kernels.Gemm(false, false, n, din, r, 1, dh, r, in[1].Data, din, 0, d, din)
	case 1: // dhᵀ x
		kernels.Gemm(true, false, r, din, n, 1, dh, r, in[0].Data, din, 0, d, din)
	case 2: // dyᵀ (x Aᵀ)
		h := make([]float64, n*r)
		kernels.Gemm(false, true, n, r, din, 1, in[0].Data, din, in[1].Data, din, 0, h, r)
		kernels.Gemm(true, false, out, r, n, 1, dy, out, h, r, 0, d, r)
	}
}

func randArg(rng *rand.Rand, scale float64, shape ...int) gop.Arg[float64] {
	n := 1
	for _, d := range shape {
		n *= d
	}
	data := make([]float64, n)
	for i := range data {
		data[i] = rng.NormFloat64() * scale
	}
	return gop.Arg[float64]{Shape: tensor.Shape(shape), Data: data}
}

func TestTopKRouterAndSigmoidGateGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, norm := range []bool{true, false} {
		k := TopKRouter[float64]{ID: "r", K: 2, Norm: norm}
		if err := gop.CheckGradients(k, []gop.Arg[float64]{randArg(rng, 1, 7, 5)}, 3, 1e-6); err != nil {
			t.Errorf("norm=%v: %v", norm, err)
		}
	}
	in := []gop.Arg[float64]{randArg(rng, 1, 4, 6), randArg(rng, 1, 4, 1)}
	if err := gop.CheckGradients(SigmoidGate[float64]{}, in, 4, 1e-6); err != nil {
		t.Error(err)
	}
}

// routedExperts chains TopKRouter and MoEExperts for a gradient check:
// inputs h, the router logits, then the adapters' A and B.
type routedExperts struct {
	router TopKRouter[float64]
	ex     *MoEExperts[float64]
}

func (k routedExperts) Name() string { return "routedExperts" }
func (k routedExperts) OutShape(in []tensor.Shape) (tensor.Shape, error) {
	return k.ex.OutShape(in)
}
func (routedExperts) Differentiable(int) bool { return true }
func (k routedExperts) withWeights(in []gop.Arg[float64]) []gop.Arg[float64] {
	w := make([]float64, in[1].Shape.TotalSize())
	k.router.Forward(w, in[1:2])
	out := slices.Clone(in)
	out[1] = gop.Arg[float64]{Shape: in[1].Shape, Data: w}
	return out
}
func (k routedExperts) Forward(out []float64, in []gop.Arg[float64]) {
	k.ex.Forward(out, k.withWeights(in))
}
func (k routedExperts) Backward(wrt int, d, dOut []float64, in []gop.Arg[float64]) {
	args := k.withWeights(in)
	k.ex.Forward(make([]float64, len(dOut)), args) // as a graph runs it
	if wrt != 1 {
		k.ex.Backward(wrt, d, dOut, args)
		return
	}
	dw := make([]float64, len(d))
	k.ex.Backward(1, dw, dOut, args)
	k.router.Backward(0, d, dw, in[1:2])
}

// TestMoEExpertsGradients checks the routed experts kernel (grouped GEMMs,
// adapters on some projections) chained with its router against central
// differences: gradients to h, to the router logits and to every adapter.
func TestMoEExpertsGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const n, c, ff, experts, r = 9, 6, 5, 4, 2
	in := []gop.Arg[float64]{randArg(rng, 1, n, c), randArg(rng, 1, n, experts)}
	ex := make([][3]ExpertProj[float64], experts)
	for e := range ex {
		for i := range ex[e] {
			rows, cols := ff, c
			if i == 2 {
				rows, cols = c, ff
			}
			ex[e][i].Base = kernels.NewDense(randArg(rng, 0.5, rows, cols).Data, rows, cols)
			if (e+i)%2 == 0 { // adapters on half the projections
				ex[e][i].Adapter, ex[e][i].AIndex = testLowRank{fmt.Sprint(e, i)}, len(in)
				in = append(in, randArg(rng, 0.5, r, cols), randArg(rng, 0.5, rows, r))
			}
		}
	}
	for _, norm := range []bool{true, false} {
		k := routedExperts{router: TopKRouter[float64]{ID: "r", K: 2, Norm: norm}, ex: NewMoEExperts("t", ex)}
		if err := gop.CheckGradients(k, in, 9, 1e-6); err != nil {
			t.Errorf("norm=%v: %v", norm, err)
		}
	}
}

// TestMoEGraphMatchesInferenceAndGradients builds the training graph of
// both families (float64, expert adapters through ExpertAdapter, trained
// norms and shared expert weights), checks its logits against the Runner
// and every gradient against central differences of the loss.
func TestMoEGraphMatchesInferenceAndGradients(t *testing.T) {
	for name, cfg := range testMoEConfigs() {
		t.Run(name, func(t *testing.T) {
			ck, err := RandomCheckpoint(cfg, 3)
			if err != nil {
				t.Fatal(err)
			}
			p32, err := NewParams(ck)
			if err != nil {
				t.Fatal(err)
			}
			const batch, seq = 2, 5
			rng := rand.New(rand.NewPCG(7, 8))
			ids, targets := make([]int, batch*seq), make([]int, batch*seq)
			mask := make([]float64, batch*seq)
			for i := range ids {
				ids[i], targets[i] = rng.IntN(cfg.Vocab), rng.IntN(cfg.Vocab)
				mask[i] = 1
			}
			// Logits of the float32 graph against the Runner.
			g32, err := BuildGraph(p32, GraphOptions[float32]{Batch: batch, Seq: seq, KeepLogits: true})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := g32.Step(ids, targets, make([]float32, batch*seq)); err != nil {
				t.Fatal(err)
			}
			run := NewRunner(p32)
			for s := 0; s < batch; s++ {
				want, err := run.Forward([][]int{ids[s*seq : (s+1)*seq]}, []*Cache{run.NewCache(seq)}, true)
				if err != nil {
					t.Fatal(err)
				}
				got := g32.Logits()[s*seq*cfg.Vocab : (s+1)*seq*cfg.Vocab]
				if d := maxAbsDiff(got, want[0]); d > 1e-5 {
					t.Errorf("sequence %d: graph logits differ from the Runner's by %g", s, d)
				}
			}
			g32.Close()

			p := ConvertParams[float64](p32)
			trainable := []string{
				"model.layers.0.post_attention_layernorm.weight", // reaches the router and the experts
				"model.norm.weight",
			}
			if cfg.SharedIntermediate > 0 {
				trainable = append(trainable, "model.layers.2.mlp.shared_expert.up_proj.weight")
			}
			adapted := 0
			expertAdapter := func(b *Builder[float64], lin *Linear[float64]) (gop.Kernel[float64], *G.Node, *G.Node, error) {
				adapted++
				if adapted%3 == 0 {
					return nil, nil, nil, nil
				}
				const r = 2
				in, out := lin.Base.Cols(), lin.Base.Rows()
				a := b.Learnable(lin.Module+".A", randArg(rng, 0.3, r, in).Data, r, in)
				bb := b.Learnable(lin.Module+".B", randArg(rng, 0.3, out, r).Data, out, r)
				return testLowRank{lin.Module}, a, bb, nil
			}
			g, err := BuildGraph(p, GraphOptions[float64]{Batch: batch, Seq: seq, ExpertAdapter: expertAdapter,
				Trainable: func(name string) bool { return slices.Contains(trainable, name) }})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			checkedAdapter := false
			for name := range checkGraphGradients(t, g, rng, 6, ids, targets, mask) {
				checkedAdapter = checkedAdapter || strings.Contains(name, ".experts.")
			}
			if !checkedAdapter {
				t.Error("no expert adapter was checked")
			}
		})
	}
}

// TestMoEGradientCheckpointingIsBitwiseIdentical trains both families with
// fused adapters (LoRA with dropout and an SVD part) on every projection,
// experts included, for two SGD steps with and without gradient
// checkpointing: losses and gradients must agree bit for bit.
func TestMoEGradientCheckpointingIsBitwiseIdentical(t *testing.T) {
	for name, cfg := range testMoEConfigs() {
		t.Run(name, func(t *testing.T) {
			base, err := RandomCheckpoint(cfg, 4)
			if err != nil {
				t.Fatal(err)
			}
			planned := map[[2]bool]int64{}
			train := func(checkpointing, routers bool) (losses []float32, grads [][]float32) {
				ck := &Checkpoint{Config: cfg, Tensors: map[string]*Tensor{}, Source: base.Source}
				for n, tensor := range base.Tensors {
					ck.Tensors[n] = &Tensor{Shape: tensor.Shape, Data: slices.Clone(tensor.Data)}
				}
				p, err := NewParams(ck)
				if err != nil {
					t.Fatal(err)
				}
				var ks []*adapters.FusedKernel[float32]
				kernel := func(b *Builder[float32], lin *Linear[float32]) (gop.Kernel[float32], *G.Node, *G.Node, error) {
					seed := adapters.SeedFor(5, lin.Module)
					in, out := lin.Base.Cols(), lin.Base.Rows()
					lora := &adapters.LowRank{Kind: adapters.KindLoRA, Rank: 2, In: in, Out: out, Scale: 1.5, Dropout: 0.2, Trainable: true,
						A: RandomTensor(lin.Module+".la", []int{2, in}, seed), B: RandomTensor(lin.Module+".lb", []int{out, 2}, seed)}
					svd := &adapters.LowRank{Kind: adapters.KindSVD, Rank: 2, In: in, Out: out, Scale: 1, Trainable: true,
						A: RandomTensor(lin.Module+".sa", []int{2, in}, seed), B: RandomTensor(lin.Module+".sb", []int{out, 2}, seed)}
					f, err := adapters.Concat(lora, svd)
					if err != nil {
						return nil, nil, nil, err
					}
					k := adapters.NewFusedKernel[float32](f, lin.Module, seed)
					ks = append(ks, k)
					return k, b.Learnable(lin.Module+".A", f.A, f.Rank, f.In), b.Learnable(lin.Module+".B", f.B, f.Out, f.Rank), nil
				}
				hook := func(b *Builder[float32], lin *Linear[float32], x *G.Node) (*G.Node, error) {
					k, a, bb, err := kernel(b, lin)
					if err != nil {
						return nil, err
					}
					return k.(*adapters.FusedKernel[float32]).Apply(x, a, bb)
				}
				const batch, seq = 2, 6
				opt := GraphOptions[float32]{Batch: batch, Seq: seq, Adapter: hook, ExpertAdapter: kernel,
					GradientCheckpointing: checkpointing, Trainable: func(n string) bool { return strings.HasSuffix(n, "layernorm.weight") }}
				if routers {
					// Trained routers and gates with the load-balancing loss.
					opt.RouterAuxLossCoef = 0.05
					opt.Trainable = func(n string) bool {
						return strings.HasSuffix(n, "layernorm.weight") || strings.HasSuffix(n, "gate.weight") && !strings.Contains(n, "experts")
					}
				}
				g, err := BuildGraph(p, opt)
				if err != nil {
					t.Fatal(err)
				}
				defer g.Close()
				planned[[2]bool{checkpointing, routers}] = g.Buffers().Bytes
				rng := rand.New(rand.NewPCG(31, 32))
				for step := range 2 {
					ids, targets, mask := make([]int, batch*seq), make([]int, batch*seq), make([]float32, batch*seq)
					for i := range ids {
						ids[i], targets[i], mask[i] = rng.IntN(cfg.Vocab), rng.IntN(cfg.Vocab), 1
					}
					for _, k := range ks {
						k.SetStep(uint64(step))
						k.SetTraining(true)
					}
					if err := g.ZeroGrad(); err != nil {
						t.Fatal(err)
					}
					loss, err := g.Step(ids, targets, mask)
					if err != nil {
						t.Fatal(err)
					}
					losses = append(losses, loss)
					grads = grads[:0]
					for i, n := range g.Learnables {
						grad, _ := g.Grad(i)
						grads = append(grads, slices.Clone(grad))
						w := n.Value().Data().([]float32)
						for j := range w {
							w[j] -= 0.05 * grad[j]
						}
					}
				}
				return losses, grads
			}
			for _, routers := range []bool{false, true} {
				l0, g0 := train(false, routers)
				l1, g1 := train(true, routers)
				if !slices.Equal(l0, l1) {
					t.Fatalf("routers trained %v: losses %v without checkpointing, %v with", routers, l0, l1)
				}
				for i := range g0 {
					if !slices.Equal(g0[i], g1[i]) {
						t.Fatalf("routers trained %v: gradient %d differs with checkpointing", routers, i)
					}
				}
				// The load-balancing loss keeps the routers' logits, not the
				// layers: checkpointing still saves memory.
				if with, without := planned[[2]bool{true, routers}], planned[[2]bool{false, routers}]; with >= without {
					t.Errorf("routers trained %v: %d activation bytes with checkpointing, %d without", routers, with, without)
				}
			}
			t.Logf("activation bytes: %v", planned)
		})
	}
}
