package sparsity

import (
	"slices"
	"strings"
	"testing"
)

func TestParseTargets(t *testing.T) {
	all, err := ParseTargets([]string{"all-linear"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(all.Modules(), ModuleNames()) {
		t.Fatalf("all-linear = %v", all.Modules())
	}
	some, err := ParseTargets([]string{"v_proj", "q_proj", "q_proj", "down_proj"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"q_proj", "v_proj", "down_proj"}; !slices.Equal(some.Modules(), want) {
		t.Fatalf("modules %v, want %v", some.Modules(), want)
	}
	for _, bad := range [][]string{nil, {"lm_head"}, {"q_proj", "all-linear"}, {"embed_tokens"}, {"Q_PROJ"}} {
		if _, err := ParseTargets(bad); err == nil {
			t.Errorf("ParseTargets(%q) accepted", bad)
		}
	}
	if _, err := ParseTargets([]string{"qkv_proj"}); err == nil || !strings.Contains(err.Error(), `"qkv_proj"`) {
		t.Errorf("unknown module error does not name it: %v", err)
	}
}

func TestTargetsMatch(t *testing.T) {
	tg, err := ParseTargets([]string{"q_proj", "gate_proj"})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]bool{
		"model.layers.0.self_attn.q_proj.weight":  true,
		"model.layers.12.mlp.gate_proj.weight":    true,
		"model.layers.0.self_attn.k_proj.weight":  false, // not selected
		"model.layers.0.self_attn.q_proj.bias":    false, // biases are never pruned
		"model.layers.0.mlp.q_proj.weight":        false, // wrong block
		"model.layers.x.self_attn.q_proj.weight":  false,
		"model.layers.01.self_attn.q_proj.weight": false,
		"model.embed_tokens.weight":               false,
		"model.norm.weight":                       false,
		"lm_head.weight":                          false,
		"model.layers.0.input_layernorm.weight":   false,
	}
	for name, want := range cases {
		if got := tg.Match(name); got != want {
			t.Errorf("Match(%s) = %v, want %v", name, got, want)
		}
	}
	all, _ := ParseTargets([]string{AllLinear})
	for layer := 0; layer < 3; layer++ {
		for _, mod := range ModuleNames() {
			name := Projection{Layer: layer, Module: mod}.TensorName()
			p, ok := ParseProjection(name)
			if !ok || p.Layer != layer || p.Module != mod || !all.Match(name) {
				t.Fatalf("round trip of %s failed: %+v %v", name, p, ok)
			}
		}
	}
	if got := (Projection{Layer: 3, Module: "down_proj"}).TensorName(); got != "model.layers.3.mlp.down_proj.weight" {
		t.Fatalf("TensorName = %s", got)
	}
}

func TestTargetsHasModule(t *testing.T) {
	cases := []struct {
		targets []string
		module  string
		want    bool
	}{
		{[]string{"w1"}, "model.layers.0.block_sparse_moe.experts.3.w1", true},
		{[]string{"w1"}, "model.layers.0.block_sparse_moe.experts.3.w2", false},
		{[]string{"experts"}, "model.layers.0.block_sparse_moe.experts.3.w2", true},
		{[]string{"experts"}, "model.layers.0.mlp.experts.0.down_proj", true},
		{[]string{"experts"}, "model.layers.0.mlp.shared_expert.down_proj", false},
		{[]string{"experts"}, "model.layers.0.mlp.down_proj", false},
		{[]string{"shared_expert"}, "model.layers.0.mlp.shared_expert.up_proj", true},
		{[]string{"gate_proj"}, "model.layers.0.mlp.experts.2.gate_proj", true}, // PEFT's suffix match
		{[]string{"gate_proj"}, "model.layers.0.mlp.shared_expert.gate_proj", true},
		{[]string{"q_proj"}, "model.layers.0.mlp.experts.2.gate_proj", false},
		{[]string{"all-linear"}, "model.layers.0.block_sparse_moe.experts.7.w3", true},
		{[]string{"all-linear"}, "model.layers.0.mlp.shared_expert.up_proj", true},
	}
	for _, c := range cases {
		tg, err := ParseTargets(c.targets)
		if err != nil {
			t.Fatal(err)
		}
		if got := tg.HasModule(c.module); got != c.want {
			t.Errorf("%v HasModule(%s) = %v, want %v", c.targets, c.module, got, c.want)
		}
	}
}
