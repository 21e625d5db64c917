package datasets

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// fakeSP is a toy SentencePiece-like word tokenizer for tests: a space
// attaches to the word after it ("▁word"), a space not followed by a word is
// its own "▁" token, and "\n" is a token. Like real SentencePiece, it merges
// across a prompt/response boundary that falls right after a space.
type fakeSP struct {
	vocab  map[string]int
	pieces []string
	bos    int
	eos    int
	addBOS bool
}

func newFakeSP(addBOS bool, eos int) *fakeSP {
	return &fakeSP{vocab: map[string]int{}, bos: 1, eos: eos, addBOS: addBOS}
}

func (f *fakeSP) BOS() int     { return f.bos }
func (f *fakeSP) EOS() int     { return f.eos }
func (f *fakeSP) AddBOS() bool { return f.addBOS }

func (f *fakeSP) Encode(text string) ([]int, error) {
	if strings.Contains(text, "\x00") {
		return nil, errors.New("fake: NUL in text")
	}
	var ids []int
	emit := func(p string) {
		id, ok := f.vocab[p]
		if !ok {
			id = 10 + len(f.pieces)
			f.vocab[p] = id
			f.pieces = append(f.pieces, p)
		}
		ids = append(ids, id)
	}
	rs := []rune(text)
	for i := 0; i < len(rs); {
		switch {
		case rs[i] == '\n':
			emit("\n")
			i++
		case rs[i] == ' ' && (i+1 == len(rs) || rs[i+1] == ' ' || rs[i+1] == '\n'):
			emit("▁")
			i++
		default:
			j := i
			prefix := ""
			if rs[j] == ' ' {
				prefix = "▁"
				j++
			}
			k := j
			for k < len(rs) && rs[k] != ' ' && rs[k] != '\n' {
				k++
			}
			emit(prefix + string(rs[j:k]))
			i = k
		}
	}
	return ids, nil
}

// pieces turns ids back into piece strings (BOS/EOS as <s>, </s>).
func (f *fakeSP) piecesOf(ids []int) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		switch {
		case id == f.bos:
			out[i] = "<s>"
		case id == f.eos:
			out[i] = "</s>"
		default:
			out[i] = f.pieces[id-10]
		}
	}
	return out
}

func TestTokenizeMasksResponseAcrossMergedBoundary(t *testing.T) {
	enc := newFakeSP(true, 2)
	ex := Example{Prompt: "Q: 2+2?\nA: ", Response: "4 apples"}
	seq, truncated, keep, err := Tokenize(enc, ex, 100, Truncate)
	if err != nil || truncated || !keep {
		t.Fatalf("Tokenize: truncated %v keep %v err %v", truncated, keep, err)
	}
	// enc(prompt) ends in a lone "▁" that the whole text merges into "▁4".
	wantPieces := []string{"<s>", "Q:", "▁2+2?", "\n", "A:", "▁4", "▁apples", "</s>"}
	wantLoss := []bool{false, false, false, false, false, true, true, true}
	if got := enc.piecesOf(seq.Tokens); !reflect.DeepEqual(got, wantPieces) {
		t.Errorf("pieces %q, want %q", got, wantPieces)
	}
	if !reflect.DeepEqual(seq.Loss, wantLoss) {
		t.Errorf("loss %v, want %v", seq.Loss, wantLoss)
	}
}

func TestTokenizeWithoutSpecialTokens(t *testing.T) {
	enc := newFakeSP(false, -1)
	seq, _, keep, err := Tokenize(enc, Example{Prompt: "A:", Response: " 4\n"}, 100, Drop)
	if err != nil || !keep {
		t.Fatalf("keep %v err %v", keep, err)
	}
	if got, want := enc.piecesOf(seq.Tokens), []string{"A:", "▁4", "\n"}; !reflect.DeepEqual(got, want) {
		t.Errorf("pieces %q, want %q", got, want)
	}
	if want := []bool{false, true, true}; !reflect.DeepEqual(seq.Loss, want) {
		t.Errorf("loss %v, want %v", seq.Loss, want)
	}
}

func TestTokenizeOverlong(t *testing.T) {
	ex := Example{Prompt: "Q: 2+2?\nA: ", Response: "4 apples"} // 8 tokens with BOS and EOS
	tests := []struct {
		name       string
		max        int
		policy     Overlong
		keep, trun bool
		loss       []bool
	}{
		{"fits exactly", 8, Drop, true, false, []bool{false, false, false, false, false, true, true, true}},
		{"truncate keeps a target", 6, Truncate, true, true, []bool{false, false, false, false, false, true}},
		{"truncate leaves no target", 5, Truncate, false, true, nil},
		{"drop", 7, Drop, false, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seq, truncated, keep, err := Tokenize(newFakeSP(true, 2), ex, tc.max, tc.policy)
			if err != nil {
				t.Fatal(err)
			}
			if keep != tc.keep || truncated != tc.trun || !reflect.DeepEqual(seq.Loss, tc.loss) {
				t.Errorf("keep %v truncated %v loss %v, want %v %v %v", keep, truncated, seq.Loss, tc.keep, tc.trun, tc.loss)
			}
			if keep && len(seq.Tokens) > tc.max {
				t.Errorf("%d tokens exceed the budget %d", len(seq.Tokens), tc.max)
			}
		})
	}
	if _, _, _, err := Tokenize(newFakeSP(true, 2), ex, 1, Truncate); err == nil {
		t.Error("budget 1 must be an error")
	}
}

func TestTokenizeAllCounts(t *testing.T) {
	enc := newFakeSP(true, -1)
	examples := []Example{
		{Prompt: "a b ", Response: "c"},         // <s> a ▁b ▁c: 4 tokens
		{Prompt: "a b c d e ", Response: "f"},   // 7 tokens; cut to 5, the target ▁f is lost
		{Prompt: "a b ", Response: ""},          // encodes exactly as its prompt: no target
		{Prompt: "x", Response: " y z w v u t"}, // 8 tokens; cut to 5, targets ▁y ▁z ▁w remain
	}
	seqs, stats, err := TokenizeAll(enc, examples, 5, Truncate)
	if err != nil {
		t.Fatal(err)
	}
	want := TokenizeStats{Kept: 2, Truncated: 1, NoTarget: 2}
	if stats != want || len(seqs) != 2 {
		t.Errorf("stats %+v (%d seqs), want %+v", stats, len(seqs), want)
	}
	_, stats, err = TokenizeAll(enc, examples, 5, Drop)
	if err != nil {
		t.Fatal(err)
	}
	if want := (TokenizeStats{Kept: 1, Dropped: 2, NoTarget: 1}); stats != want {
		t.Errorf("drop stats %+v, want %+v", stats, want)
	}
	_, _, err = TokenizeAll(enc, []Example{{Prompt: "ok", Response: "ok"}, {Prompt: "bad\x00", Response: "x"}}, 5, Drop)
	if err == nil || !strings.Contains(err.Error(), "example 1") {
		t.Errorf("error %v does not name example 1", err)
	}
}

func TestParseOverlong(t *testing.T) {
	for s, want := range map[string]Overlong{"truncate": Truncate, " Drop ": Drop} {
		if got, err := ParseOverlong(s); err != nil || got != want {
			t.Errorf("ParseOverlong(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseOverlong("cut"); err == nil {
		t.Error("ParseOverlong(cut) must fail")
	}
	if Truncate.String() != "truncate" || Drop.String() != "drop" {
		t.Error("Overlong.String")
	}
}

func TestEncodePair(t *testing.T) {
	tests := []struct {
		name               string
		addBOS             bool
		context, cont      string
		wantCtx, wantCont  []string
		wantErrSubstring   string
		wantCtxLenOverride int
	}{
		{name: "plain", context: "Answer:", cont: " A", wantCtx: []string{"Answer:"}, wantCont: []string{"▁A"}},
		{name: "trailing space moves", context: "Answer: ", cont: "A", wantCtx: []string{"Answer:"}, wantCont: []string{"▁A"}},
		{name: "trailing newlines move", context: "Answer:\n\n", cont: "B", wantCtx: []string{"Answer:"}, wantCont: []string{"\n", "\n", "B"}},
		{name: "bos prepended", addBOS: true, context: "Q\nAnswer:", cont: " C", wantCtx: []string{"<s>", "Q", "\n", "Answer:"}, wantCont: []string{"▁C"}},
		{name: "empty context uses BOS", context: "", cont: " D", wantCtx: []string{"<s>"}, wantCont: []string{"▁D"}},
		{name: "no continuation tokens", context: "Answer:", cont: "", wantErrSubstring: "adds no tokens"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enc := newFakeSP(tc.addBOS, 2)
			ctx, cont, err := EncodePair(enc, tc.context, tc.cont)
			if tc.wantErrSubstring != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrSubstring) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErrSubstring)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := enc.piecesOf(ctx); !reflect.DeepEqual(got, tc.wantCtx) {
				t.Errorf("ctx %q, want %q", got, tc.wantCtx)
			}
			if got := enc.piecesOf(cont); !reflect.DeepEqual(got, tc.wantCont) {
				t.Errorf("cont %q, want %q", got, tc.wantCont)
			}
		})
	}
}

// TestEncodePairSlicesWhole checks lm-eval's rule cont = whole[len(ctx):]
// even when enc(context) is not a prefix of enc(context+continuation): the
// information separator U+001C is whitespace for Python's rstrip, so it moves
// into the continuation, where the tokenizer glues it to "Answer:".
func TestEncodePairSlicesWhole(t *testing.T) {
	enc := newFakeSP(false, 2)
	ctx, cont, err := EncodePair(enc, "Answer:\x1c", " A")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := enc.piecesOf(ctx), []string{"Answer:"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ctx %q, want %q", got, want)
	}
	if got, want := enc.piecesOf(cont), []string{"▁A"}; !reflect.DeepEqual(got, want) {
		t.Errorf("cont %q, want %q (whole[1:] of [Answer:\\x1c ▁A])", got, want)
	}
}

// pythonSpaces are the code points for which CPython 3.11's str.isspace() is
// true (computed over all of Unicode).
var pythonSpaces = []rune{
	0x9, 0xa, 0xb, 0xc, 0xd, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680,
	0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008,
	0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
}

func TestPyIsSpaceMatchesPython(t *testing.T) {
	want := map[rune]bool{}
	for _, r := range pythonSpaces {
		want[r] = true
	}
	for r := rune(0); r <= 0x10ffff; r++ {
		if pyIsSpace(r) != want[r] {
			t.Errorf("pyIsSpace(%U) = %v, Python says %v", r, pyIsSpace(r), want[r])
		}
	}
	if got := pyStrip("\x1c\u3000 a b\t\x1f"); got != "a b" {
		t.Errorf("pyStrip = %q", got)
	}
}

func TestFitShots(t *testing.T) {
	shots := []string{"s1", "s2", "s3", "s4", "s5"}
	render := func(k int) string { return strings.Join(append(append([]string{}, shots[len(shots)-k:]...), "Q"), "|") }
	var tried []int
	renderLogged := func(k int) string { tried = append(tried, k); return render(k) }
	prompt, used := FitShots(5, renderLogged, func(p string) bool { return len(p) <= 10 })
	if prompt != "s3|s4|s5|Q" || used != 3 || !reflect.DeepEqual(tried, []int{5, 4, 3}) {
		t.Errorf("got %q used %d tried %v", prompt, used, tried)
	}
	if prompt, used := FitShots(5, render, func(string) bool { return true }); used != 5 || prompt != "s1|s2|s3|s4|s5|Q" {
		t.Errorf("all fit: %q %d", prompt, used)
	}
	if prompt, used := FitShots(5, render, func(string) bool { return false }); used != 0 || prompt != "Q" {
		t.Errorf("none fit: %q %d", prompt, used)
	}
}
