package model

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// readMoE reads the mixture-of-experts fields of a mixtral or qwen2_moe
// config.json into c; for the dense model types they must be absent or
// zero. The expert counts and widths are required, as the other
// architecture sizes are; norm_topk_prob, decoder_sparse_step and
// mlp_only_layers take transformers' defaults (false, 1, none).
func (r *hfConfigJSON) readMoE(c *Config) error {
	need := func(field string, v *int) (int, error) {
		if v == nil {
			return 0, fmt.Errorf("missing required field %q (model_type %s)", field, c.ModelType)
		}
		return *v, nil
	}
	var err error
	switch c.ModelType {
	case "mixtral":
		if c.Experts, err = need("num_local_experts", r.NumLocalExperts); err != nil {
			return err
		}
		if c.ExpertsPerToken, err = need("num_experts_per_tok", r.NumExpertsPerTok); err != nil {
			return err
		}
		c.ExpertIntermediate = c.Intermediate
		c.NormTopKProb = true // Mixtral always renormalises the top-k weights
		c.SparseStep = 1
	case "qwen2_moe":
		if c.Experts, err = need("num_experts", r.NumExperts); err != nil {
			return err
		}
		if c.ExpertsPerToken, err = need("num_experts_per_tok", r.NumExpertsPerTok); err != nil {
			return err
		}
		if c.ExpertIntermediate, err = need("moe_intermediate_size", r.MoEIntermediateSize); err != nil {
			return err
		}
		if c.SharedIntermediate, err = need("shared_expert_intermediate_size", r.SharedExpertIntermediateSize); err != nil {
			return err
		}
		c.NormTopKProb = r.NormTopKProb != nil && *r.NormTopKProb
		c.SparseStep = intOr(r.DecoderSparseStep, 1)
		c.MLPOnlyLayers = slices.Clone(r.MLPOnlyLayers)
	default:
		if r.NumLocalExperts != nil && *r.NumLocalExperts > 0 || r.NumExperts != nil && *r.NumExperts > 0 {
			return fmt.Errorf("num_experts: model_type %s has no experts (a mixture-of-experts model is mixtral or qwen2_moe)", c.ModelType)
		}
	}
	return nil
}

// IsMoE reports whether the model has mixture-of-experts layers.
func (c Config) IsMoE() bool { return c.Experts > 0 }

// SparseLayer reports whether decoder layer l is a mixture-of-experts layer,
// as transformers decides: the model has experts, l is not in
// mlp_only_layers and (l+1) is a multiple of decoder_sparse_step.
func (c Config) SparseLayer(l int) bool {
	if c.Experts <= 0 || slices.Contains(c.MLPOnlyLayers, l) {
		return false
	}
	step := max(c.SparseStep, 1)
	return (l+1)%step == 0
}

// validateMoE checks the mixture-of-experts fields (see Validate).
func (c Config) validateMoE() error {
	moeType := c.ModelType == "mixtral" || c.ModelType == "qwen2_moe"
	if !moeType {
		if c.Experts != 0 || c.ExpertsPerToken != 0 || c.ExpertIntermediate != 0 || c.SharedIntermediate != 0 || len(c.MLPOnlyLayers) > 0 {
			return fmt.Errorf("model_type %s has no experts, but num_experts is %d", c.ModelType, c.Experts)
		}
		return nil
	}
	if c.Experts < 0 || (c.ModelType == "mixtral" && c.Experts == 0) {
		return fmt.Errorf("%s must be positive, got %d", c.expertsField(), c.Experts)
	}
	if c.Experts == 0 {
		return nil // a qwen2_moe model with only dense layers
	}
	if c.ExpertsPerToken < 1 || c.ExpertsPerToken > c.Experts {
		return fmt.Errorf("num_experts_per_tok must be in [1, %s = %d], got %d", c.expertsField(), c.Experts, c.ExpertsPerToken)
	}
	width := "moe_intermediate_size"
	if c.ModelType == "mixtral" {
		width = "intermediate_size"
	}
	if c.ExpertIntermediate <= 0 {
		return fmt.Errorf("%s must be positive, got %d", width, c.ExpertIntermediate)
	}
	if c.ModelType == "qwen2_moe" && c.SharedIntermediate <= 0 {
		return fmt.Errorf("shared_expert_intermediate_size must be positive, got %d", c.SharedIntermediate)
	}
	if c.ModelType == "mixtral" && (c.SharedIntermediate != 0 || !c.NormTopKProb || c.SparseStep != 1 || len(c.MLPOnlyLayers) > 0 || c.ExpertIntermediate != c.Intermediate) {
		return errors.New("mixtral: every layer is sparse, its experts intermediate_size wide, top-k weights renormalised, no shared expert")
	}
	if c.SparseStep < 1 {
		return fmt.Errorf("decoder_sparse_step must be positive, got %d", c.SparseStep)
	}
	for _, l := range c.MLPOnlyLayers {
		if l < 0 || l >= c.Layers {
			return fmt.Errorf("mlp_only_layers: layer %d is not in [0, num_hidden_layers = %d)", l, c.Layers)
		}
	}
	return nil
}

func (c Config) expertsField() string {
	if c.ModelType == "mixtral" {
		return "num_local_experts"
	}
	return "num_experts"
}

// moeBlock is the HF module holding a sparse layer's router and experts.
func (c Config) moeBlock() string {
	if c.ModelType == "mixtral" {
		return "block_sparse_moe"
	}
	return "mlp"
}

// ExpertProjName is the HF name of an expert's projection p (GateProj,
// UpProj or DownProj): Mixtral's w1, w3, w2; Qwen2-MoE's gate_proj, up_proj,
// down_proj.
func (c Config) ExpertProjName(p Projection) string {
	if c.ModelType == "mixtral" {
		switch p {
		case GateProj:
			return "w1"
		case UpProj:
			return "w3"
		case DownProj:
			return "w2"
		}
	}
	return p.Short()
}

// ExpertModuleName is the HF module of projection p (GateProj, UpProj or
// DownProj) of expert e in layer l, e.g.
// "model.layers.0.block_sparse_moe.experts.3.w1" (mixtral) or
// "model.layers.0.mlp.experts.3.gate_proj" (qwen2_moe).
func (c Config) ExpertModuleName(l, e int, p Projection) string {
	return LayerTensorName(l, c.moeBlock()+".experts."+strconv.Itoa(e)+"."+c.ExpertProjName(p))
}

// RouterModuleName is the HF module of layer l's router (a bias-free
// [experts, hidden] linear): "model.layers.L.block_sparse_moe.gate" or
// "model.layers.L.mlp.gate".
func (c Config) RouterModuleName(l int) string {
	return LayerTensorName(l, c.moeBlock()+".gate")
}

// SharedExpertModuleName is the HF module of projection p of layer l's
// shared expert (qwen2_moe), e.g. "model.layers.0.mlp.shared_expert.gate_proj".
func (c Config) SharedExpertModuleName(l int, p Projection) string {
	return LayerTensorName(l, "mlp.shared_expert."+p.Short())
}

// SharedExpertGateName is the HF module of layer l's shared expert gate
// (qwen2_moe; a [1, hidden] linear whose sigmoid scales the shared expert).
func (c Config) SharedExpertGateName(l int) string {
	return LayerTensorName(l, "mlp.shared_expert_gate")
}

// moeTensorShapes are the tensors of sparse layer l's MLP block.
func (c Config) moeTensorShapes(l int) map[string][]int {
	h, ff := c.Hidden, c.ExpertIntermediate
	out := map[string][]int{c.RouterModuleName(l) + ".weight": {c.Experts, h}}
	for e := 0; e < c.Experts; e++ {
		out[c.ExpertModuleName(l, e, GateProj)+".weight"] = []int{ff, h}
		out[c.ExpertModuleName(l, e, UpProj)+".weight"] = []int{ff, h}
		out[c.ExpertModuleName(l, e, DownProj)+".weight"] = []int{h, ff}
	}
	if c.SharedIntermediate > 0 {
		s := c.SharedIntermediate
		out[c.SharedExpertModuleName(l, GateProj)+".weight"] = []int{s, h}
		out[c.SharedExpertModuleName(l, UpProj)+".weight"] = []int{s, h}
		out[c.SharedExpertModuleName(l, DownProj)+".weight"] = []int{h, s}
		out[c.SharedExpertGateName(l)+".weight"] = []int{1, h}
	}
	return out
}

// mlpTensorOrder lists layer l's MLP tensors in state_dict order.
func (c Config) mlpTensorOrder(l int) []string {
	if !c.SparseLayer(l) {
		return []string{ModuleName(l, GateProj) + ".weight", ModuleName(l, UpProj) + ".weight", ModuleName(l, DownProj) + ".weight"}
	}
	names := []string{c.RouterModuleName(l) + ".weight"}
	// Mixtral's experts hold w1, w2, w3; Qwen2-MoE's gate, up, down.
	order := []Projection{GateProj, UpProj, DownProj}
	if c.ModelType == "mixtral" {
		order = []Projection{GateProj, DownProj, UpProj}
	}
	for e := 0; e < c.Experts; e++ {
		for _, p := range order {
			names = append(names, c.ExpertModuleName(l, e, p)+".weight")
		}
	}
	if c.SharedIntermediate > 0 {
		for _, p := range []Projection{GateProj, UpProj, DownProj} {
			names = append(names, c.SharedExpertModuleName(l, p)+".weight")
		}
		names = append(names, c.SharedExpertGateName(l)+".weight")
	}
	return names
}

// LayerModules lists the HF modules of layer l's projections that carry a
// prunable, adaptable base, in the order of Layer.Linears: attention, then
// the dense MLP or every expert's gate, up, down and the shared expert's.
func (c Config) LayerModules(l int) []string {
	var out []string
	for p := QProj; p <= OProj; p++ {
		out = append(out, ModuleName(l, p))
	}
	if !c.SparseLayer(l) {
		return append(out, ModuleName(l, GateProj), ModuleName(l, UpProj), ModuleName(l, DownProj))
	}
	for e := 0; e < c.Experts; e++ {
		for _, p := range []Projection{GateProj, UpProj, DownProj} {
			out = append(out, c.ExpertModuleName(l, e, p))
		}
	}
	if c.SharedIntermediate > 0 {
		for _, p := range []Projection{GateProj, UpProj, DownProj} {
			out = append(out, c.SharedExpertModuleName(l, p))
		}
	}
	return out
}
