package gop

import (
	"fmt"
	"slices"
	"sync"

	"github.com/salr-go/salr/kernels"
	"gorgonia.org/tensor"
)

// HeadCrossEntropy is the language-model head fused with the masked mean
// next-token loss: inputs x [N,C] (the final normalised hidden states),
// targets (int [N]) and mask [N]; output the scalar CrossEntropy(x Wᵀ). The
// head W [V,C] is frozen and lives in the op (dense or compressed); ID names
// it and makes the op's hash unique. Differentiable in x. The N×V logits never
// exist at once (see kernels.HeadCrossEntropyForward); the backward pass
// recomputes them chunk by chunk, unless Grad is set.
type HeadCrossEntropy[T kernels.Float] struct {
	ID string
	W  kernels.Matrix[T]
	// Grad, when non-nil, makes Forward also compute the gradient with
	// respect to x in the same pass over the logits
	// (kernels.HeadCrossEntropyForwardBackward) and keep it, with a copy of
	// the inputs, for Backward, which then only scales it by the upstream
	// gradient: one product by W less per step (a third of the head's work),
	// for 2·N·C floats kept between the passes. Backward recomputes when its
	// inputs differ from those of the last Forward. Set it in graphs whose
	// every forward pass is followed by a backward pass (training); elsewhere
	// Forward would compute a gradient nobody reads.
	Grad *HeadGrad[T]
}

// HeadGrad holds the gradient a HeadCrossEntropy's Forward computed for its
// Backward. The zero value is ready to use; W must not change between the two
// calls.
type HeadGrad[T kernels.Float] struct {
	mu      sync.Mutex
	x, mask []T // the inputs of the last Forward
	targets []int
	dx      []T // the gradient with respect to x for an upstream gradient of 1
	valid   bool
}

// Name implements Kernel.
func (k HeadCrossEntropy[T]) Name() string {
	return fmt.Sprintf("HeadCrossEntropy(%s,%dx%d)", k.ID, k.W.Rows(), k.W.Cols())
}

// OutShape implements Kernel.
func (k HeadCrossEntropy[T]) OutShape(in []tensor.Shape) (tensor.Shape, error) {
	if err := wantShapes(k.Name(), in, 2, 1, 1); err != nil {
		return nil, err
	}
	if in[0][1] != k.W.Cols() {
		return nil, fmt.Errorf("%s: input %v does not match %d input features", k.Name(), in[0], k.W.Cols())
	}
	if in[1][0] != in[0][0] || in[2][0] != in[0][0] {
		return nil, fmt.Errorf("%s: targets %v or mask %v do not match x %v", k.Name(), in[1], in[2], in[0])
	}
	return tensor.ScalarShape(), nil
}

// Forward implements Kernel.
func (k HeadCrossEntropy[T]) Forward(out []T, in []Arg[T]) {
	x, n, targets, mask := in[0].Data, in[0].Shape[0], in[1].Ints, in[2].Data
	if k.Grad == nil {
		out[0] = kernels.HeadCrossEntropyForward(k.W, x, n, targets, mask)
		return
	}
	g := k.Grad
	g.mu.Lock()
	defer g.mu.Unlock()
	g.valid = false
	g.dx = slices.Grow(g.dx[:0], len(x))[:len(x)]
	out[0] = kernels.HeadCrossEntropyForwardBackward(g.dx, k.W, x, n, targets, mask)
	g.x = append(g.x[:0], x...)
	g.targets = append(g.targets[:0], targets...)
	g.mask = append(g.mask[:0], mask...)
	g.valid = true
}

// Differentiable implements Kernel.
func (HeadCrossEntropy[T]) Differentiable(i int) bool { return i == 0 }

// Backward implements Kernel.
func (k HeadCrossEntropy[T]) Backward(wrt int, dIn, dOut []T, in []Arg[T]) {
	x, n, targets, mask := in[0].Data, in[0].Shape[0], in[1].Ints, in[2].Data
	if k.Grad != nil && k.Grad.scaledInto(dIn, dOut[0], x, targets, mask) {
		return
	}
	kernels.HeadCrossEntropyBackward(dIn, k.W, x, n, targets, mask, dOut[0])
}

// scaledInto writes dIn = dloss·dx when the kept gradient belongs to these
// inputs, and reports whether it did.
func (g *HeadGrad[T]) scaledInto(dIn []T, dloss T, x []T, targets []int, mask []T) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.valid || !slices.Equal(g.x, x) || !slices.Equal(g.targets, targets) || !slices.Equal(g.mask, mask) {
		return false
	}
	for i, d := range g.dx {
		dIn[i] = dloss * d
	}
	return true
}
