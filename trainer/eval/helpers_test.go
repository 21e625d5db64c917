package eval

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/salr-go/salr/datasets/assets"

	"github.com/salr-go/salr/datasets"
	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/model/tokenizer"
)

// assetsDir is the shared assets directory (assets.ForTest).
func assetsDir(t testing.TB) string { return assets.ForTest(t) }

// loadStories opens the stories260K model (context 512, vocabulary 512).
func loadStories(t testing.TB) *model.Loaded {
	t.Helper()
	dir := filepath.Join(assetsDir(t), "stories260K")
	m, err := model.Open(filepath.Join(dir, "stories260K.bin"), filepath.Join(dir, "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// writeFile writes content to name inside dir, creating parent directories.
func writeFile(t testing.TB, dir, name, content string) {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// record is a -log-samples line of either task.
type record struct {
	Task      string `json:"task"`
	DocID     int    `json:"doc_id"`
	Shots     int    `json:"n_shot"`
	Truncated int    `json:"truncated_shots"`
	Prompt    string `json:"prompt"`
	Target    string `json:"target"`
	Response  struct {
		LogLikelihoods [4]float64 `json:"loglikelihoods"`
		Prediction     string     `json:"prediction"`
		Text           string     `json:"text"`
		Strict         string     `json:"strict-match"`
		Flexible       string     `json:"flexible-extract"`
	} `json:"response"`
	Correct map[string]bool `json:"correct"`
}

// runWithSamples runs an evaluation and returns its results and sample log.
func runWithSamples(t *testing.T, m *model.Loaded, opt Options) (*Results, []record) {
	t.Helper()
	var buf bytes.Buffer
	opt.Samples = datasets.NewSampleWriter(&buf)
	res, err := Run(context.Background(), m, opt)
	if err != nil {
		t.Fatal(err)
	}
	var recs []record
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("sample line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	if len(recs) != res.Docs {
		t.Fatalf("%d sample records for %d docs", len(recs), res.Docs)
	}
	return res, recs
}

// plainEncoder is the tokenizer with a chosen BOS rule and nothing else: the
// reference the tests encode with.
type plainEncoder struct {
	tokenizer.Tokenizer
	bos bool
}

func (p plainEncoder) AddBOS() bool { return p.bos }

// scratchLogLikelihoods scores continuations after one prompt as lm-eval's
// HF model does, from an empty cache and one sequence at a time. When
// prompt+continuation fits the context, the prompt is run once and each
// continuation on a copy of its cache; otherwise the model reads
// (ctx + cont)[-(context+1):][:-1] and the log-probabilities of cont's tokens
// are taken at the last len(cont) positions.
func scratchLogLikelihoods(t *testing.T, r *model.Runner, ctx []int, conts [][]int) []float64 {
	t.Helper()
	context, v := r.P.Config.MaxPositions, r.P.Config.Vocab
	forward := func(tokens []int, cache *model.Cache) []float32 {
		rows, err := r.Forward([][]int{tokens}, []*model.Cache{cache}, true)
		if err != nil {
			t.Fatal(err)
		}
		kernels.LogSoftmax(rows[0], rows[0], len(tokens), v)
		return rows[0]
	}
	fits := true
	for _, cont := range conts {
		fits = fits && len(ctx)+len(cont)-1 <= context
	}
	out := make([]float64, len(conts))
	if fits {
		prompt := r.NewCache(context)
		lastRow := forward(ctx, prompt)[(len(ctx)-1)*v:]
		for c, cont := range conts {
			out[c] = float64(lastRow[cont[0]])
			if len(cont) > 1 {
				logp := forward(cont[:len(cont)-1], prompt.Fork())
				for i, id := range cont[1:] {
					out[c] += float64(logp[i*v+id])
				}
			}
		}
		return out
	}
	for c, cont := range conts {
		whole := append(append([]int(nil), ctx...), cont...)
		if len(whole) > context+1 {
			whole = whole[len(whole)-context-1:]
		}
		input := whole[:len(whole)-1]
		logp := forward(input, r.NewCache(len(input)))
		for i, id := range cont {
			out[c] += float64(logp[(len(input)-len(cont)+i)*v+id])
		}
	}
	return out
}

// mmluCSVRow renders one MMLU row (RFC 4180 quoting on every field).
func mmluCSVRow(q string, choices [4]string, answer string) string {
	quote := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	fields := []string{quote(q)}
	for _, c := range choices {
		fields = append(fields, quote(c))
	}
	return strings.Join(append(fields, answer), ",") + "\n"
}

// gsm8kLine renders one GSM8K JSONL line.
func gsm8kLine(t testing.TB, question, answer string) string {
	t.Helper()
	b, err := json.Marshal(map[string]string{"question": question, "answer": answer})
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

// noBOS is a tokenizer without a BOS token.
type noBOS struct{ tokenizer.Tokenizer }

func (noBOS) BOS() int { return -1 }

// loadRandomGPT2 builds a small random Llama-architecture model over the
// GPT-2 byte-level BPE vocabulary (50,257 tokens, context 1024). Its weights
// are scaled up so that log-likelihoods differ clearly between contexts.
// GPT-2's pre-tokenizer encodes a trailing "\n\n" as one token but "\n\nX"
// as two, so a few-shot prefix is not a token prefix of its prompts.
func loadRandomGPT2(t testing.TB) *model.Loaded {
	t.Helper()
	tok, err := tokenizer.Load(filepath.Join(assetsDir(t), "gpt2", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := model.Config{
		ModelType: "llama", Hidden: 32, Intermediate: 64, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8,
		Vocab: tok.VocabSize(), MaxPositions: 1024, RMSNormEps: 1e-5, RopeTheta: 10000,
		BOSTokenID: tok.BOS(), EOSTokenIDs: []int{tok.EOS()}, TorchDtype: "float32",
	}
	ck, err := model.RandomCheckpoint(cfg, 7)
	if err != nil {
		t.Fatal(err)
	}
	for _, tensor := range ck.Tensors {
		if len(tensor.Shape) == 2 {
			for i := range tensor.Data {
				tensor.Data[i] *= 25
			}
		}
	}
	p, err := model.NewParams(ck)
	if err != nil {
		t.Fatal(err)
	}
	return &model.Loaded{Checkpoint: ck, Params: p, Tokenizer: tok}
}
