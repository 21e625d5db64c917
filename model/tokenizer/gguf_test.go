package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/salr-go/salr/internal/ggufbuild"
)

// writeGGUF encodes b into a .gguf file in a temporary directory.
func writeGGUF(t *testing.T, b *ggufbuild.Builder) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tok.gguf")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// tok512GGUF holds tok512.bin's vocabulary as llama.cpp's converter writes
// a SentencePiece model: tokens, scores and token types.
func tok512GGUF(t *testing.T) (*ggufbuild.Builder, *SentencePiece) {
	t.Helper()
	sp, err := LoadLlama2C(assetPath(t, "stories260K/tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	types := make([]int32, len(sp.pieces))
	for i, k := range sp.kinds {
		types[i] = map[pieceKind]int32{pieceNormal: 1, pieceUnknown: 2, pieceControl: 3, pieceByte: 6}[k]
	}
	b := &ggufbuild.Builder{}
	b.KV("tokenizer.ggml.model", "llama")
	b.KV("tokenizer.ggml.tokens", sp.pieces)
	b.KV("tokenizer.ggml.scores", sp.scores)
	b.KV("tokenizer.ggml.token_type", types)
	b.KV("tokenizer.ggml.bos_token_id", uint32(1))
	b.KV("tokenizer.ggml.eos_token_id", uint32(2))
	b.KV("tokenizer.ggml.unknown_token_id", uint32(0))
	return b, sp
}

// TestGGUFSentencePieceMatchesLlama2C: tok512.bin's vocabulary in GGUF form
// encodes and decodes as the llama2.c file does (merges from the scores).
func TestGGUFSentencePieceMatchesLlama2C(t *testing.T) {
	b, ref := tok512GGUF(t)
	tok, err := Load(writeGGUF(t, b))
	if err != nil {
		t.Fatal(err)
	}
	sp, ok := tok.(*SentencePiece)
	if !ok {
		t.Fatalf("%T, want *SentencePiece", tok)
	}
	if sp.BOS() != 1 || sp.EOS() != 2 || !sp.AddBOS() || sp.VocabSize() != 512 {
		t.Fatalf("BOS %d EOS %d AddBOS %v vocab %d", sp.BOS(), sp.EOS(), sp.AddBOS(), sp.VocabSize())
	}
	texts := append(slices.Clone(edgeCaseTexts), gsm8kTexts(t, 20)...)
	texts = append(texts, "Once upon a time", "héllo wörld ☃\n\ttabs", "<s> not BOS </s>")
	for _, text := range texts {
		want, err1 := ref.Encode(text)
		got, err2 := sp.Encode(text)
		if err1 != nil || err2 != nil || !slices.Equal(got, want) {
			t.Fatalf("Encode(%q) = %v (%v), want %v (%v)", text, got, err2, want, err1)
		}
		if sp.Decode(got) != ref.Decode(want) {
			t.Fatalf("Decode differs for %q", text)
		}
	}
	if ids, _ := sp.Encode("Once upon a time"); !slices.Equal(ids, []int{403, 407, 261, 378}) {
		t.Fatalf("prompt ids %v", ids)
	}
}

// TestGGUFByteLevelMatchesGPT2Reference: GPT-2's tokenizer.json in GGUF
// form (tokens, merges, pre-tokenizer "gpt2") reproduces the ids of the
// independent HF implementation recorded in testdata.
func TestGGUFByteLevelMatchesGPT2Reference(t *testing.T) {
	gpt2 := loadGPT2(t)
	merges := make([]string, len(gpt2.mergeOrder))
	for i, m := range gpt2.mergeOrder {
		merges[i] = gpt2.pieces[m[0]] + " " + gpt2.pieces[m[1]]
	}
	types := make([]int32, len(gpt2.pieces))
	for i := range types {
		types[i] = 1
	}
	types[50256] = 3
	b := &ggufbuild.Builder{}
	b.KV("tokenizer.ggml.model", "gpt2")
	b.KV("tokenizer.ggml.pre", "gpt2")
	b.KV("tokenizer.ggml.tokens", gpt2.pieces)
	b.KV("tokenizer.ggml.token_type", types)
	b.KV("tokenizer.ggml.merges", merges)
	b.KV("tokenizer.ggml.bos_token_id", uint32(50256))
	b.KV("tokenizer.ggml.eos_token_id", uint32(50256))
	tok, err := Load(writeGGUF(t, b))
	if err != nil {
		t.Fatal(err)
	}
	// The same vocabulary written back as tokenizer.json loads as an equal tokenizer.
	hfDir := t.TempDir()
	if err := tok.(*ByteLevelBPE).WriteHF(hfDir); err != nil {
		t.Fatal(err)
	}
	rewritten, err := Load(hfDir)
	if err != nil {
		t.Fatal(err)
	}
	if tok.BOS() != 50256 || tok.EOS() != 50256 || tok.AddBOS() || tok.VocabSize() != 50257 {
		t.Fatalf("BOS %d EOS %d AddBOS %v vocab %d", tok.BOS(), tok.EOS(), tok.AddBOS(), tok.VocabSize())
	}
	data, err := os.ReadFile("testdata/gpt2_reference.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Text string `json:"text"`
		IDs  []int  `json:"ids"`
	}
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		got := mustEncode(t, tok, c.Text)
		if !slices.Equal(got, c.IDs) {
			t.Fatalf("Encode(%q)\n got %v\nwant %v", c.Text, got, c.IDs)
		}
		if again := mustEncode(t, rewritten, c.Text); !slices.Equal(again, c.IDs) {
			t.Fatalf("after WriteHF, Encode(%q)\n got %v\nwant %v", c.Text, again, c.IDs)
		}
		if want := strings.ReplaceAll(c.Text, "<|endoftext|>", ""); tok.Decode(got) != want {
			t.Fatalf("Decode(Encode(%q)) = %q", c.Text, tok.Decode(got))
		}
	}
}

func TestGGUFTokenizerErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		name   string
		modify func(b *ggufbuild.Builder) *ggufbuild.Builder
		want   string
	}{
		{"no model", func(*ggufbuild.Builder) *ggufbuild.Builder {
			nb := &ggufbuild.Builder{}
			nb.KV("tokenizer.ggml.tokens", []string{"a"})
			return nb
		}, `missing metadata key "tokenizer.ggml.model"`},
		{"unknown model", func(*ggufbuild.Builder) *ggufbuild.Builder {
			nb := &ggufbuild.Builder{}
			nb.KV("tokenizer.ggml.model", "bert")
			nb.KV("tokenizer.ggml.tokens", []string{"a"})
			return nb
		}, `metadata key "tokenizer.ggml.model": "bert" is not supported`},
		{"tokens of the wrong type", func(*ggufbuild.Builder) *ggufbuild.Builder {
			nb := &ggufbuild.Builder{}
			nb.KV("tokenizer.ggml.model", "llama")
			nb.KV("tokenizer.ggml.tokens", []int32{1})
			return nb
		}, `metadata key "tokenizer.ggml.tokens": want an array of string, got []int32`},
		{"bos out of range", func(b *ggufbuild.Builder) *ggufbuild.Builder {
			b.Set("tokenizer.ggml.bos_token_id", uint32(512))
			return b
		}, `metadata key "tokenizer.ggml.bos_token_id": id 512 is outside the 512 tokens`},
		{"scores too short", func(b *ggufbuild.Builder) *ggufbuild.Builder {
			b.Set("tokenizer.ggml.scores", []float32{1})
			return b
		}, `metadata key "tokenizer.ggml.scores": 1 entries for 512 tokens`},
		{"bad token type", func(b *ggufbuild.Builder) *ggufbuild.Builder {
			types := make([]int32, 512)
			for i := range types {
				types[i] = 9
			}
			b.Set("tokenizer.ggml.token_type", types)
			return b
		}, `metadata key "tokenizer.ggml.token_type": token 0 has unknown type 9`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, _ := tok512GGUF(t)
			path := writeGGUF(t, c.modify(b))
			_, err := Load(path)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %v\nwant one naming %s and containing %q", err, path, c.want)
			}
		})
	}
}

// TestByteLevelWriteHFRoundTrip: byte-level tokenizers with a ByteLevel regex stage (GPT-2
// from tokenizer.json), a Split stage (llama-bpe) and NFC (qwen2) encode, decode and name
// their special tokens the same after WriteHF and Load.
func TestByteLevelWriteHFRoundTrip(t *testing.T) {
	gpt2 := loadGPT2(t)
	tokens := map[string]Tokenizer{"gpt2 tokenizer.json": gpt2}
	for _, pre := range []string{"llama-bpe", "qwen2"} {
		merges := make([]string, len(gpt2.mergeOrder))
		for i, m := range gpt2.mergeOrder {
			merges[i] = gpt2.pieces[m[0]] + " " + gpt2.pieces[m[1]]
		}
		types := make([]int32, len(gpt2.pieces))
		for i := range types {
			types[i] = 1
		}
		types[50256] = 3
		b := &ggufbuild.Builder{}
		b.KV("tokenizer.ggml.model", "gpt2")
		b.KV("tokenizer.ggml.pre", pre)
		b.KV("tokenizer.ggml.tokens", gpt2.pieces)
		b.KV("tokenizer.ggml.token_type", types)
		b.KV("tokenizer.ggml.merges", merges)
		b.KV("tokenizer.ggml.bos_token_id", uint32(50256))
		b.KV("tokenizer.ggml.add_bos_token", true)
		tok, err := Load(writeGGUF(t, b))
		if err != nil {
			t.Fatal(err)
		}
		tokens[pre] = tok
	}
	texts := append(slices.Clone(edgeCaseTexts), gsm8kTexts(t, 10)...)
	texts = append(texts, "I'LL go  now\n\n 12345 e\u0301 <|endoftext|>x")
	for name, tok := range tokens {
		dir := t.TempDir()
		if err := tok.(*ByteLevelBPE).WriteHF(dir); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		back, err := Load(dir)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if back.BOS() != tok.BOS() || back.EOS() != tok.EOS() || back.AddBOS() != tok.AddBOS() || back.VocabSize() != tok.VocabSize() {
			t.Fatalf("%s: specials %d %d %v %d, want %d %d %v %d", name, back.BOS(), back.EOS(), back.AddBOS(), back.VocabSize(), tok.BOS(), tok.EOS(), tok.AddBOS(), tok.VocabSize())
		}
		for _, text := range texts {
			want, got := mustEncode(t, tok, text), mustEncode(t, back, text)
			if !slices.Equal(got, want) {
				t.Fatalf("%s: Encode(%q) after WriteHF = %v, want %v", name, text, got, want)
			}
			if back.Decode(got) != tok.Decode(want) {
				t.Fatalf("%s: Decode differs for %q", name, text)
			}
		}
	}
}
