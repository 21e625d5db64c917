package tokenizer

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// ByteLevelBPE is an HF byte-level BPE tokenizer (GPT-2, Llama-3, Qwen2): text is split by
// the pre-tokenizer's regular expressions, each piece's UTF-8 bytes are mapped to GPT-2's
// byte alphabet, and the pieces are merged by merge rank with the same O(n log n) merge loop
// as SentencePiece. Added tokens written in the text ("<|endoftext|>", "<|im_start|>") are
// matched first, leftmost-longest, and become their ids, as in HF.
//
// It replaces sugarme/tokenizer v0.3.0 for these files because sugarme gets them wrong:
// its BPE breaks ties between equal-rank pairs in arbitrary order instead of leftmost first
// (GPT-2 " 1000" gives [838, 405] instead of [8576]), its GPT-2 split pattern lacks the
// whitespace alternatives `\s+(?!\S)|\s+` ("\n\nx" gives [628, 87] instead of [198, 198, 87]),
// and it drops added tokens written in the text.
//
// Decode returns the raw bytes of the tokens even when they are not valid UTF-8 (HF would
// substitute U+FFFD), so decoding a whole encoding gives back the input exactly.
// A ByteLevelBPE is safe for concurrent use once loaded.
type ByteLevelBPE struct {
	bpeModel
	path       string
	nfc        bool // NFC normalizer
	stages     []splitStage
	byteSymbol [256]int32 // id of the piece of each byte's alphabet character, or -1
	unk        int
	fuseUnk    bool
	added      addedTokenMatcher
	special    specialTokens
}

// byteAlphabet is GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the
// others for the characters from U+0100 on, in byte order.
var byteAlphabet = func() [256]rune {
	var table [256]rune
	next := rune(256)
	for b := range 256 {
		if b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE {
			table[b] = rune(b)
		} else {
			table[b] = next
			next++
		}
	}
	return table
}()

// alphabetByte inverts byteAlphabet.
var alphabetByte = func() map[rune]byte {
	inverse := make(map[rune]byte, 256)
	for b, r := range byteAlphabet {
		inverse[r] = byte(b)
	}
	return inverse
}()

// splitStage is one regular-expression pre-tokenizer (HF Split with Isolated behaviour, or
// ByteLevel with use_regex): each match and each gap between matches becomes a piece.
type splitStage struct {
	prefixSpace bool           // ByteLevel add_prefix_space: prepend " " unless present
	pattern     string         // the pattern as written in tokenizer.json (Oniguruma syntax); "" for no split
	re          *regexp.Regexp // nil: no split
	// wsRunGroup is the subexpression that replaced `\s+(?!\S)` (Go has no look-ahead), or
	// -1. When it matched a run of two or more spaces followed by a non-space, the last
	// space is given back, which is what the look-ahead achieves.
	wsRunGroup int
}

// gpt2SplitPattern is the pre-tokenizer pattern of GPT-2, used by ByteLevel with use_regex.
const gpt2SplitPattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

// whitespaceClass is Unicode White_Space, what \s means to HF's regex engine (Oniguruma); Go's
// \s is ASCII only and lacks \v.
const whitespaceClass = `\t\n\v\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}`

// wsRunLookahead is the only look-around the translation supports.
const wsRunLookahead = `\s+(?!\S)`

// newSplitStage compiles an HF (Oniguruma) split pattern into a Go regexp: `\s+(?!\S)`
// becomes a marked group, \s and \S become Unicode White_Space classes, and any other
// look-around is an error.
func newSplitStage(pattern string, prefixSpace bool) (splitStage, error) {
	const group = "wsrun"
	translated := strings.Replace(pattern, wsRunLookahead, `(?P<`+group+`>\s+)`, 1)
	for _, lookaround := range []string{"(?=", "(?!", "(?<=", "(?<!"} {
		if strings.Contains(translated, lookaround) {
			return splitStage{}, fmt.Errorf("pattern %q: look-around %s other than %s is not supported", pattern, lookaround, wsRunLookahead)
		}
	}
	translated, err := expandWhitespaceClasses(translated)
	if err != nil {
		return splitStage{}, fmt.Errorf("pattern %q: %w", pattern, err)
	}
	re, err := regexp.Compile(translated)
	if err != nil {
		return splitStage{}, fmt.Errorf("pattern %q: %w", pattern, err)
	}
	return splitStage{prefixSpace: prefixSpace, pattern: pattern, re: re, wsRunGroup: re.SubexpIndex(group)}, nil
}

// expandWhitespaceClasses rewrites \s and \S of a pattern into explicit White_Space classes,
// inside and outside bracket expressions.
func expandWhitespaceClasses(pattern string) (string, error) {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		switch {
		case c == '\\' && i+1 < len(pattern):
			next := pattern[i+1]
			i++
			switch {
			case next == 's' && inClass:
				b.WriteString(whitespaceClass)
			case next == 's':
				b.WriteString("[" + whitespaceClass + "]")
			case next == 'S' && inClass:
				return "", fmt.Errorf(`\S inside a bracket expression is not supported`)
			case next == 'S':
				b.WriteString("[^" + whitespaceClass + "]")
			default:
				b.WriteByte(c)
				b.WriteByte(next)
			}
		case c == '[' && !inClass:
			inClass = true
			b.WriteByte(c)
			// A ']' right after '[' or '[^' is a literal, not the end of the class.
			if strings.HasPrefix(pattern[i+1:], "^") {
				b.WriteByte('^')
				i++
			}
			if strings.HasPrefix(pattern[i+1:], "]") {
				b.WriteByte(']')
				i++
			}
		case c == ']' && inClass:
			inClass = false
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// apply splits every piece; an empty match is skipped over as part of a gap.
func (st *splitStage) apply(pieces []string) []string {
	var out []string
	for _, piece := range pieces {
		if st.prefixSpace && !strings.HasPrefix(piece, " ") {
			piece = " " + piece
		}
		if st.re == nil {
			out = append(out, piece)
			continue
		}
		gapStart, pos := 0, 0
		for pos < len(piece) {
			loc := st.re.FindStringSubmatchIndex(piece[pos:])
			if loc == nil {
				break
			}
			start, end := pos+loc[0], pos+loc[1]
			if end == start {
				_, size := utf8.DecodeRuneInString(piece[start:])
				pos = start + size
				continue
			}
			if g := st.wsRunGroup; g >= 0 && loc[2*g] >= 0 && end < len(piece) && !isWhiteSpaceAt(piece, end) {
				if _, last := utf8.DecodeLastRuneInString(piece[start:end]); end-last > start {
					end -= last
				}
			}
			if start > gapStart {
				out = append(out, piece[gapStart:start])
			}
			out = append(out, piece[start:end])
			gapStart, pos = end, end
		}
		if gapStart < len(piece) {
			out = append(out, piece[gapStart:])
		}
	}
	return out
}

// isWhiteSpaceAt reports whether the character at s[i] is Unicode White_Space.
func isWhiteSpaceAt(s string, i int) bool {
	r, _ := utf8.DecodeRuneInString(s[i:])
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
		return true
	}
	return r >= 0x2000 && r <= 0x200A
}

// byteLevelFromHF builds a ByteLevelBPE from a tokenizer.json whose model is BPE without byte
// fallback and whose pre-tokenizer is (or ends with) ByteLevel.
func byteLevelFromHF(src *hfSource) (*ByteLevelBPE, error) {
	m := src.json.Model
	fail := func(format string, args ...any) error {
		return fmt.Errorf("tokenizer: %s: %s", src.path, fmt.Sprintf(format, args...))
	}
	if m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "" ||
		m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "" {
		return nil, fail("continuing_subword_prefix / end_of_word_suffix are not supported for byte-level BPE")
	}
	if m.Dropout != nil && *m.Dropout > 0 {
		return nil, fail("model.dropout %v: BPE dropout is not supported", *m.Dropout)
	}
	b := &ByteLevelBPE{path: src.path, unk: -1, fuseUnk: m.FuseUnk}
	b.ignoreMerges = m.IgnoreMerges
	if err := b.fillPiecesFromHF(src); err != nil {
		return nil, err
	}
	if err := b.readPipeline(src); err != nil {
		return nil, err
	}
	if err := b.initTables(b.decodePiece); err != nil {
		return nil, fail("%v", err)
	}
	var err error
	if b.rules, b.mergeOrder, err = parseHFMerges(m.Merges, b.pieceIDs); err != nil {
		return nil, fail("%v", err)
	}
	if m.UnkToken != nil {
		id, ok := b.pieceIDs[*m.UnkToken]
		if !ok {
			return nil, fail("model.unk_token %q is not in the vocabulary", *m.UnkToken)
		}
		b.unk = int(id)
	}
	for i, r := range byteAlphabet {
		b.byteSymbol[i] = -1
		if id, ok := b.pieceIDs[string(r)]; ok {
			b.byteSymbol[i] = id
		}
	}
	b.added = newAddedTokenMatcher(src.json.AddedTokens)
	b.special, err = src.resolveSpecialTokens(func(text string) (int, bool) {
		id, ok := b.pieceIDs[text]
		return int(id), ok
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// hasByteLevelPreTokenizer reports whether the pre-tokenizer is ByteLevel or a Sequence
// holding one: the mark of a byte-level BPE file.
func (src *hfSource) hasByteLevelPreTokenizer() bool {
	pre, err := src.parseComponent("pre_tokenizer", src.json.PreTokenizer)
	if err != nil {
		return false
	}
	for _, c := range pre.leaves() {
		if c.Type == "ByteLevel" {
			return true
		}
	}
	return false
}

// readPipeline interprets the normalizer, pre_tokenizer and decoder; anything it cannot
// reproduce exactly is an error.
func (b *ByteLevelBPE) readPipeline(src *hfSource) error {
	unsupported := func(field string, c *hfComponent) error {
		return fmt.Errorf("tokenizer: %s: %s of type %q is not supported for a byte-level BPE tokenizer", src.path, field, c.Type)
	}
	normalizer, err := src.parseComponent("normalizer", src.json.Normalizer)
	if err != nil {
		return err
	}
	for _, c := range normalizer.leaves() {
		if c.Type != "NFC" {
			return unsupported("normalizer", c)
		}
		b.nfc = true
	}

	pre, err := src.parseComponent("pre_tokenizer", src.json.PreTokenizer)
	if err != nil {
		return err
	}
	for _, c := range pre.leaves() {
		var stage splitStage
		switch c.Type {
		case "ByteLevel":
			pattern := ""
			if c.UseRegex == nil || *c.UseRegex {
				pattern = gpt2SplitPattern
			}
			stage, err = splitStageFor(pattern, c.AddPrefixSpace != nil && *c.AddPrefixSpace)
		case "Split":
			if c.Behavior != "Isolated" || c.Invert {
				return fmt.Errorf("tokenizer: %s: pre_tokenizer Split with behavior %q invert %v is not supported (want Isolated, false)", src.path, c.Behavior, c.Invert)
			}
			switch {
			case c.Pattern != nil && c.Pattern.Regex != nil:
				stage, err = splitStageFor(*c.Pattern.Regex, false)
			case c.Pattern != nil && c.Pattern.String != nil:
				stage, err = splitStageFor(regexp.QuoteMeta(*c.Pattern.String), false)
			default:
				return fmt.Errorf("tokenizer: %s: pre_tokenizer Split has no pattern", src.path)
			}
		default:
			return unsupported("pre_tokenizer", c)
		}
		if err != nil {
			return fmt.Errorf("tokenizer: %s: pre_tokenizer: %w", src.path, err)
		}
		b.stages = append(b.stages, stage)
	}

	decoder, err := src.parseComponent("decoder", src.json.Decoder)
	if err != nil {
		return err
	}
	if decoder == nil || decoder.Type != "ByteLevel" {
		if decoder == nil {
			decoder = &hfComponent{Type: "null"}
		}
		return unsupported("decoder", decoder)
	}
	return nil
}

// splitStageFor is newSplitStage, with an empty pattern meaning no split.
func splitStageFor(pattern string, prefixSpace bool) (splitStage, error) {
	if pattern == "" {
		return splitStage{prefixSpace: prefixSpace, wsRunGroup: -1}, nil
	}
	return newSplitStage(pattern, prefixSpace)
}

// decodePiece maps a piece's alphabet characters back to bytes; a piece with other characters
// (an added token) decodes to its own text, as in HF's ByteLevel decoder.
func (b *ByteLevelBPE) decodePiece(id int) []byte {
	piece := b.pieces[id]
	out := make([]byte, 0, len(piece))
	for _, r := range piece {
		c, ok := alphabetByte[r]
		if !ok {
			return []byte(piece)
		}
		out = append(out, c)
	}
	return out
}

// Encode returns the ids of text without special tokens added; added tokens written in the
// text become their ids.
func (b *ByteLevelBPE) Encode(text string) ([]int, error) {
	out := make([]int, 0, len(text)/3+1)
	var symbols []int32
	var alphabetWord []byte
	for _, seg := range b.added.split(text) {
		if seg.id >= 0 {
			out = append(out, seg.id)
			continue
		}
		s := seg.text
		if b.nfc {
			s = norm.NFC.String(s)
		}
		words := []string{s}
		for i := range b.stages {
			words = b.stages[i].apply(words)
		}
		for _, word := range words {
			symbols = symbols[:0]
			alphabetWord = alphabetWord[:0]
			for i := 0; i < len(word); i++ {
				id := b.byteSymbol[word[i]]
				switch {
				case id >= 0:
				case b.unk < 0:
					return nil, fmt.Errorf("tokenizer: %s: byte 0x%02X has no piece and there is no unk_token", b.path, word[i])
				case b.fuseUnk && len(symbols) > 0 && symbols[len(symbols)-1] == int32(b.unk):
					continue
				default:
					id = int32(b.unk)
				}
				symbols = append(symbols, id)
				if b.ignoreMerges {
					alphabetWord = utf8.AppendRune(alphabetWord, byteAlphabet[word[i]])
				}
			}
			out = b.appendMerged(out, string(alphabetWord), symbols)
		}
	}
	return out, nil
}

// Decode returns the bytes of ids as a string, skipping special tokens and ids outside the
// vocabulary.
func (b *ByteLevelBPE) Decode(ids []int) string {
	return string(b.appendDecoded(nil, ids))
}

// BOS returns the beginning-of-sequence id, or -1.
func (b *ByteLevelBPE) BOS() int { return b.special.bos }

// EOS returns the end-of-sequence id, or -1.
func (b *ByteLevelBPE) EOS() int { return b.special.eos }

// AddBOS reports whether model inputs start with BOS.
func (b *ByteLevelBPE) AddBOS() bool { return b.special.addBOS }
