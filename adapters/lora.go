package adapters

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Init is how LoRA's A factor is initialised (B always starts at zero).
type Init string

const (
	// KaimingUniform is PEFT's default (init_lora_weights=True):
	// kaiming_uniform_(a=√5) on A (Rank×In), i.e. U(−1/√In, 1/√In).
	KaimingUniform Init = "kaiming"
	// Gaussian is PEFT's init_lora_weights="gaussian": normal_(std=1/Rank),
	// i.e. N(0, 1/Rank²).
	Gaussian Init = "gaussian"
)

// LoRAConfig configures a LoRA adapter.
type LoRAConfig struct {
	Rank  int
	Alpha float64
	// Dropout is the probability of zeroing each input element before A
	// during training (PEFT's lora_dropout), in [0, 1).
	Dropout float64
	// Init is KaimingUniform (the default when empty) or Gaussian.
	Init Init
	// RSLoRA scales by Alpha/√Rank instead of Alpha/Rank (rank-stabilised LoRA).
	RSLoRA bool
}

// Validate reports an invalid configuration.
func (c LoRAConfig) Validate() error {
	switch {
	case c.Rank <= 0:
		return fmt.Errorf("adapters: lora rank %d must be positive", c.Rank)
	case !(c.Alpha > 0) || math.IsInf(c.Alpha, 0):
		return fmt.Errorf("adapters: lora alpha %g must be positive", c.Alpha)
	case !(c.Dropout >= 0 && c.Dropout < 1):
		return fmt.Errorf("adapters: lora dropout %g must be in [0, 1)", c.Dropout)
	case c.Init != "" && c.Init != KaimingUniform && c.Init != Gaussian:
		return fmt.Errorf("adapters: unknown lora init %q (want %q or %q)", c.Init, KaimingUniform, Gaussian)
	}
	return nil
}

// Scale is the factor applied to B A: Alpha/Rank, or Alpha/√Rank with RSLoRA.
func (c LoRAConfig) Scale() float64 {
	if c.RSLoRA {
		return c.Alpha / math.Sqrt(float64(c.Rank))
	}
	return c.Alpha / float64(c.Rank)
}

// NewLoRA returns a trainable LoRA adapter for an Out×In projection, with A
// drawn from the configured distribution by a generator seeded with seed
// (same seed, same A) and B zero, so the adapter starts as the identity
// update.
func NewLoRA(out, in int, c LoRAConfig, seed uint64) (*LowRank, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if out <= 0 || in <= 0 {
		return nil, fmt.Errorf("adapters: lora on a %d×%d projection", out, in)
	}
	rng := rand.New(rand.NewPCG(seed, 0x10a4))
	a := make([]float32, c.Rank*in)
	switch c.Init {
	case Gaussian:
		std := 1 / float64(c.Rank)
		for i := range a {
			a[i] = float32(std * rng.NormFloat64())
		}
	default:
		bound := 1 / math.Sqrt(float64(in))
		for i := range a {
			a[i] = float32(bound * (2*rng.Float64() - 1))
		}
	}
	return &LowRank{
		Kind: KindLoRA, Rank: c.Rank, In: in, Out: out,
		A: a, B: make([]float32, out*c.Rank),
		Scale: float32(c.Scale()), Dropout: c.Dropout, Trainable: true,
	}, nil
}
