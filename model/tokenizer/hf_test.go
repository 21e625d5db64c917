package tokenizer

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// tinyVocab and tinyMerges make a small byte-fallback BPE whose merges are worked out by hand
// in the tests: "b ▁" ranks first, so it only wins when words are not split.
const (
	tinyVocab   = `{"<unk>":0,"<s>":1,"</s>":2,"<0x0A>":3,"▁":4,"a":5,"b":6,"c":7,"ab":8,"bc":9,"▁a":10,"abc":11,"▁ab":12,"b▁":13}`
	tinyMerges  = `["b ▁","b c","a b","▁ a","a bc","▁a b"]`
	tinyAdded   = `[{"id":0,"content":"<unk>","special":true},{"id":1,"content":"<s>","special":true},{"id":2,"content":"</s>","special":true}]`
	bosTemplate = `{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],
		"special_tokens":{"<s>":{"id":"<s>","ids":[1],"tokens":["<s>"]}}}`
	llamaNormalizer = `{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]}`
	llamaDecoder    = `{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]}`
)

// tinyTokenizerJSON assembles a tokenizer.json from its parts.
func tinyTokenizerJSON(normalizer, preTokenizer, decoder, merges string) string {
	return `{"version":"1.0","added_tokens":` + tinyAdded + `,"normalizer":` + normalizer + `,"pre_tokenizer":` + preTokenizer +
		`,"post_processor":` + bosTemplate + `,"decoder":` + decoder +
		`,"model":{"type":"BPE","unk_token":"<unk>","fuse_unk":true,"byte_fallback":true,"vocab":` + tinyVocab + `,"merges":` + merges + `}}`
}

// writeFiles writes name -> contents into a new temporary directory.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, contents := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(contents), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func loadTiny(t *testing.T, files map[string]string) Tokenizer {
	t.Helper()
	tok, err := Load(writeFiles(t, files))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func checkEncodings(t *testing.T, tok Tokenizer, want map[string][]int) {
	t.Helper()
	for text, ids := range want {
		if got := mustEncode(t, tok, text); !slices.Equal(got, ids) {
			t.Errorf("Encode(%q) = %v, want %v", text, got, ids)
		}
	}
}

func TestHFByteFallbackBPE(t *testing.T) {
	tok := loadTiny(t, map[string]string{hfTokenizerFile: tinyTokenizerJSON(llamaNormalizer, "null", llamaDecoder, tinyMerges)})
	if _, ok := tok.(*SentencePiece); !ok {
		t.Fatalf("Load = %T, want *SentencePiece", tok)
	}
	checkEncodings(t, tok, map[string][]int{
		"abc":   {10, 9},      // b+c, then ▁+a; ▁a+bc has no rule
		"ab\nx": {4, 8, 3, 0}, // \n by byte fallback, x has no piece nor <0x78>: <unk>
		"xy":    {4, 0},       // fuse_unk: one <unk> for x and y
		"ab a":  {10, 13, 5},  // no split: b+▁ ranks first
		" ab":   {4, 4, 8},    // the dummy prefix is added even before a space
	})
	if tok.BOS() != 1 || tok.EOS() != 2 || !tok.AddBOS() || tok.VocabSize() != 14 {
		t.Errorf("BOS %d EOS %d AddBOS %v VocabSize %d, want 1 2 true 14", tok.BOS(), tok.EOS(), tok.AddBOS(), tok.VocabSize())
	}
	if got := tok.Decode([]int{1, 4, 8, 3, 0, 2}); got != "ab\n" {
		t.Errorf("Decode = %q, want %q", got, "ab\n")
	}
	if got := tok.Decode([]int{4, 4, 8}); got != " ab" {
		t.Errorf("Decode = %q, want %q", got, " ab")
	}
}

func TestHFLegacyMetaspace(t *testing.T) {
	metaspace := `{"type":"Metaspace","replacement":"▁","add_prefix_space":true}`
	tok := loadTiny(t, map[string]string{hfTokenizerFile: tinyTokenizerJSON("null", metaspace, metaspace, tinyMerges)})
	checkEncodings(t, tok, map[string][]int{
		"abc":  {10, 9},
		"ab a": {4, 8, 10}, // split before each ▁: b+▁ cannot merge across words
		" ab":  {4, 8},     // no prefix when the text already starts with ▁
	})
	if got := tok.Decode([]int{4, 8, 10}); got != "ab a" {
		t.Errorf("Decode = %q, want %q", got, "ab a")
	}
}

func TestHFConfigOverridesTemplate(t *testing.T) {
	tokenizer := tinyTokenizerJSON(llamaNormalizer, "null", llamaDecoder, tinyMerges)
	tok := loadTiny(t, map[string]string{
		hfTokenizerFile: tokenizer,
		hfConfigFile:    `{"bos_token":{"__type":"AddedToken","content":"<s>"},"eos_token":"</s>","add_bos_token":false}`,
	})
	if tok.BOS() != 1 || tok.EOS() != 2 || tok.AddBOS() {
		t.Errorf("BOS %d EOS %d AddBOS %v, want 1 2 false", tok.BOS(), tok.EOS(), tok.AddBOS())
	}
	tok = loadTiny(t, map[string]string{hfTokenizerFile: tokenizer, hfConfigFile: `{"eos_token":null,"model_max_length":2048}`})
	if tok.BOS() != 1 || tok.EOS() != -1 || !tok.AddBOS() || tok.(*SentencePiece).ModelMaxLength != 2048 {
		t.Errorf("BOS %d EOS %d AddBOS %v, want 1 -1 true and model_max_length 2048", tok.BOS(), tok.EOS(), tok.AddBOS())
	}
}

// TestSugarmeWordLevel covers the path left to sugarme: a WordLevel model.
func TestSugarmeWordLevel(t *testing.T) {
	tok := loadTiny(t, map[string]string{hfTokenizerFile: `{"version":"1.0",
		"added_tokens":[{"id":0,"content":"[UNK]","special":true},{"id":3,"content":"[CLS]","special":true}],
		"normalizer":null,"pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,
		"model":{"type":"WordLevel","vocab":{"[UNK]":0,"hello":1,"world":2,"[CLS]":3},"unk_token":"[UNK]"}}`})
	if _, ok := tok.(*HFTokenizer); !ok {
		t.Fatalf("Load = %T, want *HFTokenizer", tok)
	}
	checkEncodings(t, tok, map[string][]int{"hello world foo": {1, 2, 0}, "[CLS]hello": {3, 1}})
	if got := tok.Decode([]int{3, 1, 2, 0}); got != "hello world" {
		t.Errorf("Decode = %q, want %q", got, "hello world")
	}
	if tok.VocabSize() != 4 || tok.BOS() != -1 || tok.AddBOS() {
		t.Errorf("VocabSize %d BOS %d AddBOS %v, want 4 -1 false", tok.VocabSize(), tok.BOS(), tok.AddBOS())
	}
}

// TestSugarmePanicBecomesError: sugarme panics on a character outside a BPE vocabulary
// without unk_token.
func TestSugarmePanicBecomesError(t *testing.T) {
	dir := writeFiles(t, map[string]string{hfTokenizerFile: `{"version":"1.0","added_tokens":[],
		"normalizer":null,"pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,
		"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]}}`})
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	checkEncodings(t, tok, map[string][]int{"ab a": {2, 0}})
	_, err = tok.Encode("ab z")
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, hfTokenizerFile)) {
		t.Fatalf("Encode of an unknown character: error %v, want one naming the file", err)
	}
}

func TestLoadErrors(t *testing.T) {
	valid := tinyTokenizerJSON(llamaNormalizer, "null", llamaDecoder, tinyMerges)
	cases := []struct {
		name  string
		files map[string]string
		want  []string // substrings of the error besides the file name
	}{
		{"unknown model type", map[string]string{hfTokenizerFile: `{"model":{"type":"Mystery","vocab":{}}}`}, []string{`"Mystery"`}},
		{"broken JSON", map[string]string{hfTokenizerFile: "{\n  \"model\": {\n    \"type\": \"BPE\",,\n  }\n}"}, []string{":3:"}},
		{"no model", map[string]string{hfTokenizerFile: `{"version":"1.0"}`}, []string{"no model"}},
		{"wrong field type", map[string]string{hfTokenizerFile: "{\"model\": {\"type\": 7}}"}, []string{":1:", "model.type"}},
		{"merge of unknown pieces", map[string]string{hfTokenizerFile: strings.Replace(valid, `"b ▁"`, `"b z"`, 1)}, []string{"model.merges[0]"}},
		{"vocab gap", map[string]string{hfTokenizerFile: strings.Replace(valid, `"b▁":13`, `"b▁":20`, 1)}, []string{"id 13"}},
		{"unsupported normalizer", map[string]string{hfTokenizerFile: tinyTokenizerJSON(`{"type":"NFKC"}`, "null", llamaDecoder, tinyMerges)}, []string{"NFKC"}},
		{"broken config", map[string]string{hfTokenizerFile: valid, hfConfigFile: "{\"bos_token\": 1}"}, []string{hfConfigFile}},
		{"config token not in vocab", map[string]string{hfTokenizerFile: valid, hfConfigFile: `{"bos_token":"<bos>"}`}, []string{hfConfigFile, "<bos>"}},
	}
	for _, c := range cases {
		dir := writeFiles(t, c.files)
		_, err := Load(dir)
		if err == nil {
			t.Errorf("%s: Load succeeded", c.name)
			continue
		}
		for _, want := range append(c.want, dir) {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q does not contain %q", c.name, err, want)
			}
		}
	}
	missing := filepath.Join(t.TempDir(), "absent")
	if _, err := Load(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("Load(missing path): error %v", err)
	}
	empty := t.TempDir()
	if _, err := Load(empty); err == nil || !strings.Contains(err.Error(), hfTokenizerFile) {
		t.Errorf("Load(directory without tokenizer.json): error %v", err)
	}
}

func TestLoadLlama2CErrors(t *testing.T) {
	data, err := os.ReadFile(assetPath(t, "stories260K/tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	// Cuts inside the header, inside the first record's header, inside the first token's
	// bytes ("<unk>" starts at offset 12) and in the middle of the file.
	for _, n := range []int{0, 2, 7, 14, len(data) / 2, len(data) - 1} {
		path := filepath.Join(t.TempDir(), "tok.bin")
		if err := os.WriteFile(path, data[:n], 0o644); err != nil {
			t.Fatal(err)
		}
		for _, load := range []func(string) (Tokenizer, error){Load, func(p string) (Tokenizer, error) { return LoadLlama2C(p) }} {
			_, err := load(path)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "truncated") {
				t.Errorf("%d of %d bytes: error %v, want a truncation error naming the file", n, len(data), err)
			}
		}
	}
	bad := slices.Clone(data)
	bad[8] = 0x7f // the first token's length becomes 127, over max_token_length 7
	path := filepath.Join(t.TempDir(), "tok.bin")
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadLlama2C(path); err == nil || !strings.Contains(err.Error(), "max_token_length") {
		t.Errorf("oversized token length: error %v", err)
	}
}
