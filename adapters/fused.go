package adapters

import (
	"fmt"
	"slices"

	"github.com/salr-go/salr/kernels"
)

// Part is one adapter's slice of a Fused adapter's ranks.
type Part struct {
	Kind         string
	Offset, Rank int // ranks [Offset, Offset+Rank) of A_cat and B_cat
	Scale        float32
	Dropout      float64
	Trainable    bool
}

// Fused is the concatenation of one projection's adapters along the rank
// dimension:
//
//	A = [A_1; A_2; ...]            (Rank×In)
//	B = [B_1, B_2, ...]            (Out×Rank, unscaled)
//	Scale = [s_1…s_1, s_2…s_2, ...] (Rank)
//
// so that ΔW = B diag(Scale) A = Σ_k s_k B_k A_k. A and B are the trainable
// parameters (one optimizer tensor each); keeping B unscaled and the scale in
// a separate vector applied between the two GEMMs gives every A_k and B_k
// exactly the gradient PEFT computes for them. Ranks of a frozen adapter
// (e.g. a frozen SVD residual adapter) are marked in TrainableRanks: the
// kernel zeroes their gradient rows of A and columns of B, and the optimizer
// must also skip them (no weight decay) — trainer masks with TrainableA and
// TrainableB.
//
// The ranks of adapters with dropout come first (Dropped of them, sharing one
// probability), so the kernel can feed them the dropped-out input.
type Fused struct {
	In, Out, Rank int
	A, B          []float32
	Scale         []float32
	Parts         []Part
}

// Concat stacks adapters of one projection into a Fused adapter, copying
// their factors. All must share In and Out; adapters with dropout must come
// before those without and share the same probability.
func Concat(adapters ...*LowRank) (*Fused, error) {
	if len(adapters) == 0 {
		return nil, fmt.Errorf("adapters: Concat: no adapters")
	}
	first := adapters[0]
	f := &Fused{In: first.In, Out: first.Out}
	for i, l := range adapters {
		if err := l.Validate(); err != nil {
			return nil, err
		}
		if l.In != f.In || l.Out != f.Out {
			return nil, fmt.Errorf("adapters: Concat: %s adapter is %d×%d, %s adapter is %d×%d", l.Kind, l.Out, l.In, first.Kind, f.Out, f.In)
		}
		if l.Dropout > 0 && i > 0 && adapters[i-1].Dropout == 0 {
			return nil, fmt.Errorf("adapters: Concat: %s adapter has dropout %g but follows %s without dropout (put adapters with dropout first)", l.Kind, l.Dropout, adapters[i-1].Kind)
		}
		if l.Dropout > 0 && first.Dropout != l.Dropout {
			return nil, fmt.Errorf("adapters: Concat: dropouts %g (%s) and %g (%s) differ", first.Dropout, first.Kind, l.Dropout, l.Kind)
		}
		f.Parts = append(f.Parts, Part{Kind: l.Kind, Offset: f.Rank, Rank: l.Rank, Scale: l.Scale, Dropout: l.Dropout, Trainable: l.Trainable})
		f.Rank += l.Rank
	}
	f.A = make([]float32, 0, f.Rank*f.In)
	f.B = make([]float32, f.Out*f.Rank)
	for _, l := range adapters {
		f.A = append(f.A, l.A...)
	}
	for pi, p := range f.Parts {
		src := adapters[pi].B
		for o := 0; o < f.Out; o++ {
			copy(f.B[o*f.Rank+p.Offset:o*f.Rank+p.Offset+p.Rank], src[o*p.Rank:(o+1)*p.Rank])
		}
		for k := 0; k < p.Rank; k++ {
			f.Scale = append(f.Scale, p.Scale)
		}
	}
	return f, nil
}

// Dropped is the number of leading ranks that read the dropped-out input.
func (f *Fused) Dropped() int {
	n := 0
	for _, p := range f.Parts {
		if p.Dropout > 0 {
			n += p.Rank
		}
	}
	return n
}

// Dropout is the dropout probability of the leading Dropped ranks (0 if none).
func (f *Fused) Dropout() float64 {
	if len(f.Parts) > 0 {
		return f.Parts[0].Dropout
	}
	return 0
}

// TrainableRanks reports, per rank, whether its adapter is trainable.
func (f *Fused) TrainableRanks() []bool {
	out := make([]bool, f.Rank)
	for _, p := range f.Parts {
		for k := p.Offset; k < p.Offset+p.Rank; k++ {
			out[k] = p.Trainable
		}
	}
	return out
}

// TrainableA is the per-element trainable mask of A (Rank×In): whole rows.
func (f *Fused) TrainableA() []bool {
	ranks := f.TrainableRanks()
	out := make([]bool, f.Rank*f.In)
	for k, t := range ranks {
		for i := 0; i < f.In; i++ {
			out[k*f.In+i] = t
		}
	}
	return out
}

// TrainableB is the per-element trainable mask of B (Out×Rank): whole columns.
func (f *Fused) TrainableB() []bool {
	ranks := f.TrainableRanks()
	out := make([]bool, f.Out*f.Rank)
	for o := 0; o < f.Out; o++ {
		copy(out[o*f.Rank:], ranks)
	}
	return out
}

// Adapter returns a copy of part i as a separate LowRank adapter (with the
// current, possibly trained, factors).
func (f *Fused) Adapter(i int) *LowRank {
	p := f.Parts[i]
	l := &LowRank{Kind: p.Kind, Rank: p.Rank, In: f.In, Out: f.Out, Scale: p.Scale, Dropout: p.Dropout, Trainable: p.Trainable,
		A: slices.Clone(f.A[p.Offset*f.In : (p.Offset+p.Rank)*f.In]), B: make([]float32, f.Out*p.Rank)}
	for o := 0; o < f.Out; o++ {
		copy(l.B[o*p.Rank:(o+1)*p.Rank], f.B[o*f.Rank+p.Offset:])
	}
	return l
}

// ScaledB returns B diag(Scale) (Out×Rank): B with every column multiplied by
// its rank's scale, the lora_B of a PEFT export whose own scale is 1.
func (f *Fused) ScaledB() []float32 {
	out := slices.Clone(f.B)
	for o := 0; o < f.Out; o++ {
		row := out[o*f.Rank : (o+1)*f.Rank]
		for k := range row {
			row[k] *= f.Scale[k]
		}
	}
	return out
}

// MergeInto adds the adapters' update B diag(Scale) A to w (Out×In,
// row-major): W_merged = W_base + Σ_k s_k B_k A_k. Merging a pruned base makes
// it dense again; it serves export and tests, not SALR inference.
func (f *Fused) MergeInto(w []float32) { f.addUpdate(w, 1) }

// UnmergeFrom subtracts the update MergeInto added (up to float32 rounding).
func (f *Fused) UnmergeFrom(w []float32) { f.addUpdate(w, -1) }

// addUpdate computes w += sign · B diag(Scale) A.
func (f *Fused) addUpdate(w []float32, sign float32) {
	if len(w) != f.Out*f.In {
		panic("adapters: Fused merge: len(w) != out*in")
	}
	kernels.Gemm(false, false, f.Out, f.In, f.Rank, sign, f.ScaledB(), f.Rank, f.A, f.In, 1, w, f.In)
}
