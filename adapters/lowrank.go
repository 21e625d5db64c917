package adapters

import (
	"fmt"
	"hash/fnv"

	"github.com/salr-go/salr/kernels"
)

// LowRank is one low-rank adapter of a projection: ΔW = Scale · B A, with
// A Rank×In and B Out×Rank, row-major float32 (PEFT's lora_A / lora_B layout).
type LowRank struct {
	// Kind names the adapter ("lora", "svd").
	Kind          string
	Rank, In, Out int
	A             []float32
	B             []float32
	Scale         float32
	// Dropout is the probability of zeroing an input element before A (LoRA);
	// 0 means no dropout.
	Dropout float64
	// Trainable says whether the optimizer updates A and B.
	Trainable bool
}

// Adapter kinds.
const (
	KindLoRA = "lora"
	KindSVD  = "svd"
)

// Validate reports an adapter whose factors do not match its shape.
func (l *LowRank) Validate() error {
	switch {
	case l.Rank <= 0 || l.In <= 0 || l.Out <= 0:
		return fmt.Errorf("adapters: %s adapter: rank %d, in %d, out %d must be positive", l.Kind, l.Rank, l.In, l.Out)
	case len(l.A) != l.Rank*l.In:
		return fmt.Errorf("adapters: %s adapter: A has %d values, want rank×in = %d", l.Kind, len(l.A), l.Rank*l.In)
	case len(l.B) != l.Out*l.Rank:
		return fmt.Errorf("adapters: %s adapter: B has %d values, want out×rank = %d", l.Kind, len(l.B), l.Out*l.Rank)
	case !(l.Dropout >= 0 && l.Dropout < 1):
		return fmt.Errorf("adapters: %s adapter: dropout %g must be in [0, 1)", l.Kind, l.Dropout)
	}
	return nil
}

// MergeInto adds Scale·B A to w (Out×In, row-major).
func (l *LowRank) MergeInto(w []float32) {
	if len(w) != l.Out*l.In {
		panic("adapters: LowRank.MergeInto: len(w) != out*in")
	}
	kernels.Gemm(false, false, l.Out, l.In, l.Rank, l.Scale, l.B, l.Rank, l.A, l.In, 1, w, l.In)
}

// SeedFor derives a per-tensor seed from a run seed and a name (e.g. the HF
// weight name), so every projection gets its own reproducible random stream.
func SeedFor(runSeed uint64, name string) uint64 {
	h := fnv.New64a()
	var b [8]byte
	for i := range b {
		b[i] = byte(runSeed >> (8 * i))
	}
	h.Write(b[:])
	h.Write([]byte(name))
	return h.Sum64()
}
