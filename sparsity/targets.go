package sparsity

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// AllLinear is the PEFT shorthand that targets every linear projection of the
// decoder layers (never the head).
const AllLinear = "all-linear"

// linearModules are the prunable projections of a Llama-family decoder layer,
// in layer order, with the HF block that holds each.
var linearModules = []struct{ Module, Block string }{
	{"q_proj", "self_attn"}, {"k_proj", "self_attn"}, {"v_proj", "self_attn"}, {"o_proj", "self_attn"},
	{"gate_proj", "mlp"}, {"up_proj", "mlp"}, {"down_proj", "mlp"},
}

// moeModules are the target_modules names of mixture-of-experts
// projections: Mixtral's expert projections w1 (gate), w2 (down) and w3
// (up), and two groups, experts (every routed expert's projections) and
// shared_expert (Qwen2-MoE's shared expert's). Qwen2-MoE's experts are named
// gate_proj, up_proj and down_proj, which select them as they select the
// dense MLP's, as PEFT's suffix match does. Routers are never targets.
var moeModules = []string{"w1", "w2", "w3", "experts", "shared_expert"}

// MoEModuleNames returns the mixture-of-experts names target_modules may
// list besides ModuleNames: w1, w2, w3, experts, shared_expert.
func MoEModuleNames() []string { return slices.Clone(moeModules) }

// blockOf returns the HF block ("self_attn" or "mlp") of a projection name.
func blockOf(module string) (string, bool) {
	for _, lm := range linearModules {
		if lm.Module == module {
			return lm.Block, true
		}
	}
	return "", false
}

// Targets is a set of projection names selected for pruning and adapters,
// like PEFT's target_modules.
type Targets struct {
	modules []string // in ModuleNames order, then MoEModuleNames order
	all     bool     // all-linear: every projection, experts included
}

// ParseTargets reads target_modules: projection names among q_proj, k_proj,
// v_proj, o_proj, gate_proj, up_proj, down_proj and the mixture-of-experts
// names (MoEModuleNames), or the single entry "all-linear" (all of them).
// Duplicates are ignored; an unknown name or an empty list is an error.
func ParseTargets(names []string) (Targets, error) {
	if len(names) == 0 {
		return Targets{}, fmt.Errorf("sparsity: target_modules is empty")
	}
	selected := map[string]bool{}
	all := false
	for _, n := range names {
		if n == AllLinear {
			if len(names) != 1 {
				return Targets{}, fmt.Errorf("sparsity: target_modules: %q must be the only entry", AllLinear)
			}
			for _, lm := range linearModules {
				selected[lm.Module] = true
			}
			all = true
			continue
		}
		if _, ok := blockOf(n); !ok && !slices.Contains(moeModules, n) {
			return Targets{}, fmt.Errorf("sparsity: target_modules: unknown module %q (want %s, %s or %q)", n, strings.Join(ModuleNames(), ", "), strings.Join(moeModules, ", "), AllLinear)
		}
		selected[n] = true
	}
	t := Targets{all: all}
	for _, lm := range linearModules {
		if selected[lm.Module] {
			t.modules = append(t.modules, lm.Module)
		}
	}
	for _, m := range moeModules {
		if selected[m] {
			t.modules = append(t.modules, m)
		}
	}
	return t, nil
}

// HasModule reports whether the HF projection module (e.g.
// "model.layers.0.self_attn.q_proj" or
// "model.layers.0.block_sparse_moe.experts.3.w1") is selected: by its last
// name, or as a routed expert's projection by "experts", or as the shared
// expert's by "shared_expert".
func (t Targets) HasModule(module string) bool {
	short := module[strings.LastIndexByte(module, '.')+1:]
	switch {
	case t.all || t.Has(short):
		return true
	case strings.Contains(module, ".experts."):
		return t.Has("experts")
	case strings.Contains(module, ".shared_expert."):
		return t.Has("shared_expert")
	}
	return false
}

// ModuleNames returns the names of the prunable projections of a decoder
// layer in layer order: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj,
// down_proj.
func ModuleNames() []string {
	var out []string
	for _, lm := range linearModules {
		out = append(out, lm.Module)
	}
	return out
}

// Modules returns the selected projection names in ModuleNames order, then
// MoEModuleNames order. For "all-linear" it lists ModuleNames only, though
// every mixture-of-experts projection is selected too (see HasModule).
func (t Targets) Modules() []string { return slices.Clone(t.modules) }

// Has reports whether projection module (e.g. "q_proj") is selected.
func (t Targets) Has(module string) bool { return slices.Contains(t.modules, module) }

// Match reports whether the HF tensor name is the weight of a selected
// projection (model.layers.{i}.self_attn.q_proj.weight, ...). Embeddings,
// norms, biases and lm_head never match.
func (t Targets) Match(tensorName string) bool {
	p, ok := ParseProjection(tensorName)
	return ok && t.Has(p.Module)
}

// Projection identifies one linear projection weight of a decoder layer.
type Projection struct {
	Layer  int
	Module string // q_proj, ..., down_proj
}

// ParseProjection parses an HF projection weight name
// "model.layers.{i}.{self_attn|mlp}.{module}.weight"; ok is false for any
// other tensor (embeddings, norms, biases, lm_head, a module in the wrong
// block).
func ParseProjection(tensorName string) (p Projection, ok bool) {
	rest, found := strings.CutPrefix(tensorName, "model.layers.")
	if !found {
		return Projection{}, false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 4 || parts[3] != "weight" {
		return Projection{}, false
	}
	layer, err := strconv.Atoi(parts[0])
	if err != nil || layer < 0 || strconv.Itoa(layer) != parts[0] {
		return Projection{}, false
	}
	block, known := blockOf(parts[2])
	if !known || block != parts[1] {
		return Projection{}, false
	}
	return Projection{Layer: layer, Module: parts[2]}, true
}

// TensorName is the HF weight name of the projection,
// e.g. "model.layers.3.mlp.down_proj.weight".
func (p Projection) TensorName() string {
	block, ok := blockOf(p.Module)
	if !ok {
		panic("sparsity: Projection.TensorName: unknown module " + p.Module)
	}
	return "model.layers." + strconv.Itoa(p.Layer) + "." + block + "." + p.Module + ".weight"
}
