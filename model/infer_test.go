package model

import (
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/salr-go/salr/model/tokenizer"
)

// Reference behaviour of stories260K (assets README).
var (
	refPromptIDs  = []int{1, 403, 407, 261, 378}
	refGenerated  = []int{432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385, 328, 432, 358, 394, 261, 370, 432, 352, 266, 268, 388, 426, 338, 391, 266, 267, 337, 335, 312, 432, 398, 312, 286, 267, 414, 270, 333, 415}
	refText       = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high"
	refPromptNLL  = 0.0685
	refPromptText = "Once upon a time"
)

// storiesModels returns stories260K loaded from the llama2.c file and from an
// HF directory converted from it, keyed by a label.
func storiesModels(t *testing.T) map[string]*Loaded {
	t.Helper()
	dir := filepath.Join(checkpointTestAssets(t), "stories260K")
	bin, tokPath := filepath.Join(dir, "stories260K.bin"), filepath.Join(dir, "tok512.bin")
	orig, err := Open(bin, tokPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { orig.Close() })

	hf := t.TempDir()
	if err := WriteHF(hf, orig.Checkpoint, "F32"); err != nil {
		t.Fatal(err)
	}
	sp, err := tokenizer.LoadLlama2C(tokPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.WriteHF(hf); err != nil {
		t.Fatal(err)
	}
	conv, err := Open(hf, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conv.Close() })
	return map[string]*Loaded{"llama2c": orig, "converted": conv}
}

func TestGenerateReferenceContinuation(t *testing.T) {
	for name, m := range storiesModels(t) {
		t.Run(name, func(t *testing.T) { checkReferenceContinuation(t, m) })
	}
}

// checkReferenceContinuation: m continues the reference prompt with the
// reference tokens and text of stories260K.
func checkReferenceContinuation(t *testing.T, m *Loaded) {
	t.Helper()
	ids, err := m.Tokenizer.Encode(refPromptText)
	if err != nil {
		t.Fatal(err)
	}
	ids = append([]int{m.Tokenizer.BOS()}, ids...)
	if !slices.Equal(ids, refPromptIDs) {
		t.Fatalf("prompt ids %v, want %v", ids, refPromptIDs)
	}
	s, _ := NewSampler(0, 1, 0)
	r := NewRunner(m.Params)
	gen, err := r.Generate([][]int{ids}, GenerateOptions{MaxNewTokens: len(refGenerated), Sampler: s})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gen[0], refGenerated) {
		t.Fatalf("generated %v\nwant      %v", gen[0], refGenerated)
	}
	texts, err := GenerateText(r, m.Tokenizer, []string{refPromptText}, TextOptions{MaxNewTokens: len(refGenerated), Sampler: s})
	if err != nil {
		t.Fatal(err)
	}
	if got := refPromptText + texts[0]; got != refText {
		t.Fatalf("text %q\nwant %q", got, refText)
	}
}

// TestBatchedGenerationMatchesSingle runs prompts of different lengths in one
// batch and one by one: greedy outputs must agree.
func TestBatchedGenerationMatchesSingle(t *testing.T) {
	m := storiesModels(t)["llama2c"]
	r := NewRunner(m.Params)
	prompts := [][]int{{1, 403, 407}, {1, 403, 407, 261, 378, 432, 383}, {1, 300}}
	s, _ := NewSampler(0, 1, 0)
	batch, err := r.Generate(prompts, GenerateOptions{MaxNewTokens: 12, Sampler: s})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range prompts {
		one, err := r.Generate([][]int{p}, GenerateOptions{MaxNewTokens: 12, Sampler: s})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(one[0], batch[i]) {
			t.Errorf("prompt %d: batched %v, alone %v", i, batch[i], one[0])
		}
	}
}

// TestIncrementalDecodeMatchesPrefill checks the KV cache: logits of the last
// token after a token-by-token decode equal those of a single prefill.
func TestIncrementalDecodeMatchesPrefill(t *testing.T) {
	m := storiesModels(t)["llama2c"]
	r := NewRunner(m.Params)
	seq := append(slices.Clone(refPromptIDs), refGenerated[:10]...)
	full, err := r.Forward([][]int{seq}, []*Cache{r.NewCache(len(seq))}, true)
	if err != nil {
		t.Fatal(err)
	}
	c := r.NewCache(len(seq))
	v := m.Params.Config.Vocab
	for i, tok := range seq {
		out, err := r.Forward([][]int{{tok}}, []*Cache{c}, false)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxAbsDiff(out[0], full[0][i*v:(i+1)*v]); d > 1e-4 {
			t.Fatalf("position %d: incremental and prefill logits differ by %g", i, d)
		}
	}
}

func TestSamplerTopPAndSeed(t *testing.T) {
	logits := []float32{2, 1.5, 0.1, -1, -3}
	a, _ := NewSampler(0.7, 0.9, 42)
	b, _ := NewSampler(0.7, 0.9, 42)
	counts := make([]int, len(logits))
	for i := 0; i < 2000; i++ {
		x, y := a.Sample(logits), b.Sample(logits)
		if x != y {
			t.Fatal("same seed, different samples")
		}
		counts[x]++
	}
	// With T=0.7 the probabilities are ~[.62,.30,.04,.01,.00]: top-p 0.9
	// keeps only the first two tokens (.62+.30 >= .9).
	if counts[2]+counts[3]+counts[4] != 0 {
		t.Errorf("tokens outside the nucleus were sampled: %v", counts)
	}
	ratio := float64(counts[0]) / float64(counts[1])
	want := math.Exp((2 - 1.5) / 0.7)
	if math.Abs(ratio-want)/want > 0.15 {
		t.Errorf("sample ratio %.3f, want about %.3f", ratio, want)
	}
	if _, err := NewSampler(-1, 1, 0); err == nil {
		t.Error("negative temperature accepted")
	}
	if _, err := NewSampler(1, 0, 0); err == nil {
		t.Error("top-p 0 accepted")
	}
}

func maxAbsDiff[T float32 | float64](a, b []T) float64 {
	var d float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}
