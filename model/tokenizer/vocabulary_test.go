package tokenizer

import (
	"testing"
)

// TestVocabularyScoresFollowTheMerges: tok512 written as tokenizer.json and
// loaded back has merges instead of scores; the scores Vocabulary derives
// from them rank the pieces as the llama2.c scores did.
func TestVocabularyScoresFollowTheMerges(t *testing.T) {
	orig, err := LoadLlama2C(assetPath(t, "stories260K/tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := orig.WriteHF(dir); err != nil {
		t.Fatal(err)
	}
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	sp, ok := tok.(*SentencePiece)
	if !ok {
		t.Fatalf("loaded a %T", tok)
	}
	want, got := orig.Vocabulary(), sp.Vocabulary()
	if len(got.Pieces) != 512 || len(got.Scores) != 512 || len(got.Merges) == 0 {
		t.Fatalf("%d pieces, %d scores, %d merges", len(got.Pieces), len(got.Scores), len(got.Merges))
	}
	if got.Types[0] != PieceUnknown || got.Types[1] != PieceControl || got.Types[3] != PieceByte || got.Types[300] != PieceNormal {
		t.Errorf("types %v", got.Types[:4])
	}
	ids := map[string]int{}
	for i, p := range got.Pieces {
		ids[p] = i
		if p != want.Pieces[i] {
			t.Fatalf("piece %d is %q, was %q", i, p, want.Pieces[i])
		}
	}
	prev := -1
	first := map[int]int{} // piece id -> the best merge that makes it
	for r, m := range got.Merges {
		id := ids[m[0]+m[1]]
		if _, seen := first[id]; seen {
			continue
		}
		first[id] = r
		if got.Scores[id] != -float32(r) {
			t.Fatalf("merge %d makes %q with score %v, want %d", r, m[0]+m[1], got.Scores[id], -r)
		}
		if prev >= 0 && want.Scores[id] > want.Scores[prev] {
			t.Fatalf("merge %d (%q) ranks after %q, but its llama2.c score is higher", r, got.Pieces[id], got.Pieces[prev])
		}
		prev = id
	}
}

// TestByteLevelVocabulary: GPT-2's vocabulary, merges and split pattern.
func TestByteLevelVocabulary(t *testing.T) {
	tok, err := Load(assetPath(t, "gpt2/tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	v := tok.(*ByteLevelBPE).Vocabulary()
	if len(v.Pieces) != 50257 || len(v.Merges) != 50000 || v.Scores != nil {
		t.Fatalf("%d pieces, %d merges, scores %v", len(v.Pieces), len(v.Merges), v.Scores != nil)
	}
	if v.Merges[0] != [2]string{"Ġ", "t"} || v.Pieces[50256] != "<|endoftext|>" || v.Types[50256] != PieceControl || v.Types[0] != PieceNormal {
		t.Errorf("merge 0 %q, piece 50256 %q type %v", v.Merges[0], v.Pieces[50256], v.Types[50256])
	}
	if len(v.SplitPatterns) != 1 || v.SplitPatterns[0] != gpt2SplitPattern {
		t.Errorf("split patterns %q", v.SplitPatterns)
	}
}
