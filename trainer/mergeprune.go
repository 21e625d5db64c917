package trainer

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/salr-go/salr/adapters"
	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/sparsity"
)

// The methods that prune the merged weight W0 + s·BA of a LoRA trained on
// the dense base: lora-prune after training (PruneMerged at the end), and
// lora-prune-dynamic during it, whose projections train through the mask of
// their merged weight (dynamicMask), recomputed every sparsity.every steps.

// dynamicMask is the state of one sparsity.target_modules projection under
// lora-prune-dynamic: its dense W0, the current mask M (0/1) and the frozen
// base W0 ⊙ M the graph and the inference path multiply by. The adapter,
// when the projection has one, adds ((s·B A) ⊙ M) x (adapters.MaskedKernel).
type dynamicMask struct {
	lin  *model.Linear[float32]
	w0   []float32
	keep []float32
	base *kernels.Dense[float32]
}

// mergedWeight returns W0 + s·B A of lin (a new slice): w0 when not nil,
// else its base decoded, plus its adapter f when not nil.
func mergedWeight(lin *model.Linear[float32], w0 []float32, f *adapters.Fused) ([]float32, error) {
	if w0 != nil {
		w0 = slices.Clone(w0)
	} else {
		dense, ok := denseBase(lin.Base)
		if !ok {
			return nil, fmt.Errorf("trainer: %s is stored as %s, not densely; its merged weight cannot be pruned", lin.Module, model.BaseFormatName(lin.Base))
		}
		w0 = slices.Clone(dense.W)
	}
	if f != nil {
		f.MergeInto(w0)
	}
	return w0, nil
}

// mergedSpec is the pruning spec and targets of a lora-prune(-dynamic) run.
func (s *Setup) mergedSpec() (sparsity.Spec, sparsity.Targets, error) {
	cfg := s.Config
	spec, err := sparsity.ParseSpec(cfg.Sparsity.Score, cfg.Sparsity.Pattern, cfg.Sparsity.Ratio)
	if err != nil {
		return spec, sparsity.Targets{}, err
	}
	targets, err := sparsity.ParseTargets(cfg.Sparsity.TargetModules)
	if err != nil {
		return spec, targets, err
	}
	for l := range s.Params.Layers {
		for _, lin := range s.Params.Layers[l].Linears() {
			if targets.HasModule(lin.Module) {
				if err := spec.Pattern.CheckCols(lin.Base.Cols()); err != nil {
					return spec, targets, fmt.Errorf("trainer: cannot prune %s (%d×%d): %w", lin.Module, lin.Base.Rows(), lin.Base.Cols(), err)
				}
			}
		}
	}
	return spec, targets, nil
}

// initDynamic takes the dense W0 of every targeted projection aside, makes
// its base the dense W0 ⊙ M it trains through and computes the first masks
// (from W0 + s·BA, with B zero at the start: the masks of W0).
func (s *Setup) initDynamic(logf func(string, ...any)) error {
	_, targets, err := s.mergedSpec()
	if err != nil {
		return err
	}
	s.dynamic = map[string]*dynamicMask{}
	for l := range s.Params.Layers {
		for _, lin := range s.Params.Layers[l].Linears() {
			if !targets.HasModule(lin.Module) {
				continue
			}
			dense, ok := denseBase(lin.Base)
			if !ok {
				return fmt.Errorf("trainer: %s is stored as %s, not densely; it cannot be pruned during training", lin.Module, model.BaseFormatName(lin.Base))
			}
			d := &dynamicMask{lin: lin, w0: slices.Clone(dense.W), keep: make([]float32, len(dense.W)),
				base: kernels.NewDense(make([]float32, len(dense.W)), dense.R, dense.C)}
			lin.Base = d.base
			s.dynamic[lin.Module] = d
			s.Loaded.Checkpoint.Drop(lin.Module + ".weight")
		}
	}
	if _, err := s.updateMasks(-1); err != nil {
		return err
	}
	logf("pruning during training: %d projections train through the mask of W0 + s·BA (%s), recomputed every %d steps",
		len(s.dynamic), s.Config.Sparsity.Pattern, s.Config.Sparsity.Every)
	return nil
}

// updateMasks recomputes the mask of every lora-prune-dynamic projection from
// its current merged weight W0 + s·BA and updates its frozen base W0 ⊙ M in
// place, before optimizer step step (0-based; -1 at set-up). It returns how
// many weights changed from kept to pruned or back.
func (s *Setup) updateMasks(step int) (changed int, err error) {
	spec, _, err := s.mergedSpec()
	if err != nil {
		return 0, err
	}
	for _, module := range slices.Sorted(maps.Keys(s.dynamic)) {
		d := s.dynamic[module]
		w, err := mergedWeight(d.lin, d.w0, s.Adapters[module])
		if err != nil {
			return 0, err
		}
		mask, err := spec.Mask(w, d.base.R, d.base.C, nil)
		if err != nil {
			return 0, fmt.Errorf("trainer: pruning %s at step %d: %w", module, step+1, err)
		}
		for i, v := range d.w0 {
			var keep float32
			if mask.Kept(i) {
				keep = 1
			}
			if step >= 0 && keep != d.keep[i] {
				changed++
			}
			d.keep[i] = keep
			d.base.W[i] = v * keep
		}
	}
	if step >= 0 {
		s.maskSteps = append(s.maskSteps, step)
	}
	return changed, nil
}

// servePruned makes every lora-prune-dynamic projection with an adapter
// compute its masked merged weight (W0 + s·BA) ⊙ M for the inference path
// (held-out losses) and returns the function that restores the training
// form (base W0 ⊙ M, adapter apart).
func (s *Setup) servePruned() func() {
	type saved struct {
		lin     *model.Linear[float32]
		base    kernels.Matrix[float32]
		adapter *model.LowRank[float32]
	}
	var undo []saved
	for module, d := range s.dynamic {
		f := s.Adapters[module]
		if f == nil {
			continue
		}
		w, _ := mergedWeight(d.lin, d.w0, f) // w0 is set: no error
		for i, k := range d.keep {
			w[i] *= k
		}
		undo = append(undo, saved{d.lin, d.lin.Base, d.lin.Adapter})
		d.lin.Base, d.lin.Adapter = kernels.NewDense(w, d.base.R, d.base.C), nil
	}
	return func() {
		for _, u := range undo {
			u.lin.Base, u.lin.Adapter = u.base, u.adapter
		}
	}
}

// PruneMerged ends a lora-prune or lora-prune-dynamic run: every projection
// with an adapter gets the merged weight W0 + s·BA as its base, and every
// sparsity.target_modules projection that merged weight pruned at
// sparsity.ratio (the mask recomputed from the final merged weight, with
// wanda's norms calibrated on the fine-tuned model), stored in
// output.base_format; the adapters are dropped. Pruned then holds the
// statistics of the merged weights' pruning.
func (s *Setup) PruneMerged(logf func(string, ...any)) error {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if !s.Config.PrunesMerged() {
		return fmt.Errorf("trainer: method %q does not prune the merged weight", s.Config.Method)
	}
	start := time.Now()
	spec, targets, err := s.mergedSpec()
	if err != nil {
		return err
	}
	var norms map[string][]float32
	if spec.Method == sparsity.Wanda {
		if norms, err = s.calibrate(logf); err != nil {
			return err
		}
	}
	changed := 0
	for l := range s.Params.Layers {
		for _, lin := range s.Params.Layers[l].Linears() {
			f := s.Adapters[lin.Module]
			targeted := targets.HasModule(lin.Module)
			if f == nil && !targeted {
				continue
			}
			var w0, keep []float32
			if d := s.dynamic[lin.Module]; d != nil {
				w0, keep = d.w0, d.keep
			}
			w, err := mergedWeight(lin, w0, f)
			if err != nil {
				return err
			}
			lin.Adapter = nil
			rows, cols := lin.Base.Rows(), lin.Base.Cols()
			if !targeted {
				lin.Base = kernels.NewDense(w, rows, cols)
				continue
			}
			mask, err := spec.Mask(w, rows, cols, norms[lin.Module])
			if err != nil {
				return fmt.Errorf("trainer: pruning the merged weight of %s: %w", lin.Module, err)
			}
			for i, k := range keep {
				if (k == 1) != mask.Kept(i) {
					changed++
				}
			}
			kept, residual, stats := sparsity.Split(w, mask)
			if err := s.setPrunedBase(lin, kept, residual, stats); err != nil {
				return err
			}
		}
	}
	s.Adapters = map[string]*adapters.Fused{}
	s.modules, s.dynamic = nil, nil
	s.Sparsity = s.prunedSparsity()
	if s.Config.Method == configs.MethodLoRAPruneDynamic {
		logf("final mask from the merged weights: %d weights changed from the last mask trained through", changed)
	}
	logf("merged the adapters and pruned %d merged projections (%s): sparsity %.4f, bases stored as %s, in %.1fs",
		len(s.Pruned), spec, s.Sparsity, s.Config.Output.BaseFormat, time.Since(start).Seconds())
	return nil
}

// prunedSparsity is the fraction of zeros over the pruned projections
// (Pruned), 0 when there are none.
func (s *Setup) prunedSparsity() float64 {
	var pruned, total int
	for _, stats := range s.Pruned {
		pruned += stats.Pruned
		total += stats.Rows * stats.Cols
	}
	if total == 0 {
		return 0
	}
	return float64(pruned) / float64(total)
}
