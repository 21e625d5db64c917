package trainer

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/salr-go/salr/adapters"
	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/model"
)

// mergedF64 is W0 + Σ_k s_k B[:,k] A[k,:] in float64 (out×in).
func mergedF64(w0 []float32, f *adapters.Fused) []float64 {
	w := make([]float64, len(w0))
	for i, v := range w0 {
		w[i] = float64(v)
	}
	if f == nil {
		return w
	}
	for o := 0; o < f.Out; o++ {
		for i := 0; i < f.In; i++ {
			var d float64
			for k := 0; k < f.Rank; k++ {
				d += float64(f.Scale[k]) * float64(f.B[o*f.Rank+k]) * float64(f.A[k*f.In+i])
			}
			w[o*f.In+i] += d
		}
	}
	return w
}

// magnitudeKeepF64 is the per-matrix magnitude mask of w at ratio (prune the
// round(ratio·n) smallest |w|) and the threshold |w| between pruned and kept.
func magnitudeKeepF64(w []float64, ratio float64) (keep []bool, threshold float64) {
	idx := make([]int, len(w))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return math.Abs(w[idx[a]]) < math.Abs(w[idx[b]]) })
	k := int(math.Round(ratio * float64(len(w))))
	keep = make([]bool, len(w))
	for _, i := range idx[k:] {
		keep[i] = true
	}
	return keep, math.Abs(w[idx[k]])
}

// baseWeights decodes every projection's base of p by module name.
func baseWeights(t *testing.T, p *model.Params[float32]) map[string][]float32 {
	t.Helper()
	out := map[string][]float32{}
	for _, L := range p.Layers {
		for _, lin := range L.Proj {
			d, ok := denseBase(lin.Base)
			if !ok {
				t.Fatalf("%s: base stored as %T", lin.Module, lin.Base)
			}
			out[lin.Module] = slices.Clone(d.W)
		}
	}
	return out
}

// checkPrunedMerged compares the bases of a pruned merged run with an
// independent float64 merge of W0 and the adapters followed by the
// magnitude mask: equal values where kept, zero where pruned; a weight
// whose float64 and float32 ranks differ must sit at the threshold.
func checkPrunedMerged(t *testing.T, got map[string][]float32, w0 map[string][]float32, mods map[string]*adapters.Fused, ratio float64) {
	t.Helper()
	for module, g := range got {
		want := mergedF64(w0[module], mods[module])
		keep, thr := magnitudeKeepF64(want, ratio)
		for i, v := range g {
			switch {
			case keep[i] == (v != 0):
				if keep[i] && math.Abs(float64(v)-want[i]) > 1e-5*math.Max(1, math.Abs(want[i])) {
					t.Fatalf("%s[%d] = %v, float64 merge %v", module, i, v, want[i])
				}
			case math.Abs(math.Abs(want[i])-thr) > 1e-5*math.Max(thr, 1e-3):
				t.Fatalf("%s[%d]: kept %v, float64 mask says %v (|w| %v, threshold %v)", module, i, v != 0, keep[i], math.Abs(want[i]), thr)
			}
		}
	}
}

// TestLoRAPruneIsLoRAMergedThenPruned trains lora and lora-prune on the same
// data and seed: lora-prune's held-out loss before pruning is lora's, its
// run directory has no adapter and its base is lora's merged weight pruned
// by magnitude (checked in float64), and it loads for inference with the
// summary's held-out loss.
func TestLoRAPruneIsLoRAMergedThenPruned(t *testing.T) {
	root := t.TempDir()
	sets := []string{"output.base_format=dense-fp32", "train.checkpoint_every=0", "sparsity.ratio=0.3"}
	loraDir, pruneDir := filepath.Join(root, "lora"), filepath.Join(root, "lora-prune")
	loraSum, err := Train(context.Background(), Options{Config: tinyConfig(t, loraDir, append(sets, "method=lora")...)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := tinyConfig(t, pruneDir, append(sets, "method=lora-prune")...)
	sum, err := Train(context.Background(), Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if sum.EvalLossBeforePrune == nil || *sum.EvalLossBeforePrune != loraSum.EvalLoss {
		t.Errorf("lora-prune's loss before pruning %v, lora's %v", sum.EvalLossBeforePrune, loraSum.EvalLoss)
	}
	if math.Abs(sum.Sparsity-0.3) > 1e-3 || sum.EvalLoss == loraSum.EvalLoss {
		t.Errorf("summary: sparsity %v, held-out loss %v (lora %v)", sum.Sparsity, sum.EvalLoss, loraSum.EvalLoss)
	}
	if _, err := os.Stat(filepath.Join(pruneDir, AdapterDir)); !os.IsNotExist(err) {
		t.Errorf("lora-prune run has an adapter directory (%v)", err)
	}
	lora, err := model.Open(filepath.Join(loraDir, BaseDir), "")
	if err != nil {
		t.Fatal(err)
	}
	defer lora.Close()
	mods, err := adapters.ReadNative(filepath.Join(loraDir, AdapterDir, adapters.NativeFile))
	if err != nil {
		t.Fatal(err)
	}
	pruned, err := OpenRun(pruneDir)
	if err != nil {
		t.Fatal(err)
	}
	defer pruned.Close()
	checkPrunedMerged(t, baseWeights(t, pruned.Params), baseWeights(t, lora.Params), mods, 0.3)
	checkRunEvalLoss(t, pruneDir, cfg, sum.EvalLoss, 1e-4)
}

// TestLoRAPruneDynamicMasks runs lora-prune-dynamic for 7 steps with masks
// every 3: they are recomputed before steps 0, 3 and 6 (and no other); a
// recomputation after the loop gives the magnitude mask of the merged weight
// W0 + s·BA (checked in float64) and the base W0 ⊙ M; the finished run
// loads and evaluates to the summary's loss.
func TestLoRAPruneDynamicMasks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	cfg := tinyConfig(t, dir, "method=lora-prune-dynamic", "sparsity.every=3", "train.max_steps=7",
		"output.base_format=dense-fp32", "train.checkpoint_every=0", "train.lr=3e-3")
	if _, _, unlock, err := lockRun(Options{Config: cfg}); err != nil {
		t.Fatal(err)
	} else {
		defer unlock()
	}
	setup, err := Build(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer setup.Close()
	if len(setup.dynamic) != 35 {
		t.Fatalf("%d projections pruned during training, want 35", len(setup.dynamic))
	}
	w0 := map[string][]float32{}
	for m, d := range setup.dynamic {
		w0[m] = d.w0
	}
	r, err := startTraining(setup, dir, false, &reporter{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	if err := r.loop(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(setup.maskSteps, []int{0, 3, 6}) {
		t.Errorf("masks recomputed before steps %v, want [0 3 6]", setup.maskSteps)
	}
	// The adapters moved after step 6's mask: recompute now and compare
	// the base W0 ⊙ M with the float64 mask of the merged weight.
	if _, err := setup.updateMasks(7); err != nil {
		t.Fatal(err)
	}
	gotMerged := map[string][]float32{}
	for m, d := range setup.dynamic {
		w, _ := mergedWeight(d.lin, d.w0, setup.Adapters[m])
		for i, k := range d.keep {
			w[i] *= k
		}
		gotMerged[m] = w
	}
	checkPrunedMerged(t, gotMerged, w0, setup.Adapters, 0.5)
	sum, err := r.finish()
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sparsity != 0.5 || sum.EvalLossBeforePrune == nil {
		t.Errorf("summary %+v", sum)
	}
	if _, err := os.Stat(filepath.Join(dir, AdapterDir)); !os.IsNotExist(err) {
		t.Errorf("lora-prune-dynamic run has an adapter directory (%v)", err)
	}
	checkRunEvalLoss(t, dir, cfg, sum.EvalLoss, 1e-4)
}

// TestMergedPruneConfigChecks: sparsity.every >= 1; lora-prune-dynamic
// refuses wanda and bf16 with errors naming the key.
func TestMergedPruneConfigChecks(t *testing.T) {
	t.Setenv("SALR_ASSETS", assetsDir(t))
	for _, c := range []struct{ set, key string }{
		{"sparsity.every=0", "sparsity.every"},
		{"sparsity.score=wanda", "sparsity.score"},
		{"train.precision=bf16", "train.precision"},
	} {
		_, err := configs.Parse("test", nil, []string{"method=lora-prune-dynamic", c.set})
		if err == nil || !strings.Contains(err.Error(), c.key) {
			t.Errorf("%s: error %v, want one naming %s", c.set, err, c.key)
		}
	}
	if _, err := configs.Parse("test", nil, []string{"method=lora-prune", "sparsity.score=wanda", "sparsity.pattern=2:4"}); err != nil {
		t.Errorf("lora-prune with wanda 2:4: %v", err)
	}
}

// TestLoRAPruneDynamicResume: a run interrupted at a multiple of
// sparsity.every and resumed ends byte-identical to an uninterrupted one (the
// mask recomputed at the resumed step is the one it would have had); one
// interrupted elsewhere resumes and finishes.
func TestLoRAPruneDynamicResume(t *testing.T) {
	root := t.TempDir()
	sets := []string{"method=lora-prune-dynamic", "sparsity.every=3", "train.max_steps=6", "train.checkpoint_every=0",
		"output.base_format=dense-fp32", "output.save_peft=false"}
	whole := filepath.Join(root, "whole")
	if _, err := Train(context.Background(), Options{Config: tinyConfig(t, whole, sets...)}); err != nil {
		t.Fatal(err)
	}
	for _, stop := range []int{3, 4} {
		dir := filepath.Join(root, fmt.Sprintf("stopped-%d", stop))
		if _, err := Train(context.Background(), Options{Config: tinyConfig(t, dir, sets...), StopAfter: stop}); err != ErrInterrupted {
			t.Fatalf("stop after %d: %v", stop, err)
		}
		if _, err := Train(context.Background(), Options{Resume: dir}); err != nil {
			t.Fatalf("resume after %d: %v", stop, err)
		}
		for _, f := range []string{filepath.Join(BaseDir, "model.safetensors"), filepath.Join(MergedAdapterDir, adapters.NativeFile)} {
			a, errA := os.ReadFile(filepath.Join(whole, f))
			b, errB := os.ReadFile(filepath.Join(dir, f))
			if errA != nil || errB != nil {
				t.Fatal(errA, errB)
			}
			if same := bytes.Equal(a, b); same != (stop == 3) {
				t.Errorf("stopped after %d: %s identical to the uninterrupted run: %v", stop, f, same)
			}
		}
	}
}
