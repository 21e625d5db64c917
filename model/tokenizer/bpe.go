package tokenizer

import (
	"errors"
	"fmt"
	"sync"
	"unicode/utf8"
)

// This file holds what both BPE tokenizers (SentencePiece and ByteLevelBPE) share: the
// vocabulary tables and the merge loop, with symbols in a doubly linked list and a binary
// heap of candidate adjacent pairs, so a text of n symbols is merged in O(n log n) instead of
// the O(n^2) rescans of llama2.c.

// bpeModel is a BPE vocabulary with its merge rules.
type bpeModel struct {
	pieces     []string    // piece text by id
	kinds      []pieceKind // by id
	pieceIDs   map[string]int32
	rules      map[uint64]mergeRule
	mergeOrder [][2]int32 // merge pairs best first, as written to tokenizer.json
	// ignoreMerges is HF BPE's ignore_merges: a whole word found in the vocabulary is kept.
	ignoreMerges bool
	decoded      [][]byte  // what Decode emits for each id; nil for skipped (special) pieces
	mergers      sync.Pool // *bpeMerger scratch space
}

// initTables checks the pieces are valid UTF-8 and distinct, and builds pieceIDs and decoded
// (decode gives the bytes of a non-special piece).
func (m *bpeModel) initTables(decode func(id int) []byte) error {
	if len(m.pieces) == 0 {
		return errors.New("empty vocabulary")
	}
	if len(m.kinds) != len(m.pieces) {
		panic("tokenizer: kinds and pieces differ in length")
	}
	m.pieceIDs = make(map[string]int32, len(m.pieces))
	m.decoded = make([][]byte, len(m.pieces))
	for id, piece := range m.pieces {
		if !utf8.ValidString(piece) {
			return fmt.Errorf("piece %d (%q) is not valid UTF-8", id, piece)
		}
		if prev, dup := m.pieceIDs[piece]; dup {
			return fmt.Errorf("pieces %d and %d are both %q", prev, id, piece)
		}
		m.pieceIDs[piece] = int32(id)
		if m.kinds[id] != pieceControl && m.kinds[id] != pieceUnknown {
			m.decoded[id] = decode(id)
		}
	}
	m.mergers.New = func() any { return &bpeMerger{rules: m.rules} }
	return nil
}

// appendMerged merges the initial pieces of one word and appends the result to out. word is
// the word's text, looked up whole first when ignoreMerges is set.
func (m *bpeModel) appendMerged(out []int, word string, symbols []int32) []int {
	if m.ignoreMerges {
		if id, ok := m.pieceIDs[word]; ok {
			return append(out, int(id))
		}
	}
	merger := m.mergers.Get().(*bpeMerger)
	for _, id := range merger.merge(symbols) {
		out = append(out, int(id))
	}
	m.mergers.Put(merger)
	return out
}

// appendDecoded appends the bytes of ids, skipping special pieces and ids out of range.
func (m *bpeModel) appendDecoded(buf []byte, ids []int) []byte {
	for _, id := range ids {
		if id >= 0 && id < len(m.decoded) {
			buf = append(buf, m.decoded[id]...)
		}
	}
	return buf
}

// VocabSize returns the number of pieces.
func (m *bpeModel) VocabSize() int { return len(m.pieces) }

// pairKey packs an adjacent (left, right) id pair into a map key.
func pairKey(left, right int32) uint64 {
	return uint64(uint32(left))<<32 | uint64(uint32(right))
}

// mergeRule says what an adjacent pair merges into and how urgently: lower rank merges first,
// and equal ranks merge leftmost first.
type mergeRule struct {
	result int32
	rank   int32
}

// symbol is one node of the linked list of pieces being merged; id < 0 marks a node that was
// merged into its left neighbour.
type symbol struct {
	id         int32
	prev, next int32
}

// candidate is a possible merge of symbols left and left's successor right, valid only while
// both still hold the ids recorded here and are still adjacent.
type candidate struct {
	rank            int32
	left, right     int32
	leftID, rightID int32
	result          int32
}

// before orders candidates: lower rank first, then the leftmost pair (symbol indices follow
// the text order, and a merged symbol keeps its left index).
func (c candidate) before(o candidate) bool {
	if c.rank != o.rank {
		return c.rank < o.rank
	}
	return c.left < o.left
}

// candidateHeap is a binary min-heap of candidates ordered by before.
type candidateHeap []candidate

func (h *candidateHeap) push(c candidate) {
	*h = append(*h, c)
	s := *h
	i := len(s) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if !s[i].before(s[parent]) {
			break
		}
		s[i], s[parent] = s[parent], s[i]
		i = parent
	}
}

func (h *candidateHeap) pop() candidate {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	i := 0
	for {
		smallest := i
		l, r := 2*i+1, 2*i+2
		if l < len(s) && s[l].before(s[smallest]) {
			smallest = l
		}
		if r < len(s) && s[r].before(s[smallest]) {
			smallest = r
		}
		if smallest == i {
			break
		}
		s[i], s[smallest] = s[smallest], s[i]
		i = smallest
	}
	*h = s
	return top
}

// bpeMerger applies merge rules to a sequence of initial piece ids. Its buffers are reused
// between calls; it is not safe for concurrent use.
type bpeMerger struct {
	rules   map[uint64]mergeRule
	symbols []symbol
	heap    candidateHeap
}

// merge rewrites ids in place by repeatedly merging the best adjacent pair and returns the
// shortened slice.
func (m *bpeMerger) merge(ids []int32) []int32 {
	if len(ids) < 2 {
		return ids
	}
	m.symbols = m.symbols[:0]
	for i, id := range ids {
		m.symbols = append(m.symbols, symbol{id: id, prev: int32(i - 1), next: int32(i + 1)})
	}
	m.symbols[len(m.symbols)-1].next = -1
	m.heap = m.heap[:0]
	for i := 0; i+1 < len(ids); i++ {
		m.pushPair(int32(i), int32(i+1))
	}
	syms := m.symbols
	for len(m.heap) > 0 {
		c := m.heap.pop()
		left, right := &syms[c.left], &syms[c.right]
		if left.id != c.leftID || right.id != c.rightID || left.next != c.right {
			continue // stale: one side was merged away since this pair was queued
		}
		left.id = c.result
		left.next = right.next
		if right.next >= 0 {
			syms[right.next].prev = c.left
		}
		right.id = -1
		if left.prev >= 0 {
			m.pushPair(left.prev, c.left)
		}
		if left.next >= 0 {
			m.pushPair(c.left, left.next)
		}
	}
	out := ids[:0]
	for i := int32(0); i >= 0; i = syms[i].next {
		out = append(out, syms[i].id)
	}
	return out
}

// pushPair queues the merge of adjacent symbols left and right if a rule exists for them.
func (m *bpeMerger) pushPair(left, right int32) {
	l, r := m.symbols[left].id, m.symbols[right].id
	rule, ok := m.rules[pairKey(l, r)]
	if !ok {
		return
	}
	m.heap.push(candidate{rank: rule.rank, left: left, right: right, leftID: l, rightID: r, result: rule.result})
}
