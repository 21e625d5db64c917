package tokenizer

import (
	"fmt"
	"math"
	"strings"

	"github.com/salr-go/salr/model/gguf"
)

// The token types of tokenizer.ggml.token_type.
const (
	ggufTokenNormal      = 1
	ggufTokenUnknown     = 2
	ggufTokenControl     = 3
	ggufTokenUserDefined = 4
	ggufTokenUnused      = 5
	ggufTokenByte        = 6
)

// LoadGGUF reads the tokenizer a llama.cpp GGUF file embeds in its
// tokenizer.ggml.* metadata. Model "llama" is a SentencePiece BPE built
// from tokens, scores (the merge priority, as in a llama2.c file) and
// token_type; model "gpt2" is a byte-level BPE built from tokens and merges,
// with the pre-tokenizer tokenizer.ggml.pre names (default/gpt2, llama-bpe,
// qwen2). bos_token_id, eos_token_id, unknown_token_id, add_bos_token and
// add_space_prefix are honoured; a SentencePiece's ModelMaxLength is the
// model's {arch}.context_length. Errors name the file and the key.
func LoadGGUF(path string) (Tokenizer, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	defer f.Close()
	g := &ggufTokenizerKeys{f: f}
	model := g.str("tokenizer.ggml.model", true)
	tokens := ggufArray[string](g, "tokenizer.ggml.tokens", true)
	if g.err != nil {
		return nil, g.err
	}
	if len(tokens) == 0 {
		return nil, g.keyError("tokenizer.ggml.tokens", "no tokens")
	}
	types := ggufArray[int32](g, "tokenizer.ggml.token_type", false)
	if types != nil && len(types) != len(tokens) {
		return nil, g.keyError("tokenizer.ggml.token_type", "%d entries for %d tokens", len(types), len(tokens))
	}
	var tok Tokenizer
	switch model {
	case "llama":
		tok, err = g.sentencePiece(tokens, types)
	case "gpt2":
		tok, err = g.byteLevel(tokens, types)
	default:
		return nil, g.keyError("tokenizer.ggml.model", "%q is not supported (want llama or gpt2)", model)
	}
	if err != nil {
		return nil, err
	}
	return tok, nil
}

// ggufTokenizerKeys reads tokenizer keys, keeping the first error.
type ggufTokenizerKeys struct {
	f   *gguf.File
	err error
}

func (g *ggufTokenizerKeys) keyError(key, format string, args ...any) error {
	return fmt.Errorf("tokenizer: %s: metadata key %q: %s", g.f.Name(), key, fmt.Sprintf(format, args...))
}

func (g *ggufTokenizerKeys) str(key string, required bool) string {
	v, ok, err := g.f.String(key)
	switch {
	case g.err != nil:
	case err != nil:
		g.err = fmt.Errorf("tokenizer: %w", err)
	case !ok && required:
		g.err = fmt.Errorf("tokenizer: %s: missing metadata key %q", g.f.Name(), key)
	}
	return v
}

// id reads a token id key; -1 when absent. An id past the vocabulary is an
// error.
func (g *ggufTokenizerKeys) id(key string, vocab int) int {
	v, ok, err := g.f.Uint(key)
	switch {
	case g.err != nil || !ok:
		return -1
	case err != nil:
		g.err = fmt.Errorf("tokenizer: %w", err)
	case v >= uint64(vocab):
		g.err = g.keyError(key, "id %d is outside the %d tokens", v, vocab)
	default:
		return int(v)
	}
	return -1
}

func (g *ggufTokenizerKeys) flag(key string, def bool) bool {
	v, ok, err := g.f.Bool(key)
	switch {
	case g.err != nil || !ok:
		return def
	case err != nil:
		g.err = fmt.Errorf("tokenizer: %w", err)
		return def
	}
	return v
}

// ggufArray reads an array key of element type T; nil when absent and not
// required.
func ggufArray[T any](g *ggufTokenizerKeys, key string, required bool) []T {
	if g.err != nil {
		return nil
	}
	v, ok := g.f.Lookup(key)
	if !ok {
		if required {
			g.err = fmt.Errorf("tokenizer: %s: missing metadata key %q", g.f.Name(), key)
		}
		return nil
	}
	a, isT := v.([]T)
	if !isT {
		var zero T
		g.err = g.keyError(key, "want an array of %T, got %T", zero, v)
	}
	return a
}

// sentencePiece builds tokenizer model "llama".
func (g *ggufTokenizerKeys) sentencePiece(tokens []string, types []int32) (Tokenizer, error) {
	scores := ggufArray[float32](g, "tokenizer.ggml.scores", true)
	if g.err != nil {
		return nil, g.err
	}
	if len(scores) != len(tokens) {
		return nil, g.keyError("tokenizer.ggml.scores", "%d entries for %d tokens", len(scores), len(tokens))
	}
	sp := &SentencePiece{unk: -1, fuseUnk: true, text: sentencePieceRules()}
	sp.pieces = tokens
	sp.kinds = make([]pieceKind, len(tokens))
	sp.scores = scores
	for i, piece := range tokens {
		if math.IsNaN(float64(scores[i])) || math.IsInf(float64(scores[i]), 0) {
			return nil, g.keyError("tokenizer.ggml.scores", "token %d has score %v", i, scores[i])
		}
		kind, err := g.kind(i, piece, types)
		if err != nil {
			return nil, err
		}
		sp.kinds[i] = kind
		if kind == pieceUnknown && sp.unk < 0 {
			sp.unk = i
		}
	}
	if id := g.id("tokenizer.ggml.unknown_token_id", len(tokens)); id >= 0 {
		sp.unk = id
		sp.kinds[id] = pieceUnknown
	}
	sp.bos = g.id("tokenizer.ggml.bos_token_id", len(tokens))
	sp.eos = g.id("tokenizer.ggml.eos_token_id", len(tokens))
	sp.addBOS = g.flag("tokenizer.ggml.add_bos_token", true)
	if !g.flag("tokenizer.ggml.add_space_prefix", true) {
		sp.text = textRules{normalize: []normalizeStep{{from: " ", to: spaceMarker}}}
	}
	if g.err != nil {
		return nil, g.err
	}
	if arch, _, _ := g.f.String("general.architecture"); arch != "" {
		if n, ok, err := g.f.Uint(arch + ".context_length"); err == nil && ok && n < math.MaxInt32 {
			sp.ModelMaxLength = int(n)
		}
	}
	if err := sp.init(); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", g.f.Name(), err)
	}
	sp.rules, sp.mergeOrder = rulesFromScores(sp.pieces, sp.kinds, sp.scores, sp.pieceIDs)
	return sp, nil
}

// kind is the piece kind of token i from token_type, or, without it, from
// the piece itself as llama2.c files are read.
func (g *ggufTokenizerKeys) kind(i int, piece string, types []int32) (pieceKind, error) {
	if types == nil {
		_, kind := llama2CPiece(piece)
		return kind, nil
	}
	switch types[i] {
	case ggufTokenNormal, ggufTokenUserDefined:
		return pieceNormal, nil
	case ggufTokenUnknown:
		return pieceUnknown, nil
	case ggufTokenControl, ggufTokenUnused:
		return pieceControl, nil
	case ggufTokenByte:
		if _, ok := parseBytePiece(piece); !ok {
			return 0, g.keyError("tokenizer.ggml.token_type", "token %d (%q) has type byte but is not <0xXX>", i, piece)
		}
		return pieceByte, nil
	}
	return 0, g.keyError("tokenizer.ggml.token_type", "token %d has unknown type %d", i, types[i])
}

// Pre-tokenizer patterns of the byte-level models tokenizer.ggml.pre names
// (as in their HF tokenizer.json files).
const (
	llama3SplitPattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwen2SplitPattern  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// byteLevel builds tokenizer model "gpt2".
func (g *ggufTokenizerKeys) byteLevel(tokens []string, types []int32) (Tokenizer, error) {
	merges := ggufArray[string](g, "tokenizer.ggml.merges", true)
	pre := g.str("tokenizer.ggml.pre", false)
	if g.err != nil {
		return nil, g.err
	}
	b := &ByteLevelBPE{path: g.f.Name(), unk: -1}
	b.pieces = tokens
	b.kinds = make([]pieceKind, len(tokens))
	var added []hfAddedToken
	for i := range tokens {
		if types == nil {
			continue
		}
		switch types[i] {
		case ggufTokenControl:
			b.kinds[i] = pieceControl
			added = append(added, hfAddedToken{ID: i, Content: tokens[i], Special: true})
		case ggufTokenUserDefined:
			added = append(added, hfAddedToken{ID: i, Content: tokens[i]})
		}
	}
	var err error
	var stage splitStage
	switch pre {
	case "", "default", "gpt2":
		stage, err = splitStageFor(gpt2SplitPattern, false)
		b.stages = []splitStage{stage}
	case "llama-bpe", "llama3", "smaug-bpe":
		stage, err = splitStageFor(llama3SplitPattern, false)
		b.stages = []splitStage{stage}
	case "qwen2":
		stage, err = splitStageFor(qwen2SplitPattern, false)
		b.stages = []splitStage{stage}
		b.nfc = true
	default:
		return nil, g.keyError("tokenizer.ggml.pre", "pre-tokenizer %q is not supported (want default, gpt2, llama-bpe or qwen2)", pre)
	}
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", g.f.Name(), err)
	}
	if err := b.initTables(b.decodePiece); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", g.f.Name(), err)
	}
	b.rules = make(map[uint64]mergeRule, len(merges))
	for rank, m := range merges {
		left, right, ok := strings.Cut(m, " ")
		l, okL := b.pieceIDs[left]
		r, okR := b.pieceIDs[right]
		res, okRes := b.pieceIDs[left+right]
		if !ok || strings.Contains(right, " ") || !okL || !okR || !okRes {
			return nil, g.keyError("tokenizer.ggml.merges", "merge %d (%q) is not two pieces of the vocabulary whose concatenation is one", rank, m)
		}
		b.rules[pairKey(l, r)] = mergeRule{result: res, rank: int32(rank)}
		b.mergeOrder = append(b.mergeOrder, [2]int32{l, r})
	}
	for i, r := range byteAlphabet {
		b.byteSymbol[i] = -1
		if id, ok := b.pieceIDs[string(r)]; ok {
			b.byteSymbol[i] = id
		}
	}
	b.added = newAddedTokenMatcher(added)
	b.unk = g.id("tokenizer.ggml.unknown_token_id", len(tokens))
	b.special.bos = g.id("tokenizer.ggml.bos_token_id", len(tokens))
	b.special.eos = g.id("tokenizer.ggml.eos_token_id", len(tokens))
	b.special.addBOS = g.flag("tokenizer.ggml.add_bos_token", false)
	if g.err != nil {
		return nil, g.err
	}
	if b.special.addBOS && b.special.bos < 0 {
		return nil, g.keyError("tokenizer.ggml.add_bos_token", "true but there is no tokenizer.ggml.bos_token_id")
	}
	return b, nil
}
