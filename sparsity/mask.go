package sparsity

import (
	"fmt"
	"math"
	"math/bits"
)

// Mask marks which weights of a rows×cols matrix are kept (1) or pruned (0),
// one bit per weight in row-major order: weight i = r*cols+c is bit i%64 of
// word i/64 (least significant bit first).
type Mask struct {
	rows, cols int
	keep       []uint64
	pruned     int
}

// NewMask returns a mask that keeps every weight of a rows×cols matrix.
func NewMask(rows, cols int) *Mask {
	if rows < 0 || cols < 0 {
		panic("sparsity: NewMask: negative shape")
	}
	n := rows * cols
	m := &Mask{rows: rows, cols: cols, keep: make([]uint64, (n+63)/64)}
	for i := range m.keep {
		m.keep[i] = ^uint64(0)
	}
	if tail := n % 64; tail != 0 {
		m.keep[len(m.keep)-1] = 1<<tail - 1
	}
	return m
}

// MaskFromBools builds a mask from one bool per weight (true = kept).
func MaskFromBools(rows, cols int, keep []bool) (*Mask, error) {
	if len(keep) != rows*cols {
		return nil, fmt.Errorf("sparsity: mask of %d×%d needs %d entries, got %d", rows, cols, rows*cols, len(keep))
	}
	m := NewMask(rows, cols)
	for i, k := range keep {
		if !k {
			m.Prune(i)
		}
	}
	return m, nil
}

// Rows is the number of output features.
func (m *Mask) Rows() int { return m.rows }

// Cols is the number of input features.
func (m *Mask) Cols() int { return m.cols }

// Size is Rows·Cols.
func (m *Mask) Size() int { return m.rows * m.cols }

// Kept reports whether the weight at flat row-major index i is kept.
func (m *Mask) Kept(i int) bool { return m.keep[i>>6]>>(i&63)&1 == 1 }

// Prune marks the weight at flat index i as pruned (a no-op if it already is).
func (m *Mask) Prune(i int) {
	if i < 0 || i >= m.Size() {
		panic("sparsity: Mask.Prune: index out of range")
	}
	if m.Kept(i) {
		m.keep[i>>6] &^= 1 << (i & 63)
		m.pruned++
	}
}

// Pruned is the exact number of pruned weights (zeros of the mask).
func (m *Mask) Pruned() int { return m.pruned }

// Sparsity is the achieved pruned fraction, Pruned/Size.
func (m *Mask) Sparsity() float64 {
	if m.Size() == 0 {
		return 0
	}
	return float64(m.pruned) / float64(m.Size())
}

// Bools returns one bool per weight (true = kept).
func (m *Mask) Bools() []bool {
	out := make([]bool, m.Size())
	for i := range out {
		out[i] = m.Kept(i)
	}
	return out
}

// Words returns the bit words (see Mask for the layout); the caller must not
// modify them.
func (m *Mask) Words() []uint64 { return m.keep }

// RowPruned is the number of pruned weights in output row r.
func (m *Mask) RowPruned(r int) int {
	n := 0
	for i := r * m.cols; i < (r+1)*m.cols; i++ {
		if !m.Kept(i) {
			n++
		}
	}
	return n
}

// Apply zeroes the pruned weights of w in place.
func (m *Mask) Apply(w []float32) {
	if len(w) != m.Size() {
		panic("sparsity: Mask.Apply: len(w) != rows*cols")
	}
	for wi, word := range m.keep {
		pruned := ^word
		if wi == len(m.keep)-1 && m.Size()%64 != 0 {
			pruned &= 1<<(m.Size()%64) - 1
		}
		for pruned != 0 {
			b := bits.TrailingZeros64(pruned)
			w[wi*64+b] = 0
			pruned &= pruned - 1
		}
	}
}

// Mask computes the mask of a rows×cols weight matrix w (row-major, out×in)
// for this spec. featureNorms (length cols, the ||X_j||₂ of a Calibration) is
// required by Wanda and ignored by Magnitude. It returns an error for an
// invalid spec, a shape mismatch, a non-finite weight or norm, or an N:M
// pattern whose M does not divide cols.
func (s Spec) Mask(w []float32, rows, cols int, featureNorms []float32) (*Mask, error) {
	p := s.Pattern
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if rows <= 0 || cols <= 0 || len(w) != rows*cols {
		return nil, fmt.Errorf("sparsity: weight of shape [%d %d] has %d values", rows, cols, len(w))
	}
	// Scores are computed once: |w| in the pass that also finds non-finite
	// weights (times the feature norm for Wanda); selection then reads a
	// plain slice several times.
	score := make([]uint32, len(w))
	for i, v := range w {
		a := math.Float32bits(v) &^ signBit
		if a >= 0x7f800000 { // NaN or ±Inf
			return nil, fmt.Errorf("sparsity: weight [%d %d] is %v", i/cols, i%cols, v)
		}
		score[i] = a
	}
	switch s.Method {
	case Magnitude:
	case Wanda:
		if len(featureNorms) != cols {
			return nil, fmt.Errorf("sparsity: wanda needs %d input-feature norms, got %d", cols, len(featureNorms))
		}
		for j, v := range featureNorms {
			if !(v >= 0) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("sparsity: wanda input-feature norm %d is %v", j, v)
			}
		}
		for i, a := range score {
			score[i] = math.Float32bits(math.Float32frombits(a) * featureNorms[i%cols])
		}
	default:
		return nil, fmt.Errorf("sparsity: unknown pruning method %q", s.Method)
	}
	if err := p.CheckCols(cols); err != nil {
		return nil, err
	}

	m := NewMask(rows, cols)
	var sel selector
	switch p.Kind {
	case PerMatrix:
		sel.pruneSmallest(m, score, 0, rows*cols, p.PrunedCount(rows, cols))
	case PerRow:
		k := p.PrunedCount(1, cols)
		for r := 0; r < rows; r++ {
			sel.pruneSmallest(m, score, r*cols, cols, k)
		}
	case NM:
		for start := 0; start < rows*cols; start += p.M {
			sel.pruneSmallest(m, score, start, p.M, p.M-p.N)
		}
	}
	return m, nil
}

const signBit = 1 << 31
