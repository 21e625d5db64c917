package configs

import (
	"strings"
	"testing"
)

func TestRouterAuxLossCoef(t *testing.T) {
	t.Setenv("SALR_ASSETS", "/assets")
	for _, c := range []struct{ value, save, want string }{
		{"0.01", "", "train.router_aux_loss_coef: must be 0 unless the router trains (adapters.modules_to_save listing \"gate\")"},
		{"0.01", "shared_expert_gate", "train.router_aux_loss_coef: must be 0 unless the router trains"},
		{"-1", "gate", "train.router_aux_loss_coef: must be >= 0"},
		{"0", "", ""},
		{"0.01", "gate", ""},
		{"0", "gate,shared_expert_gate", ""},
		{"0", "lm_head", "adapters.modules_to_save: unsupported module \"lm_head\""},
		{"0", "gate,gate", "adapters.modules_to_save: \"gate\" listed twice"},
	} {
		set := []string{"train.router_aux_loss_coef=" + c.value, "adapters.modules_to_save=" + c.save}
		_, err := Parse("test", nil, set)
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.value, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: got %v, want %q", c.value, c.save, err, c.want)
		}
	}
	if _, err := Parse("test", nil, []string{"method=prune", "adapters.modules_to_save=gate"}); err == nil || !strings.Contains(err.Error(), "adapters.modules_to_save: trains modules, but method prune does not train") {
		t.Errorf("modules_to_save with method prune: %v", err)
	}
	for set, want := range map[string]string{
		"train.precision=bf16": "adapters.modules_to_save: trains weights in full, which needs train.precision = \"fp32\"",
	} {
		_, err := Parse("test", nil, []string{"adapters.modules_to_save=gate", "train.router_aux_loss_coef=0.01", set})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", set, err, want)
		}
	}
	for _, m := range []string{"w1", "w2", "w3", "experts", "shared_expert"} {
		if _, err := Parse("test", nil, []string{"sparsity.target_modules=" + m, "adapters.target_modules=q_proj," + m}); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
}
