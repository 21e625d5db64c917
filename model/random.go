package model

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
)

// Bench60M is the "bench-60M" training-step benchmark shape: Llama
// architecture, hidden 512, 8 layers, 8 heads, 8 KV heads, intermediate
// 1408, vocabulary 32000 (benchmarked at sequence 256, batch 4).
func Bench60M() Config {
	return Config{
		ModelType: "llama", Hidden: 512, Intermediate: 1408, Layers: 8, Heads: 8, KVHeads: 8, HeadDim: 64,
		Vocab: 32000, MaxPositions: 2048, RMSNormEps: 1e-5, RopeTheta: 10000,
		BOSTokenID: 1, EOSTokenIDs: []int{2}, TorchDtype: "float32",
	}
}

// NamedShape returns a benchmark config by name: "bench-60M", or
// "llama-<hidden>x<layers>" (heads of 64 dims, intermediate 8/3·hidden
// rounded up to 256, vocabulary 32000), e.g. "llama-2048x16".
func NamedShape(name string) (Config, error) {
	if name == "bench-60M" {
		return Bench60M(), nil
	}
	var hidden, layers int
	if _, err := fmt.Sscanf(name, "llama-%dx%d", &hidden, &layers); err != nil || hidden < 64 || hidden%64 != 0 || layers < 1 {
		return Config{}, fmt.Errorf("model: unknown shape %q (want bench-60M or llama-<hidden>x<layers>, hidden a multiple of 64)", name)
	}
	c := Bench60M()
	c.Hidden, c.Layers = hidden, layers
	c.Heads, c.KVHeads, c.HeadDim = hidden/64, hidden/64, 64
	c.Intermediate = (hidden*8/3 + 255) / 256 * 256
	return c, nil
}

// RandomCheckpoint returns a checkpoint of cfg with random weights (normal,
// standard deviation 0.02, as HF initialises Llama; norms at 1), for
// benchmarks and tests.
func RandomCheckpoint(cfg Config, seed uint64) (*Checkpoint, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ck := &Checkpoint{Config: cfg, Tensors: map[string]*Tensor{}, Source: fmt.Sprintf("random(seed=%d)", seed)}
	for name, shape := range cfg.TensorShapes() {
		ck.Tensors[name] = &Tensor{Shape: shape, Data: RandomTensor(name, shape, seed)}
	}
	return ck, nil
}

// RandomTensor returns the values RandomCheckpoint gives the tensor name of
// the shape: ones for a norm (1-D, not a bias), else normal values of
// standard deviation 0.02 from a stream of its own that depends only on seed
// and name.
func RandomTensor(name string, shape []int, seed uint64) []float32 {
	n := 1
	for _, d := range shape {
		n *= d
	}
	data := make([]float32, n)
	if len(shape) == 1 && !isBias(name) {
		for i := range data {
			data[i] = 1
		}
		return data
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	rng := rand.New(rand.NewPCG(seed, h.Sum64()))
	for i := range data {
		data[i] = float32(rng.NormFloat64() * 0.02)
	}
	return data
}

func isBias(name string) bool {
	return len(name) > 5 && name[len(name)-5:] == ".bias"
}
