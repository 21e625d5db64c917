package tokenizer

// PieceType classifies a vocabulary entry the way SentencePiece does.
type PieceType uint8

// The piece types.
const (
	PieceNormal  PieceType = PieceType(pieceNormal)  // ordinary text piece
	PieceUnknown PieceType = PieceType(pieceUnknown) // <unk>
	PieceControl PieceType = PieceType(pieceControl) // BOS, EOS, pad and other special tokens
	PieceByte    PieceType = PieceType(pieceByte)    // byte-fallback piece <0xXX>
)

// Vocabulary is a BPE tokenizer's vocabulary as a model file format (GGUF)
// stores it.
type Vocabulary struct {
	// Pieces holds each id's piece as tokenizer.json writes it: "▁" for a
	// space in SentencePiece pieces, GPT-2's byte alphabet in byte-level ones.
	Pieces []string
	Types  []PieceType
	// Scores (SentencePiece only) rank merges, higher first: the llama2.c
	// piece scores, or, for a tokenizer loaded from merges, minus the rank of
	// the merge that makes the piece (pieces no merge makes get the lowest
	// score).
	Scores []float32
	// Merges lists the merges best first.
	Merges [][2]string
	// SplitPatterns (byte-level only) are the pre-tokenizer's regular
	// expressions, in order, as the tokenizer file writes them.
	SplitPatterns []string
}

// vocabulary is the part of a Vocabulary the two BPE tokenizers share.
func (m *bpeModel) vocabulary() Vocabulary {
	v := Vocabulary{Pieces: append([]string(nil), m.pieces...), Types: make([]PieceType, len(m.kinds))}
	for i, k := range m.kinds {
		v.Types[i] = PieceType(k)
	}
	for _, pair := range m.mergeOrder {
		v.Merges = append(v.Merges, [2]string{m.pieces[pair[0]], m.pieces[pair[1]]})
	}
	return v
}

// Vocabulary returns the tokenizer's vocabulary.
func (sp *SentencePiece) Vocabulary() Vocabulary {
	v := sp.vocabulary()
	if sp.scores != nil {
		v.Scores = append([]float32(nil), sp.scores...)
		return v
	}
	v.Scores = make([]float32, len(sp.pieces))
	lowest := -float32(len(sp.mergeOrder))
	for i := range v.Scores {
		v.Scores[i] = lowest
	}
	for rank, pair := range sp.mergeOrder {
		if id, ok := sp.pieceIDs[sp.pieces[pair[0]]+sp.pieces[pair[1]]]; ok && v.Scores[id] == lowest {
			v.Scores[id] = -float32(rank)
		}
	}
	return v
}

// Vocabulary returns the tokenizer's vocabulary and split patterns.
func (b *ByteLevelBPE) Vocabulary() Vocabulary {
	v := b.vocabulary()
	for _, st := range b.stages {
		if st.re != nil {
			v.SplitPatterns = append(v.SplitPatterns, st.pattern)
		}
	}
	return v
}
