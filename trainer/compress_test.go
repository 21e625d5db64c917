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
	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/model/safetensors"
)

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
		{"dense-f32", slices.Clone[[]float32]}, // dense-fp32's alias, which every config accepts
		{"dense-bf16", roundBF16},
		{"bitmap-bf16", roundBF16},
		{"bitmap-fp16", roundF16},
		{"bitmap-fp32", slices.Clone[[]float32]},
	} {
		s, err := Build(tinyConfig(t, t.TempDir(), "output.base_format="+c.format), nil)
		if err != nil {
			t.Fatal(err)
		}
		for l, L := range s.Params.Layers {
			for p, lin := range L.Proj {
				format, _ := model.ParseBaseFormat(c.format)
				if got := model.BaseFormatName(lin.Base); got != string(format) {
					t.Fatalf("%s: %s stored as %s", c.format, lin.Module, got)
				}
				if _, ok := s.Loaded.Checkpoint.Tensors[lin.Module+".weight"]; ok {
					t.Errorf("%s: W0 of %s is still held", c.format, lin.Module)
				}
				w0 := ref.Params.Layers[l].Proj[p].Base.(*kernels.Dense[float32]).W
				got := model.DecodeBase(lin.Base)
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
					t.Fatalf("%s: SVD adapter of %s differs from dense-fp32's", c.format, m)
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
			if model.BaseFormatName(lin.Base) != string(model.BaseBitmapBF16) || lin.Adapter == nil {
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
	embed := p.Embed.(*kernels.Dense[float32]).W
	copy(embed, roundBF16(embed))
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
	st, err := CompressParams(p, 0.5, model.BaseBitmapFP32, nil)
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
			got := model.DecodeBase(lin.Base)
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
	if _, err := CompressParams(p, 0.5, model.BaseBitmapFP32, nil); err == nil {
		t.Error("compressed twice")
	}
}

// TestPruneChecksTheBaseFormatFirst: a base format the configuration did not
// validate (a Config built in code) is reported as output.base_format before
// any projection is pruned or its SVD computed.
func TestPruneChecksTheBaseFormatFirst(t *testing.T) {
	cfg := tinyConfig(t, t.TempDir(), "sparsity.score=wanda")
	cfg.Output.BaseFormat = "sparse-int4"
	s, err := Build(cfg, nil)
	if err == nil {
		s.Close()
		t.Fatal("built with an unknown base format")
	}
	if !strings.Contains(err.Error(), "output.base_format") || !strings.Contains(err.Error(), `"sparse-int4"`) || strings.Contains(err.Error(), "model.layers") {
		t.Errorf("error %q does not name output.base_format first", err)
	}
}
