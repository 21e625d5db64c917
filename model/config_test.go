package model

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

// Public config.json files, as published on the HuggingFace hub.
const (
	llama2_7BConfig = `{
  "_name_or_path": "meta-llama/Llama-2-7b-hf",
  "architectures": ["LlamaForCausalLM"],
  "bos_token_id": 1,
  "eos_token_id": 2,
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 11008,
  "max_position_embeddings": 4096,
  "model_type": "llama",
  "num_attention_heads": 32,
  "num_hidden_layers": 32,
  "num_key_value_heads": 32,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": null,
  "tie_word_embeddings": false,
  "torch_dtype": "float16",
  "transformers_version": "4.31.0.dev0",
  "use_cache": true,
  "vocab_size": 32000
}`
	llama31_8BConfig = `{
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 128000,
  "eos_token_id": 128001,
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 14336,
  "max_position_embeddings": 131072,
  "mlp_bias": false,
  "model_type": "llama",
  "num_attention_heads": 32,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": {
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
    "rope_type": "llama3"
  },
  "rope_theta": 500000.0,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.43.0.dev0",
  "use_cache": true,
  "vocab_size": 128256
}`
	mistral7BConfig = `{
  "architectures": ["MistralForCausalLM"],
  "bos_token_id": 1,
  "eos_token_id": 2,
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 14336,
  "max_position_embeddings": 32768,
  "model_type": "mistral",
  "num_attention_heads": 32,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0,
  "sliding_window": 4096,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.34.0.dev0",
  "use_cache": true,
  "vocab_size": 32000
}`
	qwen2_05BConfig = `{
  "architectures": ["Qwen2ForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151643,
  "hidden_act": "silu",
  "hidden_size": 896,
  "initializer_range": 0.02,
  "intermediate_size": 4864,
  "max_position_embeddings": 131072,
  "max_window_layers": 24,
  "model_type": "qwen2",
  "num_attention_heads": 14,
  "num_hidden_layers": 24,
  "num_key_value_heads": 2,
  "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0,
  "sliding_window": 131072,
  "tie_word_embeddings": true,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.40.1",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 151936
}`
)

// publishedConfigs pairs each config.json with the Config it must parse to
// and the model's published parameter count.
var publishedConfigs = []struct {
	name   string
	json   string
	want   Config
	params int64
}{
	{"Llama-2-7B", llama2_7BConfig, Config{
		ModelType: "llama", Hidden: 4096, Intermediate: 11008, Layers: 32, Heads: 32, KVHeads: 32, HeadDim: 128,
		Vocab: 32000, MaxPositions: 4096, RMSNormEps: 1e-5, RopeTheta: 10000,
		BOSTokenID: 1, EOSTokenIDs: []int{2}, TorchDtype: "float16",
	}, 6_738_415_616},
	{"Llama-3.1-8B", llama31_8BConfig, Config{
		ModelType: "llama", Hidden: 4096, Intermediate: 14336, Layers: 32, Heads: 32, KVHeads: 8, HeadDim: 128,
		Vocab: 128256, MaxPositions: 131072, RMSNormEps: 1e-5, RopeTheta: 500000,
		RopeScaling: &RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192},
		BOSTokenID:  128000, EOSTokenIDs: []int{128001}, TorchDtype: "bfloat16",
	}, 8_030_261_248},
	{"Mistral-7B-v0.1", mistral7BConfig, Config{
		ModelType: "mistral", Hidden: 4096, Intermediate: 14336, Layers: 32, Heads: 32, KVHeads: 8, HeadDim: 128,
		Vocab: 32000, MaxPositions: 32768, RMSNormEps: 1e-5, RopeTheta: 10000, SlidingWindow: 4096,
		BOSTokenID: 1, EOSTokenIDs: []int{2}, TorchDtype: "bfloat16",
	}, 7_241_732_096},
	{"Qwen2-0.5B", qwen2_05BConfig, Config{
		ModelType: "qwen2", Hidden: 896, Intermediate: 4864, Layers: 24, Heads: 14, KVHeads: 2, HeadDim: 64,
		Vocab: 151936, MaxPositions: 131072, RMSNormEps: 1e-6, RopeTheta: 1e6, TieEmbeddings: true, AttentionBias: true,
		BOSTokenID: 151643, EOSTokenIDs: []int{151643}, TorchDtype: "bfloat16",
	}, 494_032_768},
}

func TestParsePublishedConfigs(t *testing.T) {
	for _, c := range publishedConfigs {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseHFConfig([]byte(c.json), "config.json")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

// TestTensorShapesGiveThePublishedParameterCounts: the sum over all tensor
// shapes must equal the parameter count each model card states.
func TestTensorShapesGiveThePublishedParameterCounts(t *testing.T) {
	for _, c := range publishedConfigs {
		var total int64
		shapes := c.want.TensorShapes()
		for _, shape := range shapes {
			n := int64(1)
			for _, d := range shape {
				n *= int64(d)
			}
			total += n
		}
		if total != c.params {
			t.Errorf("%s: %d parameters, want %d", c.name, total, c.params)
		}
		perLayer := 9
		if c.want.AttentionBias {
			perLayer = 12
		}
		want := 2 + perLayer*c.want.Layers
		if !c.want.TieEmbeddings {
			want++
		}
		if len(shapes) != want {
			t.Errorf("%s: %d tensors, want %d", c.name, len(shapes), want)
		}
	}
	q := publishedConfigs[3].want
	if got := q.TensorShapes()["model.layers.23.self_attn.k_proj.bias"]; !reflect.DeepEqual(got, []int{128}) {
		t.Errorf("qwen2 k bias shape = %v", got)
	}
	if _, ok := q.TensorShapes()[LMHeadName]; ok {
		t.Error("tied qwen2 expects lm_head.weight")
	}
	if got := publishedConfigs[1].want.KVDim(); got != 1024 {
		t.Errorf("Llama-3.1 KVDim = %d", got)
	}
}

func TestMarshalHFRoundTrips(t *testing.T) {
	for _, c := range publishedConfigs {
		text, err := c.want.MarshalHF()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseHFConfig(text, c.name)
		if err != nil {
			t.Fatalf("%s: %v\n%s", c.name, err, text)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: round trip changed the config\ngot  %+v\nwant %+v", c.name, got, c.want)
		}
		for _, field := range []string{`"architectures"`, `"model_type"`, `"rope_theta"`, `"torch_dtype"`, `"num_key_value_heads"`} {
			if !strings.Contains(string(text), field) {
				t.Errorf("%s: MarshalHF lacks %s", c.name, field)
			}
		}
	}
	// Floats are written as Python writes them, so transformers reads floats.
	text, _ := publishedConfigs[0].want.MarshalHF()
	for _, want := range []string{`"rope_theta": 10000.0`, `"rms_norm_eps": 1e-05`, `"LlamaForCausalLM"`, `"eos_token_id": 2`} {
		if !strings.Contains(string(text), want) {
			t.Errorf("MarshalHF output lacks %s:\n%s", want, text)
		}
	}
	multi := publishedConfigs[1].want
	multi.EOSTokenIDs = []int{128001, 128008, 128009}
	text, _ = multi.MarshalHF()
	if got, err := ParseHFConfig(text, "x"); err != nil || !reflect.DeepEqual(got.EOSTokenIDs, multi.EOSTokenIDs) {
		t.Errorf("EOS list round trip: %v, %v", got.EOSTokenIDs, err)
	}
}

func TestParseHFConfigDefaults(t *testing.T) {
	minimal := func(modelType string) string {
		return `{"model_type": "` + modelType + `", "hidden_size": 64, "intermediate_size": 128,
		  "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100}`
	}
	cases := []struct {
		modelType string
		want      Config
	}{
		{"llama", Config{ModelType: "llama", Hidden: 64, Intermediate: 128, Layers: 2, Heads: 4, KVHeads: 4, HeadDim: 16,
			Vocab: 100, MaxPositions: 2048, RMSNormEps: 1e-6, RopeTheta: 10000, BOSTokenID: -1}},
		// MistralConfig's num_key_value_heads defaults to 8, which 4 heads cannot share.
		{"qwen2", Config{ModelType: "qwen2", Hidden: 64, Intermediate: 128, Layers: 2, Heads: 4, KVHeads: 4, HeadDim: 16,
			Vocab: 100, MaxPositions: 32768, RMSNormEps: 1e-6, RopeTheta: 10000, BOSTokenID: -1, AttentionBias: true}},
	}
	for _, c := range cases {
		text := minimal(c.modelType)
		if c.modelType == "qwen2" {
			text = strings.Replace(text, "{", `{"num_key_value_heads": 4,`, 1)
		}
		got, err := ParseHFConfig([]byte(text), "config.json")
		if err != nil {
			t.Fatalf("%s: %v", c.modelType, err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\ngot  %+v\nwant %+v", c.modelType, got, c.want)
		}
	}
	_, err := ParseHFConfig([]byte(minimal("mistral")), "config.json")
	if err == nil || !strings.Contains(err.Error(), "num_key_value_heads 8") {
		t.Errorf("mistral with the default of 8 KV heads for 4 heads: err = %v", err)
	}
	mistral := strings.Replace(minimal("mistral"), "{", `{"num_key_value_heads": 2,`, 1)
	got, err := ParseHFConfig([]byte(mistral), "config.json")
	if err != nil || got.SlidingWindow != 4096 || got.MaxPositions != 131072 || got.RMSNormEps != 1e-6 {
		t.Errorf("mistral defaults: %+v, %v", got, err)
	}
	noWindow := strings.Replace(mistral, "{", `{"sliding_window": null,`, 1)
	if got, err := ParseHFConfig([]byte(noWindow), "config.json"); err != nil || got.SlidingWindow != 0 {
		t.Errorf("sliding_window null: %d, %v", got.SlidingWindow, err)
	}
	v5 := strings.Replace(minimal("llama"), "{", `{"rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"}, "dtype": "bfloat16",`, 1)
	if got, err := ParseHFConfig([]byte(v5), "config.json"); err != nil || got.RopeTheta != 500000 || got.RopeScaling != nil || got.TorchDtype != "bfloat16" {
		t.Errorf("transformers v5 rope_parameters: %+v, %v", got, err)
	}
	linear := strings.Replace(minimal("llama"), "{", `{"rope_scaling": {"type": "linear", "factor": 2.0},`, 1)
	if got, err := ParseHFConfig([]byte(linear), "config.json"); err != nil || !reflect.DeepEqual(got.RopeScaling, &RopeScaling{Type: "linear", Factor: 2}) {
		t.Errorf("linear rope scaling: %+v, %v", got.RopeScaling, err)
	}
}

func TestParseHFConfigRejectsBadConfigs(t *testing.T) {
	edit := func(base, old, new string) string {
		if !strings.Contains(base, old) {
			panic("test edit does not apply: " + old)
		}
		return strings.Replace(base, old, new, 1)
	}
	cases := []struct {
		name, json, want string
	}{
		{"unknown model_type", edit(llama2_7BConfig, `"model_type": "llama"`, `"model_type": "gpt2"`), `model_type "gpt2"`},
		{"missing model_type", edit(llama2_7BConfig, `"model_type": "llama",`, ``), `"model_type"`},
		{"missing hidden_size", edit(llama2_7BConfig, `"hidden_size": 4096,`, ``), `"hidden_size"`},
		{"missing vocab_size", edit(llama2_7BConfig, `,
  "vocab_size": 32000`, ``), `"vocab_size"`},
		{"wrong type", edit(llama2_7BConfig, `"num_hidden_layers": 32`, `"num_hidden_layers": "32"`), `num_hidden_layers`},
		{"syntax error with line", edit(llama2_7BConfig, `"pretraining_tp": 1,`, `"pretraining_tp": 1,,`), `config.json:15:`},
		{"not json", "model_type = llama", "invalid JSON"},
		{"heads do not divide", edit(llama2_7BConfig, `"num_key_value_heads": 32`, `"num_key_value_heads": 5`), "not a multiple"},
		{"hidden not divisible", edit(llama2_7BConfig, `"num_attention_heads": 32`, `"num_attention_heads": 3`), "not a multiple"},
		{"zero layers", edit(llama2_7BConfig, `"num_hidden_layers": 32`, `"num_hidden_layers": 0`), "num_hidden_layers must be positive"},
		{"odd head_dim", edit(llama2_7BConfig, `"hidden_size": 4096,`, `"hidden_size": 4096, "head_dim": 33,`), "head_dim 33"},
		{"negative eps", edit(llama2_7BConfig, `"rms_norm_eps": 1e-05`, `"rms_norm_eps": -1e-05`), "rms_norm_eps"},
		{"gelu", edit(llama2_7BConfig, `"hidden_act": "silu"`, `"hidden_act": "gelu"`), `hidden_act "gelu"`},
		{"mlp bias", edit(llama2_7BConfig, `"pretraining_tp": 1,`, `"mlp_bias": true,`), "mlp_bias"},
		{"llama attention bias", edit(llama2_7BConfig, `"pretraining_tp": 1,`, `"attention_bias": true,`), "attention_bias"},
		{"quantized", edit(llama2_7BConfig, `"pretraining_tp": 1,`, `"quantization_config": {"quant_method": "gptq"},`), "quantization_config"},
		{"unknown rope type", edit(llama31_8BConfig, `"rope_type": "llama3"`, `"rope_type": "yarn"`), `type "yarn"`},
		{"llama3 missing field", edit(llama31_8BConfig, `"low_freq_factor": 1.0,`, ``), `"low_freq_factor"`},
		{"llama3 factors reversed", edit(llama31_8BConfig, `"high_freq_factor": 4.0`, `"high_freq_factor": 0.5`), "low_freq_factor < high_freq_factor"},
		{"scaling factor below 1", edit(llama31_8BConfig, `"factor": 8.0`, `"factor": 0.5`), "factor"},
		{"rope_scaling without type", edit(llama31_8BConfig, `"rope_type": "llama3"`, `"rope_kind": "llama3"`), `"rope_type"`},
		{"eos string", edit(llama2_7BConfig, `"eos_token_id": 2`, `"eos_token_id": "</s>"`), "eos_token_id"},
		{"negative eos", edit(llama2_7BConfig, `"eos_token_id": 2`, `"eos_token_id": [2, -5]`), "eos_token_id"},
		{"sliding window string", edit(mistral7BConfig, `"sliding_window": 4096`, `"sliding_window": "4k"`), "sliding_window"},
		{"huge vocab", edit(llama2_7BConfig, `"vocab_size": 32000`, `"vocab_size": 9000000000000`), "too large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseHFConfig([]byte(c.json), "config.json")
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "config.json") {
				t.Fatalf("error %q should start with the file name and mention %q", err, c.want)
			}
		})
	}
}

func TestValidateCatchesHandBuiltConfigs(t *testing.T) {
	good := publishedConfigs[0].want
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := good
	bad.AttentionBias = true
	if err := bad.Validate(); err == nil {
		t.Error("llama with AttentionBias accepted")
	}
	bad = publishedConfigs[3].want
	bad.AttentionBias = false
	if err := bad.Validate(); err == nil {
		t.Error("qwen2 without AttentionBias accepted")
	}
	bad = good
	bad.RopeScaling = &RopeScaling{Type: "ntk", Factor: 2}
	if err := bad.Validate(); err == nil {
		t.Error("unknown scaling type accepted")
	}
	if _, err := (Config{}).MarshalHF(); err == nil {
		t.Error("MarshalHF of an empty Config succeeded")
	}
}

// TestRopeScalingOneRule checks that Config.Validate applies kernels'
// rope_scaling rule (so RopeInvFreq never panics on a validated config) and
// adds only the bound against max_position_embeddings.
func TestRopeScalingOneRule(t *testing.T) {
	base := publishedConfigs[1].want // Llama-3.1-8B: max_position_embeddings 131072
	for _, tc := range []struct {
		s         RopeScaling
		kernelsOK bool
		configOK  bool
	}{
		{RopeScaling{Type: "linear", Factor: 2}, true, true},
		{RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192}, true, true},
		{RopeScaling{Type: "linear", Factor: 0.5}, false, false},
		{RopeScaling{Type: "dynamic", Factor: math.Inf(1)}, false, false},
		{RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: math.Inf(1), OriginalMaxPositions: 8192}, false, false},
		{RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 131072}, true, true},
		{RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 131073}, true, false},
		{RopeScaling{Type: "default"}, true, false}, // plain RoPE is a nil RopeScaling
	} {
		c := base
		s := tc.s
		c.RopeScaling = &s
		if err := s.Validate(); (err == nil) != tc.kernelsOK {
			t.Errorf("%+v: kernels Validate: %v, want ok=%v", s, err, tc.kernelsOK)
		}
		if err := c.Validate(); (err == nil) != tc.configOK {
			t.Errorf("%+v: Config.Validate: %v, want ok=%v", s, err, tc.configOK)
		}
		if tc.configOK {
			c.InvFreq() // must not panic
		}
	}
}
