package tokenizer

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"testing/quick"
)

// Reference behaviour of stories260K (assets README).
var (
	referencePrompt    = "Once upon a time"
	referencePromptIDs = []int{403, 407, 261, 378}
	referenceGenerated = []int{432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385, 328, 432, 358, 394, 261, 370, 432, 352, 266, 268, 388, 426, 338, 391, 266, 267, 337, 335, 312, 432, 398, 312, 286, 267, 414, 270, 333, 415}
	referenceText      = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high"
)

func loadTok512(t testing.TB) *SentencePiece {
	t.Helper()
	sp, err := LoadLlama2C(assetPath(t, "stories260K/tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func TestTok512Reference(t *testing.T) {
	sp := loadTok512(t)
	if sp.VocabSize() != 512 || sp.BOS() != 1 || sp.EOS() != 2 || !sp.AddBOS() {
		t.Fatalf("VocabSize %d BOS %d EOS %d AddBOS %v, want 512 1 2 true", sp.VocabSize(), sp.BOS(), sp.EOS(), sp.AddBOS())
	}
	ids, err := sp.Encode(referencePrompt)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, referencePromptIDs) {
		t.Fatalf("Encode(%q) = %v, want %v", referencePrompt, ids, referencePromptIDs)
	}
	all := append([]int{sp.BOS()}, referencePromptIDs...)
	all = append(all, referenceGenerated...)
	if got := sp.Decode(all); got != referenceText {
		t.Fatalf("Decode(reference ids) = %q, want %q", got, referenceText)
	}
}

// roundTripText is a text SentencePiece must decode back byte for byte: any bytes except a
// literal "▁", which SentencePiece (and HF, and llama2.c) reads as a space.
func roundTripText(s string) string { return strings.ReplaceAll(s, spaceMarker, "_") }

// TestTok512MatchesLlama2CReference compares with llama2.c on texts without a literal "▁":
// llama2.c byte-encodes that character while SentencePiece and HF read it as a space.
func TestTok512MatchesLlama2CReference(t *testing.T) {
	sp := loadTok512(t)
	ref := loadLlama2CReference(t, assetPath(t, "stories260K/tok512.bin"))
	texts := append(gsm8kTexts(t, 300), edgeCaseTexts...)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		texts = append(texts, randomText(rng, 1+rng.IntN(60), false))
	}
	for _, text := range texts {
		text = roundTripText(text)
		got, err := sp.Encode(text)
		if err != nil {
			t.Fatalf("Encode(%q): %v", text, err)
		}
		if want := ref.encode(text); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Fatalf("Encode(%q)\n got %v\nwant %v (llama2.c)", text, got, want)
		}
	}
}

func TestSentencePieceRoundTrip(t *testing.T) {
	sp := loadTok512(t)
	texts := append(gsm8kTexts(t, 300), edgeCaseTexts...)
	rng := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		texts = append(texts, randomText(rng, rng.IntN(40), true))
	}
	for _, text := range texts {
		text = roundTripText(text)
		ids, err := sp.Encode(text)
		if err != nil {
			t.Fatalf("Encode(%q): %v", text, err)
		}
		if got := sp.Decode(ids); got != text {
			t.Fatalf("Decode(Encode(%q)) = %q (ids %v)", text, got, ids)
		}
	}
}

// TestSentencePieceRoundTripQuick checks the round trip on arbitrary strings from
// testing/quick (mostly invalid UTF-8 and rare code points).
func TestSentencePieceRoundTripQuick(t *testing.T) {
	sp := loadTok512(t)
	roundTrips := func(s string) bool {
		s = roundTripText(s)
		ids, err := sp.Encode(s)
		return err == nil && sp.Decode(ids) == s
	}
	bytesRoundTrip := func(b []byte) bool { return roundTrips(string(b)) }
	if err := quick.Check(roundTrips, &quick.Config{MaxCount: 2000}); err != nil {
		t.Error(err)
	}
	if err := quick.Check(bytesRoundTrip, &quick.Config{MaxCount: 2000}); err != nil {
		t.Error(err)
	}
}

func TestSentencePieceByteFallback(t *testing.T) {
	sp := loadTok512(t)
	byteID := func(b byte) int { return int(b) + 3 } // tok512: <0x00> is id 3
	space := int(sp.pieceIDs[spaceMarker])
	cases := []struct {
		text string
		want []int
	}{
		{"\n", []int{space, byteID('\n')}},
		{"你", []int{space, byteID(0xE4), byteID(0xBD), byteID(0xA0)}},
		{"\xff", []int{space, byteID(0xFF)}},                   // invalid byte
		{"\xe4\xbd", []int{space, byteID(0xE4), byteID(0xBD)}}, // truncated character
	}
	for _, c := range cases {
		got, err := sp.Encode(c.text)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("Encode(%q) = %v, want %v", c.text, got, c.want)
		}
	}
}

func TestSentencePieceLiteralText(t *testing.T) {
	sp := loadTok512(t)
	if ids, err := sp.Encode(""); err != nil || len(ids) != 0 {
		t.Fatalf("Encode(\"\") = %v, %v; want no ids", ids, err)
	}
	ids, err := sp.Encode("<s></s><unk>")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if sp.kinds[id] != pieceNormal && sp.kinds[id] != pieceByte {
			t.Fatalf("Encode(\"<s></s><unk>\") = %v: special piece %d from literal text", ids, id)
		}
	}
	// A literal "▁" is a space to SentencePiece.
	if got := sp.Decode(mustEncode(t, sp, "▁x")); got != " x" {
		t.Errorf("Decode(Encode(\"▁x\")) = %q, want \" x\"", got)
	}
}

func TestSentencePieceDecodeSkipsSpecials(t *testing.T) {
	sp := loadTok512(t)
	hello := mustEncode(t, sp, "hello there")
	ids := append([]int{sp.BOS(), 0}, hello...)
	ids = append(ids, sp.EOS(), -5, 512, 1<<40)
	if got := sp.Decode(ids); got != "hello there" {
		t.Fatalf("Decode(%v) = %q, want %q", ids, got, "hello there")
	}
}

func mustEncode(t testing.TB, tok Tokenizer, text string) []int {
	t.Helper()
	ids, err := tok.Encode(text)
	if err != nil {
		t.Fatalf("Encode(%q): %v", text, err)
	}
	return ids
}

func FuzzSentencePieceRoundTrip(f *testing.F) {
	for _, s := range append(edgeCaseTexts, invalidUTF8...) {
		f.Add(s)
	}
	f.Add(referenceText)
	sp := loadTok512(f)
	f.Fuzz(func(t *testing.T, text string) {
		if strings.Contains(text, spaceMarker) {
			t.Skip("a literal ▁ decodes as a space")
		}
		ids, err := sp.Encode(text)
		if err != nil {
			t.Fatalf("Encode(%q): %v", text, err)
		}
		for _, id := range ids {
			if id < 0 || id >= sp.VocabSize() {
				t.Fatalf("Encode(%q) gave id %d outside the vocabulary", text, id)
			}
		}
		if got := sp.Decode(ids); got != text {
			t.Fatalf("Decode(Encode(%q)) = %q (ids %v)", text, got, ids)
		}
	})
}

// benchmarkText is about 3,000 characters of GSM8K, the size of an MMLU 5-shot prompt.
func benchmarkText(b *testing.B) string {
	var text strings.Builder
	for _, s := range gsm8kTexts(b, 20) {
		text.WriteString(s)
		text.WriteString("\n\n")
	}
	runes := []rune(text.String())
	if len(runes) < 3000 {
		b.Fatalf("only %d characters of GSM8K", len(runes))
	}
	return string(runes[:3000])
}

func BenchmarkSentencePieceEncode3000(b *testing.B) {
	sp := loadTok512(b)
	text := benchmarkText(b)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if _, err := sp.Encode(text); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLlama2CReferenceEncode3000 is the O(n^2) llama2.c loop on the same text, for scale.
func BenchmarkLlama2CReferenceEncode3000(b *testing.B) {
	ref := loadLlama2CReference(b, assetPath(b, "stories260K/tok512.bin"))
	text := benchmarkText(b)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		ref.encode(text)
	}
}

func BenchmarkSentencePieceDecode3000(b *testing.B) {
	sp := loadTok512(b)
	ids := mustEncode(b, sp, benchmarkText(b))
	for b.Loop() {
		sp.Decode(ids)
	}
}
