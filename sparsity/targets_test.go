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
