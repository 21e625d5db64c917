package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestGraphPromptNLL checks the training graph's masked mean loss on the
// reference prompt against the assets README, for both model layouts.
func TestGraphPromptNLL(t *testing.T) {
	for name, m := range storiesModels(t) {
		t.Run(name, func(t *testing.T) {
			n := len(refPromptIDs) - 1
			g, err := BuildGraph(m.Params, GraphOptions[float32]{Batch: 1, Seq: n})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			mask := []float32{1, 1, 1, 1}
			loss, err := g.Step(refPromptIDs[:n], refPromptIDs[1:], mask)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(float64(loss)-refPromptNLL) > 1e-3 {
				t.Fatalf("prompt NLL %.5f, want %.4f ± 1e-3", loss, refPromptNLL)
			}
			t.Logf("prompt mean NLL %.5f nats/token (reference %.4f)", loss, refPromptNLL)
			// The mask selects tokens: only the last target counts.
			loss1, err := g.Step(refPromptIDs[:n], refPromptIDs[1:], []float32{0, 0, 0, 1})
			if err != nil {
				t.Fatal(err)
			}
			r := NewRunner(m.Params)
			logits, err := r.Forward([][]int{refPromptIDs[:n]}, []*Cache{r.NewCache(n)}, true)
			if err != nil {
				t.Fatal(err)
			}
			v := m.Params.Config.Vocab
			want := -logSoftmaxAt(logits[0][(n-1)*v:n*v], refPromptIDs[n])
			if math.Abs(float64(loss1)-want) > 1e-4 {
				t.Fatalf("masked loss %.6f, want %.6f (last token only)", loss1, want)
			}
		})
	}
}

func logSoftmaxAt(logits []float32, target int) float64 {
	mx := float64(logits[Argmax(logits)])
	var s float64
	for _, v := range logits {
		s += math.Exp(float64(v) - mx)
	}
	return float64(logits[target]) - mx - math.Log(s)
}

// TestGraphLogitsMatchInference runs a batch of two sequences through the
// graph and through the inference path: logits must agree to 1e-4.
func TestGraphLogitsMatchInference(t *testing.T) {
	m := storiesModels(t)["converted"]
	const batch, seq = 2, 24
	g, err := BuildGraph(m.Params, GraphOptions[float32]{Batch: batch, Seq: seq, KeepLogits: true})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	ids := make([]int, batch*seq)
	for i := range ids {
		ids[i] = rng.IntN(m.Params.Config.Vocab)
	}
	mask := make([]float32, batch*seq)
	if _, err := g.Step(ids, ids, mask); err != nil {
		t.Fatal(err)
	}
	graphLogits := g.Logits()
	r := NewRunner(m.Params)
	out, err := r.Forward([][]int{ids[:seq], ids[seq:]}, []*Cache{r.NewCache(seq), r.NewCache(seq)}, true)
	if err != nil {
		t.Fatal(err)
	}
	infer := append(slices.Clone(out[0]), out[1]...)
	if d := maxAbsDiff(graphLogits, infer); d > 1e-4 {
		t.Fatalf("graph and inference logits differ by %g (max abs)", d)
	}
}

// TestWholeGraphGradients checks gradients of the whole loss in float64 on a
// tiny random GQA model (2 layers, 4 heads, 2 KV heads, q/k/v biases) with
// some base tensors trainable, against central differences of the loss.
func TestWholeGraphGradients(t *testing.T) {
	for _, variant := range []struct{ tied, headTrains bool }{{true, true}, {false, true}, {false, false}} {
		tied := variant.tied
		cfg := tinyQwen2Config(tied)
		ck := tinyRandomCheckpoint(cfg, 11)
		p32, err := NewParams(ck)
		if err != nil {
			t.Fatal(err)
		}
		p := ConvertParams[float64](p32)
		trainable := []string{
			"model.embed_tokens.weight",
			"model.layers.0.input_layernorm.weight",
			"model.layers.0.self_attn.q_proj.weight",
			"model.layers.0.self_attn.k_proj.bias",
			"model.layers.1.mlp.down_proj.weight",
			"model.layers.1.post_attention_layernorm.weight",
			"model.norm.weight",
		}
		switch {
		case !variant.headTrains:
			// A frozen head is fused with the loss (HeadCrossEntropy).
			trainable = trainable[1:]
		case !tied:
			trainable = append(trainable, "lm_head.weight")
		}
		const batch, seq = 2, 5
		g, err := BuildGraph(p, GraphOptions[float64]{Batch: batch, Seq: seq,
			Trainable: func(name string) bool { return slices.Contains(trainable, name) }})
		if err != nil {
			t.Fatal(err)
		}
		if len(g.Learnables) != len(trainable) {
			t.Fatalf("%d learnables, want %d", len(g.Learnables), len(trainable))
		}
		// The gradients below are checked with activation buffers shared.
		if b := g.Buffers(); b.Buffers >= b.Nodes || 2*b.Bytes > b.UnsharedBytes {
			t.Fatalf("buffer plan: %+v, want less than half the unshared bytes", b)
		}
		rng := rand.New(rand.NewPCG(5, 6))
		ids, targets := make([]int, batch*seq), make([]int, batch*seq)
		mask := make([]float64, batch*seq)
		for i := range ids {
			ids[i], targets[i] = rng.IntN(cfg.Vocab), rng.IntN(cfg.Vocab)
			if rng.IntN(4) > 0 {
				mask[i] = 1
			}
		}
		t.Logf("tied=%v", tied)
		checkGraphGradients(t, g, rng, 12, ids, targets, mask)
		// Gradients accumulate over steps until ZeroGrad.
		if err := g.ZeroGrad(); err != nil {
			t.Fatal(err)
		}
		g.Step(ids, targets, mask)
		before, _ := g.Grad(0)
		before = slices.Clone(before)
		g.Step(ids, targets, mask)
		after, _ := g.Grad(0)
		for j := range after {
			if math.Abs(after[j]-2*before[j]) > 1e-9*math.Max(1, math.Abs(before[j])) {
				t.Fatalf("gradient after two steps is not twice one step's at %d: %g vs %g", j, after[j], before[j])
			}
		}
		g.Close()
	}
}

func TestBuildGraphErrors(t *testing.T) {
	ck := tinyRandomCheckpoint(tinyQwen2Config(true), 1)
	p, err := NewParams(ck)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := BuildGraph(p, GraphOptions[float32]{Batch: 0, Seq: 4}); err == nil {
		t.Error("batch 0 accepted")
	}
	if _, err := BuildGraph(p, GraphOptions[float32]{Batch: 1, Seq: 1000}); err == nil || !strings.Contains(err.Error(), "max_position") {
		t.Errorf("sequence beyond the context: %v", err)
	}
	g, err := BuildGraph(p, GraphOptions[float32]{Batch: 1, Seq: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := g.Step([]int{1, 2, 99}, []int{1, 2, 3}, []float32{1, 1, 1}); err == nil {
		t.Error("out-of-range token accepted")
	}
	if _, err := g.Step([]int{1, 2}, []int{1, 2}, []float32{1, 1}); err == nil {
		t.Error("wrong batch size accepted")
	}
}

func TestRandomCheckpointIsRepeatable(t *testing.T) {
	a, err := RandomCheckpoint(tinyQwen2Config(false), 3)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := RandomCheckpoint(tinyQwen2Config(false), 3)
	c, _ := RandomCheckpoint(tinyQwen2Config(false), 4)
	differs := false
	for name, ta := range a.Tensors {
		if !slices.Equal(ta.Data, b.Tensors[name].Data) {
			t.Fatalf("%s differs between two draws with the same seed", name)
		}
		differs = differs || !slices.Equal(ta.Data, c.Tensors[name].Data)
	}
	if !differs {
		t.Fatal("different seeds gave the same weights")
	}
}

// TestPackedGraphMatchesUnpacked runs three examples packed into two
// sequences and unpacked, one per padded sequence: the masked mean loss and
// the gradient of every trainable tensor must agree.
func TestPackedGraphMatchesUnpacked(t *testing.T) {
	cfg := tinyQwen2Config(false)
	p32, err := NewParams(tinyRandomCheckpoint(cfg, 12))
	if err != nil {
		t.Fatal(err)
	}
	p := ConvertParams[float64](p32)
	trainable := func(name string) bool {
		return strings.HasPrefix(name, "model.layers.") || name == "model.embed_tokens.weight" || name == "lm_head.weight"
	}
	const seq, pad = 6, 10
	rng := rand.New(rand.NewPCG(8, 9))
	// Example e is len(examples[e]) input positions with their targets and mask.
	type example struct {
		ids, targets []int
		mask         []float64
	}
	examples := make([]example, 3)
	for e, n := range []int{4, 6, 2} {
		ex := example{ids: make([]int, n), targets: make([]int, n), mask: make([]float64, n)}
		for i := range ex.ids {
			ex.ids[i], ex.targets[i] = rng.IntN(cfg.Vocab-1), rng.IntN(cfg.Vocab-1)
			ex.mask[i] = float64(rng.IntN(2))
		}
		ex.mask[n-1] = 1
		examples[e] = ex
	}
	layout := func(rows [][]int) (ids, targets, pos []int, mask []float64) {
		for _, row := range rows {
			used := 0
			for _, e := range row {
				ex := examples[e]
				ids, targets, mask = append(ids, ex.ids...), append(targets, ex.targets...), append(mask, ex.mask...)
				for i := range ex.ids {
					pos = append(pos, i)
				}
				used += len(ex.ids)
			}
			for i := 0; used < seq; used, i = used+1, i+1 {
				ids, targets, mask, pos = append(ids, pad), append(targets, pad), append(mask, 0), append(pos, i)
			}
		}
		return ids, targets, pos, mask
	}
	run := func(packed bool, rows [][]int) (float64, [][]float64) {
		g, err := BuildGraph(p, GraphOptions[float64]{Batch: len(rows), Seq: seq, Trainable: trainable, Packed: packed})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		ids, targets, pos, mask := layout(rows)
		if !packed {
			pos = nil
		}
		loss, err := g.StepPositions(ids, targets, pos, mask)
		if err != nil {
			t.Fatal(err)
		}
		grads := make([][]float64, len(g.Learnables))
		for i := range grads {
			grad, err := g.Grad(i)
			if err != nil {
				t.Fatal(err)
			}
			grads[i] = slices.Clone(grad)
		}
		return loss, grads
	}
	packedLoss, packedGrads := run(true, [][]int{{0, 2}, {1}})
	loss, grads := run(false, [][]int{{0}, {1}, {2}})
	if math.Abs(packedLoss-loss) > 1e-12*math.Abs(loss) {
		t.Fatalf("packed loss %.15g, unpacked %.15g", packedLoss, loss)
	}
	for i := range grads {
		var scale float64
		for _, v := range grads[i] {
			scale = math.Max(scale, math.Abs(v))
		}
		if scale == 0 {
			t.Fatalf("gradient %d is all zero", i)
		}
		for j := range grads[i] {
			if d := math.Abs(packedGrads[i][j] - grads[i][j]); d > 1e-12*scale {
				t.Fatalf("gradient %d [%d]: packed %.15g, unpacked %.15g", i, j, packedGrads[i][j], grads[i][j])
			}
		}
	}

	g, err := BuildGraph(p, GraphOptions[float64]{Batch: 1, Seq: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := g.StepPositions([]int{1, 2, 3}, []int{1, 2, 3}, []int{0, 1, 0}, []float64{1, 1, 1}); err == nil || !strings.Contains(err.Error(), "Packed") {
		t.Errorf("positions on an unpacked graph: %v", err)
	}
	pg, err := BuildGraph(p, GraphOptions[float64]{Batch: 1, Seq: 3, Packed: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	if _, err := pg.StepPositions([]int{1, 2, 3}, []int{1, 2, 3}, []int{0, 2, 3}, []float64{1, 1, 1}); err == nil || !strings.Contains(err.Error(), "position") {
		t.Errorf("positions that skip: %v", err)
	}
}

// checkGraphGradients compares every learnable's accumulated gradient after
// one Step of the batch with central differences of the loss at up to
// perParam random entries (relative 1e-6), and returns how many checked
// entries had a nonzero gradient, by learnable name. The graph's gradients
// must be zero before the call.
func checkGraphGradients(t *testing.T, g *Graph[float64], rng *rand.Rand, perParam int, ids, targets []int, mask []float64) map[string]int {
	t.Helper()
	if _, err := g.Step(ids, targets, mask); err != nil {
		t.Fatal(err)
	}
	// Read every gradient first: the numeric Steps below accumulate more.
	analytics := make([][]float64, len(g.Learnables))
	for i := range g.Learnables {
		grad, err := g.Grad(i)
		if err != nil {
			t.Fatal(err)
		}
		analytics[i] = slices.Clone(grad)
	}
	nonzero := map[string]int{}
	for i, node := range g.Learnables {
		data := node.Value().Data().([]float64)
		for _, j := range rng.Perm(len(data))[:min(len(data), perParam)] {
			orig := data[j]
			const eps = 1e-6
			data[j] = orig + eps
			lp, _ := g.Step(ids, targets, mask)
			data[j] = orig - eps
			lm, _ := g.Step(ids, targets, mask)
			data[j] = orig
			numeric := (lp - lm) / (2 * eps)
			if d := math.Abs(numeric - analytics[i][j]); d > 1e-6*math.Max(1, math.Abs(numeric)) {
				t.Errorf("%s[%d]: analytic %.9g numeric %.9g", node.Name(), j, analytics[i][j], numeric)
			}
			if analytics[i][j] != 0 {
				nonzero[node.Name()]++
			}
		}
	}
	return nonzero
}
