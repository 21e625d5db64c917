package tokenizer

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	sugarme "github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/pretrained"
)

// HFTokenizer is an HF tokenizer.json that neither SentencePiece nor ByteLevelBPE reads
// (WordPiece, WordLevel, Unigram, BPE without a byte-level pre-tokenizer), run by
// github.com/sugarme/tokenizer v0.3.0 with these corrections:
//   - truncation and padding stored in the file are switched off (GPT-2's tokenizer.json, for
//     one, truncates every encoding to 50 tokens);
//   - added tokens (<|endoftext|>, <|im_start|>, ...) in the text are matched here,
//     leftmost-longest on the raw text as HF does, because sugarme v0.3.0 drops them from
//     the ids; lstrip, rstrip and single_word are honoured, normalized is not (they are
//     always matched on the raw text);
//   - sugarme panics (for example a BPE file without unk_token meeting an unknown character)
//     become errors naming the file.
//
// Not corrected: sugarme's BPE breaks ties between equal-rank pairs in arbitrary order
// (HF merges the leftmost first), and sugarme calls log.Fatal on a few internal errors,
// which cannot be recovered from.
type HFTokenizer struct {
	path      string
	tk        *sugarme.Tokenizer
	added     addedTokenMatcher
	skipped   map[int]bool // special added tokens, skipped by Decode
	special   specialTokens
	vocabSize int
}

// newHFTokenizer loads src through sugarme.
func newHFTokenizer(src *hfSource) (*HFTokenizer, error) {
	tk, err := sugarmeFromFile(src.path)
	if err != nil {
		return nil, err
	}
	tk.WithTruncation(nil)
	tk.WithPadding(nil)
	h := &HFTokenizer{path: src.path, tk: tk, skipped: map[int]bool{}}
	if h.vocabSize, err = src.vocabSize(); err != nil {
		return nil, err
	}
	for _, t := range src.json.AddedTokens {
		if t.Special {
			h.skipped[t.ID] = true
		}
	}
	h.added = newAddedTokenMatcher(src.json.AddedTokens)
	h.special, err = src.resolveSpecialTokens(func(text string) (int, bool) {
		if id, ok := h.added.ids[text]; ok {
			return id, true
		}
		return tk.TokenToId(text)
	})
	if err != nil {
		return nil, err
	}
	return h, nil
}

// sugarmeFromFile is pretrained.FromFile with its panics turned into errors.
func sugarmeFromFile(path string) (tk *sugarme.Tokenizer, err error) {
	defer func() {
		if r := recover(); r != nil {
			tk, err = nil, fmt.Errorf("tokenizer: %s: sugarme/tokenizer cannot load it: %v", path, r)
		}
	}()
	tk, err = pretrained.FromFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	return tk, nil
}

// vocabSize is the largest id of the model vocabulary and the added tokens plus one.
func (src *hfSource) vocabSize() (int, error) {
	size := 0
	for _, t := range src.json.AddedTokens {
		size = max(size, t.ID+1)
	}
	if src.modelType() == "Unigram" {
		var entries []json.RawMessage
		if err := json.Unmarshal(src.json.Model.Vocab, &entries); err != nil {
			return 0, fmt.Errorf("tokenizer: %s: model.vocab: %w", src.path, err)
		}
		return max(size, len(entries)), nil
	}
	var vocab map[string]int
	if err := json.Unmarshal(src.json.Model.Vocab, &vocab); err != nil {
		return 0, fmt.Errorf("tokenizer: %s: model.vocab: %w", src.path, err)
	}
	for _, id := range vocab {
		size = max(size, id+1)
	}
	return size, nil
}

// Encode returns the ids of text without special tokens added; added tokens written in the
// text (such as "<|endoftext|>") become their ids, as in HF.
func (h *HFTokenizer) Encode(text string) (ids []int, err error) {
	defer func() {
		if r := recover(); r != nil {
			ids, err = nil, fmt.Errorf("tokenizer: %s: sugarme/tokenizer failed on %.40q...: %v", h.path, text, r)
		}
	}()
	ids = []int{}
	for _, seg := range h.added.split(text) {
		if seg.id >= 0 {
			ids = append(ids, seg.id)
			continue
		}
		enc, err := h.tk.EncodeSingle(seg.text, false)
		if err != nil {
			return nil, fmt.Errorf("tokenizer: %s: %w", h.path, err)
		}
		ids = append(ids, enc.Ids...)
	}
	return ids, nil
}

// Decode returns the text of ids, skipping special added tokens and ids outside the
// vocabulary.
func (h *HFTokenizer) Decode(ids []int) string {
	kept := make([]int, 0, len(ids))
	for _, id := range ids {
		if id >= 0 && id < h.vocabSize && !h.skipped[id] {
			kept = append(kept, id)
		}
	}
	if len(kept) == 0 {
		return ""
	}
	return h.tk.Decode(kept, false)
}

// BOS returns the beginning-of-sequence id, or -1.
func (h *HFTokenizer) BOS() int { return h.special.bos }

// EOS returns the end-of-sequence id, or -1.
func (h *HFTokenizer) EOS() int { return h.special.eos }

// AddBOS reports whether model inputs start with BOS.
func (h *HFTokenizer) AddBOS() bool { return h.special.addBOS }

// VocabSize returns the largest id plus one.
func (h *HFTokenizer) VocabSize() int { return h.vocabSize }

// addedTokenMatcher finds added tokens in raw text, leftmost first and longest at a position.
type addedTokenMatcher struct {
	byFirstByte [256][]hfAddedToken // longest first
	ids         map[string]int
}

// textSegment is a piece of the input: an added token (id >= 0) or text for the model.
type textSegment struct {
	text string
	id   int
}

func newAddedTokenMatcher(tokens []hfAddedToken) addedTokenMatcher {
	m := addedTokenMatcher{ids: make(map[string]int, len(tokens))}
	for _, t := range tokens {
		if t.Content == "" {
			continue
		}
		m.ids[t.Content] = t.ID
		first := t.Content[0]
		m.byFirstByte[first] = append(m.byFirstByte[first], t)
	}
	for i := range m.byFirstByte {
		list := m.byFirstByte[i]
		sort.SliceStable(list, func(a, b int) bool { return len(list[a].Content) > len(list[b].Content) })
	}
	return m
}

// split cuts text into model text and added tokens. lstrip/rstrip tokens swallow the
// whitespace beside them; single_word tokens only match between non-word characters.
func (m *addedTokenMatcher) split(text string) []textSegment {
	var segs []textSegment
	start := 0 // start of the pending model text
	for i := 0; i < len(text); {
		t, ok := m.matchAt(text, i)
		if !ok {
			i++
			continue
		}
		from, to := i, i+len(t.Content)
		if t.LStrip {
			for from > start {
				r, size := utf8.DecodeLastRuneInString(text[start:from])
				if !unicode.IsSpace(r) {
					break
				}
				from -= size
			}
		}
		if t.RStrip {
			for to < len(text) {
				r, size := utf8.DecodeRuneInString(text[to:])
				if !unicode.IsSpace(r) {
					break
				}
				to += size
			}
		}
		if from > start {
			segs = append(segs, textSegment{text: text[start:from], id: -1})
		}
		segs = append(segs, textSegment{id: t.ID})
		start, i = to, to
	}
	if start < len(text) {
		segs = append(segs, textSegment{text: text[start:], id: -1})
	}
	return segs
}

// matchAt returns the longest added token that starts at text[i] and satisfies single_word.
func (m *addedTokenMatcher) matchAt(text string, i int) (hfAddedToken, bool) {
	for _, t := range m.byFirstByte[text[i]] {
		if !strings.HasPrefix(text[i:], t.Content) {
			continue
		}
		if t.SingleWord && (isWordCharBefore(text, i) || isWordCharAt(text, i+len(t.Content))) {
			continue
		}
		return t, true
	}
	return hfAddedToken{}, false
}

func isWordCharBefore(text string, i int) bool {
	if i == 0 {
		return false
	}
	r, _ := utf8.DecodeLastRuneInString(text[:i])
	return isWordRune(r)
}

func isWordCharAt(text string, i int) bool {
	if i >= len(text) {
		return false
	}
	r, _ := utf8.DecodeRuneInString(text[i:])
	return isWordRune(r)
}

func isWordRune(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)
}
