package trainer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/salr-go/salr/datasets/assets"
	"github.com/salr-go/salr/internal/ggufbuild"
	"github.com/salr-go/salr/model/tokenizer"
)

// TestWriteTokenizerFromGGUF: a byte-level tokenizer read from a GGUF file
// is written into the HF directory as its own tokenizer.json, and a
// tokenizer.json that happens to lie beside the GGUF file is not copied.
func TestWriteTokenizerFromGGUF(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(assets.ForTest(t), "gpt2", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	var hf struct {
		Model struct {
			Vocab  map[string]int `json:"vocab"`
			Merges []string       `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(data, &hf); err != nil {
		t.Fatal(err)
	}
	tokens := make([]string, len(hf.Model.Vocab))
	types := make([]int32, len(tokens))
	for piece, id := range hf.Model.Vocab {
		tokens[id], types[id] = piece, 1
	}
	types[50256] = 3
	b := &ggufbuild.Builder{}
	b.KV("tokenizer.ggml.model", "gpt2")
	b.KV("tokenizer.ggml.pre", "llama-bpe")
	b.KV("tokenizer.ggml.tokens", tokens)
	b.KV("tokenizer.ggml.token_type", types)
	b.KV("tokenizer.ggml.merges", hf.Model.Merges)
	b.KV("tokenizer.ggml.eos_token_id", uint32(50256))
	src := t.TempDir()
	ggufPath := filepath.Join(src, "m.gguf")
	if err := os.WriteFile(ggufPath, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// A stranger's tokenizer.json beside the model must not be taken.
	if err := os.WriteFile(filepath.Join(src, "tokenizer.json"), []byte(`{"model": {"type": "WordLevel", "vocab": {"a": 0}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(ggufPath)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := WriteTokenizer(tok, "", ggufPath, out); err != nil {
		t.Fatal(err)
	}
	back, err := tokenizer.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"Hello world", "I'LL pay 12345 dollars.\n\nOK", "<|endoftext|>x"} {
		want, _ := tok.Encode(text)
		got, err := back.Encode(text)
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("Encode(%q) = %v (%v) after WriteTokenizer, want %v", text, got, err, want)
		}
	}
	if back.EOS() != 50256 || back.VocabSize() != 50257 {
		t.Fatalf("EOS %d vocab %d", back.EOS(), back.VocabSize())
	}
}
