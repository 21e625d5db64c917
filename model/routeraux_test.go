package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/salr-go/salr/kernels/gop"
)

// hfLoadBalancingLoss is transformers' load_balancing_loss_func written
// out in float64 on the concatenated logits [T, E]: routing_weights =
// softmax, expert_mask = one_hot(top-k) [T, k, E], tokens_per_expert =
// mean over T [k, E], router_prob_per_expert = mean over T [E], loss = E ·
// sum(tokens_per_expert · router_prob_per_expert).
func hfLoadBalancingLoss(logits [][]float64, k int) float64 {
	e := len(logits[0])
	t := float64(len(logits))
	tokensPerExpert := make([][]float64, k)
	for i := range tokensPerExpert {
		tokensPerExpert[i] = make([]float64, e)
	}
	prob := make([]float64, e)
	for _, row := range logits {
		var z float64
		w := make([]float64, e)
		for c, v := range row {
			w[c] = math.Exp(v)
			z += w[c]
		}
		order := make([]int, e)
		for c := range order {
			order[c] = c
			w[c] /= z
			prob[c] += w[c] / t
		}
		sort.SliceStable(order, func(a, b int) bool { return w[order[a]] > w[order[b]] })
		for j := 0; j < k; j++ {
			tokensPerExpert[j][order[j]] += 1 / t
		}
	}
	var s float64
	for j := range tokensPerExpert {
		for c := range prob {
			s += tokensPerExpert[j][c] * prob[c]
		}
	}
	return float64(e) * s
}

func TestRouterAuxLossValueAndGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, k := range []int{1, 2} {
		in := []gop.Arg[float64]{randArg(rng, 1.5, 5, 4), randArg(rng, 1.5, 3, 4)}
		var rows [][]float64
		for _, a := range in {
			for r := 0; r < a.Shape[0]; r++ {
				rows = append(rows, a.Data[r*4:(r+1)*4])
			}
		}
		out := make([]float64, 1)
		RouterAuxLoss[float64]{K: k}.Forward(out, in)
		if want := hfLoadBalancingLoss(rows, k); math.Abs(out[0]-want) > 1e-12 {
			t.Errorf("k=%d: aux %.15g, transformers' formula %.15g", k, out[0], want)
		}
		if err := gop.CheckGradients(RouterAuxLoss[float64]{K: k}, in, 5, 1e-6); err != nil {
			t.Errorf("k=%d: %v", k, err)
		}
	}
	// Perfect balance: near-uniform logits (P_e ≈ 1/E) where each row
	// prefers a different pair of experts (every expert chosen equally
	// often): the loss is k, its minimum.
	uniform := gop.Arg[float64]{Shape: []int{4, 4}, Data: make([]float64, 16)}
	for r := 0; r < 4; r++ {
		uniform.Data[r*4+r] = 1e-9
		uniform.Data[r*4+(r+1)%4] = 1e-10
	}
	out := make([]float64, 1)
	RouterAuxLoss[float64]{K: 2}.Forward(out, []gop.Arg[float64]{uniform})
	if math.Abs(out[0]-2) > 1e-6 {
		t.Errorf("balanced routing: aux %g, want 2 (= k)", out[0])
	}
	if _, err := (RouterAuxLoss[float64]{K: 2}).OutShape(nil); err == nil {
		t.Error("no inputs accepted")
	}
}

// TestMoEGraphRouterTrainsWithAuxLoss checks the gradient of trained
// routers (and Qwen2-MoE's shared expert gate) through the whole graph
// numerically, with the load-balancing loss added, and that the loss is
// the language-model loss plus coef times the aux loss.
func TestMoEGraphRouterTrainsWithAuxLoss(t *testing.T) {
	const coef = 0.3
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
			p := ConvertParams[float64](p32)
			var gates []string
			for _, L := range p.Layers {
				for _, lin := range L.Gates() {
					gates = append(gates, lin.Module+".weight")
				}
			}
			if len(gates) == 0 {
				t.Fatal("no router")
			}
			const batch, seq = 2, 5
			rng := rand.New(rand.NewPCG(9, 10))
			ids, targets := make([]int, batch*seq), make([]int, batch*seq)
			mask := make([]float64, batch*seq)
			for i := range ids {
				ids[i], targets[i] = rng.IntN(cfg.Vocab), rng.IntN(cfg.Vocab)
				mask[i] = 1
			}
			opt := GraphOptions[float64]{Batch: batch, Seq: seq, RouterAuxLossCoef: coef,
				Trainable: func(name string) bool { return slices.Contains(gates, name) }}
			g, err := BuildGraph(p, opt)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			if len(g.Learnables) != len(gates) {
				t.Fatalf("%d learnables, want the %d gates", len(g.Learnables), len(gates))
			}
			loss, err := g.Step(ids, targets, mask)
			if err != nil {
				t.Fatal(err)
			}
			aux, ok := g.RouterAuxLoss()
			if !ok || aux < 1 {
				t.Fatalf("aux loss %g, %v: want at least 1 (its minimum is k)", aux, ok)
			}
			plain, err := BuildGraph(p, GraphOptions[float64]{Batch: batch, Seq: seq})
			if err != nil {
				t.Fatal(err)
			}
			lm, err := plain.Step(ids, targets, mask)
			plain.Close()
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := plain.RouterAuxLoss(); ok {
				t.Error("a graph without the coefficient reports an aux loss")
			}
			if d := math.Abs(loss - (lm + coef*aux)); d > 1e-12 {
				t.Errorf("loss %.15g, want lm %.15g + %g·aux %.15g", loss, lm, coef, aux)
			}
			if err := g.ZeroGrad(); err != nil {
				t.Fatal(err)
			}
			checked := 0
			for _, n := range checkGraphGradients(t, g, rng, 8, ids, targets, mask) {
				checked += n
			}
			if checked == 0 {
				t.Error("every checked router gradient is 0")
			}
			// An expert's weight still cannot train in full.
			opt.Trainable = func(name string) bool { return strings.Contains(name, ".experts.0.") }
			if _, err := BuildGraph(p, opt); err == nil || !strings.Contains(err.Error(), "training the weights of an expert is not supported") {
				t.Errorf("trainable expert: %v", err)
			}
		})
	}
}
