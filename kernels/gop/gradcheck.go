package gop

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/salr-go/salr/kernels"
	"gorgonia.org/tensor"
)

// maxCheckedEntries bounds how many entries of each input CheckGradients
// perturbs; larger inputs are sampled at random.
const maxCheckedEntries = 256

// CheckGradients compares the Backward of every differentiable float input of
// k with central differences of its Forward, in float64. The objective is
// Σ out ⊙ R for a random R, so Backward receives dOut = R. An entry passes when
// |numeric - analytic| <= tol · max(1, |numeric|, |analytic|). It returns an
// error describing the worst mismatch, or nil. Forward must not modify its
// inputs.
func CheckGradients(k Kernel[float64], in []Arg[float64], seed uint64, tol float64) error {
	shapes := make([]tensor.Shape, len(in))
	for i, a := range in {
		shapes[i] = a.Shape
	}
	outShape, err := k.OutShape(shapes)
	if err != nil {
		return fmt.Errorf("gop: CheckGradients %s: %w", k.Name(), err)
	}
	size := outShape.TotalSize()
	if outShape.IsScalar() {
		size = 1
	}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	r := make([]float64, size)
	for i := range r {
		r[i] = rng.NormFloat64()
	}
	out := make([]float64, size)
	objective := func() float64 {
		k.Forward(out, in)
		var s float64
		for i, v := range out {
			s += v * r[i]
		}
		return s
	}
	objective()

	const eps = 1e-6
	checked := 0
	for i := range in {
		if !k.Differentiable(i) || in[i].Data == nil {
			continue
		}
		x := in[i].Data
		analytic := make([]float64, len(x))
		k.Backward(i, analytic, r, backwardArgs(k, i, in))
		idx := rng.Perm(len(x))
		if len(idx) > maxCheckedEntries {
			idx = idx[:maxCheckedEntries]
		}
		for _, j := range idx {
			orig := x[j]
			x[j] = orig + eps
			fp := objective()
			x[j] = orig - eps
			fm := objective()
			x[j] = orig
			numeric := (fp - fm) / (2 * eps)
			diff := math.Abs(numeric - analytic[j])
			scale := math.Max(1, math.Max(math.Abs(numeric), math.Abs(analytic[j])))
			if !(diff <= tol*scale) { // also catches NaN
				return fmt.Errorf("gop: %s: d/d input %d [%d]: analytic %.10g, numeric %.10g (|diff| %.3g)",
					k.Name(), i, j, analytic[j], numeric, diff)
			}
			checked++
		}
	}
	if checked == 0 {
		return fmt.Errorf("gop: CheckGradients %s: no differentiable float input to check", k.Name())
	}
	return nil
}

// backwardArgs is in as Backward for input wrt sees it in a graph: the
// inputs it does not read (see BackwardReader) without their data.
func backwardArgs[T kernels.Float](k Kernel[T], wrt int, in []Arg[T]) []Arg[T] {
	out := make([]Arg[T], len(in))
	for i, a := range in {
		out[i] = a
		if !backwardReads(k, wrt, i) {
			out[i].Data, out[i].Ints = nil, nil
		}
	}
	return out
}
