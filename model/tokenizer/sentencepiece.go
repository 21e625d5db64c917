package tokenizer

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// spaceMarker is SentencePiece's visible space, U+2581 "▁", which stands for " " in pieces.
const spaceMarker = "\u2581"

// pieceKind classifies vocabulary entries the way SentencePiece does.
type pieceKind uint8

const (
	pieceNormal  pieceKind = iota // ordinary text piece (also HF non-special added tokens)
	pieceUnknown                  // <unk>
	pieceControl                  // <s>, </s>, pad and other special tokens
	pieceByte                     // byte-fallback piece <0xXX>
)

// SentencePiece is a SentencePiece-style BPE tokenizer with byte fallback (Llama-2, Mistral,
// llama2.c models). Encoding follows SentencePiece: the text is normalised (a dummy-prefix
// "▁" is prepended and spaces become "▁"), each UTF-8 character becomes its piece or, when it
// has none, the <0xXX> pieces of its bytes (invalid UTF-8 bytes too), and adjacent pieces are
// merged best rule first (highest piece score for llama2.c files, lowest merge rank for HF
// files; ties leftmost first). Text is taken literally: "<s>" in the input is three
// characters, not BOS, and non-special added tokens are not matched in the input.
//
// A SentencePiece is safe for concurrent use once loaded.
type SentencePiece struct {
	// ModelMaxLength is written as model_max_length by WriteHF; 0 means unknown (HF's
	// "very large" sentinel is written then). Loading an HF directory sets it from
	// tokenizer_config.json when present there.
	ModelMaxLength int

	bpeModel // pieces in canonical form ("▁" for spaces)
	// scores holds the llama2.c piece scores; nil when loaded from HF merges.
	scores []float32
	text   textRules

	unk, bos, eos int
	addBOS        bool
	fuseUnk       bool
	byteIDs       [256]int32 // id of <0xXX>, or -1
}

// textRules describes how text is prepared before BPE and how the dummy prefix is undone.
type textRules struct {
	// normalize is applied in order (HF normalizer: Prepend and Replace steps).
	normalize []normalizeStep
	// metaspace is the HF Metaspace pre-tokenizer, nil when there is none.
	metaspace *metaspaceRule
	// stripLeadingSpaces is how many leading spaces Decode removes (HF Strip decoder).
	stripLeadingSpaces int
}

// normalizeStep is one HF normalizer step: Prepend (prepend != "") or Replace(from -> to).
type normalizeStep struct {
	prepend  string
	from, to string
}

// metaspaceRule is the HF Metaspace pre-tokenizer: spaces become replacement, replacement is
// prepended unless the text already starts with it (when prependFirst), and with split the
// text is cut before each replacement so merges never cross words.
type metaspaceRule struct {
	replacement  string
	prependFirst bool
	split        bool
}

// sentencePieceRules is the text preparation of SentencePiece and llama2.c: a dummy-prefix
// "▁", spaces to "▁", one leading space removed on decode.
func sentencePieceRules() textRules {
	return textRules{
		normalize: []normalizeStep{
			{prepend: spaceMarker},
			{from: " ", to: spaceMarker},
		},
		stripLeadingSpaces: 1,
	}
}

// prepare applies the normalisation and pre-tokenisation to text and returns the words that
// are merged separately (one word unless a splitting Metaspace is configured).
func (r *textRules) prepare(text string) []string {
	for _, step := range r.normalize {
		if step.prepend != "" {
			if text != "" {
				text = step.prepend + text
			}
		} else {
			text = strings.ReplaceAll(text, step.from, step.to)
		}
	}
	ms := r.metaspace
	if ms == nil {
		return []string{text}
	}
	text = strings.ReplaceAll(text, " ", ms.replacement)
	if ms.prependFirst && text != "" && !strings.HasPrefix(text, ms.replacement) {
		text = ms.replacement + text
	}
	if !ms.split {
		return []string{text}
	}
	return splitBefore(text, ms.replacement)
}

// splitBefore cuts text before every occurrence of marker except at its start (HF's
// MergedWithNext split): "▁a▁▁b" gives "▁a", "▁", "▁b".
func splitBefore(text, marker string) []string {
	if text == "" {
		return nil
	}
	var words []string
	start := 0
	for {
		// Searching from start+1 skips a marker at start; marker begins with a UTF-8 lead
		// byte, so it cannot match inside the character at start.
		i := strings.Index(text[start+1:], marker)
		if i < 0 {
			return append(words, text[start:])
		}
		cut := start + 1 + i
		words = append(words, text[start:cut])
		start = cut
	}
}

// init validates the pieces and builds the lookup tables. The loaders fill pieces, kinds,
// rules, mergeOrder, text, unk/bos/eos, addBOS and fuseUnk first.
func (sp *SentencePiece) init() error {
	for i := range sp.byteIDs {
		sp.byteIDs[i] = -1
	}
	err := sp.initTables(func(id int) []byte {
		piece := sp.pieces[id]
		if b, ok := parseBytePiece(piece); ok && sp.kinds[id] == pieceByte {
			sp.byteIDs[b] = int32(id)
			return []byte{b}
		}
		return []byte(strings.ReplaceAll(piece, spaceMarker, " "))
	})
	if err != nil {
		return err
	}
	if sp.addBOS && sp.bos < 0 {
		return errors.New("inputs should start with BOS but the vocabulary has no BOS token")
	}
	return nil
}

// parseBytePiece recognises the byte-fallback piece "<0xXX>" (upper-case hex, as written by
// SentencePiece and HF) and returns its byte.
func parseBytePiece(piece string) (byte, bool) {
	if len(piece) != 6 || piece[:3] != "<0x" || piece[5] != '>' {
		return 0, false
	}
	hi, okHi := upperHexDigit(piece[3])
	lo, okLo := upperHexDigit(piece[4])
	return hi<<4 | lo, okHi && okLo
}

func upperHexDigit(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// bytePieceName is the byte-fallback piece of b, "<0x0A>" for '\n'.
func bytePieceName(b byte) string {
	return fmt.Sprintf("<0x%02X>", b)
}

// Encode returns the ids of text (no BOS/EOS). It fails only when a character has neither a
// piece, nor byte-fallback pieces for all its bytes, nor an <unk> piece to fall back to.
func (sp *SentencePiece) Encode(text string) ([]int, error) {
	if text == "" {
		return []int{}, nil
	}
	out := make([]int, 0, len(text)/3+1)
	var symbols []int32
	for _, word := range sp.text.prepare(text) {
		var err error
		if symbols, err = sp.appendCharacterPieces(symbols[:0], word); err != nil {
			return nil, err
		}
		out = sp.appendMerged(out, word, symbols)
	}
	return out, nil
}

// appendCharacterPieces appends the initial pieces of word: one per character that has a
// piece, the byte-fallback pieces of the bytes of any other character or invalid byte.
func (sp *SentencePiece) appendCharacterPieces(dst []int32, word string) ([]int32, error) {
	for i := 0; i < len(word); {
		r, size := utf8.DecodeRuneInString(word[i:])
		char := word[i : i+size]
		i += size
		if r != utf8.RuneError || size > 1 {
			if id, ok := sp.pieceIDs[char]; ok {
				dst = append(dst, id)
				continue
			}
		}
		var err error
		dst, err = sp.appendByteFallback(dst, char)
		if err != nil {
			return nil, err
		}
	}
	return dst, nil
}

// appendByteFallback appends the <0xXX> pieces of char's bytes, or <unk> when any is missing
// (fused with a preceding <unk> when fuse_unk is set).
func (sp *SentencePiece) appendByteFallback(dst []int32, char string) ([]int32, error) {
	complete := true
	for j := 0; j < len(char); j++ {
		complete = complete && sp.byteIDs[char[j]] >= 0
	}
	if complete {
		for j := 0; j < len(char); j++ {
			dst = append(dst, sp.byteIDs[char[j]])
		}
		return dst, nil
	}
	if sp.unk < 0 {
		return nil, fmt.Errorf("tokenizer: character %q has no piece, no byte-fallback pieces and the vocabulary has no <unk>", char)
	}
	if sp.fuseUnk && len(dst) > 0 && dst[len(dst)-1] == int32(sp.unk) {
		return dst, nil
	}
	return append(dst, int32(sp.unk)), nil
}

// Decode returns the text of ids: byte-fallback pieces are reassembled into the original
// bytes, "▁" becomes a space, the dummy-prefix space is removed from the start, special
// pieces (<unk>, <s>, </s>, ...) and ids outside the vocabulary are skipped. ids are decoded
// as one sequence: decoding a continuation on its own also loses its leading space, as in HF.
func (sp *SentencePiece) Decode(ids []int) string {
	buf := sp.appendDecoded(nil, ids)
	for n := 0; n < sp.text.stripLeadingSpaces && len(buf) > 0 && buf[0] == ' '; n++ {
		buf = buf[1:]
	}
	return string(buf)
}

// BOS returns the id of <s>, or -1 when there is none.
func (sp *SentencePiece) BOS() int { return sp.bos }

// EOS returns the id of </s>, or -1 when there is none.
func (sp *SentencePiece) EOS() int { return sp.eos }

// AddBOS reports whether model inputs start with BOS.
func (sp *SentencePiece) AddBOS() bool { return sp.addBOS }
