package trainer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/salr-go/salr/adapters"
	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/model"
)

// writePrepared prepares the base of tinyConfig(sets) into a new directory.
func writePrepared(t *testing.T, sets ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "prepared")
	if _, err := WritePrepared(tinyConfig(t, t.TempDir(), sets...), dir, PrepareOptions{}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// decoded is the dense float32 value of a base.
func decoded(m kernels.Matrix[float32]) []float32 {
	if d, ok := m.(*kernels.Dense[float32]); ok {
		return d.W
	}
	w := make([]float32, m.Rows()*m.Cols())
	m.(interface{ Decode(dst []float32) }).Decode(w)
	return w
}

// TestPreparedBaseSetsUpLikePruning: a Setup from a prepared base has the
// same bases (format and values), statistics, sparsity and adapters (SVD
// factors and LoRA init) as one that prunes the original model, for bitmap
// and dense formats, magnitude and wanda scores.
func TestPreparedBaseSetsUpLikePruning(t *testing.T) {
	for _, sets := range [][]string{
		{"output.base_format=bitmap-bf16"},
		{"output.base_format=dense-bf16", "sparsity.score=wanda", "sparsity.pattern=row", "adapters.svd_method=randomized"},
		{"output.base_format=dense-fp32", "sparsity.pattern=2:4", "method=prune-lora"},
	} {
		prepared := writePrepared(t, sets...)
		want, err := Build(tinyConfig(t, t.TempDir(), sets...), nil)
		if err != nil {
			t.Fatal(err)
		}
		var log []string
		got, err := Build(tinyConfig(t, t.TempDir(), append(sets, "model.path="+prepared)...), func(f string, a ...any) { log = append(log, fmt.Sprintf(f, a...)) })
		if err != nil {
			t.Fatalf("%v: %v", sets, err)
		}
		if got.Sparsity != want.Sparsity || fmt.Sprint(got.Pruned) != fmt.Sprint(want.Pruned) || len(got.Pruned) != 35 {
			t.Errorf("%v: sparsity %v and statistics %v, want %v and %v", sets, got.Sparsity, got.Pruned, want.Sparsity, want.Pruned)
		}
		if !strings.Contains(strings.Join(log, "\n"), "pruning and SVD skipped") {
			t.Errorf("%v: the log does not say the prepared base was used:\n%s", sets, strings.Join(log, "\n"))
		}
		for l := range want.Params.Layers {
			for p, wl := range want.Params.Layers[l].Proj {
				gl := got.Params.Layers[l].Proj[p]
				if model.BaseFormatName(gl.Base) != model.BaseFormatName(wl.Base) || !slices.Equal(decoded(gl.Base), decoded(wl.Base)) {
					t.Errorf("%v: %s: base %s differs from the pruned %s", sets, wl.Module, model.BaseFormatName(gl.Base), model.BaseFormatName(wl.Base))
				}
				wf, gf := want.Adapters[wl.Module], got.Adapters[wl.Module]
				if !slices.Equal(wf.A, gf.A) || !slices.Equal(wf.B, gf.B) || !slices.Equal(wf.Scale, gf.Scale) || fmt.Sprint(wf.Parts) != fmt.Sprint(gf.Parts) {
					t.Errorf("%v: %s: adapters differ", sets, wl.Module)
				}
			}
		}
		if got.TrainableCount() != want.TrainableCount() {
			t.Errorf("%v: %d trainable parameters, want %d", sets, got.TrainableCount(), want.TrainableCount())
		}
		want.Close()
		got.Close()
	}
}

// metricLosses are the (step, loss) pairs of a run's metrics.jsonl.
func metricLosses(t *testing.T, runDir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(runDir, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(m["step"], m["loss"], m["grad_norm"], m["eval_loss"]))
	}
	return out
}

// TestTrainingFromPreparedBaseIsIdentical: salr trained from the prepared
// base writes byte-identical adapters and the same loss log as salr trained
// from the original model.
func TestTrainingFromPreparedBaseIsIdentical(t *testing.T) {
	prepared := writePrepared(t)
	runA, runB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	sets := []string{"train.max_steps=4", "train.eval_every=2"}
	sumA, err := Train(context.Background(), Options{Config: tinyConfig(t, runA, sets...)})
	if err != nil {
		t.Fatal(err)
	}
	sumB, err := Train(context.Background(), Options{Config: tinyConfig(t, runB, append(sets, "model.path="+prepared)...)})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{filepath.Join(AdapterDir, adapters.NativeFile), filepath.Join(AdapterDir, adapters.PEFTWeightsFile)} {
		a, errA := os.ReadFile(filepath.Join(runA, f))
		b, errB := os.ReadFile(filepath.Join(runB, f))
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs (%v, %v)", f, errA, errB)
		}
	}
	la, lb := metricLosses(t, runA), metricLosses(t, runB)
	if !slices.Equal(la, lb) || len(la) < 4 {
		t.Errorf("loss logs differ:\n%q\n%q", la, lb)
	}
	if sumA.Sparsity != sumB.Sparsity || sumA.EvalLoss != sumB.EvalLoss || sumA.InitialEvalLoss != sumB.InitialEvalLoss {
		t.Errorf("summaries differ: %+v, %+v", sumA, sumB)
	}
}

// TestPreparedBaseMismatchesAreErrors: each setting that shaped the base,
// when the config differs, is an error naming the key with both values,
// raised before the model is loaded (Build logs nothing).
func TestPreparedBaseMismatchesAreErrors(t *testing.T) {
	prepared := writePrepared(t)
	pruneOnly := writePrepared(t, "method=prune-lora")
	wanda := writePrepared(t, "sparsity.score=wanda")
	for _, c := range []struct {
		path string
		sets []string
		want []string
	}{
		{prepared, []string{"sparsity.ratio=0.6"}, []string{"sparsity.ratio: prepared 0.5, config 0.6"}},
		{prepared, []string{"sparsity.score=wanda"}, []string{`sparsity.score: prepared "magnitude", config "wanda"`}},
		{wanda, []string{"sparsity.score=wanda", "train.batch_size=2"}, []string{"wanda calibration data: prepared 16 sequences", "config 8 sequences"}},
		{wanda, []string{"sparsity.score=wanda", "sparsity.calibration_batches=2"}, []string{"sparsity.calibration_batches: prepared 4, config 2"}},
		{prepared, []string{"sparsity.pattern=row"}, []string{`sparsity.pattern: prepared "matrix", config "row"`}},
		{prepared, []string{"sparsity.target_modules=[\"q_proj\"]"}, []string{"sparsity.target_modules: prepared [q_proj, k_proj"}},
		{prepared, []string{"adapters.svd_rank=8"}, []string{"adapters.svd_rank: prepared 4, config 8"}},
		{prepared, []string{"output.base_format=dense-bf16"}, []string{`output.base_format: prepared "bitmap-bf16", config "dense-bf16"`}},
		{prepared, []string{"sparsity.ratio=0.6", "adapters.svd_method=randomized"}, []string{"sparsity.ratio:", `adapters.svd_method: prepared "auto", config "randomized"`}},
		{prepared, []string{"method=lora"}, []string{"model.path " + prepared + " is a prepared (pruned) base", `method "lora"`}},
		{pruneOnly, []string{"method=salr"}, []string{"method: prepared prune (no SVD factors), config salr"}},
	} {
		var log []string
		cfg := tinyConfig(t, t.TempDir(), append(c.sets, "model.path="+c.path)...)
		_, err := Build(cfg, func(f string, a ...any) { log = append(log, fmt.Sprintf(f, a...)) })
		if err == nil {
			t.Errorf("%v: no error", c.sets)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q lacks %q", c.sets, err, w)
			}
		}
		if c.sets[0] != "method=lora" && !strings.Contains(err.Error(), "run salr-prepare again") {
			t.Errorf("%v: error %q does not say what to do", c.sets, err)
		}
		if len(log) > 0 && c.path != wanda { // wanda's data is compared once loaded
			t.Errorf("%v: the model was loaded before the error: %q", c.sets, log)
		}
	}
}

// TestPreparedBaseServesOtherRuns: train.seed, LoRA settings, lr and steps
// may change; prune-lora runs on a base prepared for salr. The SVD factors
// stay those of the preparing run (its seed), LoRA follows train.seed.
func TestPreparedBaseServesOtherRuns(t *testing.T) {
	prepared := writePrepared(t, "adapters.svd_method=randomized")
	ref, err := Build(tinyConfig(t, t.TempDir(), "adapters.svd_method=randomized"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	for _, sets := range [][]string{
		{"train.seed=7", "adapters.lora_rank=2", "adapters.lora_alpha=3", "train.lr=0.01", "train.max_steps=2"},
		{"method=prune-lora"},
	} {
		cfg := tinyConfig(t, t.TempDir(), append(sets, "adapters.svd_method=randomized", "model.path="+prepared)...)
		s, err := Build(cfg, nil)
		if err != nil {
			t.Fatalf("%v: %v", sets, err)
		}
		for module, rf := range ref.Adapters {
			f := s.Adapters[module]
			for _, p := range f.Parts {
				if p.Kind == adapters.KindLoRA && p.Rank != cfg.Adapters.LoRARank {
					t.Errorf("%v: %s: LoRA rank %d", sets, module, p.Rank)
				}
				if p.Kind == adapters.KindSVD && cfg.HasSVDAdapter() {
					// The SVD rows of A are the reference's (its LoRA comes first).
					if !slices.Equal(f.A[p.Offset*f.In:], rf.A[rf.Parts[1].Offset*rf.In:]) {
						t.Errorf("%v: %s: SVD factors differ from the preparing run's", sets, module)
					}
				}
				if p.Kind == adapters.KindSVD && !cfg.HasSVDAdapter() {
					t.Errorf("%v: %s has an SVD adapter", sets, module)
				}
			}
		}
		if cfg.Train.Seed == 7 {
			lora := s.Adapters["model.layers.0.self_attn.q_proj"]
			refLoRA := ref.Adapters["model.layers.0.self_attn.q_proj"]
			if slices.Equal(lora.A[:lora.In], refLoRA.A[:refLoRA.In]) {
				t.Errorf("LoRA init does not follow train.seed")
			}
		}
		if _, err := Train(context.Background(), Options{Config: cfg}); err != nil {
			t.Errorf("%v: training: %v", sets, err)
		}
		s.Close()
	}
}

// TestPreparedBaseOpensAsPrunedModel: the prepared base loads as a model
// (as salr-eval and salr-generate load it): the pruned bases without
// adapters, with the logits of a prune run's model.
func TestPreparedBaseOpensAsPrunedModel(t *testing.T) {
	prepared := writePrepared(t)
	l, err := model.Open(prepared, "")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Checkpoint.Prepared == nil {
		t.Fatal("not read as a prepared base")
	}
	for _, L := range l.Params.Layers {
		for _, lin := range L.Proj {
			if lin.Adapter != nil {
				t.Fatalf("%s has an adapter", lin.Module)
			}
		}
	}
	pruned, err := Build(tinyConfig(t, t.TempDir(), "method=prune"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pruned.Close()
	seq := pruned.Data.Train[0].Tokens
	logits := func(p *model.Params[float32]) []float32 {
		r := model.NewRunner(p)
		out, err := r.Forward([][]int{seq}, []*model.Cache{r.NewCache(len(seq))}, false)
		if err != nil {
			t.Fatal(err)
		}
		return out[0]
	}
	if !slices.Equal(logits(l.Params), logits(pruned.Params)) {
		t.Error("the prepared base's logits differ from the pruned model's")
	}
}

// TestWritePreparedRefuses: an existing directory without overwrite, a
// method that does not prune, and an already pruned source are refused
// before any work.
func TestWritePreparedRefuses(t *testing.T) {
	prepared := writePrepared(t)
	for _, c := range []struct {
		dir  string
		o    PrepareOptions
		sets []string
		want string
	}{
		{prepared, PrepareOptions{}, nil, "already exists; pass -overwrite"},
		{filepath.Join(t.TempDir(), "x"), PrepareOptions{}, []string{"method=lora"}, `method "lora" does not prune`},
		{filepath.Join(t.TempDir(), "y"), PrepareOptions{}, []string{"model.path=" + prepared}, "already pruned"},
	} {
		_, err := WritePrepared(tinyConfig(t, t.TempDir(), c.sets...), c.dir, c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.sets, err, c.want)
		}
	}
	if _, err := WritePrepared(tinyConfig(t, t.TempDir()), prepared, PrepareOptions{Overwrite: true}); err != nil {
		t.Errorf("overwrite: %v", err)
	}
}

// TestPruningProgress: a bar counted in projections on a terminal-like
// writer; log lines counted in projections otherwise.
func TestPruningProgress(t *testing.T) {
	var bar bytes.Buffer
	cfg := tinyConfig(t, t.TempDir())
	s, err := build(cfg, nil, &bar)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if !strings.Contains(bar.String(), "pruning+SVD") || !strings.Contains(bar.String(), "(35/35") {
		t.Errorf("no full bar over 35 projections: %q", bar.String())
	}
	var lines []string
	p := newStageProgress(nil, func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) }, "pruning", "projections", 4)
	p.log.every = 0
	p.add()
	p.finish(true)
	if len(lines) != 1 || !strings.Contains(lines[0], "pruning: 1 of 4 projections done") {
		t.Errorf("log lines %q", lines)
	}
}
