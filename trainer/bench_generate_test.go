package trainer

import (
	"context"
	"slices"
	"testing"

	"github.com/salr-go/salr/model"
)

func TestRunGenerateBench(t *testing.T) {
	o := GenerateBenchOptions{Shape: "llama-64x2", Vocab: 100, Sparsity: 0.5, PromptTokens: 4, NewTokens: 5, Reps: 1, Seed: 1,
		Formats: []model.BaseFormat{"dense-fp32", "dense-bf16", "bitmap-bf16", "bitmap-fp32"}}
	res, err := RunGenerateBench(context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 4 {
		t.Fatalf("%d results", len(res))
	}
	for _, r := range res {
		if r.Bench != "generate" || r.Shape != o.Shape || !(r.TokensPerSecond > 0) || !(r.PrefillTokensPerSecond > 0) || r.NewTokens != 5 {
			t.Errorf("result %+v", r)
		}
	}
	// Bytes per projection weight: fp32 4, bf16 2, bitmap ≈ 1/8 + values/2.
	ratios := map[string][2]float64{"dense-fp32": {2, 2}, "dense-bf16": {1, 1}, "bitmap-bf16": {0.56, 0.60}, "bitmap-fp32": {1.06, 1.10}}
	for _, r := range res {
		want := ratios[r.Format]
		if r.ProjectionBytesRatio < want[0] || r.ProjectionBytesRatio > want[1] {
			t.Errorf("%s: projection bytes ratio %.3f outside [%.2f, %.2f]", r.Format, r.ProjectionBytesRatio, want[0], want[1])
		}
	}
	if res[1].SpeedupVsDenseBF16 != 1 || res[0].MatchingTokens != 5 {
		t.Errorf("dense-bf16 speed-up %v, first format matching %d", res[1].SpeedupVsDenseBF16, res[0].MatchingTokens)
	}
	// Timed in turns, each format still gets its own repetitions and the
	// same tokens.
	o.InTurns, o.Reps, o.Formats = true, 2, []model.BaseFormat{"bitmap-fp32", "dense-f32"}
	turns, err := RunGenerateBench(context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(turns) != 2 || turns[0].Format != "bitmap-fp32" || turns[1].Format != "dense-fp32" || turns[1].Reps != 2 || turns[0].SpeedupVsDenseBF16 != 0 || !(turns[1].TokensPerSecond > 0) {
		t.Errorf("in turns: %+v", turns)
	}

	// Every format holds the same pruned weights, model.RandomTensor's.
	cfg, _ := model.NamedShape(o.Shape)
	cfg.Vocab = o.Vocab
	dense, err := randomPrunedParams(cfg, 0, "dense-fp32", 1)
	if err != nil {
		t.Fatal(err)
	}
	q := dense.Layers[1].Proj[model.QProj]
	if !slices.Equal(model.DecodeBase(q.Base), model.RandomTensor(q.Module+".weight", cfg.TensorShapes()[q.Module+".weight"], 1)) ||
		!slices.Equal(model.DecodeBase(dense.Embed), model.RandomTensor(model.EmbedTokensName, []int{cfg.Vocab, cfg.Hidden}, 1)) {
		t.Error("the weights are not model.RandomTensor's")
	}
	f32, err := randomPrunedParams(cfg, 0.5, "dense-fp32", 1)
	if err != nil {
		t.Fatal(err)
	}
	bm, err := randomPrunedParams(cfg, 0.5, "bitmap-fp32", 1)
	if err != nil {
		t.Fatal(err)
	}
	for l := range f32.Layers {
		for p := range f32.Layers[l].Proj {
			if !slices.Equal(model.DecodeBase(f32.Layers[l].Proj[p].Base), model.DecodeBase(bm.Layers[l].Proj[p].Base)) {
				t.Fatalf("layer %d projection %d differs between formats", l, p)
			}
		}
	}
	if _, err := RunGenerateBench(context.Background(), GenerateBenchOptions{Shape: o.Shape, PromptTokens: 1, NewTokens: 1, Reps: 1, Formats: []model.BaseFormat{"sparse"}}, nil); err == nil {
		t.Error("unknown format accepted")
	}
}
