package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestWriteHFEncodesLikeTok512(t *testing.T) {
	sp := loadTok512(t)
	sp.ModelMaxLength = 512
	dir := filepath.Join(t.TempDir(), "hf")
	if err := sp.WriteHF(dir); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	hf, ok := loaded.(*SentencePiece)
	if !ok {
		t.Fatalf("Load(dir) = %T, want *SentencePiece", loaded)
	}
	if hf.VocabSize() != sp.VocabSize() || hf.BOS() != sp.BOS() || hf.EOS() != sp.EOS() || hf.AddBOS() != sp.AddBOS() || hf.ModelMaxLength != 512 {
		t.Fatalf("reloaded VocabSize %d BOS %d EOS %d AddBOS %v ModelMaxLength %d, want %d %d %d %v 512",
			hf.VocabSize(), hf.BOS(), hf.EOS(), hf.AddBOS(), hf.ModelMaxLength, sp.VocabSize(), sp.BOS(), sp.EOS(), sp.AddBOS())
	}
	texts := append(gsm8kTexts(t, 300), edgeCaseTexts...)
	texts = append(texts, invalidUTF8...)
	texts = append(texts, "tab\tnew\nline", "emoji 😀👍🏽👨‍👩‍👧", "CJK 你好，世界。日本語", "accents àéîõü e\u0301", "mixed \xff bytes \xc3 here")
	for _, text := range texts {
		want := mustEncode(t, sp, text)
		got := mustEncode(t, hf, text)
		if !slices.Equal(got, want) {
			t.Fatalf("Encode(%q) after WriteHF = %v, tok512.bin gives %v", text, got, want)
		}
		if hf.Decode(got) != sp.Decode(want) {
			t.Fatalf("Decode differs for %q: %q vs %q", text, hf.Decode(got), sp.Decode(want))
		}
	}
	// Writing the reloaded tokenizer gives the same files (merges keep their order).
	again := filepath.Join(t.TempDir(), "again")
	if err := hf.WriteHF(again); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{hfTokenizerFile, hfConfigFile} {
		first, _ := os.ReadFile(filepath.Join(dir, name))
		second, _ := os.ReadFile(filepath.Join(again, name))
		if string(first) != string(second) {
			t.Errorf("%s differs after a load/write round trip", name)
		}
	}
}

func TestWriteHFFormat(t *testing.T) {
	sp := loadTok512(t)
	dir := t.TempDir()
	if err := sp.WriteHF(dir); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{hfTokenizerFile, hfConfigFile}) {
		t.Fatalf("WriteHF left %v, want only the two files", names)
	}

	var config map[string]any
	readJSONForTest(t, filepath.Join(dir, hfConfigFile), &config)
	wantConfig := map[string]any{
		"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
		"add_bos_token": true, "add_eos_token": false,
	}
	for key, want := range wantConfig {
		if config[key] != want {
			t.Errorf("tokenizer_config.json %s = %v, want %v", key, config[key], want)
		}
	}
	if _, ok := config["model_max_length"]; !ok {
		t.Error("tokenizer_config.json has no model_max_length")
	}

	var tj struct {
		AddedTokens []hfAddedToken `json:"added_tokens"`
		Model       struct {
			Type         string         `json:"type"`
			ByteFallback bool           `json:"byte_fallback"`
			FuseUnk      bool           `json:"fuse_unk"`
			UnkToken     string         `json:"unk_token"`
			Vocab        map[string]int `json:"vocab"`
			Merges       []string       `json:"merges"`
		} `json:"model"`
		PostProcessor hfComponent `json:"post_processor"`
	}
	readJSONForTest(t, filepath.Join(dir, hfTokenizerFile), &tj)
	m := tj.Model
	if m.Type != "BPE" || !m.ByteFallback || !m.FuseUnk || m.UnkToken != "<unk>" || len(m.Vocab) != 512 {
		t.Fatalf("model: type %q byte_fallback %v fuse_unk %v unk %q vocab %d", m.Type, m.ByteFallback, m.FuseUnk, m.UnkToken, len(m.Vocab))
	}
	if m.Vocab["▁t"] != 259 || m.Vocab["<0x0A>"] != 13 || m.Vocab["<s>"] != 1 {
		t.Errorf("vocab ▁t=%d <0x0A>=%d <s>=%d, want 259 13 1", m.Vocab["▁t"], m.Vocab["<0x0A>"], m.Vocab["<s>"])
	}
	// Merges in extractor order: score descending, so the best merge (id 259, "▁t") first.
	if len(m.Merges) == 0 || m.Merges[0] != "▁ t" {
		t.Errorf("first merge %q, want \"▁ t\"", m.Merges[:min(1, len(m.Merges))])
	}
	checkMergesFollowScores(t, sp, m.Vocab, m.Merges)
	var special []string
	for _, a := range tj.AddedTokens {
		if a.Special {
			special = append(special, a.Content)
		}
	}
	if !slices.Equal(special, []string{"<unk>", "<s>", "</s>"}) {
		t.Errorf("special added tokens %v", special)
	}
	if tj.PostProcessor.Type != "TemplateProcessing" || len(tj.PostProcessor.Single) != 2 ||
		tj.PostProcessor.Single[0].SpecialToken == nil || tj.PostProcessor.Single[0].SpecialToken.ID != "<s>" {
		t.Errorf("post_processor %+v does not put <s> first", tj.PostProcessor)
	}
}

// checkMergesFollowScores checks every merge result is the concatenation and the list is
// ordered by the score of the result, best first, with every splittable piece present.
func checkMergesFollowScores(t *testing.T, sp *SentencePiece, vocab map[string]int, merges []string) {
	t.Helper()
	prev := float32(1)
	seen := map[string]bool{}
	for i, merge := range merges {
		left, right, ok := strings.Cut(merge, " ")
		result, inVocab := vocab[left+right]
		if !ok || !inVocab {
			t.Fatalf("merges[%d] %q does not form a piece", i, merge)
		}
		if score := sp.scores[result]; score > prev {
			t.Fatalf("merges[%d] %q has score %v after %v", i, merge, score, prev)
		} else {
			prev = score
		}
		seen[left+right] = true
	}
	for id, piece := range sp.pieces {
		runes := []rune(piece)
		if sp.kinds[id] != pieceNormal || len(runes) < 2 || seen[piece] {
			continue
		}
		for i := 1; i < len(runes); i++ {
			_, okLeft := vocab[string(runes[:i])]
			_, okRight := vocab[string(runes[i:])]
			if okLeft && okRight {
				t.Fatalf("piece %q splits into pieces but has no merge", piece)
			}
		}
	}
}

func readJSONForTest(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
