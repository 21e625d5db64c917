package tokenizer

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
)

// llama2cReference is llama2.c's encode() transcribed for the tests, independent of the
// package: its own file parse, token strings with plain spaces, byte fallback as byte+3, and
// the O(n^2) rescan for the best-scoring adjacent pair.
type llama2cReference struct {
	vocab  []string
	scores []float32
	ids    map[string]int
}

func loadLlama2CReference(t testing.TB, path string) *llama2cReference {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := &llama2cReference{ids: map[string]int{}}
	for off := 4; off < len(data); {
		score := math.Float32frombits(binary.LittleEndian.Uint32(data[off:]))
		n := int(binary.LittleEndian.Uint32(data[off+4:]))
		piece := string(data[off+8 : off+8+n])
		off += 8 + n
		r.ids[piece] = len(r.vocab)
		r.vocab = append(r.vocab, piece)
		r.scores = append(r.scores, score)
	}
	return r
}

func (r *llama2cReference) encode(text string) []int {
	var tokens []int
	if text != "" {
		tokens = append(tokens, r.ids[" "])
	}
	for _, ch := range text { // valid UTF-8 only: llama2.c groups bytes without validating
		if id, ok := r.ids[string(ch)]; ok {
			tokens = append(tokens, id)
			continue
		}
		for _, b := range []byte(string(ch)) {
			tokens = append(tokens, int(b)+3)
		}
	}
	for {
		bestScore, bestID, bestIdx := float32(-1e10), -1, -1
		for i := 0; i+1 < len(tokens); i++ {
			id, ok := r.ids[r.vocab[tokens[i]]+r.vocab[tokens[i+1]]]
			if ok && r.scores[id] > bestScore {
				bestScore, bestID, bestIdx = r.scores[id], id, i
			}
		}
		if bestIdx < 0 {
			return tokens
		}
		tokens[bestIdx] = bestID
		tokens = append(tokens[:bestIdx+1], tokens[bestIdx+2:]...)
	}
}

// textAlphabet mixes what tokenizers get wrong: runs of spaces, newlines, tabs, accents
// (precomposed and combining), CJK, emoji (4-byte, with modifiers and ZWJ), zero-width and
// replacement characters, digits and punctuation.
var textAlphabet = []string{
	"a", "b", "e", "t", "h", "o", "n", "s", "T", "O", "the", "once", "upon", "Lily",
	" ", " ", " ", "  ", "\n", "\n\n", "\t", "\r\n",
	"0", "7", "42", "3.14", ",", ".", "!", "?", "'", "\"", "$", "#", "<", ">", "<s>", "</s>", "<0x0A>", "▁",
	"é", "ü", "ñ", "e\u0301", "ß", "Ø",
	"你", "好", "世界", "日本語", "한국어",
	"😀", "👍🏽", "👨‍👩‍👧", "🇫🇷",
	"\u200b", "\u200a", "\ufeff", "\ufffd", "\x00", "\x7f",
}

// invalidUTF8 are byte sequences that are not UTF-8: stray continuation bytes, truncated
// sequences, overlong encodings and surrogates.
var invalidUTF8 = []string{"\xff", "\xfe", "\x80", "\xbf", "\xc3", "\xe4\xbd", "\xf0\x9f\x98", "\xc0\xaf", "\xed\xa0\x80"}

// randomText draws n pieces of the alphabet (and of invalidUTF8 when withInvalid).
func randomText(rng *rand.Rand, n int, withInvalid bool) string {
	var b strings.Builder
	for range n {
		if withInvalid && rng.IntN(8) == 0 {
			b.WriteString(invalidUTF8[rng.IntN(len(invalidUTF8))])
			continue
		}
		b.WriteString(textAlphabet[rng.IntN(len(textAlphabet))])
	}
	return b.String()
}

// edgeCaseTexts are fixed inputs every round-trip test covers.
var edgeCaseTexts = []string{
	"", " ", "  ", "a", " a", "a ", "  two leading", "trailing  ", "\n", "\n\nx\n", "\t\ttabs\t",
	"line one\nline two\r\nline three", "emoji 😀👍🏽 and CJK 你好世界", "accents: café naïve e\u0301 Ærøskøbing",
	"Once upon a time", "<s>not special</s>", "<0x0A>", "▁literal marker", "multiple     spaces",
}
