package tokenizer

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
)

// sentencePieceFromHF builds a SentencePiece from a tokenizer.json whose model is BPE with
// byte_fallback: vocab and added_tokens give the pieces, merges give the ranks, and the
// normalizer / pre_tokenizer / decoder must be the SentencePiece ones (Prepend + Replace, or
// the legacy Metaspace; Replace, ByteFallback, Fuse, Strip or Metaspace).
func sentencePieceFromHF(src *hfSource) (*SentencePiece, error) {
	m := src.json.Model
	fail := func(format string, args ...any) error {
		return fmt.Errorf("tokenizer: %s: %s", src.path, fmt.Sprintf(format, args...))
	}
	if m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "" {
		return nil, fail("model.continuing_subword_prefix %q is not supported with byte_fallback", *m.ContinuingSubwordPrefix)
	}
	if m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "" {
		return nil, fail("model.end_of_word_suffix %q is not supported with byte_fallback", *m.EndOfWordSuffix)
	}
	if m.Dropout != nil && *m.Dropout > 0 {
		return nil, fail("model.dropout %v: BPE dropout is not supported", *m.Dropout)
	}
	sp := &SentencePiece{unk: -1, fuseUnk: m.FuseUnk}
	sp.ignoreMerges = m.IgnoreMerges
	if err := sp.fillPiecesFromHF(src); err != nil {
		return nil, err
	}
	var err error
	if sp.text, err = src.sentencePieceTextRules(); err != nil {
		return nil, err
	}
	if m.UnkToken != nil {
		id := -1
		for i, piece := range sp.pieces {
			if piece == *m.UnkToken {
				id = i
			}
		}
		if id < 0 {
			return nil, fail("model.unk_token %q is not in the vocabulary", *m.UnkToken)
		}
		sp.unk = id
		sp.kinds[id] = pieceUnknown
	}
	if err := sp.init(); err != nil {
		return nil, fail("%v", err)
	}
	if sp.rules, sp.mergeOrder, err = parseHFMerges(m.Merges, sp.pieceIDs); err != nil {
		return nil, fail("%v", err)
	}
	st, err := src.resolveSpecialTokens(func(text string) (int, bool) {
		id, ok := sp.pieceIDs[text]
		return int(id), ok
	})
	if err != nil {
		return nil, err
	}
	sp.bos, sp.eos, sp.addBOS = st.bos, st.eos, st.addBOS
	if c := src.config; c != nil && c.ModelMaxLength != nil && *c.ModelMaxLength > 0 && *c.ModelMaxLength < math.MaxInt32 {
		sp.ModelMaxLength = int(*c.ModelMaxLength)
	}
	return sp, nil
}

// fillPiecesFromHF sets pieces and kinds from model.vocab and added_tokens: special added
// tokens are control pieces (skipped by Decode), <0xXX> pieces are byte pieces. Ids must be
// 0..n-1 without gaps.
func (m *bpeModel) fillPiecesFromHF(src *hfSource) error {
	var vocab map[string]int
	if err := json.Unmarshal(src.json.Model.Vocab, &vocab); err != nil {
		return fmt.Errorf("tokenizer: %s: model.vocab: %w", src.path, err)
	}
	size := len(vocab)
	for _, t := range src.json.AddedTokens {
		size = max(size, t.ID+1)
	}
	for piece, id := range vocab {
		if id < 0 {
			return fmt.Errorf("tokenizer: %s: model.vocab: %q has negative id %d", src.path, piece, id)
		}
		size = max(size, id+1)
	}
	m.pieces = make([]string, size)
	m.kinds = make([]pieceKind, size)
	filled := make([]bool, size)
	place := func(id int, piece string, kind pieceKind) error {
		if filled[id] && m.pieces[id] != piece {
			return fmt.Errorf("tokenizer: %s: id %d is both %q and %q", src.path, id, m.pieces[id], piece)
		}
		m.pieces[id], m.kinds[id], filled[id] = piece, kind, true
		return nil
	}
	for piece, id := range vocab {
		kind := pieceNormal
		if _, isByte := parseBytePiece(piece); isByte {
			kind = pieceByte
		}
		if err := place(id, piece, kind); err != nil {
			return err
		}
	}
	for _, t := range src.json.AddedTokens {
		if t.ID < 0 {
			return fmt.Errorf("tokenizer: %s: added token %q has negative id %d", src.path, t.Content, t.ID)
		}
		kind := m.kinds[t.ID]
		if t.Special {
			kind = pieceControl
		}
		if err := place(t.ID, t.Content, kind); err != nil {
			return err
		}
	}
	for id, ok := range filled {
		if !ok {
			return fmt.Errorf("tokenizer: %s: no vocab entry or added token has id %d (of %d)", src.path, id, size)
		}
	}
	return nil
}

// parseHFMerges reads model.merges ("left right" strings or [left, right] pairs); rank is the
// position. A pair listed twice keeps its last rank, as HF does.
func parseHFMerges(raw json.RawMessage, ids map[string]int32) (map[uint64]mergeRule, [][2]int32, error) {
	var entries []json.RawMessage
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &entries); err != nil {
			return nil, nil, fmt.Errorf("model.merges: %w", err)
		}
	}
	rules := make(map[uint64]mergeRule, len(entries))
	order := make([][2]int32, 0, len(entries))
	for rank, entry := range entries {
		left, right, err := parseHFMerge(entry)
		if err != nil {
			return nil, nil, fmt.Errorf("model.merges[%d]: %w", rank, err)
		}
		leftID, okLeft := ids[left]
		rightID, okRight := ids[right]
		resultID, okResult := ids[left+right]
		if !okLeft || !okRight || !okResult {
			return nil, nil, fmt.Errorf("model.merges[%d]: %q + %q: a piece is not in the vocabulary", rank, left, right)
		}
		rules[pairKey(leftID, rightID)] = mergeRule{result: resultID, rank: int32(rank)}
		order = append(order, [2]int32{leftID, rightID})
	}
	return rules, order, nil
}

// parseHFMerge reads one merge, "left right" or ["left", "right"].
func parseHFMerge(entry json.RawMessage) (left, right string, err error) {
	var line string
	if json.Unmarshal(entry, &line) == nil {
		parts := strings.Split(line, " ")
		if len(parts) != 2 {
			return "", "", fmt.Errorf("%q is not two space-separated pieces", line)
		}
		return parts[0], parts[1], nil
	}
	var pair []string
	if err := json.Unmarshal(entry, &pair); err != nil || len(pair) != 2 {
		return "", "", fmt.Errorf("%s is neither \"left right\" nor [left, right]", entry)
	}
	return pair[0], pair[1], nil
}

// sentencePieceTextRules interprets the normalizer, pre_tokenizer and decoder of a
// byte-fallback BPE file; anything it cannot reproduce exactly is an error.
func (src *hfSource) sentencePieceTextRules() (textRules, error) {
	var rules textRules
	unsupported := func(field string, c *hfComponent) error {
		return fmt.Errorf("tokenizer: %s: %s of type %q is not supported for a byte-fallback BPE tokenizer", src.path, field, c.Type)
	}
	normalizer, err := src.parseComponent("normalizer", src.json.Normalizer)
	if err != nil {
		return rules, err
	}
	for _, c := range normalizer.leaves() {
		switch {
		case c.Type == "Prepend" && c.Prepend != "":
			rules.normalize = append(rules.normalize, normalizeStep{prepend: c.Prepend})
		case c.Type == "Replace" && c.Pattern != nil && c.Pattern.String != nil && *c.Pattern.String != "":
			rules.normalize = append(rules.normalize, normalizeStep{from: *c.Pattern.String, to: c.Content})
		default:
			return rules, unsupported("normalizer", c)
		}
	}

	pre, err := src.parseComponent("pre_tokenizer", src.json.PreTokenizer)
	if err != nil {
		return rules, err
	}
	for i, c := range pre.leaves() {
		if c.Type != "Metaspace" || i > 0 {
			return rules, unsupported("pre_tokenizer", c)
		}
		rules.metaspace = &metaspaceRule{
			replacement:  metaspaceReplacement(c),
			prependFirst: metaspacePrepends(c),
			split:        c.Split == nil || *c.Split,
		}
	}

	decoder, err := src.parseComponent("decoder", src.json.Decoder)
	if err != nil {
		return rules, err
	}
	for _, c := range decoder.leaves() {
		switch c.Type {
		case "ByteFallback", "Fuse":
		case "Replace":
			if c.Pattern == nil || c.Pattern.String == nil || *c.Pattern.String != spaceMarker || c.Content != " " {
				return rules, fmt.Errorf("tokenizer: %s: decoder Replace must turn %q into \" \"", src.path, spaceMarker)
			}
		case "Strip":
			if c.Content != " " || c.Stop != 0 {
				return rules, fmt.Errorf("tokenizer: %s: decoder Strip must strip leading spaces only", src.path)
			}
			rules.stripLeadingSpaces += c.Start
		case "Metaspace":
			if metaspaceReplacement(c) != spaceMarker {
				return rules, fmt.Errorf("tokenizer: %s: decoder Metaspace must use %q", src.path, spaceMarker)
			}
			if metaspacePrepends(c) {
				rules.stripLeadingSpaces++
			}
		default:
			return rules, unsupported("decoder", c)
		}
	}
	return rules, nil
}

// metaspaceReplacement is a Metaspace component's replacement, "▁" by default.
func metaspaceReplacement(c *hfComponent) string {
	if c.Replacement == "" {
		return spaceMarker
	}
	return c.Replacement
}

// metaspacePrepends reports whether a Metaspace component adds the dummy prefix: legacy
// add_prefix_space, or a prepend_scheme other than "never" (HF's default is "always").
func metaspacePrepends(c *hfComponent) bool {
	if c.PrependScheme != "" {
		return c.PrependScheme != "never"
	}
	return c.AddPrefixSpace == nil || *c.AddPrefixSpace
}
