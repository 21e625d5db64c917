package model

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
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

// namedShapes are the published architectures NamedShape knows, as their
// config.json files on the HuggingFace Hub give them (torch_dtype aside).
var namedShapes = map[string]Config{
	// meta-llama/Llama-2-7b-hf
	"llama2-7b": {ModelType: "llama", Hidden: 4096, Intermediate: 11008, Layers: 32, Heads: 32, KVHeads: 32, HeadDim: 128,
		Vocab: 32000, MaxPositions: 4096, RMSNormEps: 1e-5, RopeTheta: 10000, BOSTokenID: 1, EOSTokenIDs: []int{2}},
	// meta-llama/Llama-2-13b-hf
	"llama2-13b": {ModelType: "llama", Hidden: 5120, Intermediate: 13824, Layers: 40, Heads: 40, KVHeads: 40, HeadDim: 128,
		Vocab: 32000, MaxPositions: 4096, RMSNormEps: 1e-5, RopeTheta: 10000, BOSTokenID: 1, EOSTokenIDs: []int{2}},
	// mistralai/Mistral-7B-Instruct-v0.2 (v0.2: rope_theta 1e6, no sliding window)
	"mistral-7b": {ModelType: "mistral", Hidden: 4096, Intermediate: 14336, Layers: 32, Heads: 32, KVHeads: 8, HeadDim: 128,
		Vocab: 32000, MaxPositions: 32768, RMSNormEps: 1e-5, RopeTheta: 1e6, BOSTokenID: 1, EOSTokenIDs: []int{2}},
	// meta-llama/Meta-Llama-3-8B
	"llama3-8b": {ModelType: "llama", Hidden: 4096, Intermediate: 14336, Layers: 32, Heads: 32, KVHeads: 8, HeadDim: 128,
		Vocab: 128256, MaxPositions: 8192, RMSNormEps: 1e-5, RopeTheta: 500000, BOSTokenID: 128000, EOSTokenIDs: []int{128001}},
	// Qwen/Qwen2-7B
	"qwen2-7b": {ModelType: "qwen2", Hidden: 3584, Intermediate: 18944, Layers: 28, Heads: 28, KVHeads: 4, HeadDim: 128,
		Vocab: 152064, MaxPositions: 131072, RMSNormEps: 1e-6, RopeTheta: 1e6, AttentionBias: true,
		BOSTokenID: 151643, EOSTokenIDs: []int{151643}},
}

// ShapeNames lists the names NamedShape accepts, for help texts and errors.
const ShapeNames = "bench-60M, llama2-7b, llama2-13b, mistral-7b, llama3-8b, qwen2-7b, llama-<hidden>x<layers>, mixtral-<hidden>x<layers>e<experts>k<top-k> or qwen2_moe-<hidden>x<layers>e<experts>k<top-k>"

// NamedShape returns a model configuration by name: "bench-60M"; a
// published architecture, "llama2-7b", "llama2-13b", "mistral-7b",
// "llama3-8b" or "qwen2-7b" (as its config.json has it); or
// "llama-<hidden>x<layers>" (heads of 64 dims, intermediate 8/3·hidden
// rounded up to 256, vocabulary 32000), e.g. "llama-2048x16"; or a
// mixture-of-experts shape (see moeShape), e.g. "mixtral-1024x8e8k2". The
// configuration's TorchDtype is "float32".
func NamedShape(name string) (Config, error) {
	if name == "bench-60M" {
		return Bench60M(), nil
	}
	if c, ok, err := moeShape(name); ok {
		return c, err
	}
	if c, ok := namedShapes[name]; ok {
		c.EOSTokenIDs = slices.Clone(c.EOSTokenIDs)
		c.TorchDtype = "float32"
		return c, nil
	}
	var hidden, layers int
	if _, err := fmt.Sscanf(name, "llama-%dx%d", &hidden, &layers); err != nil || hidden < 64 || hidden%64 != 0 || layers < 1 {
		return Config{}, fmt.Errorf("model: unknown shape %q (want %s, hidden a multiple of 64)", name, ShapeNames)
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
	newRandomStream(name, shape, seed).fill(data)
	return data
}

// randomStream yields the values of RandomTensor in order, a slice at a
// time, so that a tensor can be produced without holding all of it.
type randomStream struct {
	rng *rand.Rand // nil for a norm: all ones
}

func newRandomStream(name string, shape []int, seed uint64) randomStream {
	if len(shape) == 1 && !isBias(name) {
		return randomStream{}
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	return randomStream{rng: rand.New(rand.NewPCG(seed, h.Sum64()))}
}

// fill sets dst to the stream's next len(dst) values.
func (s randomStream) fill(dst []float32) {
	if s.rng == nil {
		for i := range dst {
			dst[i] = 1
		}
		return
	}
	for i := range dst {
		dst[i] = float32(s.rng.NormFloat64() * 0.02)
	}
}

func isBias(name string) bool {
	return len(name) > 5 && name[len(name)-5:] == ".bias"
}

// moeShape parses "mixtral-<hidden>x<layers>e<experts>k<top-k>" (the
// llama-<hidden>x<layers> shape with each MLP replaced by that many experts
// of the same width, a quarter as many KV heads as heads, as Mixtral has)
// and "qwen2_moe-<hidden>x<layers>e<experts>k<top-k>" (fine-grained experts
// of a quarter of that width, rounded up to 64, a shared expert of four
// times theirs, top-k weights not renormalised, q/k/v biases); ok is false
// for other names.
func moeShape(name string) (c Config, ok bool, err error) {
	var kind string
	switch {
	case strings.HasPrefix(name, "mixtral-"):
		kind = "mixtral"
	case strings.HasPrefix(name, "qwen2_moe-"):
		kind = "qwen2_moe"
	default:
		return Config{}, false, nil
	}
	var hidden, layers, experts, topK int
	var extra string
	n, _ := fmt.Sscanf(strings.TrimPrefix(name, kind+"-"), "%dx%de%dk%d%s", &hidden, &layers, &experts, &topK, &extra)
	if n != 4 || hidden < 64 || hidden%64 != 0 || layers < 1 || experts < 1 || topK < 1 || topK > experts {
		return Config{}, true, fmt.Errorf("model: unknown shape %q (want %s-<hidden>x<layers>e<experts>k<top-k>, hidden a multiple of 64, 1 <= top-k <= experts)", name, kind)
	}
	c = Bench60M()
	c.ModelType = kind
	c.Hidden, c.Layers = hidden, layers
	c.Heads, c.HeadDim = hidden/64, 64
	c.KVHeads = c.Heads
	if c.Heads%4 == 0 {
		c.KVHeads = c.Heads / 4
	}
	c.Intermediate = (hidden*8/3 + 255) / 256 * 256
	c.Experts, c.ExpertsPerToken, c.SparseStep = experts, topK, 1
	switch kind {
	case "mixtral":
		c.ExpertIntermediate, c.NormTopKProb = c.Intermediate, true
	case "qwen2_moe":
		c.ExpertIntermediate = (c.Intermediate/4 + 63) / 64 * 64
		c.SharedIntermediate = 4 * c.ExpertIntermediate
		c.AttentionBias = true
	}
	return c, true, c.Validate()
}
