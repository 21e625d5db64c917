package gop

import (
	"fmt"

	"github.com/salr-go/salr/kernels"
	"gorgonia.org/tensor"
)

// HeadCrossEntropy is the language-model head fused with the masked mean
// next-token loss: inputs x [N,C] (the final normalised hidden states),
// targets (int [N]) and mask [N]; output the scalar CrossEntropy(x Wᵀ). The
// head W [V,C] is frozen and lives in the op (dense or compressed); ID names
// it and makes the op's hash unique. Differentiable in x. The N×V logits never
// exist at once (see kernels.HeadCrossEntropyForward); the backward pass
// recomputes them chunk by chunk.
type HeadCrossEntropy[T kernels.Float] struct {
	ID string
	W  kernels.Matrix[T]
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
	out[0] = kernels.HeadCrossEntropyForward(k.W, in[0].Data, in[0].Shape[0], in[1].Ints, in[2].Data)
}

// Differentiable implements Kernel.
func (HeadCrossEntropy[T]) Differentiable(i int) bool { return i == 0 }

// Backward implements Kernel.
func (k HeadCrossEntropy[T]) Backward(wrt int, dIn []T, dOut, out []T, in []Arg[T]) {
	kernels.HeadCrossEntropyBackward(dIn, k.W, in[0].Data, in[0].Shape[0], in[1].Ints, in[2].Data, dOut[0])
}
