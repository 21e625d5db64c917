package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"

	"github.com/salr-go/salr/kernels"
)

// Config is the architecture of a decoder-only Llama-family model, as read
// from a HuggingFace config.json or a llama2.c header.
type Config struct {
	ModelType     string // "llama" | "mistral" | "qwen2"
	Hidden        int    // hidden_size
	Intermediate  int    // intermediate_size (SwiGLU width)
	Layers        int    // num_hidden_layers
	Heads         int    // num_attention_heads
	KVHeads       int    // num_key_value_heads (grouped-query attention)
	HeadDim       int    // head_dim (default hidden_size / num_attention_heads)
	Vocab         int    // vocab_size
	MaxPositions  int    // max_position_embeddings
	RMSNormEps    float64
	RopeTheta     float64
	RopeScaling   *RopeScaling // nil when absent
	TieEmbeddings bool         // lm_head shares model.embed_tokens.weight
	AttentionBias bool         // q/k/v projections have biases (qwen2: true)
	SlidingWindow int          // mistral (and qwen2 with use_sliding_window); 0 = none
	BOSTokenID    int          // -1 when absent
	EOSTokenIDs   []int        // config.json may hold an int or a list; nil when absent
	TorchDtype    string       // "bfloat16", "float16", "float32" or "" when absent

	// Mixture of experts (model_type mixtral and qwen2_moe); all zero for a
	// dense model. A sparse layer (SparseLayer) replaces its MLP by a router
	// and Experts SwiGLU experts of width ExpertIntermediate, of which each
	// token uses ExpertsPerToken.
	Experts            int   // num_local_experts (mixtral), num_experts (qwen2_moe)
	ExpertsPerToken    int   // num_experts_per_tok (top-k)
	ExpertIntermediate int   // intermediate_size (mixtral), moe_intermediate_size (qwen2_moe)
	SharedIntermediate int   // qwen2_moe shared_expert_intermediate_size (0: no shared expert)
	NormTopKProb       bool  // renormalise the top-k routing weights to sum 1 (mixtral: always)
	SparseStep         int   // qwen2_moe decoder_sparse_step (mixtral: 1)
	MLPOnlyLayers      []int // qwen2_moe mlp_only_layers: layers that keep a dense MLP
}

// RopeScaling is config.json's rope_scaling: a context extension of RoPE.
// It is kernels.RopeScaling, which computes the frequencies from it.
type RopeScaling = kernels.RopeScaling

// The architectures config.json may name, per model_type.
var hfArchitectures = map[string]string{
	"llama":     "LlamaForCausalLM",
	"mistral":   "MistralForCausalLM",
	"qwen2":     "Qwen2ForCausalLM",
	"mixtral":   "MixtralForCausalLM",
	"qwen2_moe": "Qwen2MoeForCausalLM",
}

// supportedTypes names the model types in errors.
const supportedTypes = "llama, mistral, qwen2, mixtral or qwen2_moe"

// hfDefaults holds transformers' defaults for the optional fields, per
// model_type (LlamaConfig, MistralConfig, Qwen2Config).
type hfDefaults struct {
	maxPositions int
	rmsNormEps   float64
	ropeTheta    float64
	kvHeads      int // 0: num_attention_heads
}

var hfDefaultsByType = map[string]hfDefaults{
	"llama":     {maxPositions: 2048, rmsNormEps: 1e-6, ropeTheta: 10000},
	"mistral":   {maxPositions: 4096 * 32, rmsNormEps: 1e-6, ropeTheta: 10000, kvHeads: 8},
	"qwen2":     {maxPositions: 32768, rmsNormEps: 1e-6, ropeTheta: 10000, kvHeads: 32},
	"mixtral":   {maxPositions: 4096 * 32, rmsNormEps: 1e-5, ropeTheta: 1e6, kvHeads: 8},
	"qwen2_moe": {maxPositions: 32768, rmsNormEps: 1e-6, ropeTheta: 10000, kvHeads: 16},
}

// hfConfigJSON is the subset of config.json we read. Pointers tell absent
// fields from zero values; RawMessage fields take several JSON types.
type hfConfigJSON struct {
	ModelType             *string         `json:"model_type"`
	HiddenSize            *int            `json:"hidden_size"`
	IntermediateSize      *int            `json:"intermediate_size"`
	NumHiddenLayers       *int            `json:"num_hidden_layers"`
	NumAttentionHeads     *int            `json:"num_attention_heads"`
	NumKeyValueHeads      *int            `json:"num_key_value_heads"`
	HeadDim               *int            `json:"head_dim"`
	VocabSize             *int            `json:"vocab_size"`
	MaxPositionEmbeddings *int            `json:"max_position_embeddings"`
	RMSNormEps            *float64        `json:"rms_norm_eps"`
	RopeTheta             *float64        `json:"rope_theta"`
	RopeScaling           json.RawMessage `json:"rope_scaling"`
	RopeParameters        json.RawMessage `json:"rope_parameters"` // transformers v5
	TieWordEmbeddings     *bool           `json:"tie_word_embeddings"`
	AttentionBias         *bool           `json:"attention_bias"`
	MLPBias               *bool           `json:"mlp_bias"`
	HiddenAct             *string         `json:"hidden_act"`
	SlidingWindow         json.RawMessage `json:"sliding_window"`
	UseSlidingWindow      *bool           `json:"use_sliding_window"`
	BOSTokenID            json.RawMessage `json:"bos_token_id"`
	EOSTokenID            json.RawMessage `json:"eos_token_id"`
	TorchDtype            *string         `json:"torch_dtype"`
	Dtype                 *string         `json:"dtype"` // transformers v5 spelling
	QuantizationConfig    json.RawMessage `json:"quantization_config"`
	// Mixture of experts.
	NumLocalExperts              *int  `json:"num_local_experts"` // mixtral
	NumExperts                   *int  `json:"num_experts"`       // qwen2_moe
	NumExpertsPerTok             *int  `json:"num_experts_per_tok"`
	MoEIntermediateSize          *int  `json:"moe_intermediate_size"`
	SharedExpertIntermediateSize *int  `json:"shared_expert_intermediate_size"`
	NormTopKProb                 *bool `json:"norm_topk_prob"`
	DecoderSparseStep            *int  `json:"decoder_sparse_step"`
	MLPOnlyLayers                []int `json:"mlp_only_layers"`
	QKVBias                      *bool `json:"qkv_bias"`
}

// LoadHFConfig reads and parses a config.json file.
func LoadHFConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	return ParseHFConfig(data, path)
}

// ParseHFConfig parses the text of a HuggingFace config.json (file names it
// in errors) and validates the result. Missing architecture sizes
// (hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
// vocab_size) and an unknown model_type are errors; other fields take
// transformers' defaults for the model type. Fields that would change the
// architecture beyond what this package models (another activation, MLP or
// output biases, quantization, unknown RoPE scaling) are errors too.
func ParseHFConfig(data []byte, file string) (Config, error) {
	var raw hfConfigJSON
	if err := json.Unmarshal(data, &raw); err != nil {
		return Config{}, describeJSONError(data, file, err)
	}
	c, err := raw.toConfig()
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", file, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", file, err)
	}
	return c, nil
}

// describeJSONError turns encoding/json errors into "file:line:col: ..." and
// names the field of a type mismatch.
func describeJSONError(data []byte, file string, err error) error {
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		line, col := lineCol(data, syntax.Offset)
		return fmt.Errorf("%s:%d:%d: invalid JSON: %v", file, line, col, syntax)
	case errors.As(err, &typeErr):
		line, col := lineCol(data, typeErr.Offset)
		return fmt.Errorf("%s:%d:%d: field %q: JSON %s where %s was expected", file, line, col, typeErr.Field, typeErr.Value, typeErr.Type)
	}
	return fmt.Errorf("%s: %v", file, err)
}

// lineCol converts a byte offset into 1-based line and column numbers.
func lineCol(data []byte, offset int64) (line, col int) {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	before := data[:offset]
	line = bytes.Count(before, []byte{'\n'}) + 1
	col = int(offset) - bytes.LastIndexByte(before, '\n')
	return line, col
}

func (r *hfConfigJSON) toConfig() (Config, error) {
	if r.ModelType == nil {
		return Config{}, errors.New(`missing required field "model_type"`)
	}
	defaults, ok := hfDefaultsByType[*r.ModelType]
	if !ok {
		return Config{}, fmt.Errorf("model_type %q is not supported (want %s)", *r.ModelType, supportedTypes)
	}
	c := Config{ModelType: *r.ModelType, BOSTokenID: -1}
	for _, req := range []struct {
		field string
		value *int
		dst   *int
	}{
		{"hidden_size", r.HiddenSize, &c.Hidden},
		{"intermediate_size", r.IntermediateSize, &c.Intermediate},
		{"num_hidden_layers", r.NumHiddenLayers, &c.Layers},
		{"num_attention_heads", r.NumAttentionHeads, &c.Heads},
		{"vocab_size", r.VocabSize, &c.Vocab},
	} {
		if req.value == nil {
			return Config{}, fmt.Errorf("missing required field %q", req.field)
		}
		*req.dst = *req.value
	}

	if r.HiddenAct != nil && *r.HiddenAct != "silu" {
		return Config{}, fmt.Errorf("hidden_act %q is not supported (want silu)", *r.HiddenAct)
	}
	if r.MLPBias != nil && *r.MLPBias {
		return Config{}, errors.New("mlp_bias: true is not supported")
	}
	if !isJSONNull(r.QuantizationConfig) {
		return Config{}, errors.New("quantization_config: quantized checkpoints are not supported")
	}
	switch c.ModelType {
	case "qwen2", "qwen2_moe":
		c.AttentionBias = true // Qwen2 always has q/k/v biases and no o_proj bias
		if r.QKVBias != nil && !*r.QKVBias {
			return Config{}, errors.New("qkv_bias: false is not supported")
		}
	case "llama":
		if r.AttentionBias != nil && *r.AttentionBias {
			return Config{}, errors.New("attention_bias: true (biases on q/k/v/o) is not supported for llama")
		}
	}

	c.HeadDim = intOr(r.HeadDim, 0)
	if c.HeadDim == 0 && c.Heads > 0 {
		if c.Hidden%c.Heads != 0 {
			return Config{}, fmt.Errorf("hidden_size %d is not a multiple of num_attention_heads %d and head_dim is absent", c.Hidden, c.Heads)
		}
		c.HeadDim = c.Hidden / c.Heads
	}
	c.KVHeads = intOr(r.NumKeyValueHeads, defaults.kvHeads)
	if c.KVHeads == 0 {
		c.KVHeads = c.Heads
	}
	c.MaxPositions = intOr(r.MaxPositionEmbeddings, defaults.maxPositions)
	c.RMSNormEps = floatOr(r.RMSNormEps, defaults.rmsNormEps)
	c.RopeTheta = floatOr(r.RopeTheta, defaults.ropeTheta)
	c.TieEmbeddings = r.TieWordEmbeddings != nil && *r.TieWordEmbeddings

	scalingJSON := r.RopeScaling
	if !isJSONNull(r.RopeParameters) {
		// transformers v5 folds rope_theta and the scaling into rope_parameters.
		var params struct {
			RopeTheta *float64 `json:"rope_theta"`
		}
		if err := json.Unmarshal(r.RopeParameters, &params); err != nil {
			return Config{}, fmt.Errorf("rope_parameters: %v", err)
		}
		if params.RopeTheta != nil {
			c.RopeTheta = *params.RopeTheta
		}
		if isJSONNull(scalingJSON) {
			scalingJSON = r.RopeParameters
		}
	}
	scaling, err := parseRopeScaling(scalingJSON)
	if err != nil {
		return Config{}, err
	}
	c.RopeScaling = scaling

	if c.SlidingWindow, err = parseSlidingWindow(r, c.ModelType); err != nil {
		return Config{}, err
	}
	if c.BOSTokenID, err = parseBOS(r.BOSTokenID); err != nil {
		return Config{}, err
	}
	if c.EOSTokenIDs, err = parseEOS(r.EOSTokenID); err != nil {
		return Config{}, err
	}
	if err := r.readMoE(&c); err != nil {
		return Config{}, err
	}
	switch {
	case r.TorchDtype != nil:
		c.TorchDtype = *r.TorchDtype
	case r.Dtype != nil:
		c.TorchDtype = *r.Dtype
	}
	return c, nil
}

func intOr(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}

func floatOr(p *float64, def float64) float64 {
	if p == nil {
		return def
	}
	return *p
}

func isJSONNull(raw json.RawMessage) bool {
	return len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null"
}

// parseRopeScaling reads rope_scaling (or v5's rope_parameters). The type is
// "rope_type" or the older "type"; "default" means no scaling.
func parseRopeScaling(raw json.RawMessage) (*RopeScaling, error) {
	if isJSONNull(raw) {
		return nil, nil
	}
	var r struct {
		Type                 *string  `json:"type"`
		RopeType             *string  `json:"rope_type"`
		Factor               *float64 `json:"factor"`
		LowFreqFactor        *float64 `json:"low_freq_factor"`
		HighFreqFactor       *float64 `json:"high_freq_factor"`
		OriginalMaxPositions *int     `json:"original_max_position_embeddings"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return nil, fmt.Errorf("rope_scaling.%s: JSON %s where %s was expected", typeErr.Field, typeErr.Value, typeErr.Type)
		}
		return nil, fmt.Errorf("rope_scaling: %v", err)
	}
	var kind string
	switch {
	case r.RopeType != nil:
		kind = *r.RopeType
	case r.Type != nil:
		kind = *r.Type
	default:
		return nil, errors.New(`rope_scaling: missing "rope_type"`)
	}
	if kind == "default" {
		return nil, nil
	}
	required := map[string][]string{
		"linear":  {"factor"},
		"dynamic": {"factor"},
		"llama3":  {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"},
	}[kind]
	if required == nil {
		return nil, fmt.Errorf("rope_scaling: type %q is not supported (want linear, dynamic or llama3)", kind)
	}
	present := map[string]bool{
		"factor":                           r.Factor != nil,
		"low_freq_factor":                  r.LowFreqFactor != nil,
		"high_freq_factor":                 r.HighFreqFactor != nil,
		"original_max_position_embeddings": r.OriginalMaxPositions != nil,
	}
	for _, field := range required {
		if !present[field] {
			return nil, fmt.Errorf("rope_scaling: type %q needs field %q", kind, field)
		}
	}
	return &RopeScaling{
		Type:                 kind,
		Factor:               floatOr(r.Factor, 0),
		LowFreqFactor:        floatOr(r.LowFreqFactor, 0),
		HighFreqFactor:       floatOr(r.HighFreqFactor, 0),
		OriginalMaxPositions: intOr(r.OriginalMaxPositions, 0),
	}, nil
}

// parseSlidingWindow follows transformers: Mistral uses sliding_window
// (default 4096, null for none); Qwen2 only when use_sliding_window is true
// (then sliding_window defaults to 4096); Llama has none.
func parseSlidingWindow(r *hfConfigJSON, modelType string) (int, error) {
	switch modelType {
	case "llama":
		return 0, nil
	case "mixtral":
		if r.SlidingWindow == nil {
			return 0, nil // MixtralConfig's default is None
		}
	case "qwen2", "qwen2_moe":
		if r.UseSlidingWindow == nil || !*r.UseSlidingWindow {
			return 0, nil
		}
	}
	if r.SlidingWindow == nil {
		return 4096, nil
	}
	if isJSONNull(r.SlidingWindow) {
		return 0, nil
	}
	var w int
	if err := json.Unmarshal(r.SlidingWindow, &w); err != nil {
		return 0, fmt.Errorf("sliding_window: want an integer or null, got %s", r.SlidingWindow)
	}
	return w, nil
}

func parseBOS(raw json.RawMessage) (int, error) {
	if isJSONNull(raw) {
		return -1, nil
	}
	var id int
	if err := json.Unmarshal(raw, &id); err != nil {
		return 0, fmt.Errorf("bos_token_id: want an integer or null, got %s", raw)
	}
	return id, nil
}

func parseEOS(raw json.RawMessage) ([]int, error) {
	if isJSONNull(raw) {
		return nil, nil
	}
	var id int
	if err := json.Unmarshal(raw, &id); err == nil {
		return []int{id}, nil
	}
	var ids []int
	if err := json.Unmarshal(raw, &ids); err != nil {
		return nil, fmt.Errorf("eos_token_id: want an integer, a list of integers or null, got %s", raw)
	}
	return ids, nil
}

// maxTensorElements bounds the size of one weight matrix so that element
// and byte counts cannot overflow anywhere downstream.
const maxTensorElements = 1 << 40

// Validate checks that the configuration describes a model this package can
// build. Messages use config.json's field names.
func (c Config) Validate() error {
	if _, ok := hfArchitectures[c.ModelType]; !ok {
		return fmt.Errorf("model_type %q is not supported (want %s)", c.ModelType, supportedTypes)
	}
	for _, f := range []struct {
		field string
		value int
	}{
		{"hidden_size", c.Hidden}, {"intermediate_size", c.Intermediate},
		{"num_hidden_layers", c.Layers}, {"num_attention_heads", c.Heads},
		{"num_key_value_heads", c.KVHeads}, {"head_dim", c.HeadDim},
		{"vocab_size", c.Vocab}, {"max_position_embeddings", c.MaxPositions},
	} {
		if f.value <= 0 {
			return fmt.Errorf("%s must be positive, got %d", f.field, f.value)
		}
	}
	if c.Heads%c.KVHeads != 0 {
		return fmt.Errorf("num_attention_heads %d is not a multiple of num_key_value_heads %d", c.Heads, c.KVHeads)
	}
	if c.HeadDim%2 != 0 {
		return fmt.Errorf("head_dim %d must be even for rotary embeddings", c.HeadDim)
	}
	for _, f := range []struct {
		field string
		value float64
	}{{"rms_norm_eps", c.RMSNormEps}, {"rope_theta", c.RopeTheta}} {
		if !(f.value > 0) || math.IsInf(f.value, 0) {
			return fmt.Errorf("%s must be a positive finite number, got %v", f.field, f.value)
		}
	}
	if err := c.validateRopeScaling(); err != nil {
		return err
	}
	if err := c.validateMoE(); err != nil {
		return err
	}
	if wantBias := c.ModelType == "qwen2" || c.ModelType == "qwen2_moe"; c.AttentionBias != wantBias {
		return fmt.Errorf("AttentionBias is %v, but model_type %s has q/k/v biases: %v", c.AttentionBias, c.ModelType, wantBias)
	}
	if c.SlidingWindow < 0 {
		return fmt.Errorf("sliding_window must not be negative, got %d", c.SlidingWindow)
	}
	if c.BOSTokenID < -1 {
		return fmt.Errorf("bos_token_id must not be negative, got %d", c.BOSTokenID)
	}
	for _, id := range c.EOSTokenIDs {
		if id < 0 {
			return fmt.Errorf("eos_token_id must not be negative, got %d", id)
		}
	}
	for name, shape := range c.TensorShapes() {
		n := 1
		for _, d := range shape {
			if d > maxTensorElements || n > maxTensorElements/d {
				return fmt.Errorf("tensor %s of shape %v is too large", name, shape)
			}
			n *= d
		}
	}
	return nil
}

// validateRopeScaling checks rope_scaling with kernels.RopeScaling.Validate,
// plus what involves the rest of the configuration: a llama3 scaling extends
// original_max_position_embeddings, so that must not exceed
// max_position_embeddings (transformers warns unless it is below). A
// non-nil RopeScaling must name a scaling: nil means plain RoPE.
func (c Config) validateRopeScaling() error {
	s := c.RopeScaling
	if s == nil {
		return nil
	}
	if s.Type == "" || s.Type == "default" {
		return fmt.Errorf("rope_scaling: type %q is not a scaling (want linear, dynamic or llama3; plain RoPE has no rope_scaling)", s.Type)
	}
	if err := s.Validate(); err != nil {
		return err
	}
	if s.Type == "llama3" && s.OriginalMaxPositions > c.MaxPositions {
		return fmt.Errorf("rope_scaling.original_max_position_embeddings %d exceeds max_position_embeddings %d", s.OriginalMaxPositions, c.MaxPositions)
	}
	return nil
}

// KVDim is the width of the key and value projections: KVHeads * HeadDim.
func (c Config) KVDim() int { return c.KVHeads * c.HeadDim }

// QDim is the width of the query projection: Heads * HeadDim (equal to
// Hidden unless config.json sets head_dim).
func (c Config) QDim() int { return c.Heads * c.HeadDim }

// The names of the HuggingFace tensors outside the decoder layers.
const (
	EmbedTokensName = "model.embed_tokens.weight"
	FinalNormName   = "model.norm.weight"
	LMHeadName      = "lm_head.weight"
)

// LayerTensorName is the HuggingFace name of a tensor of decoder layer i,
// e.g. LayerTensorName(3, "self_attn.q_proj.weight") =
// "model.layers.3.self_attn.q_proj.weight".
func LayerTensorName(layer int, suffix string) string {
	return "model.layers." + strconv.Itoa(layer) + "." + suffix
}

// TensorShapes maps every tensor name a HuggingFace checkpoint of this
// architecture holds to its shape ([out, in] for projections). lm_head.weight
// is absent when the embeddings are tied.
func (c Config) TensorShapes() map[string][]int {
	h, q, kv, ff := c.Hidden, c.QDim(), c.KVDim(), c.Intermediate
	shapes := map[string][]int{
		EmbedTokensName: {c.Vocab, h},
		FinalNormName:   {h},
	}
	if !c.TieEmbeddings {
		shapes[LMHeadName] = []int{c.Vocab, h}
	}
	for i := 0; i < c.Layers; i++ {
		layer := map[string][]int{
			"input_layernorm.weight":          {h},
			"self_attn.q_proj.weight":         {q, h},
			"self_attn.k_proj.weight":         {kv, h},
			"self_attn.v_proj.weight":         {kv, h},
			"self_attn.o_proj.weight":         {h, q},
			"post_attention_layernorm.weight": {h},
		}
		if c.SparseLayer(i) {
			for name, shape := range c.moeTensorShapes(i) {
				shapes[name] = shape
			}
		} else {
			layer["mlp.gate_proj.weight"] = []int{ff, h}
			layer["mlp.up_proj.weight"] = []int{ff, h}
			layer["mlp.down_proj.weight"] = []int{h, ff}
		}
		if c.AttentionBias {
			layer["self_attn.q_proj.bias"] = []int{q}
			layer["self_attn.k_proj.bias"] = []int{kv}
			layer["self_attn.v_proj.bias"] = []int{kv}
		}
		for suffix, shape := range layer {
			shapes[LayerTensorName(i, suffix)] = shape
		}
	}
	return shapes
}

// MarshalHF renders the configuration as a config.json that transformers
// loads (AutoConfig / AutoModelForCausalLM): architectures, model_type and
// every field above, keys sorted, floats written as Python would.
func (c Config) MarshalHF() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	out := map[string]any{
		"architectures":           []string{hfArchitectures[c.ModelType]},
		"model_type":              c.ModelType,
		"hidden_size":             c.Hidden,
		"intermediate_size":       c.Intermediate,
		"num_hidden_layers":       c.Layers,
		"num_attention_heads":     c.Heads,
		"num_key_value_heads":     c.KVHeads,
		"head_dim":                c.HeadDim,
		"vocab_size":              c.Vocab,
		"max_position_embeddings": c.MaxPositions,
		"hidden_act":              "silu",
		"rms_norm_eps":            pythonFloat(c.RMSNormEps),
		"rope_theta":              pythonFloat(c.RopeTheta),
		"rope_scaling":            nil,
		"tie_word_embeddings":     c.TieEmbeddings,
		"initializer_range":       pythonFloat(0.02),
		"attention_dropout":       pythonFloat(0),
		"use_cache":               true,
		"bos_token_id":            nil,
		"eos_token_id":            nil,
	}
	if s := c.RopeScaling; s != nil {
		scaling := map[string]any{"rope_type": s.Type, "type": s.Type, "factor": pythonFloat(s.Factor)}
		if s.Type == "llama3" {
			scaling["low_freq_factor"] = pythonFloat(s.LowFreqFactor)
			scaling["high_freq_factor"] = pythonFloat(s.HighFreqFactor)
		}
		if s.OriginalMaxPositions > 0 {
			scaling["original_max_position_embeddings"] = s.OriginalMaxPositions
		}
		out["rope_scaling"] = scaling
	}
	switch c.ModelType {
	case "llama":
		out["attention_bias"] = false
		out["mlp_bias"] = false
	case "mistral":
		out["sliding_window"] = nil
		if c.SlidingWindow > 0 {
			out["sliding_window"] = c.SlidingWindow
		}
	case "mixtral":
		out["sliding_window"] = nil
		if c.SlidingWindow > 0 {
			out["sliding_window"] = c.SlidingWindow
		}
		out["num_local_experts"] = c.Experts
		out["num_experts_per_tok"] = c.ExpertsPerToken
		out["router_aux_loss_coef"] = pythonFloat(0.001)
		out["router_jitter_noise"] = pythonFloat(0)
		out["output_router_logits"] = false
	case "qwen2", "qwen2_moe":
		if c.ModelType == "qwen2_moe" {
			out["num_experts"] = c.Experts
			out["num_experts_per_tok"] = c.ExpertsPerToken
			out["moe_intermediate_size"] = c.ExpertIntermediate
			out["shared_expert_intermediate_size"] = c.SharedIntermediate
			out["norm_topk_prob"] = c.NormTopKProb
			out["decoder_sparse_step"] = c.SparseStep
			out["mlp_only_layers"] = append([]int{}, c.MLPOnlyLayers...)
			out["router_aux_loss_coef"] = pythonFloat(0.001)
			out["output_router_logits"] = false
			out["qkv_bias"] = true
		}
		out["use_sliding_window"] = c.SlidingWindow > 0
		out["sliding_window"] = nil
		if c.SlidingWindow > 0 {
			out["sliding_window"] = c.SlidingWindow
		}
	}
	if c.BOSTokenID >= 0 {
		out["bos_token_id"] = c.BOSTokenID
	}
	switch len(c.EOSTokenIDs) {
	case 0:
	case 1:
		out["eos_token_id"] = c.EOSTokenIDs[0]
	default:
		out["eos_token_id"] = c.EOSTokenIDs
	}
	if c.TorchDtype != "" {
		out["torch_dtype"] = c.TorchDtype
	}
	text, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(text, '\n'), nil
}

// pythonFloat formats f as Python's json module would (10000.0, 1e-05), so
// that transformers reads float fields as floats.
func pythonFloat(f float64) json.Number {
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !bytes.ContainsAny([]byte(s), ".e") {
		s += ".0"
	}
	return json.Number(s)
}
