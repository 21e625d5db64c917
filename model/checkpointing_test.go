package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/salr-go/salr/adapters"
	G "gorgonia.org/gorgonia"
)

// TestGradientCheckpointingIsBitwiseIdentical trains a small GQA model with
// LoRA (dropout 0.2) and SVD adapters on every projection and trainable
// norms for three SGD steps, with and without gradient checkpointing, packed
// and unpacked, and with a trained embedding and head (no fused loss):
// losses, gradients and weights must agree bit for bit, and checkpointing
// must hold fewer activation bytes.
func TestGradientCheckpointingIsBitwiseIdentical(t *testing.T) {
	cfg := tinyQwen2Config(false)
	cfg.Layers = 3
	base := tinyRandomCheckpoint(cfg, 21) // (its values vary from call to call)
	for _, v := range []struct{ packed, headTrains bool }{{false, false}, {true, false}, {false, true}} {
		packed := v.packed
		trainable := func(name string) bool {
			return strings.HasSuffix(name, "layernorm.weight") ||
				(v.headTrains && (name == "model.embed_tokens.weight" || name == "lm_head.weight"))
		}
		t.Run(fmt.Sprintf("packed=%v,head=%v", packed, v.headTrains), func(t *testing.T) {
			type result struct {
				losses  []float32
				grads   [][]float32 // of the last step
				weights [][]float32
				stats   string
				bytes   int64
				recomp  int
			}
			train := func(checkpointing bool) result {
				ck := &Checkpoint{Config: cfg, Tensors: map[string]*Tensor{}, Source: base.Source}
				for name, tensor := range base.Tensors {
					ck.Tensors[name] = &Tensor{Shape: tensor.Shape, Data: slices.Clone(tensor.Data)}
				}
				p, err := NewParams(ck)
				if err != nil {
					t.Fatal(err)
				}
				var kernels []*adapters.FusedKernel[float32]
				hook := func(b *Builder[float32], lin *Linear[float32], x *G.Node) (*G.Node, error) {
					seed := adapters.SeedFor(5, lin.Module)
					in, out := lin.Base.Cols(), lin.Base.Rows()
					lora := &adapters.LowRank{Kind: adapters.KindLoRA, Rank: 2, In: in, Out: out, Scale: 1.5, Dropout: 0.2, Trainable: true,
						A: RandomTensor(lin.Module+".la", []int{2, in}, seed), B: RandomTensor(lin.Module+".lb", []int{out, 2}, seed)}
					svd := &adapters.LowRank{Kind: adapters.KindSVD, Rank: 2, In: in, Out: out, Scale: 1, Trainable: true,
						A: RandomTensor(lin.Module+".sa", []int{2, in}, seed), B: RandomTensor(lin.Module+".sb", []int{out, 2}, seed)}
					f, err := adapters.Concat(lora, svd)
					if err != nil {
						return nil, err
					}
					k := adapters.NewFusedKernel[float32](f, lin.Module, seed)
					kernels = append(kernels, k)
					a := b.Learnable(lin.Module+".A", f.A, f.Rank, f.In)
					bb := b.Learnable(lin.Module+".B", f.B, f.Out, f.Rank)
					return k.Apply(x, a, bb)
				}
				const batch, seq = 2, 7
				g, err := BuildGraph(p, GraphOptions[float32]{Batch: batch, Seq: seq, Adapter: hook, Packed: packed,
					GradientCheckpointing: checkpointing,
					Trainable:             trainable})
				if err != nil {
					t.Fatal(err)
				}
				defer g.Close()
				rng := rand.New(rand.NewPCG(31, 32))
				var r result
				for step := range 3 {
					ids, targets, pos := make([]int, batch*seq), make([]int, batch*seq), make([]int, batch*seq)
					mask := make([]float32, batch*seq)
					for i := range ids {
						ids[i], targets[i], mask[i] = rng.IntN(cfg.Vocab), rng.IntN(cfg.Vocab), float32(rng.IntN(4)%3)
						pos[i] = i % seq
						if i%seq >= 4 { // a second example in each row
							pos[i] = i%seq - 4
						}
					}
					if !packed {
						pos = nil
					}
					for _, k := range kernels {
						k.SetStep(uint64(step))
					}
					if err := g.ZeroGrad(); err != nil {
						t.Fatal(err)
					}
					loss, err := g.StepPositions(ids, targets, pos, mask)
					if err != nil {
						t.Fatal(err)
					}
					r.losses = append(r.losses, loss)
					r.grads = r.grads[:0]
					for i, n := range g.Learnables {
						grad, err := g.Grad(i)
						if err != nil {
							t.Fatal(err)
						}
						r.grads = append(r.grads, append([]float32(nil), grad...))
						w := n.Value().Data().([]float32)
						for j := range w {
							w[j] -= 0.05 * grad[j]
						}
					}
				}
				for _, n := range g.Learnables {
					r.weights = append(r.weights, append([]float32(nil), n.Value().Data().([]float32)...))
				}
				b := g.Buffers()
				r.bytes, r.recomp = b.Bytes, b.Recomputed
				return r
			}
			plain, ck := train(false), train(true)
			if plain.recomp != 0 || ck.recomp == 0 {
				t.Fatalf("recomputed nodes: %d without checkpointing, %d with", plain.recomp, ck.recomp)
			}
			if ck.bytes >= plain.bytes {
				t.Fatalf("activation bytes: %d with checkpointing, %d without", ck.bytes, plain.bytes)
			}
			t.Logf("activation bytes: %d with checkpointing (%d nodes recomputed), %d without", ck.bytes, ck.recomp, plain.bytes)
			same := func(what string, a, b []float32) {
				t.Helper()
				for j := range a {
					if math.Float32bits(a[j]) != math.Float32bits(b[j]) {
						t.Fatalf("%s[%d]: %v with checkpointing, %v without", what, j, b[j], a[j])
					}
				}
			}
			same("losses", plain.losses, ck.losses)
			for i := range plain.grads {
				same(fmt.Sprintf("gradient %d", i), plain.grads[i], ck.grads[i])
				same(fmt.Sprintf("weight %d", i), plain.weights[i], ck.weights[i])
			}
		})
	}
}
