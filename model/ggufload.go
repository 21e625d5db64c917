package model

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/salr-go/salr/internal/parallel"
	"github.com/salr-go/salr/model/gguf"
	"github.com/salr-go/salr/model/safetensors"
)

// The GGUF architectures LoadGGUF reads, as general.architecture names them,
// and the model type each becomes. llama.cpp stores Mistral models as llama.
var ggufArchitectures = map[string]string{"llama": "llama", "qwen2": "qwen2"}

// ggufLayerTensors maps llama.cpp's per-layer tensor names (after
// "blk.N.") to HuggingFace's (after "model.layers.N.").
var ggufLayerTensors = map[string]string{
	"attn_norm.weight":   "input_layernorm.weight",
	"attn_q.weight":      "self_attn.q_proj.weight",
	"attn_k.weight":      "self_attn.k_proj.weight",
	"attn_v.weight":      "self_attn.v_proj.weight",
	"attn_output.weight": "self_attn.o_proj.weight",
	"ffn_norm.weight":    "post_attention_layernorm.weight",
	"ffn_gate.weight":    "mlp.gate_proj.weight",
	"ffn_up.weight":      "mlp.up_proj.weight",
	"ffn_down.weight":    "mlp.down_proj.weight",
	"attn_q.bias":        "self_attn.q_proj.bias",
	"attn_k.bias":        "self_attn.k_proj.bias",
	"attn_v.bias":        "self_attn.v_proj.bias",
}

// ggufGlobalTensors maps llama.cpp's names of the tensors outside the
// layers to HuggingFace's.
var ggufGlobalTensors = map[string]string{
	"token_embd.weight":  EmbedTokensName,
	"output_norm.weight": FinalNormName,
	"output.weight":      LMHeadName,
}

var ggufLayerName = regexp.MustCompile(`^blk\.(0|[1-9][0-9]*)\.(.+)$`)

// hfNameOfGGUF is the HuggingFace name of a llama.cpp tensor name, or "".
func hfNameOfGGUF(name string) string {
	if hf, ok := ggufGlobalTensors[name]; ok {
		return hf
	}
	m := ggufLayerName.FindStringSubmatch(name)
	if m == nil {
		return ""
	}
	suffix, ok := ggufLayerTensors[m[2]]
	layer, err := strconv.Atoi(m[1])
	if !ok || err != nil {
		return ""
	}
	return LayerTensorName(layer, suffix)
}

// GGUFTensorName is llama.cpp's name of the HuggingFace tensor name (e.g.
// "model.layers.3.self_attn.q_proj.weight" is "blk.3.attn_q.weight"), or ""
// for a tensor llama.cpp's llama architecture does not have.
func GGUFTensorName(name string) string {
	for g, hf := range ggufGlobalTensors {
		if hf == name {
			return g
		}
	}
	rest, ok := strings.CutPrefix(name, "model.layers.")
	layer, suffix, ok2 := strings.Cut(rest, ".")
	if _, err := strconv.Atoi(layer); !ok || !ok2 || err != nil {
		return ""
	}
	for g, hf := range ggufLayerTensors {
		if hf == suffix {
			return "blk." + layer + "." + g
		}
	}
	return ""
}

// LoadGGUFConfig reads the configuration of a llama.cpp GGUF file (see
// LoadGGUF) from its metadata, without reading tensor data.
func LoadGGUFConfig(path string) (Config, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return Config{}, err
	}
	defer f.Close()
	return ggufConfig(f)
}

// ggufConfig builds the configuration from the {arch}.* and tokenizer.ggml.*
// keys and the shape of token_embd.weight (the vocabulary size).
func ggufConfig(f *gguf.File) (Config, error) {
	fail := func(format string, args ...any) (Config, error) {
		return Config{}, fmt.Errorf("%s: %s", f.Name(), fmt.Sprintf(format, args...))
	}
	arch, ok, err := f.String("general.architecture")
	if err != nil {
		return Config{}, err
	}
	if !ok {
		return fail(`missing metadata key "general.architecture"`)
	}
	modelType, known := ggufArchitectures[arch]
	if !known {
		return fail(`general.architecture %q is not supported (want llama or qwen2)`, arch)
	}
	key := func(suffix string) string { return arch + "." + suffix }
	var firstErr error
	count := func(suffix string, required bool, def int) int {
		v, ok, err := f.Uint(key(suffix))
		switch {
		case firstErr != nil:
		case err != nil:
			firstErr = err
		case !ok && required:
			firstErr = fmt.Errorf("%s: missing metadata key %q", f.Name(), key(suffix))
		case ok && (v == 0 || v > 1<<40):
			firstErr = fmt.Errorf("%s: metadata key %q: %d is out of range", f.Name(), key(suffix), v)
		case ok:
			return int(v)
		}
		return def
	}
	real := func(name string, required bool, def float64) float64 {
		v, ok, err := f.Float(name)
		switch {
		case firstErr != nil:
		case err != nil:
			firstErr = err
		case !ok && required:
			firstErr = fmt.Errorf("%s: missing metadata key %q", f.Name(), name)
		case ok:
			return shortestFloat32(v)
		}
		return def
	}
	c := Config{ModelType: modelType, BOSTokenID: -1}
	c.MaxPositions = count("context_length", true, 0)
	c.Hidden = count("embedding_length", true, 0)
	c.Layers = count("block_count", true, 0)
	c.Intermediate = count("feed_forward_length", true, 0)
	c.Heads = count("attention.head_count", true, 0)
	c.KVHeads = count("attention.head_count_kv", false, c.Heads)
	c.RMSNormEps = real(key("attention.layer_norm_rms_epsilon"), true, 0)
	c.RopeTheta = real(key("rope.freq_base"), false, 10000)
	if c.Heads > 0 && c.Hidden%c.Heads == 0 {
		c.HeadDim = c.Hidden / c.Heads
	}
	c.HeadDim = count("attention.key_length", false, c.HeadDim)
	valueLength := count("attention.value_length", false, c.HeadDim)
	ropeDims := count("rope.dimension_count", false, c.HeadDim)
	experts := 0
	if v, ok, err := f.Uint(key("expert_count")); err == nil && ok {
		experts = int(min(v, 1<<20))
	}
	if firstErr != nil {
		return Config{}, firstErr
	}
	switch {
	case c.HeadDim == 0:
		return fail("%s %d is not a multiple of %s %d and %s is absent", key("embedding_length"), c.Hidden, key("attention.head_count"), c.Heads, key("attention.key_length"))
	case valueLength != c.HeadDim:
		return fail("%s %d differs from the key length %d: not supported", key("attention.value_length"), valueLength, c.HeadDim)
	case ropeDims != c.HeadDim:
		return fail("%s %d: rotary embeddings on part of each head (%d dimensions) are not supported", key("rope.dimension_count"), ropeDims, c.HeadDim)
	case experts > 0:
		return fail("%s %d: mixture-of-experts models are not supported", key("expert_count"), experts)
	}
	scaling, _, err := f.String(key("rope.scaling.type"))
	if err != nil {
		return Config{}, err
	}
	switch scaling {
	case "", "none":
	case "linear":
		factor := real(key("rope.scaling.factor"), true, 0)
		if firstErr != nil {
			return Config{}, firstErr
		}
		if factor != 1 {
			c.RopeScaling = &RopeScaling{Type: "linear", Factor: factor}
		}
	default:
		return fail("%s %q is not supported (want none or linear)", key("rope.scaling.type"), scaling)
	}
	if _, ok := f.Tensor("rope_freqs.weight"); ok {
		return fail(`tensor "rope_freqs.weight" (precomputed RoPE frequency factors, as for Llama 3.1) is not supported`)
	}

	embd, ok := f.Tensor("token_embd.weight")
	if !ok {
		return fail(`missing tensor "token_embd.weight"`)
	}
	if len(embd.Dims) != 2 {
		return fail(`tensor "token_embd.weight" has dimensions %v, want 2`, embd.Dims)
	}
	c.Vocab = int(min(embd.Dims[1], 1<<40))
	if v, ok, err := f.Uint(key("vocab_size")); err != nil {
		return Config{}, err
	} else if ok && v != embd.Dims[1] {
		return fail(`%s %d differs from the %d rows of tensor "token_embd.weight"`, key("vocab_size"), v, embd.Dims[1])
	}
	_, hasOutput := f.Tensor("output.weight")
	c.TieEmbeddings = !hasOutput
	c.AttentionBias = modelType == "qwen2"
	if v, ok, err := f.Uint("tokenizer.ggml.bos_token_id"); err != nil {
		return Config{}, err
	} else if ok {
		c.BOSTokenID = int(min(v, 1<<40))
	}
	if v, ok, err := f.Uint("tokenizer.ggml.eos_token_id"); err != nil {
		return Config{}, err
	} else if ok {
		c.EOSTokenIDs = []int{int(min(v, 1<<40))}
	}
	c.TorchDtype = "float32"
	if q, ok := f.Tensor("blk.0.attn_q.weight"); ok {
		switch q.Type {
		case gguf.F16:
			c.TorchDtype = "float16"
		case gguf.BF16:
			c.TorchDtype = "bfloat16"
		}
	}
	if err := c.Validate(); err != nil {
		return fail("%v", err)
	}
	return c, nil
}

// shortestFloat32 turns a value stored as float32 (llama.cpp stores eps and
// the RoPE base so) into the float64 of its shortest decimal form, 1e-5
// rather than 9.99999974737875e-06, as config.json would hold it.
func shortestFloat32(v float64) float64 {
	if float64(float32(v)) != v {
		return v
	}
	d, err := strconv.ParseFloat(strconv.FormatFloat(v, 'g', -1, 32), 64)
	if err != nil {
		return v
	}
	return d
}

// LoadGGUF reads a llama.cpp GGUF model file (architecture llama or qwen2)
// as a checkpoint under HuggingFace names and layout: the configuration from
// the metadata (ggufConfig), token_embd -> model.embed_tokens,
// blk.N.attn_q -> model.layers.N.self_attn.q_proj and so on, dimensions
// reversed (GGML lists the row length first), and, for llama, the rows of
// attn_q and attn_k permuted back from llama.cpp's interleaved RoPE order to
// HuggingFace's rotate-half order. F32 tensors and BF16 matrices stay views
// of the memory-mapped file (except the permuted q and k); F16, Q8_0 and
// BF16 vectors are converted to float32. Every tensor the configuration
// implies must be present with its shape and finite values, and no other.
func LoadGGUF(path string) (*Checkpoint, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	ck, err := loadGGUF(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return ck, nil
}

func loadGGUF(f *gguf.File) (*Checkpoint, error) {
	cfg, err := ggufConfig(f)
	if err != nil {
		return nil, err
	}
	ggufOf := make(map[string]string, len(f.Tensors)) // HF name -> GGUF name
	for _, t := range f.Tensors {
		hf := hfNameOfGGUF(t.Name)
		if hf == "" {
			return nil, fmt.Errorf("%s: tensor %q is not part of a %s model this package reads", f.Name(), t.Name, cfg.ModelType)
		}
		ggufOf[hf] = t.Name
	}
	shapeOf := func(name string) ([]int, bool) {
		g, ok := ggufOf[name]
		if !ok {
			return nil, false
		}
		t, _ := f.Tensor(g)
		shape := make([]int, len(t.Dims))
		for i, d := range t.Dims {
			shape[len(t.Dims)-1-i] = int(min(d, 1<<50))
		}
		return shape, true
	}
	expected := cfg.TensorShapes()
	err = checkTensorSet(expected, f.Name(), func(name string) ([]int, string, bool) {
		shape, ok := shapeOf(name)
		return shape, f.Name(), ok
	})
	if err == nil {
		err = checkUnusedTensors(cfg, expected, slices.Collect(maps.Keys(ggufOf)), func(string) string { return f.Name() })
	}
	if err != nil {
		named := maps.Clone(ggufOf)
		for name := range expected {
			if _, ok := named[name]; !ok {
				named[name] = GGUFTensorName(name)
			}
		}
		return nil, ggufNamesInError(err, named)
	}
	names := slices.Sorted(maps.Keys(expected))
	tensors := make([]*Tensor, len(names))
	errs := make([]error, len(names))
	parallel.ForEach(len(names), 0, func(i int) {
		tensors[i], errs[i] = ggufTensor(f, cfg, names[i], ggufOf[names[i]], expected[names[i]])
	})
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	ck := &Checkpoint{Config: cfg, Tensors: make(map[string]*Tensor, len(names)), Source: f.Name()}
	for i, name := range names {
		ck.Tensors[name] = tensors[i]
	}
	ck.release = f.Close
	ck.releaseView = func(name string) {
		if raw, err := f.TensorBytes(ggufOf[name]); err == nil {
			safetensors.ReleasePages(raw)
		}
	}
	return ck, nil
}

// ggufTensor reads one tensor in HuggingFace layout.
func ggufTensor(f *gguf.File, cfg Config, name, ggufName string, shape []int) (*Tensor, error) {
	info, _ := f.Tensor(ggufName)
	t := &Tensor{Shape: shape}
	var err error
	if info.Type == gguf.BF16 && len(shape) == 2 {
		t.BF16, err = f.BF16(ggufName)
	} else {
		t.Data, err = f.Float32(ggufName)
	}
	if err != nil {
		return nil, err
	}
	if cfg.ModelType != "llama" {
		return t, nil // qwen2: llama.cpp keeps HuggingFace's rotate-half order
	}
	heads := 0
	switch {
	case strings.HasSuffix(name, ".self_attn.q_proj.weight"):
		heads = cfg.Heads
	case strings.HasSuffix(name, ".self_attn.k_proj.weight"):
		heads = cfg.KVHeads
	}
	if heads > 0 {
		if t.BF16 != nil {
			t.BF16 = permuteRotaryRows(t.BF16, heads, cfg.HeadDim, shape[1])
		} else {
			t.Data = permuteRotaryRows(t.Data, heads, cfg.HeadDim, shape[1])
		}
	}
	return t, nil
}

// ggufNamesInError adds the GGUF name to the HuggingFace tensor names an
// error from the shared checks quotes.
func ggufNamesInError(err error, ggufOf map[string]string) error {
	msg := err.Error()
	for hf, g := range ggufOf {
		quoted := strconv.Quote(hf)
		if strings.Contains(msg, quoted) {
			return fmt.Errorf("%s", strings.Replace(msg, quoted, fmt.Sprintf("%s (GGUF %q)", quoted, g), 1))
		}
	}
	return err
}
