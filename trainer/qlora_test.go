package trainer

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/salr-go/salr/adapters"
	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/kernels/bitmap"
	"github.com/salr-go/salr/model"
)

// TestQLoRARunLearnsAndExports trains method qlora on stories260K: every
// projection's base is W0 quantized to dense-nf4 with double-quantized
// scales (nothing pruned), only LoRA trains, the held-out loss falls, and
// the run exports the adapters as PEFT LoRA and compressed/ with the NF4
// bases, which OpenRun loads and evaluates like the trained model.
func TestQLoRARunLearnsAndExports(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a small run")
	}
	dir := filepath.Join(t.TempDir(), "run")
	cfg := tinyConfig(t, dir, "method=qlora", "train.max_steps=8", "train.lr=3e-3")
	setup, err := Build(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := model.Open(filepath.Join(assetsDir(t), "stories260K", "stories260K.bin"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	for l, L := range setup.Params.Layers {
		for p, lin := range L.Proj {
			m, ok := lin.Base.(*bitmap.NF4)
			if !ok || !m.Dense() || !m.DoubleQuant() {
				t.Fatalf("%s: base stored as %s", lin.Module, model.BaseFormatName(lin.Base))
			}
			w0 := ref.Params.Layers[l].Proj[p].Base.(*kernels.Dense[float32]).W
			want, err := bitmap.EncodeNF4(w0, m.Rows(), m.Cols(), true, true)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(model.DecodeBase(m), model.DecodeBase(want)) {
				t.Fatalf("%s: base is not W0 in dense-nf4", lin.Module)
			}
		}
	}
	for _, f := range setup.Adapters {
		for _, part := range f.Parts {
			if part.Kind != adapters.KindLoRA {
				t.Fatalf("qlora set up a %s adapter", part.Kind)
			}
		}
	}
	setup.Close()

	sum, err := Train(context.Background(), Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if !(sum.EvalLoss < sum.InitialEvalLoss) {
		t.Errorf("held-out loss did not fall: %.4f -> %.4f", sum.InitialEvalLoss, sum.EvalLoss)
	}
	if sum.Sparsity != 0 {
		t.Errorf("qlora pruned: sparsity %v", sum.Sparsity)
	}
	peft, err := adapters.ReadPEFT(filepath.Join(dir, AdapterDir))
	if err != nil {
		t.Fatalf("PEFT export: %v", err)
	}
	if len(peft.Modules) != len(setup.Adapters) {
		t.Errorf("PEFT adapter has %d modules, the run %d", len(peft.Modules), len(setup.Adapters))
	}
	l, err := OpenRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, L := range l.Params.Layers {
		for _, lin := range L.Proj {
			if model.BaseFormatName(lin.Base) != string(model.BaseDenseNF4) || lin.Adapter == nil {
				t.Fatalf("OpenRun: %s has a %s base, adapter %v", lin.Module, model.BaseFormatName(lin.Base), lin.Adapter != nil)
			}
		}
	}
	s2, err := Build(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got, err := HeldOutLoss(model.NewRunner(l.Params), s2.Data.Eval, 4)
	if err != nil {
		t.Fatal(err)
	}
	// The file keeps the embedding and norms in bf16; the rest is exact.
	if d := got - sum.EvalLoss; math.Abs(d) > 0.01 {
		t.Errorf("held-out loss: compressed/ %.6f, summary %.6f", got, sum.EvalLoss)
	}
}

// TestBitmapNF4Setup: output.base_format = bitmap-nf4 stores each pruned
// base as a bitmap of W0 ⊙ M with the kept values in NF4, each within half
// the widest code gap of its block's absmax.
func TestBitmapNF4Setup(t *testing.T) {
	ref, err := model.Open(filepath.Join(assetsDir(t), "stories260K", "stories260K.bin"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	s, err := Build(tinyConfig(t, t.TempDir(), "output.base_format=bitmap-nf4"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for l, L := range s.Params.Layers {
		for p, lin := range L.Proj {
			m, ok := lin.Base.(*bitmap.NF4)
			if !ok || m.Dense() {
				t.Fatalf("%s stored as %s", lin.Module, model.BaseFormatName(lin.Base))
			}
			w0 := ref.Params.Layers[l].Proj[p].Base.(*kernels.Dense[float32]).W
			var amax float64
			for _, v := range w0 {
				amax = math.Max(amax, math.Abs(float64(v)))
			}
			if m.NNZ() != len(w0)/2 {
				t.Errorf("%s: %d kept of %d", lin.Module, m.NNZ(), len(w0))
			}
			for i, v := range model.DecodeBase(m) {
				if v != 0 && math.Abs(float64(v-w0[i])) > 0.152*amax {
					t.Fatalf("%s[%d] = %v, W0 = %v", lin.Module, i, v, w0[i])
				}
			}
		}
	}
}
