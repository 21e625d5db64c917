package configs

import (
	"strings"
	"testing"
)

func TestRouterAuxLossCoef(t *testing.T) {
	t.Setenv("SALR_ASSETS", "/assets")
	for _, c := range []struct{ value, want string }{
		{"0.01", "train.router_aux_loss_coef: must be 0: a mixture-of-experts model's router stays frozen"},
		{"-1", "train.router_aux_loss_coef: must be >= 0"},
		{"0", ""},
	} {
		_, err := Parse("test", nil, []string{"train.router_aux_loss_coef=" + c.value})
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.value, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.value, err, c.want)
		}
	}
	for _, m := range []string{"w1", "w2", "w3", "experts", "shared_expert"} {
		if _, err := Parse("test", nil, []string{"sparsity.target_modules=" + m, "adapters.target_modules=q_proj," + m}); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
}
