package tokenizer

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/quick"

	"golang.org/x/text/unicode/norm"
)

func loadGPT2(t testing.TB) *ByteLevelBPE {
	t.Helper()
	tok, err := Load(assetPath(t, "gpt2/tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	gpt2, ok := tok.(*ByteLevelBPE)
	if !ok {
		t.Fatalf("Load(gpt2/tokenizer.json) = %T, want *ByteLevelBPE", tok)
	}
	return gpt2
}

// TestGPT2Reference compares with ids from an independent HF implementation (HF's
// tokenizers.js 0.2.0 on the same tokenizer.json, recorded in testdata): the fixed strings
// cover numbers, whitespace runs, Unicode spaces, contractions and <|endoftext|>; the rest
// are GSM8K problems and random mixtures of the test alphabet.
func TestGPT2Reference(t *testing.T) {
	gpt2 := loadGPT2(t)
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
	if len(cases) < 100 || cases[0].Text != "Hello world" || !slices.Equal(cases[0].IDs, []int{15496, 995}) {
		t.Fatalf("testdata/gpt2_reference.json: unexpected contents (%d cases)", len(cases))
	}
	for _, c := range cases {
		got := mustEncode(t, gpt2, c.Text)
		if !slices.Equal(got, c.IDs) {
			t.Errorf("Encode(%q)\n got %v\nwant %v", c.Text, got, c.IDs)
		}
		if want := strings.ReplaceAll(c.Text, "<|endoftext|>", ""); gpt2.Decode(got) != want {
			t.Errorf("Decode(Encode(%q)) = %q", c.Text, gpt2.Decode(got))
		}
	}
}

func TestGPT2SpecialTokens(t *testing.T) {
	gpt2 := loadGPT2(t)
	if gpt2.BOS() != 50256 || gpt2.EOS() != 50256 || gpt2.AddBOS() || gpt2.VocabSize() != 50257 {
		t.Fatalf("BOS %d EOS %d AddBOS %v VocabSize %d, want 50256 50256 false 50257", gpt2.BOS(), gpt2.EOS(), gpt2.AddBOS(), gpt2.VocabSize())
	}
	if got := gpt2.Decode([]int{15496, 50256, 995, -1, 50257}); got != "Hello world" {
		t.Fatalf("Decode skipping <|endoftext|> and out-of-range ids = %q", got)
	}
	// tokenizer.json asks for truncation to 50 tokens; Encode must not truncate.
	long := strings.TrimSpace(strings.Repeat("one two three ", 40))
	if n := len(mustEncode(t, gpt2, long)); n != 120 {
		t.Fatalf("Encode of 120 words gave %d ids, want 120", n)
	}
}

func TestGPT2RoundTrip(t *testing.T) {
	gpt2 := loadGPT2(t)
	texts := append(gsm8kTexts(t, 300), edgeCaseTexts...)
	texts = append(texts, invalidUTF8...)
	rng := rand.New(rand.NewPCG(5, 6))
	for range 2000 {
		texts = append(texts, randomText(rng, rng.IntN(40), true))
	}
	for _, text := range texts {
		if got := gpt2.Decode(mustEncode(t, gpt2, text)); got != text {
			t.Fatalf("Decode(Encode(%q)) = %q", text, got)
		}
	}
	roundTrips := func(b []byte) bool {
		text := strings.ReplaceAll(string(b), "<|endoftext|>", "")
		ids, err := gpt2.Encode(text)
		return err == nil && gpt2.Decode(ids) == text
	}
	if err := quick.Check(roundTrips, &quick.Config{MaxCount: 1000}); err != nil {
		t.Error(err)
	}
}

// TestSplitStageLlama3 checks the translation of a pattern with \s+(?!\S) on the Llama-3
// pre-tokenizer pattern, against a split worked out by hand with Oniguruma's semantics.
func TestSplitStageLlama3(t *testing.T) {
	const llama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	stage, err := newSplitStage(llama3, false)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]string{
		"Hello  world\n\n  x 12345": {"Hello", " ", " world", "\n\n", " ", " x", " ", "123", "45"},
		"I'LL go\u00a0\u00a0now  ":  {"I", "'LL", " go", "\u00a0", "\u00a0now", "  "},
		"a\v\vb":                    {"a", "\v", "\vb"},
	}
	for text, want := range cases {
		if got := stage.apply([]string{text}); !slices.Equal(got, want) {
			t.Errorf("split(%q) = %q, want %q", text, got, want)
		}
	}
	if _, err := newSplitStage(`a(?=b)`, false); err == nil {
		t.Error("a look-ahead other than \\s+(?!\\S) was accepted")
	}
}

func FuzzByteLevelRoundTrip(f *testing.F) {
	for _, s := range append(edgeCaseTexts, invalidUTF8...) {
		f.Add(s)
	}
	gpt2 := loadGPT2(f)
	f.Fuzz(func(t *testing.T, text string) {
		if strings.Contains(text, "<|endoftext|>") {
			t.Skip("added tokens are special and skipped by Decode")
		}
		ids, err := gpt2.Encode(text)
		if err != nil {
			t.Fatalf("Encode(%q): %v", text, err)
		}
		if got := gpt2.Decode(ids); got != text {
			t.Fatalf("Decode(Encode(%q)) = %q (ids %v)", text, got, ids)
		}
	})
}

func BenchmarkByteLevelEncode3000(b *testing.B) {
	gpt2 := loadGPT2(b)
	text := benchmarkText(b)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if _, err := gpt2.Encode(text); err != nil {
			b.Fatal(err)
		}
	}
}

// TestByteLevelSplitPipeline rewrites GPT-2's tokenizer.json into the Llama-3 / Qwen2 layout
// (NFC normalizer; Sequence of a Split with GPT-2's pattern and a ByteLevel without regex):
// it must encode exactly like GPT-2 on NFC text, and compose "e\u0301" first.
func TestByteLevelSplitPipeline(t *testing.T) {
	gpt2 := loadGPT2(t)
	data, err := os.ReadFile(assetPath(t, "gpt2/tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	doc["normalizer"] = map[string]any{"type": "NFC"}
	doc["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{
		map[string]any{"type": "Split", "pattern": map[string]any{"Regex": gpt2SplitPattern}, "behavior": "Isolated", "invert": false},
		map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
	}}
	rewritten, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	tok := loadTiny(t, map[string]string{hfTokenizerFile: string(rewritten)})
	texts := append(gsm8kTexts(t, 50), edgeCaseTexts...)
	rng := rand.New(rand.NewPCG(7, 8))
	for range 300 {
		texts = append(texts, randomText(rng, rng.IntN(30), false))
	}
	for _, text := range texts {
		text = norm.NFC.String(text)
		if got, want := mustEncode(t, tok, text), mustEncode(t, gpt2, text); !slices.Equal(got, want) {
			t.Fatalf("Encode(%q) = %v, GPT-2 layout gives %v", text, got, want)
		}
	}
	if got, want := mustEncode(t, tok, "cafe\u0301"), mustEncode(t, gpt2, "café"); !slices.Equal(got, want) {
		t.Errorf("NFC: Encode(\"cafe\\u0301\") = %v, want %v", got, want)
	}
}

// TestConcurrentEncode runs both BPE tokenizers from several goroutines (run with -race).
func TestConcurrentEncode(t *testing.T) {
	tokenizers := []Tokenizer{loadTok512(t), loadGPT2(t)}
	texts := gsm8kTexts(t, 20)
	for _, tok := range tokenizers {
		want := make([][]int, len(texts))
		for i, text := range texts {
			want[i] = mustEncode(t, tok, text)
		}
		var wg sync.WaitGroup
		errs := make(chan string, 4)
		for g := range 4 {
			wg.Go(func() {
				for i := range texts {
					i := (i + g) % len(texts)
					if got, err := tok.Encode(texts[i]); err != nil || !slices.Equal(got, want[i]) {
						errs <- texts[i]
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for text := range errs {
			t.Errorf("%T: concurrent Encode(%.40q...) differs", tok, text)
		}
	}
}
