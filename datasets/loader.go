package datasets

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"sort"
)

// Batch is one fixed-shape batch for next-token training, B rows of T
// positions, row-major: position t of row b is at index b*T+t.
type Batch struct {
	// Inputs are tokens[0:T] of each row's sequence, padded.
	Inputs []int
	// Targets are tokens[1:T+1], padded: Targets[b*T+t] is the token to
	// predict after reading Inputs[b*T : b*T+t+1].
	Targets []int
	// Mask is 1 where the target counts in the loss (a response token or the
	// EOS), 0 for prompt and padding positions.
	Mask []float32
	// Positions is nil unless the loader packs: then it holds each input's
	// position within its example (0 where an example starts; a row's
	// padding tail counts from 0 as one more example), for RoPE and the
	// block-diagonal attention mask (see kernels.SelfAttention.Positions).
	Positions []int
	// Examples is the number of sequences in the batch (B unless packing).
	Examples int
	// Tokens counts the non-padding input positions (for throughput).
	Tokens int
	// LossTokens counts the positions with Mask 1.
	LossTokens int
	// Indices are the sequence indices of the examples: one per row in row
	// order, or when packing in the order they were taken from the epoch.
	Indices []int
}

// LoaderState is the loader's position: the next row comes from position
// Cursor of epoch Epoch's shuffled order. Save it with a checkpoint and pass
// it to Restore to resume with exactly the batches an uninterrupted run gets.
type LoaderState struct {
	Epoch  int `json:"epoch"`
	Cursor int `json:"cursor"`
}

// Loader cuts tokenised sequences into batches of exactly B rows of T
// positions. Each epoch visits every sequence once in an order shuffled
// deterministically from (seed, epoch) by a PCG generator; the last partial
// batch of an epoch continues with the first sequences of the next epoch.
//
// A packing loader (NewPackedLoader) puts several sequences into a row: it
// takes sequences in the epoch's order and places each into the first row
// with room for it (first fit), until the next sequence fits in no row; that
// sequence starts the next batch. A sequence of n tokens takes n-1 positions
// (its last token is only a target), is never split across rows, and pads
// only the tail of a row.
type Loader struct {
	seqs          []Sequence
	batch, seqLen int
	pad           int
	seed          uint64
	packed        bool
	state         LoaderState
	order         []int // the shuffled order of state.Epoch
}

// NewLoader returns a loader over seqs, one per row, starting at epoch 0.
// Each sequence may hold at most seqLen+1 tokens (Tokenize with maxTokens =
// seqLen+1); padID fills the unused positions of Inputs and Targets.
func NewLoader(seqs []Sequence, batchSize, seqLen, padID int, seed uint64) (*Loader, error) {
	return newLoader(seqs, batchSize, seqLen, padID, seed, false)
}

// NewPackedLoader is NewLoader for a loader that packs several sequences into
// each row (see Loader); every sequence needs at least 2 tokens.
func NewPackedLoader(seqs []Sequence, batchSize, seqLen, padID int, seed uint64) (*Loader, error) {
	return newLoader(seqs, batchSize, seqLen, padID, seed, true)
}

func newLoader(seqs []Sequence, batchSize, seqLen, padID int, seed uint64, packed bool) (*Loader, error) {
	if len(seqs) == 0 {
		return nil, fmt.Errorf("datasets: loader needs at least one sequence")
	}
	if batchSize < 1 || seqLen < 1 {
		return nil, fmt.Errorf("datasets: loader batch size %d and sequence length %d must be positive", batchSize, seqLen)
	}
	for i, s := range seqs {
		if len(s.Tokens) != len(s.Loss) {
			return nil, fmt.Errorf("datasets: sequence %d has %d tokens but %d loss flags", i, len(s.Tokens), len(s.Loss))
		}
		if len(s.Tokens) > seqLen+1 {
			return nil, fmt.Errorf("datasets: sequence %d has %d tokens, more than sequence length %d + 1 (tokenise with maxTokens = %d)", i, len(s.Tokens), seqLen, seqLen+1)
		}
		if packed && len(s.Tokens) < 2 {
			return nil, fmt.Errorf("datasets: sequence %d has %d tokens; packing needs at least an input and a target", i, len(s.Tokens))
		}
	}
	l := &Loader{seqs: seqs, batch: batchSize, seqLen: seqLen, pad: padID, seed: seed, packed: packed}
	l.order = epochOrder(len(seqs), seed, 0)
	return l, nil
}

// Len is the number of sequences per epoch.
func (l *Loader) Len() int { return len(l.seqs) }

// StepsPerEpoch is the number of batches that cover one epoch, rounded up
// (for a packing loader, those of epoch 0 from its start).
func (l *Loader) StepsPerEpoch() int {
	if !l.packed {
		return (len(l.seqs) + l.batch - 1) / l.batch
	}
	c := *l
	c.state, c.order = LoaderState{}, epochOrder(len(l.seqs), l.seed, 0)
	steps := 0
	for c.state.Epoch == 0 {
		c.fill(func(int, int, int) {})
		steps++
	}
	return steps
}

// State returns the loader's position (where the next batch starts).
func (l *Loader) State() LoaderState { return l.state }

// Restore moves the loader to a saved position.
func (l *Loader) Restore(s LoaderState) error {
	if s.Epoch < 0 || s.Cursor < 0 || s.Cursor >= len(l.seqs) {
		return fmt.Errorf("datasets: loader state epoch %d cursor %d is invalid for %d sequences", s.Epoch, s.Cursor, len(l.seqs))
	}
	if s.Epoch != l.state.Epoch {
		l.order = epochOrder(len(l.seqs), l.seed, s.Epoch)
	}
	l.state = s
	return nil
}

// Next returns the next batch and advances the loader.
func (l *Loader) Next() Batch {
	if l.packed {
		return l.nextPacked()
	}
	B, T := l.batch, l.seqLen
	b := Batch{
		Inputs:   make([]int, B*T),
		Targets:  make([]int, B*T),
		Mask:     make([]float32, B*T),
		Examples: B,
		Indices:  make([]int, B),
	}
	for row := 0; row < B; row++ {
		idx := l.order[l.state.Cursor]
		b.Indices[row] = idx
		l.advance()
		s := l.seqs[idx]
		in := b.Inputs[row*T : (row+1)*T]
		tg := b.Targets[row*T : (row+1)*T]
		mk := b.Mask[row*T : (row+1)*T]
		for t := 0; t < T; t++ {
			in[t], tg[t] = l.pad, l.pad
			if t < len(s.Tokens) {
				in[t] = s.Tokens[t]
				b.Tokens++
			}
			if t+1 < len(s.Tokens) {
				tg[t] = s.Tokens[t+1]
				if s.Loss[t+1] {
					mk[t] = 1
					b.LossTokens++
				}
			}
		}
	}
	return b
}

// nextPacked is Next for a packing loader.
func (l *Loader) nextPacked() Batch {
	B, T := l.batch, l.seqLen
	b := Batch{
		Inputs:    make([]int, B*T),
		Targets:   make([]int, B*T),
		Mask:      make([]float32, B*T),
		Positions: make([]int, B*T),
	}
	for i := range b.Inputs {
		b.Inputs[i], b.Targets[i] = l.pad, l.pad
	}
	used := l.fill(func(idx, row, offset int) {
		s := l.seqs[idx]
		b.Indices = append(b.Indices, idx)
		at := row*T + offset
		for t := 0; t+1 < len(s.Tokens); t++ {
			b.Inputs[at+t], b.Targets[at+t], b.Positions[at+t] = s.Tokens[t], s.Tokens[t+1], t
			if s.Loss[t+1] {
				b.Mask[at+t] = 1
				b.LossTokens++
			}
		}
		b.Tokens += len(s.Tokens) - 1
	})
	for row, u := range used {
		for t := u; t < T; t++ {
			b.Positions[row*T+t] = t - u
		}
	}
	b.Examples = len(b.Indices)
	return b
}

// fill takes the sequences of one packed batch, first fit into B rows of T
// positions, advancing the loader; it calls place with each sequence's index,
// row and first position, and returns the positions used in each row.
func (l *Loader) fill(place func(idx, row, offset int)) []int {
	used := make([]int, l.batch)
	for {
		idx := l.order[l.state.Cursor]
		n := len(l.seqs[idx].Tokens) - 1
		row := slices.IndexFunc(used, func(u int) bool { return u+n <= l.seqLen })
		if row < 0 {
			return used
		}
		l.advance()
		place(idx, row, used[row])
		used[row] += n
	}
}

// advance moves the cursor one sequence on, into the next epoch at the end.
func (l *Loader) advance() {
	l.state.Cursor++
	if l.state.Cursor == len(l.seqs) {
		l.state.Epoch++
		l.state.Cursor = 0
		l.order = epochOrder(len(l.seqs), l.seed, l.state.Epoch)
	}
}

// epochOrder is the shuffled order of epoch: a Fisher-Yates shuffle driven
// by PCG(seed, epoch) from math/rand/v2, with its own bounded draw so that the
// order does not depend on the standard library's sampling helpers.
func epochOrder(n int, seed uint64, epoch int) []int {
	return shuffledRange(n, rand.NewPCG(seed, uint64(epoch)))
}

// splitStream is the PCG stream reserved for SplitHeldOut, apart from the
// epoch streams 0, 1, 2, ... of the loader.
const splitStream = 0x9e3779b97f4a7c15

// SplitHeldOut deterministically splits indices 0..n-1 into a training set
// and a held-out evaluation set of evalCount indices (clamped to 0..n), both
// in ascending order, from a PCG permutation of seed.
func SplitHeldOut(n int, evalCount int, seed uint64) (train, eval []int) {
	if n <= 0 {
		return nil, nil
	}
	evalCount = min(max(evalCount, 0), n)
	perm := shuffledRange(n, rand.NewPCG(seed, splitStream))
	eval = append([]int(nil), perm[:evalCount]...)
	train = append([]int(nil), perm[evalCount:]...)
	sort.Ints(eval)
	sort.Ints(train)
	return train, eval
}

// shuffledRange returns 0..n-1 shuffled by Fisher-Yates with src.
func shuffledRange(n int, src *rand.PCG) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := int(boundedUint64(src, uint64(i+1)))
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// boundedUint64 returns a uniform value in [0, n) by Lemire's
// multiply-and-reject method.
func boundedUint64(src *rand.PCG, n uint64) uint64 {
	hi, lo := bits.Mul64(src.Uint64(), n)
	if lo < n {
		threshold := -n % n
		for lo < threshold {
			hi, lo = bits.Mul64(src.Uint64(), n)
		}
	}
	return hi
}
