package theorem2

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/salr-go/salr/adapters"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/sparsity"
	"github.com/salr-go/salr/trainer"
	"github.com/salr-go/salr/trainer/export"
)

// ShapeOptions configures Shape, the weight-space version of the comparison
// on random weights of a named model shape, without training.
type ShapeOptions struct {
	Shape  string    // model.NamedShape name, e.g. "llama-2048x16"
	Layer  int       // the decoder layer whose seven projections are measured
	Ratios []float64 // sparsity ratios (per-matrix magnitude pruning)
	// Delta is ||s·B A||_F / ||W0||_F of the random LoRA update, rank Rank.
	Delta float64
	Rank  int
	// SVDRank is the rank of salr's SVD residual adapter (randomized SVD).
	SVDRank int
	// Steps and Every place the last mask a lora-prune-dynamic run trains
	// through: computed at step Every·⌊(Steps−1)/Every⌋ from W0 + t/Steps·s·B A.
	Steps, Every int
	Seed         uint64
}

// Shape measures the "vs dense" errors of the four strategies on random
// weights: W0 as model.RandomCheckpoint draws it (normal, std 0.02) for
// layer o.Layer of o.Shape, and a random rank-o.Rank update ΔW = s·B A
// (Gaussian factors) scaled to ||ΔW|| = o.Delta·||W0||, standing for the
// trained LoRA update; W_ft = W0 + ΔW. The adapters are not trained here,
// so every strategy keeps ΔW:
//
//	salr        W0⊙M0 + SVD_r(W0⊙(1−M0)) + ΔW   (M0: the mask of W0)
//	prune-lora  W0⊙M0 + ΔW
//	during      W_ft ⊙ M_t, M_t the mask of W0 + (t/Steps)·ΔW at the last
//	            recomputation t before the end (the mask the last steps
//	            trained through; with the final recomputation it would be
//	            lora-prune's)
//	after       W_ft ⊙ M(W_ft)
//
// Every strategy keeps the same ΔW, so its own unpruned weight is W_ft and
// the own errors equal the errors vs dense.
func Shape(o ShapeOptions) ([]*Table, error) {
	mc, err := model.NamedShape(o.Shape)
	if err != nil {
		return nil, err
	}
	if o.Layer < 0 || o.Layer >= mc.Layers {
		return nil, fmt.Errorf("theorem2: layer %d of a %d-layer model", o.Layer, mc.Layers)
	}
	if o.Rank < 1 || o.SVDRank < 1 || o.Steps < 1 || o.Every < 1 || !(o.Delta > 0) {
		return nil, fmt.Errorf("theorem2: need rank, svd rank, steps, every >= 1 and delta > 0; got %d, %d, %d, %d, %g", o.Rank, o.SVDRank, o.Steps, o.Every, o.Delta)
	}
	tables := make([]*Table, len(o.Ratios))
	for k, r := range o.Ratios {
		tables[k] = &Table{Ratio: r, DenseNLL: math.NaN(), NLL: []float64{math.NaN(), math.NaN(), math.NaN(), math.NaN()}}
	}
	shapes := mc.TensorShapes()
	tLast := o.Every * ((o.Steps - 1) / o.Every)
	for p := range model.NumProjections {
		module := model.ModuleName(o.Layer, model.Projection(p))
		name := module + ".weight"
		shape := shapes[name]
		rows, cols := shape[0], shape[1]
		w0 := model.RandomTensor(name, shape, o.Seed)
		dw := randomUpdate(rows, cols, o.Rank, o.Delta*math.Sqrt(sqNorm(w0)), adapters.SeedFor(o.Seed, module+".lora"))
		ft := add(w0, dw, 1)
		mid := add(w0, dw, float32(tLast)/float32(o.Steps))
		for _, t := range tables {
			spec, err := sparsity.ParseSpec(string(sparsity.Magnitude), "matrix", t.Ratio)
			if err != nil {
				return nil, err
			}
			mask := func(w []float32) (*sparsity.Mask, error) { return spec.Mask(w, rows, cols, nil) }
			m := newMatrix(module, rows, cols)
			m0, err := mask(w0)
			if err != nil {
				return nil, err
			}
			kept, residual, _ := sparsity.Split(w0, m0)
			pruneLoRA := add(kept, dw, 1)
			svd, err := adapters.SVD(residual, rows, cols, adapters.DefaultSVDConfig(o.SVDRank, adapters.SeedFor(o.Seed, module+".svd")))
			if err != nil {
				return nil, err
			}
			salr := slices.Clone(pruneLoRA)
			adapters.NewSVDAdapter(svd, false).MergeInto(salr)
			mt, err := mask(mid)
			if err != nil {
				return nil, err
			}
			during := slices.Clone(ft)
			mt.Apply(during)
			mf, err := mask(ft)
			if err != nil {
				return nil, err
			}
			after := slices.Clone(ft)
			mf.Apply(after)
			for i, served := range [][]float32{salr, pruneLoRA, during, after} {
				m.set(i, served, ft, ft)
			}
			t.Matrices = append(t.Matrices, m)
		}
	}
	for _, t := range tables {
		t.overall()
	}
	return tables, nil
}

// randomUpdate is B A for Gaussian B (rows×r) and A (r×cols), scaled to
// Frobenius norm norm.
func randomUpdate(rows, cols, r int, norm float64, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 7))
	f := &adapters.Fused{In: cols, Out: rows, Rank: r, A: make([]float32, r*cols), B: make([]float32, rows*r), Scale: make([]float32, r)}
	for i := range f.A {
		f.A[i] = float32(rng.NormFloat64())
	}
	for i := range f.B {
		f.B[i] = float32(rng.NormFloat64())
	}
	for i := range f.Scale {
		f.Scale[i] = 1
	}
	dw := make([]float32, rows*cols)
	f.MergeInto(dw)
	s := float32(norm / math.Sqrt(sqNorm(dw)))
	for i := range dw {
		dw[i] *= s
	}
	return dw
}

// add returns a + c·b.
func add(a, b []float32, c float32) []float32 {
	out := make([]float32, len(a))
	for i := range a {
		out[i] = a[i] + c*b[i]
	}
	return out
}

// TrainedDelta is the median over the projections of a lora run of
// ||s·B A||_F / ||W0||_F, the relative size of the trained update.
func TrainedDelta(loraDir string) (float64, error) {
	l, err := trainer.OpenRun(loraDir)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	var v []float64
	for _, lin := range projections(l.Params) {
		if lin.Adapter == nil {
			continue
		}
		w0, err := baseOf(lin)
		if err != nil {
			return 0, err
		}
		ft, err := export.Merged(lin)
		if err != nil {
			return 0, err
		}
		v = append(v, math.Sqrt(sqDiff(ft, w0)/sqNorm(w0)))
	}
	if len(v) == 0 {
		return 0, fmt.Errorf("theorem2: %s has no adapters", loraDir)
	}
	slices.Sort(v)
	return v[len(v)/2], nil
}
