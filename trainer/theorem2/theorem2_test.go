package theorem2

import (
	"context"
	"math"
	"path/filepath"
	"sort"
	"testing"

	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/datasets/assets"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/trainer"
	"github.com/salr-go/salr/trainer/export"
)

// TestErrorDefinition checks the two errors, the overall sums and the order
// on a 2×2 case worked by hand.
func TestErrorDefinition(t *testing.T) {
	ft := []float32{3, 1, 0.5, 2}     // ||ft||² = 14.25
	after := []float32{3, 0, 0, 2}    // prunes 1 and 0.5: error 1.25
	during := []float32{3, 1, 0, 0}   // prunes 0.5 and 2: error 4.25
	before := []float32{3, 1, 0.5, 1} // off by 1 on one entry: error 1
	own := []float32{2, 1, 0.5, 1}    // before's own: ||before-own||² = 1, ||own||² = 6.25
	m := newMatrix("model.layers.0.self_attn.q_proj", 2, 2)
	m.set(0, before, ft, own)
	m.set(2, during, ft, nil)
	m.set(3, after, ft, ft)
	want := []float64{1 / 14.25, math.NaN(), 4.25 / 14.25, 1.25 / 14.25}
	for i, w := range want {
		if got := m.VsDense[i]; !(math.Abs(got-w) < 1e-12 || math.IsNaN(w) && math.IsNaN(got)) {
			t.Errorf("strategy %d: error vs dense %v, want %v", i, got, w)
		}
	}
	if m.Own[0] != 1/6.25 || m.Own[3] != 1.25/14.25 || !math.IsNaN(m.Own[2]) {
		t.Errorf("own errors %v", m.Own)
	}
	if ok, why := Order(m.VsDense, 0); ok || why != "during > after" {
		t.Errorf("order: %v %q, want a failure of during > after", ok, why)
	}
	tab := &Table{Matrices: []Matrix{m, m}}
	tab.overall()
	if tab.OverallVsDense[0] != 2/28.5 {
		t.Errorf("overall %v, want %v", tab.OverallVsDense[0], 2/28.5)
	}
}

// TestShapeWeightSpace runs Shape on a small shape: prune-lora's error is
// the pruned energy of W0 over ||W0 + ΔW||² (float64), after is never above
// during (it is the best sparse approximation of W_ft), and the SVD makes
// salr no worse than prune-lora.
func TestShapeWeightSpace(t *testing.T) {
	o := ShapeOptions{Shape: "llama-64x1", Ratios: []float64{0.5}, Delta: 0.3, Rank: 4, SVDRank: 4, Steps: 30, Every: 10, Seed: 3}
	tables, err := Shape(o)
	if err != nil {
		t.Fatal(err)
	}
	tab := tables[0]
	if len(tab.Matrices) != 7 {
		t.Fatalf("%d matrices", len(tab.Matrices))
	}
	mc, _ := model.NamedShape(o.Shape)
	for _, m := range tab.Matrices {
		name := m.Module + ".weight"
		w0 := model.RandomTensor(name, mc.TensorShapes()[name], o.Seed)
		abs := make([]float64, len(w0))
		var norm0 float64
		for i, v := range w0 {
			abs[i] = math.Abs(float64(v))
			norm0 += float64(v) * float64(v)
		}
		sort.Float64s(abs)
		var pruned float64
		for _, a := range abs[:len(abs)/2] {
			pruned += a * a
		}
		// ||W_ft||² = ||W0||²(1 + δ²) + 2<W0, ΔW>: use the measured
		// denominator, checked against the definition's bounds.
		den := m.denD[1]
		if den < norm0*0.5 || den > norm0*2 {
			t.Fatalf("%s: ||W_ft||² %v for ||W0||² %v", m.Module, den, norm0)
		}
		if got, want := m.VsDense[1], pruned/den; math.Abs(got-want) > 1e-6*want {
			t.Errorf("%s: prune-lora error %v, want %v", m.Module, got, want)
		}
		if m.VsDense[3] > m.VsDense[2]*(1+1e-9) {
			t.Errorf("%s: after %v above during %v", m.Module, m.VsDense[3], m.VsDense[2])
		}
		if m.VsDense[0] > m.VsDense[1]*(1+1e-6) {
			t.Errorf("%s: salr %v above prune-lora %v", m.Module, m.VsDense[0], m.VsDense[1])
		}
	}
}

// TestFromRunsTiny trains lora, salr and lora-prune for a few steps on
// stories260K: lora-prune's error against the dense fine-tuned weights is
// the closed form Σ of the smallest half of W_ft² over ||W_ft||² (float64,
// from the lora run), and equals its own error (its training is lora's).
func TestFromRunsTiny(t *testing.T) {
	t.Setenv("SALR_ASSETS", assets.ForTest(t))
	root := t.TempDir()
	dirs := map[string]string{}
	for _, method := range []string{configs.MethodLoRA, configs.MethodSALR, configs.MethodLoRAPrune} {
		dir := filepath.Join(root, method)
		cfg, err := configs.Load("quickstart.toml", []string{"method=" + method, "output.dir=" + dir,
			"data.seq_len=160", "data.max_examples=32", "data.eval_examples=8", "train.batch_size=4",
			"train.max_steps=3", "train.eval_every=0", "train.checkpoint_every=0", "train.lr=5e-3",
			"adapters.lora_rank=4", "adapters.svd_rank=4", "output.base_format=dense-fp32", "output.save_peft=false"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := trainer.Train(context.Background(), trainer.Options{Config: cfg}); err != nil {
			t.Fatal(err)
		}
		dirs[method] = dir
	}
	tab, err := FromRuns(dirs[configs.MethodLoRA], []string{dirs[configs.MethodSALR], dirs[configs.MethodLoRAPrune]})
	if err != nil {
		t.Fatal(err)
	}
	if tab.Ratio != 0.5 || math.IsNaN(tab.NLL[0]) || !math.IsNaN(tab.NLL[2]) {
		t.Errorf("ratio %v, NLL %v", tab.Ratio, tab.NLL)
	}
	lora, err := trainer.OpenRun(dirs[configs.MethodLoRA])
	if err != nil {
		t.Fatal(err)
	}
	defer lora.Close()
	for j, lin := range projections(lora.Params) {
		ft, err := export.Merged(lin)
		if err != nil {
			t.Fatal(err)
		}
		sq := make([]float64, len(ft))
		var norm float64
		for i, v := range ft {
			sq[i] = float64(v) * float64(v)
			norm += sq[i]
		}
		sort.Float64s(sq)
		var pruned float64
		for _, v := range sq[:int(math.Round(0.5*float64(len(sq))))] {
			pruned += v
		}
		m := tab.Matrices[j]
		if got, want := m.VsDense[3], pruned/norm; math.Abs(got-want) > 1e-5*want {
			t.Errorf("%s: lora-prune error %v, closed form %v", m.Module, got, want)
		}
		if math.Abs(m.Own[3]-m.VsDense[3]) > 1e-6*m.VsDense[3] {
			t.Errorf("%s: lora-prune own error %v, vs dense %v", m.Module, m.Own[3], m.VsDense[3])
		}
		if !(m.VsDense[0] > 0) || math.IsNaN(m.Own[0]) {
			t.Errorf("%s: salr errors %v / %v", m.Module, m.VsDense[0], m.Own[0])
		}
	}
	// A run of other settings is refused.
	if _, err := FromRuns(dirs[configs.MethodSALR], []string{dirs[configs.MethodLoRAPrune]}); err == nil {
		t.Error("a salr run accepted as the dense run")
	}
}
