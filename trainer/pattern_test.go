package trainer

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/model/tokenizer"
)

// denseWeights returns the dense weights of every projection of p by module
// name.
func denseWeights(t *testing.T, p *model.Params[float32]) map[string]*kernels.Dense[float32] {
	t.Helper()
	out := map[string]*kernels.Dense[float32]{}
	for l := range p.Layers {
		for _, lin := range p.Layers[l].Proj {
			d, ok := lin.Base.(*kernels.Dense[float32])
			if !ok {
				t.Fatalf("%s: base is %T, not dense", lin.Module, lin.Base)
			}
			out[lin.Module] = d
		}
	}
	return out
}

// TestNMPatternsKeepNOfM prunes stories260K with 1:4 and 2:4 (N:M keeps N of
// every M inputs) and checks the measured sparsity, 1 - N/M, and every block
// of M inputs of every projection: at most N nonzeros, each equal to the
// original weight, and exactly N kept by the mask. 1:4 then trains a few
// steps.
func TestNMPatternsKeepNOfM(t *testing.T) {
	for _, c := range []struct {
		pattern  string
		ratio    string
		n, m     int
		sparsity float64
	}{{"1:4", "0.75", 1, 4, 0.75}, {"2:4", "0.5", 2, 4, 0.5}} {
		cfg := tinyConfig(t, t.TempDir(), "method=prune-lora", "sparsity.pattern="+c.pattern,
			"sparsity.ratio="+c.ratio, "output.base_format=dense-fp32")
		orig, err := model.Open(cfg.Model.Path, cfg.Model.Tokenizer)
		if err != nil {
			t.Fatal(err)
		}
		before := denseWeights(t, orig.Params)
		s, err := Build(cfg, nil)
		if err != nil {
			t.Fatalf("%s: %v", c.pattern, err)
		}
		if s.Sparsity != c.sparsity {
			t.Errorf("%s: sparsity %v, want %v", c.pattern, s.Sparsity, c.sparsity)
		}
		after := denseWeights(t, s.Params)
		if len(s.Pruned) != len(after) {
			t.Errorf("%s: %d of %d projections pruned", c.pattern, len(s.Pruned), len(after))
		}
		for module, d := range after {
			w0 := before[module].W
			if st := s.Pruned[module]; st.Pruned*c.m != len(d.W)*(c.m-c.n) {
				t.Errorf("%s: %s: mask prunes %d of %d weights, want %d of every %d", c.pattern, module, st.Pruned, len(d.W), c.m-c.n, c.m)
			}
			for start := 0; start < len(d.W); start += c.m {
				nonzero, zeroBefore := 0, 0
				for i := start; i < start+c.m; i++ {
					if d.W[i] != 0 {
						nonzero++
						if d.W[i] != w0[i] {
							t.Fatalf("%s: %s[%d] = %v, was %v", c.pattern, module, i, d.W[i], w0[i])
						}
					}
					if w0[i] == 0 {
						zeroBefore++
					}
				}
				if nonzero > c.n || nonzero+zeroBefore < c.n {
					t.Fatalf("%s: %s: block at %d keeps %d nonzeros (%d zero before pruning), want %d", c.pattern, module, start, nonzero, zeroBefore, c.n)
				}
			}
		}
		s.Close()
		orig.Close()
	}

	cfg := tinyConfig(t, filepath.Join(t.TempDir(), "run"), "sparsity.pattern=1:4", "sparsity.ratio=0.75", "train.max_steps=2")
	sum, err := Train(context.Background(), Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sparsity != 0.75 || sum.Steps != 2 {
		t.Errorf("1:4 run: sparsity %v after %d steps, want 0.75 after 2", sum.Sparsity, sum.Steps)
	}
}

// TestNMWidthCheckedBeforePruning asks stories260K for 4:8: its MLP is 172
// wide (down_proj's input), not a multiple of 8, so preparing the run must
// fail naming down_proj and the width, before any projection is pruned.
func TestNMWidthCheckedBeforePruning(t *testing.T) {
	cfg := tinyConfig(t, t.TempDir(), "method=prune", "sparsity.pattern=4:8", "output.base_format=dense-fp32")
	loaded, err := model.Open(cfg.Model.Path, cfg.Model.Tokenizer)
	if err != nil {
		t.Fatal(err)
	}
	defer loaded.Close()
	if got := loaded.Params.Config.Intermediate; got != 172 {
		t.Fatalf("stories260K's MLP is %d wide, the test expects 172", got)
	}
	q := loaded.Params.Layers[0].Proj[0]
	w := q.Base.(*kernels.Dense[float32]).W
	zeros := countZeros(w)
	data, err := LoadData(cfg, loaded.Tokenizer)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Prepare(cfg, loaded, data, nil)
	if err == nil {
		t.Fatal("4:8 on a 172-wide MLP: no error")
	}
	for _, want := range []string{"layers.0.mlp.down_proj", "(172)", "multiple of 8"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if d, ok := q.Base.(*kernels.Dense[float32]); !ok || countZeros(d.W) != zeros {
		t.Errorf("%s was pruned before the width error", q.Module)
	}
}

func countZeros(w []float32) int {
	n := 0
	for _, v := range w {
		if v == 0 {
			n++
		}
	}
	return n
}

// TestNMPattern4of8OnWideModel prunes a random model whose widths are
// multiples of 8 with 4:8: every block of 8 inputs keeps 4.
func TestNMPattern4of8OnWideModel(t *testing.T) {
	cfg := tinyConfig(t, t.TempDir(), "method=prune", "sparsity.pattern=4:8", "output.base_format=dense-fp32")
	tok, err := tokenizer.Load(filepath.Join(assetsDir(t), "stories260K", "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	mc := model.Config{
		ModelType: "llama", Hidden: 32, Intermediate: 96, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8,
		Vocab: tok.VocabSize(), MaxPositions: 512, RMSNormEps: 1e-5, RopeTheta: 10000,
		BOSTokenID: tok.BOS(), EOSTokenIDs: []int{tok.EOS()}, TorchDtype: "float32",
	}
	ck, err := model.RandomCheckpoint(mc, 3)
	if err != nil {
		t.Fatal(err)
	}
	p, err := model.NewParams(ck)
	if err != nil {
		t.Fatal(err)
	}
	data, err := LoadData(cfg, tok)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Prepare(cfg, &model.Loaded{Checkpoint: ck, Params: p, Tokenizer: tok}, data, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Sparsity != 0.5 || len(s.Pruned) != 14 {
		t.Errorf("sparsity %v over %d projections, want 0.5 over 14", s.Sparsity, len(s.Pruned))
	}
	for module, d := range denseWeights(t, s.Params) {
		for start := 0; start < len(d.W); start += 8 {
			if nz := 8 - countZeros(d.W[start:start+8]); nz != 4 {
				t.Fatalf("%s: block at %d keeps %d weights, want 4", module, start, nz)
			}
		}
		if st := s.Pruned[module]; st.Cols%8 != 0 || st.Pruned != st.Rows*st.Cols/2 {
			t.Errorf("%s: %s", module, fmt.Sprint(st))
		}
	}
}
