package tokenizer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"unicode/utf8"
)

// Special pieces of SentencePiece vocabularies.
const (
	unkPiece = "<unk>"
	bosPiece = "<s>"
	eosPiece = "</s>"
)

// LoadLlama2C reads a llama2.c tokenizer file (tok512.bin, tokenizer.bin): a little-endian
// int32 max_token_length, then for each token a float32 score, an int32 byte length and the
// bytes. llama2.c writes spaces instead of "▁" and "\n<s>\n" / "\n</s>\n" for BOS/EOS; the
// pieces are stored here in SentencePiece form. Merges follow the scores: the adjacent pair
// whose concatenation is a piece with the highest score merges first. The file does not store
// the vocabulary size, so a file cut exactly between two records cannot be told from a smaller
// vocabulary: callers should compare VocabSize with the model's.
func LoadLlama2C(path string) (*SentencePiece, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	sp, err := parseLlama2C(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: llama2.c tokenizer %s: %w", path, err)
	}
	return sp, nil
}

// parseLlama2C decodes the contents of a llama2.c tokenizer file.
func parseLlama2C(data []byte) (*SentencePiece, error) {
	const headerSize, recordHeaderSize = 4, 8
	if len(data) < headerSize {
		return nil, fmt.Errorf("truncated: %d bytes, the header needs %d", len(data), headerSize)
	}
	maxTokenLength := int64(int32(binary.LittleEndian.Uint32(data)))
	if maxTokenLength <= 0 {
		return nil, fmt.Errorf("max_token_length %d is not positive", maxTokenLength)
	}
	sp := &SentencePiece{unk: -1, bos: -1, eos: -1, addBOS: true, fuseUnk: true, text: sentencePieceRules()}
	for off := headerSize; off < len(data); {
		id := len(sp.pieces)
		if len(data)-off < recordHeaderSize {
			return nil, fmt.Errorf("truncated: token %d at offset %d needs %d header bytes, %d left", id, off, recordHeaderSize, len(data)-off)
		}
		score := math.Float32frombits(binary.LittleEndian.Uint32(data[off:]))
		length := int64(int32(binary.LittleEndian.Uint32(data[off+4:])))
		off += recordHeaderSize
		if length < 0 || length > maxTokenLength {
			return nil, fmt.Errorf("token %d at offset %d: length %d outside 0..max_token_length %d", id, off-recordHeaderSize, length, maxTokenLength)
		}
		if int64(len(data)-off) < length {
			return nil, fmt.Errorf("truncated: token %d at offset %d needs %d bytes, %d left", id, off, length, len(data)-off)
		}
		if math.IsNaN(float64(score)) || math.IsInf(float64(score), 0) {
			return nil, fmt.Errorf("token %d has score %v", id, score)
		}
		raw := string(data[off : off+int(length)])
		off += int(length)
		if !utf8.ValidString(raw) {
			return nil, fmt.Errorf("token %d (%q) is not valid UTF-8", id, raw)
		}
		piece, kind := llama2CPiece(raw)
		switch piece {
		case unkPiece:
			sp.unk = id
		case bosPiece:
			sp.bos = id
		case eosPiece:
			sp.eos = id
		}
		sp.pieces = append(sp.pieces, piece)
		sp.kinds = append(sp.kinds, kind)
		sp.scores = append(sp.scores, score)
	}
	if len(sp.pieces) == 0 {
		return nil, errors.New("no tokens after the header")
	}
	if err := sp.init(); err != nil {
		return nil, err
	}
	sp.rules, sp.mergeOrder = rulesFromScores(sp.pieces, sp.kinds, sp.scores, sp.pieceIDs)
	return sp, nil
}

// llama2CPiece turns a llama2.c token string back into its SentencePiece piece and kind.
func llama2CPiece(raw string) (string, pieceKind) {
	switch trimmed := strings.TrimSpace(raw); trimmed {
	case unkPiece:
		return unkPiece, pieceUnknown
	case bosPiece, eosPiece:
		return trimmed, pieceControl
	}
	if _, ok := parseBytePiece(raw); ok {
		return raw, pieceByte
	}
	return strings.ReplaceAll(raw, " ", spaceMarker), pieceNormal
}

// rulesFromScores derives BPE merges from piece scores: every split of a normal piece into two
// pieces is a merge into it, ranked by the piece's score (higher first, equal scores share a
// rank so that the leftmost pair wins, as in llama2.c). The order returned for tokenizer.json
// is HF's SentencePieceExtractor order: score descending, ties by merged piece id, then by the
// (left, right) ids.
func rulesFromScores(pieces []string, kinds []pieceKind, scores []float32, ids map[string]int32) (map[uint64]mergeRule, [][2]int32) {
	type scoredMerge struct {
		pair   [2]int32
		result int32
		score  float32
	}
	var merges []scoredMerge
	for result, piece := range pieces {
		if kinds[result] != pieceNormal {
			continue
		}
		var local []scoredMerge
		for i := range piece { // i runs over the rune starts
			if i == 0 {
				continue
			}
			left, okLeft := ids[piece[:i]]
			right, okRight := ids[piece[i:]]
			if okLeft && okRight {
				local = append(local, scoredMerge{pair: [2]int32{left, right}, result: int32(result), score: scores[result]})
			}
		}
		sort.Slice(local, func(a, b int) bool {
			if local[a].pair[0] != local[b].pair[0] {
				return local[a].pair[0] < local[b].pair[0]
			}
			return local[a].pair[1] < local[b].pair[1]
		})
		merges = append(merges, local...)
	}
	sort.SliceStable(merges, func(a, b int) bool { return merges[a].score > merges[b].score })

	rules := make(map[uint64]mergeRule, len(merges))
	order := make([][2]int32, len(merges))
	rank := int32(-1)
	for i, m := range merges {
		if i == 0 || m.score != merges[i-1].score {
			rank++
		}
		rules[pairKey(m.pair[0], m.pair[1])] = mergeRule{result: m.result, rank: rank}
		order[i] = m.pair
	}
	return rules, order
}
