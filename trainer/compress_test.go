package trainer

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/salr-go/salr/adapters"
	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/kernels/bitmap"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/model/safetensors"
)

func TestBaseMatrixFormats(t *testing.T) {
	w := []float32{0, 1.001, -2, 0, 0, 3.3e-3, 0, 0, 5}
	cases := []struct {
		format string
		want   string
		values []float32
	}{
		{"dense-f32", "dense-fp32", w},
		{"dense-fp32", "dense-fp32", w},
		{"dense-bf16", "dense-bf16", roundBF16(w)},
		{"bitmap-bf16", "bitmap-bf16", roundBF16(w)},
		{"bitmap-fp16", "bitmap-fp16", roundF16(w)},
		{"bitmap-fp32", "bitmap-fp32", w},
	}
	for _, c := range cases {
		m, err := BaseMatrix(slices.Clone(w), 3, 3, c.format)
		if err != nil {
			t.Fatalf("%s: %v", c.format, err)
		}
		if got := model.BaseFormatName(m); got != c.want {
			t.Errorf("%s: stored as %s", c.format, got)
		}
		if got := decodeBase(m); !slices.Equal(got, c.values) {
			t.Errorf("%s: holds %v, want %v", c.format, got, c.values)
		}
	}
	if _, err := BaseMatrix(w, 3, 3, "bitmap-int8"); err == nil || !strings.Contains(err.Error(), "bitmap-int8") {
		t.Errorf("unknown format: %v", err)
	}
	if _, err := ParseBaseFormats("dense-fp32, bitmap-bf16,nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("ParseBaseFormats: %v", err)
	}
}

func roundBF16(w []float32) []float32 {
	out := slices.Clone(w)
	for i, v := range out {
		out[i] = kernels.BF16ToFloat32(kernels.Float32ToBF16(v))
	}
	return out
}

func roundF16(w []float32) []float32 {
	out := slices.Clone(w)
	for i, v := range out {
		out[i] = kernels.F16ToFloat32(kernels.Float32ToF16(v))
	}
	return out
}

// decodeBase returns a base's weights as a dense float32 matrix.
func decodeBase(m kernels.Matrix[float32]) []float32 {
	if d, ok := m.(*kernels.Dense[float32]); ok {
		return slices.Clone(d.W)
	}
	out := make([]float32, m.Rows()*m.Cols())
	m.(interface{ Decode([]float32) }).Decode(out)
	return out
}

// TestSetupStoresPrunedBasesInTheConfiguredFormat builds the same SALR setup
// with every base format: the bases hold W0 ⊙ M in that storage, W0 is
// released, and the SVD residual adapters (computed from the float32
// residual) are identical.
func TestSetupStoresPrunedBasesInTheConfiguredFormat(t *testing.T) {
	ref, err := model.Open(filepath.Join(assetsDir(t), "stories260K", "stories260K.bin"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	var svdRef map[string]*adapters.Fused
	for _, c := range []struct {
		format string
		round  func([]float32) []float32
	}{
		{configs.BaseDenseF32, slices.Clone[[]float32]},
		{configs.BaseDenseBF16, roundBF16},
		{configs.BaseBitmapBF16, roundBF16},
		{configs.BaseBitmapFP16, roundF16},
		{configs.BaseBitmapFP32, slices.Clone[[]float32]},
	} {
		s, err := Build(tinyConfig(t, t.TempDir(), "output.base_format="+c.format), nil)
		if err != nil {
			t.Fatal(err)
		}
		for l, L := range s.Params.Layers {
			for p, lin := range L.Proj {
				if got := model.BaseFormatName(lin.Base); got != c.format {
					t.Fatalf("%s: %s stored as %s", c.format, lin.Module, got)
				}
				if _, ok := s.Loaded.Checkpoint.Tensors[lin.Module+".weight"]; ok {
					t.Errorf("%s: W0 of %s is still held", c.format, lin.Module)
				}
				w0 := ref.Params.Layers[l].Proj[p].Base.(*kernels.Dense[float32]).W
				got := decodeBase(lin.Base)
				want := c.round(w0)
				zeros := 0
				for i, v := range got {
					if v == 0 {
						zeros++
					} else if v != want[i] {
						t.Fatalf("%s: %s[%d] = %v, want W0 = %v stored as %s", c.format, lin.Module, i, v, w0[i], c.format)
					}
				}
				if zeros != len(got)/2 {
					t.Errorf("%s: %s has %d zeros of %d", c.format, lin.Module, zeros, len(got))
				}
			}
		}
		if svdRef == nil {
			svdRef = s.Adapters
		} else {
			for m, f := range s.Adapters {
				svd := f.Adapter(1) // parts: LoRA, then the SVD residual adapter
				want := svdRef[m].Adapter(1)
				if svd.Kind != adapters.KindSVD || !slices.Equal(svd.A, want.A) || !slices.Equal(svd.B, want.B) {
					t.Fatalf("%s: SVD adapter of %s differs from dense-f32's", c.format, m)
				}
			}
		}
		s.Close()
	}
}

// TestBitmapBaseRunTrainsResumesAndExports trains SALR on a bitmap-bf16 base:
// the run learns, an interrupted and resumed run ends bit-identical (the
// compressed model file included), compressed/ is written with its size in
// summary.json, and OpenRun (which prefers compressed/) evaluates like the
// dense base/ with the native adapters and like the trained model in memory
// with its dense tensors rounded to bf16 as the file stores them.
func TestBitmapBaseRunTrainsResumesAndExports(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three small runs")
	}
	root := t.TempDir()
	sets := []string{"output.base_format=bitmap-bf16", "train.max_steps=6", "train.lr=3e-3"}
	ref := filepath.Join(root, "ref")
	cfg := tinyConfig(t, ref, sets...)
	sum, err := Train(context.Background(), Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if !(sum.EvalLoss < sum.InitialEvalLoss) {
		t.Errorf("held-out loss did not fall: %.4f -> %.4f", sum.InitialEvalLoss, sum.EvalLoss)
	}
	compressedFile := filepath.Join(ref, CompressedDir, safetensors.SingleFileName)
	for dir, size := range map[string]int64{BaseDir: sum.BaseBytes, CompressedDir: sum.CompressedBytes} {
		st, err := os.Stat(filepath.Join(ref, dir, safetensors.SingleFileName))
		if err != nil || st.Size() != size {
			t.Errorf("summary records %d bytes for %s: %v", size, dir, err)
		}
	}
	for _, f := range []string{model.HFConfigFileName, "tokenizer.json"} {
		if _, err := os.Stat(filepath.Join(ref, CompressedDir, f)); err != nil {
			t.Errorf("compressed/ lacks %s", f)
		}
	}

	stopped := filepath.Join(root, "stopped")
	if _, err := Train(context.Background(), Options{Config: tinyConfig(t, stopped, sets...), StopAfter: 2}); err != ErrInterrupted {
		t.Fatalf("stop: %v", err)
	}
	if _, err := Train(context.Background(), Options{Resume: stopped}); err != nil {
		t.Fatal(err)
	}
	sameAdapters(t, ref, stopped)
	a, _ := os.ReadFile(compressedFile)
	b, _ := os.ReadFile(filepath.Join(stopped, CompressedDir, safetensors.SingleFileName))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Error("the resumed run's compressed model differs from the uninterrupted run's")
	}

	// OpenRun loads compressed/: bitmap bases with the trained adapters.
	l, err := OpenRun(ref)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, L := range l.Params.Layers {
		for _, lin := range L.Proj {
			if model.BaseFormatName(lin.Base) != configs.BaseBitmapBF16 || lin.Adapter == nil {
				t.Fatalf("OpenRun: %s has a %s base, adapter %v", lin.Module, model.BaseFormatName(lin.Base), lin.Adapter != nil)
			}
		}
	}
	setup, err := Build(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer setup.Close()
	evalSeqs := setup.Data.Eval
	lossOf := func(p *model.Params[float32]) float64 {
		t.Helper()
		got, err := HeldOutLoss(model.NewRunner(p), evalSeqs, 4)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	compressedLoss := lossOf(l.Params)
	t.Logf("held-out loss: summary (in memory) %.6f, OpenRun (compressed/) %.6f", sum.EvalLoss, compressedLoss)

	// The dense base/ with the native adapters is the same model.
	dense, err := model.Open(filepath.Join(ref, BaseDir), "")
	if err != nil {
		t.Fatal(err)
	}
	defer dense.Close()
	mods, err := adapters.ReadNative(filepath.Join(ref, AdapterDir, adapters.NativeFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := AttachAdapters(dense.Params, mods); err != nil {
		t.Fatal(err)
	}
	if d := lossOf(dense.Params) - compressedLoss; math.Abs(d) > 1e-5 {
		t.Errorf("held-out loss: compressed/ %.6f, base/ + adapters %.6f", compressedLoss, compressedLoss+d)
	}

	// The model trained in memory, with the trained adapters and the tensors
	// the file keeps in bf16 rounded alike.
	if err := AttachAdapters(setup.Params, mods); err != nil {
		t.Fatal(err)
	}
	p := setup.Params
	copy(p.Embed, roundBF16(p.Embed))
	copy(p.Norm, roundBF16(p.Norm))
	for _, L := range p.Layers {
		copy(L.AttnNorm, roundBF16(L.AttnNorm))
		copy(L.MLPNorm, roundBF16(L.MLPNorm))
	}
	if d := lossOf(p) - compressedLoss; math.Abs(d) > 1e-5 {
		t.Errorf("held-out loss: compressed/ %.6f, in memory %.6f", compressedLoss, compressedLoss+d)
	}
	// And the summary's loss (float32 embedding and norms) is close.
	if d := sum.EvalLoss - compressedLoss; math.Abs(d) > 0.01 {
		t.Errorf("held-out loss: compressed/ %.6f, summary %.6f", compressedLoss, sum.EvalLoss)
	}
}

// TestBitmapFP32RunExportsExactly: with fp32 values every tensor of
// compressed/ is exact, so the exported run evaluates like the summary.
func TestBitmapFP32RunExportsExactly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	cfg := tinyConfig(t, dir, "output.base_format=bitmap-fp32", "train.max_steps=3")
	sum, err := Train(context.Background(), Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if !(sum.CompressedBytes > 0 && sum.BaseBytes > 0) {
		t.Errorf("summary sizes %d, %d", sum.BaseBytes, sum.CompressedBytes)
	}
	checkRunEvalLoss(t, dir, cfg, sum.EvalLoss, 1e-5)
}

func TestCompressParams(t *testing.T) {
	cfg, err := model.NamedShape("llama-64x2")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Vocab = 50
	ck, err := model.RandomCheckpoint(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	p, err := model.NewParams(ck)
	if err != nil {
		t.Fatal(err)
	}
	orig := map[string][]float32{}
	for _, L := range p.Layers {
		for _, lin := range L.Proj {
			orig[lin.Module] = slices.Clone(lin.Base.(*kernels.Dense[float32]).W)
		}
	}
	st, err := CompressParams(p, 0.5, bitmap.F32)
	if err != nil {
		t.Fatal(err)
	}
	// fp32 values: 16 bits of mask per 16 weights, 4 bytes per kept weight,
	// a 4-byte row pointer per row (plus one per matrix).
	var rows, chunks int64
	for _, L := range p.Layers {
		for _, lin := range L.Proj {
			rows += int64(lin.Base.Rows())
			chunks += int64(lin.Base.Rows()) * int64((lin.Base.Cols()+15)/16)
		}
	}
	wantBytes := 2*chunks + 4*(rows+14) + 4*(st.Weights-st.Pruned)
	if st.Projections != 14 || st.Pruned*2 != st.Weights || st.DenseBF16Bytes != 2*st.Weights || st.CompressedBytes != wantBytes {
		t.Errorf("stats %+v, want %d compressed bytes", st, wantBytes)
	}
	for _, L := range p.Layers {
		for _, lin := range L.Proj {
			w0 := orig[lin.Module]
			got := decodeBase(lin.Base)
			// Magnitude pruning per matrix: every kept weight is unchanged
			// and at least as large as every pruned one.
			minKept, maxPruned := math.Inf(1), 0.0
			for i, v := range got {
				a := math.Abs(float64(w0[i]))
				if v == 0 {
					maxPruned = max(maxPruned, a)
				} else {
					if v != w0[i] {
						t.Fatalf("%s: kept weight changed", lin.Module)
					}
					minKept = min(minKept, a)
				}
			}
			if minKept < maxPruned {
				t.Errorf("%s: kept |w| %v below pruned %v", lin.Module, minKept, maxPruned)
			}
		}
	}
	if _, err := CompressParams(p, 0.5, bitmap.F32); err == nil {
		t.Error("compressed twice")
	}
}

func TestBenchGenerate(t *testing.T) {
	o := BenchGenerateOptions{Shape: "llama-64x2", Vocab: 100, Sparsity: 0.5, PromptTokens: 4, NewTokens: 5, Reps: 1, Seed: 1,
		Formats: []string{"dense-fp32", "dense-bf16", "bitmap-bf16", "bitmap-fp32"}}
	res, err := BenchGenerate(context.Background(), o, nil)
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
	o.InTurns, o.Reps, o.Formats = true, 2, []string{"bitmap-fp32", "dense-f32"}
	turns, err := BenchGenerate(context.Background(), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(turns) != 2 || turns[0].Format != "bitmap-fp32" || turns[1].Reps != 2 || turns[0].SpeedupVsDenseBF16 != 0 || !(turns[1].TokensPerSecond > 0) {
		t.Errorf("in turns: %+v", turns)
	}

	// Every format holds the same pruned weights.
	cfg, _ := model.NamedShape(o.Shape)
	cfg.Vocab = o.Vocab
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
			if !slices.Equal(decodeBase(f32.Layers[l].Proj[p].Base), decodeBase(bm.Layers[l].Proj[p].Base)) {
				t.Fatalf("layer %d projection %d differs between formats", l, p)
			}
		}
	}
	if _, err := BenchGenerate(context.Background(), BenchGenerateOptions{Shape: o.Shape, PromptTokens: 1, NewTokens: 1, Reps: 1, Formats: []string{"sparse"}}, nil); err == nil {
		t.Error("unknown format accepted")
	}
}
