package trainer

import (
	"fmt"
	"sync"

	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/internal/parallel"
	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/kernels/bitmap"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/sparsity"
)

// pruneProjections is the prune loop of training (Setup.prune) and of
// CompressParams: for each projection of p whose short name targets has, it
// computes spec's mask of the dense base W0 (norms holds Wanda's feature
// norms by module, nil for magnitude) and calls store, which replaces
// lin.Base. A bf16 base is widened into a float32 W0 of its own first.
//
// Projections are processed a few at a time (pruneInFlight), so store must
// be safe for concurrent use; each W0 and its temporaries are garbage once
// store returns, so the float32 model never exists as a whole. done, when
// not nil, is called (serially) after each projection with the number
// finished and the total. The first error stops the loop and is returned.
func pruneProjections(p *model.Params[float32], spec sparsity.Spec, targets sparsity.Targets, norms map[string][]float32,
	done func(finished, total int), store func(lin *model.Linear[float32], w0 *kernels.Dense[float32], mask *sparsity.Mask) error) error {
	var jobs []*model.Linear[float32]
	for l := range p.Layers {
		for _, lin := range p.Layers[l].Linears() {
			if targets.HasModule(lin.Module) {
				jobs = append(jobs, lin)
			}
		}
	}
	prune := func(lin *model.Linear[float32]) error {
		dense, ok := denseBase(lin.Base)
		if !ok {
			return fmt.Errorf("trainer: %s is stored as %s, not densely; it cannot be pruned again", lin.Module, model.BaseFormatName(lin.Base))
		}
		mask, err := spec.Mask(dense.W, dense.R, dense.C, norms[lin.Module])
		if err != nil {
			return fmt.Errorf("trainer: pruning %s: %w", lin.Module, err)
		}
		return store(lin, dense, mask)
	}
	var (
		mu       sync.Mutex
		firstErr error
		finished int
	)
	parallel.ForEach(len(jobs), pruneInFlight, func(i int) {
		mu.Lock()
		stop := firstErr != nil
		mu.Unlock()
		if stop {
			return
		}
		err := prune(jobs[i])
		mu.Lock()
		defer mu.Unlock()
		if err != nil && firstErr == nil {
			firstErr = err
		}
		finished++
		if done != nil && err == nil {
			done(finished, len(jobs))
		}
	})
	return firstErr
}

// pruneInFlight is how many projections are pruned at once: two overlap
// one projection's single-threaded work (widening, selection, encoding)
// with the other's SVD, at about 4 float32 copies of a projection each.
const pruneInFlight = 2

// denseBase is a base as the dense float32 matrix pruning reads: a
// *kernels.Dense as it is, a bf16 checkpoint's weight widened into a copy of
// its own, or the weights of a generator (the train bench's random
// projections, never held whole).
func denseBase(m kernels.Matrix[float32]) (*kernels.Dense[float32], bool) {
	switch m := m.(type) {
	case *kernels.Dense[float32]:
		return m, true
	case *bitmap.DenseBF16:
		return kernels.NewDense(model.DecodeBase(m), m.Rows(), m.Cols()), true
	case generator:
		return m.Dense(), true
	}
	return nil, false
}

// generator is a base whose dense weights are made when read.
type generator interface {
	Dense() *kernels.Dense[float32]
}

// setPrunedBase makes kept (W0 ⊙ M of lin, whose dense W0 is w0) the frozen
// base of lin, stored in the run's output.base_format. The SVD residual
// adapter, when the method has one, is computed first from the float32
// residual W0 − W0 ⊙ M; then W0 is dropped from the base checkpoint, so that
// only the stored base stays in memory (the dense copies are garbage once a
// bitmap base is encoded).
func (s *Setup) setPrunedBase(lin *model.Linear[float32], kept, residual []float32, stats sparsity.SplitStats) error {
	rows, cols := lin.Base.Rows(), lin.Base.Cols()
	var svd svdResult
	if s.Config.HasSVDAdapter() {
		var err error
		if svd, err = s.svdAdapter(lin.Module, residual, rows, cols); err != nil {
			return err
		}
	}
	base, err := model.NewBaseMatrix(kept, rows, cols, model.BaseFormat(s.Config.Output.BaseFormat))
	if err != nil {
		return fmt.Errorf("trainer: storing the base of %s: %w", lin.Module, err)
	}
	lin.Base = base
	stored := model.BaseBytes(base)
	if svd.Adapter != nil {
		stored += 4 * int64(len(svd.Adapter.A)+len(svd.Adapter.B))
	}
	s.pruneLimit.add(stored)
	s.mu.Lock()
	defer s.mu.Unlock()
	if svd.Adapter != nil {
		s.svd[lin.Module] = svd
	}
	s.Pruned[lin.Module] = stats
	s.Loaded.Checkpoint.Drop(lin.Module + ".weight")
	return nil
}

// CompressStats describes what CompressParams did.
type CompressStats struct {
	Projections int
	// Pruned of Weights projection weights are zero after pruning.
	Pruned, Weights int64
	// DenseBF16Bytes is what the projections take in dense bf16 and
	// CompressedBytes in the bitmap form.
	DenseBF16Bytes, CompressedBytes int64
}

// CompressParams prunes every projection of p by weight magnitude at the
// given ratio per matrix (the paper's recipe) and replaces its base by its
// encoding in format: a bitmap-* format (bitmap.Matrix) or bitmap-nf4
// (bitmap.NF4, double-quantized scales). The pruning zeroes float32 dense
// weights in place (the checkpoint behind p is modified); a bf16 base is
// widened into a copy first. Every base must be dense.
//
// drop, when not nil, is called with each projection's tensor name once its
// compressed form is stored (Checkpoint.Drop: a bf16 checkpoint's source
// pages then leave resident memory projection by projection).
func CompressParams(p *model.Params[float32], ratio float64, format model.BaseFormat, drop func(tensor string)) (CompressStats, error) {
	format, err := model.ParseBaseFormat(string(format))
	if err != nil {
		return CompressStats{}, err
	}
	if _, ok := format.BitmapDType(); !ok && format != model.BaseBitmapNF4 {
		return CompressStats{}, fmt.Errorf("trainer: CompressParams: %s is not a bitmap format", format)
	}
	spec, err := sparsity.ParseSpec(string(sparsity.Magnitude), configs.PatternMatrix, ratio)
	if err != nil {
		return CompressStats{}, err
	}
	all, err := sparsity.ParseTargets([]string{sparsity.AllLinear})
	if err != nil {
		return CompressStats{}, err
	}
	var st CompressStats
	var mu sync.Mutex
	err = pruneProjections(p, spec, all, nil, nil, func(lin *model.Linear[float32], dense *kernels.Dense[float32], mask *sparsity.Mask) error {
		mask.Apply(dense.W)
		m, err := model.NewBaseMatrix(dense.W, dense.R, dense.C, format)
		if err != nil {
			return fmt.Errorf("trainer: compressing %s: %w", lin.Module, err)
		}
		lin.Base = m
		mu.Lock()
		defer mu.Unlock()
		if drop != nil {
			drop(lin.Module + ".weight")
		}
		st.Projections++
		st.Weights += int64(dense.R) * int64(dense.C)
		st.Pruned += int64(dense.R)*int64(dense.C) - int64(m.(interface{ NNZ() int }).NNZ())
		st.DenseBF16Bytes += 2 * int64(dense.R) * int64(dense.C)
		st.CompressedBytes += model.BaseBytes(m)
		return nil
	})
	return st, err
}
