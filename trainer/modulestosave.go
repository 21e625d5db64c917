package trainer

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/salr-go/salr/adapters"
	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/model"
)

// savedModules lists the projections adapters.modules_to_save trains in
// full (a mixture-of-experts model's routers, Qwen2-MoE's shared expert
// gates), in layer order.
func savedModules(p *model.Params[float32], names []string) ([]*model.Linear[float32], error) {
	var out []*model.Linear[float32]
	for _, name := range names {
		var found []*model.Linear[float32]
		for l := range p.Layers {
			m := p.Layers[l].MoE
			switch {
			case m == nil:
			case name == configs.ModuleRouter:
				found = append(found, m.Router)
			case name == configs.ModuleSharedExpertGate && m.SharedGate != nil:
				found = append(found, m.SharedGate)
			}
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("trainer: adapters.modules_to_save: the model (%s) has no %q module (routers are a mixture-of-experts model's; shared_expert_gate is Qwen2-MoE's)", p.Config.ModelType, name)
		}
		out = append(out, found...)
	}
	slices.SortStableFunc(out, func(a, b *model.Linear[float32]) int { return strings.Compare(a.Module, b.Module) })
	return out, nil
}

// attachSavedModules makes the projections of adapters.modules_to_save
// trainable: each gets a dense float32 copy of its weight (the loaded one
// may be a read-only mapping of the checkpoint), which the optimizer
// updates in place and which the exported base and PEFT adapter hold.
func (s *Setup) attachSavedModules(logf func(string, ...any)) error {
	names := s.Config.Adapters.ModulesToSave
	if len(names) == 0 {
		return nil
	}
	lins, err := savedModules(s.Params, names)
	if err != nil {
		return err
	}
	s.saved = map[string]*model.Linear[float32]{}
	var count int
	for _, lin := range lins {
		d, ok := lin.Base.(*kernels.Dense[float32])
		if !ok {
			return fmt.Errorf("trainer: adapters.modules_to_save: %s is not stored densely (%T)", lin.Module, lin.Base)
		}
		w := kernels.NewDense(slices.Clone(d.W), d.R, d.C)
		lin.Base = w
		name := lin.Module + ".weight"
		s.saved[name] = lin
		s.Trainables = append(s.Trainables, Param{Name: name, Data: w.W})
		count += len(w.W)
	}
	logf("modules_to_save %v: %d modules trained in full, %d parameters", names, len(lins), count)
	return nil
}

// GraphTrainable is the model.GraphOptions.Trainable hook: the weights of
// the modules adapters.modules_to_save trains.
func (s *Setup) GraphTrainable(name string) bool {
	_, ok := s.saved[name]
	return ok
}

// peftSaved returns the trained modules for the PEFT adapter, under their
// module names (as PEFT saves modules_to_save).
func (s *Setup) peftSaved() []adapters.PEFTSaved {
	var out []adapters.PEFTSaved
	for _, name := range slices.Sorted(maps.Keys(s.saved)) {
		lin := s.saved[name]
		d := lin.Base.(*kernels.Dense[float32])
		out = append(out, adapters.PEFTSaved{Module: lin.Module, Shape: []int{d.R, d.C}, Weight: d.W})
	}
	return out
}
