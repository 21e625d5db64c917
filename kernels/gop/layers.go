package gop

import (
	"fmt"

	"github.com/salr-go/salr/kernels"
	"gorgonia.org/tensor"
)

// This file wraps the transformer layer kernels of package kernels as Kernels.
// Shapes: N token rows (batch × sequence), C model width, V vocabulary.

// wantShapes checks the number of inputs and the rank of each.
func wantShapes(name string, in []tensor.Shape, dims ...int) error {
	if len(in) != len(dims) {
		return fmt.Errorf("%s: %d inputs, want %d", name, len(in), len(dims))
	}
	for i, d := range dims {
		if in[i].Dims() != d {
			return fmt.Errorf("%s: input %d has shape %v, want %d dimensions", name, i, in[i], d)
		}
	}
	return nil
}

// Embedding looks up rows of a table: inputs ids (int [N]) and table [V,C];
// output [N,C]. Differentiable in the table.
type Embedding[T kernels.Float] struct{}

// Name implements Kernel.
func (Embedding[T]) Name() string { return "Embedding" }

// OutShape implements Kernel.
func (k Embedding[T]) OutShape(in []tensor.Shape) (tensor.Shape, error) {
	if err := wantShapes(k.Name(), in, 1, 2); err != nil {
		return nil, err
	}
	return tensor.Shape{in[0][0], in[1][1]}, nil
}

// Forward implements Kernel.
func (Embedding[T]) Forward(out []T, in []Arg[T]) {
	kernels.EmbeddingForward(out, in[1].Data, in[0].Ints, in[1].Shape[1])
}

// Differentiable implements Kernel.
func (Embedding[T]) Differentiable(i int) bool { return i == 1 }

// Backward implements Kernel.
func (Embedding[T]) Backward(wrt int, dIn, dOut []T, in []Arg[T]) {
	kernels.EmbeddingBackward(dIn, dOut, in[0].Ints, in[1].Shape[1])
}

// FrozenEmbedding looks up rows of a frozen table held by the op rather than
// in the graph (float32 or bf16): input ids (int [N]); output [N,C]. Nothing
// is differentiable. ID names the table; it makes the op's hash unique.
type FrozenEmbedding[T kernels.Float] struct {
	ID    string
	Table kernels.RowGatherer[T]
}

// Name implements Kernel.
func (k FrozenEmbedding[T]) Name() string {
	return fmt.Sprintf("FrozenEmbedding(%s,%dx%d)", k.ID, k.Table.Rows(), k.Table.Cols())
}

// OutShape implements Kernel.
func (k FrozenEmbedding[T]) OutShape(in []tensor.Shape) (tensor.Shape, error) {
	if err := wantShapes(k.Name(), in, 1); err != nil {
		return nil, err
	}
	return tensor.Shape{in[0][0], k.Table.Cols()}, nil
}

// Forward implements Kernel.
func (k FrozenEmbedding[T]) Forward(out []T, in []Arg[T]) { k.Table.GatherRows(out, in[0].Ints) }

// Differentiable implements Kernel: the ids have no gradient.
func (FrozenEmbedding[T]) Differentiable(int) bool { return false }

// Backward implements Kernel; it is never called.
func (k FrozenEmbedding[T]) Backward(int, []T, []T, []Arg[T]) {
	panic("gop: " + k.Name() + " has no gradient")
}

// RMSNorm normalises rows: inputs x [N,C] and weight [C]; output [N,C].
type RMSNorm[T kernels.Float] struct{ Eps float64 }

// Name implements Kernel.
func (k RMSNorm[T]) Name() string { return fmt.Sprintf("RMSNorm(eps=%g)", k.Eps) }

// OutShape implements Kernel.
func (k RMSNorm[T]) OutShape(in []tensor.Shape) (tensor.Shape, error) {
	if err := wantShapes(k.Name(), in, 2, 1); err != nil {
		return nil, err
	}
	if in[1][0] != in[0][1] {
		return nil, fmt.Errorf("%s: weight %v does not match x %v", k.Name(), in[1], in[0])
	}
	return in[0].Clone(), nil
}

// Forward implements Kernel.
func (k RMSNorm[T]) Forward(out []T, in []Arg[T]) {
	kernels.RMSNormForward(out, in[0].Data, in[1].Data, in[0].Shape[0], in[0].Shape[1], k.Eps)
}

// Differentiable implements Kernel.
func (RMSNorm[T]) Differentiable(int) bool { return true }

// Backward implements Kernel.
func (k RMSNorm[T]) Backward(wrt int, dIn, dOut []T, in []Arg[T]) {
	n, c := in[0].Shape[0], in[0].Shape[1]
	if wrt == 0 {
		kernels.RMSNormBackward(dIn, nil, dOut, in[0].Data, in[1].Data, n, c, k.Eps)
	} else {
		kernels.RMSNormBackward(nil, dIn, dOut, in[0].Data, in[1].Data, n, c, k.Eps)
	}
}

// FrozenLinear is a projection by a weight that is not trained and lives in
// the op rather than in the graph (dense or compressed): input x [N,In];
// output x Wᵀ + b [N,Out]. Differentiable in x only. ID names the weight; it
// makes the op's hash unique.
type FrozenLinear[T kernels.Float] struct {
	ID   string
	W    kernels.Matrix[T]
	Bias []T // [Out] or nil
}

// Name implements Kernel.
func (k FrozenLinear[T]) Name() string {
	return fmt.Sprintf("FrozenLinear(%s,%dx%d)", k.ID, k.W.Rows(), k.W.Cols())
}

// OutShape implements Kernel.
func (k FrozenLinear[T]) OutShape(in []tensor.Shape) (tensor.Shape, error) {
	if err := wantShapes(k.Name(), in, 2); err != nil {
		return nil, err
	}
	if in[0][1] != k.W.Cols() {
		return nil, fmt.Errorf("%s: input %v does not match %d input features", k.Name(), in[0], k.W.Cols())
	}
	return tensor.Shape{in[0][0], k.W.Rows()}, nil
}

// Forward implements Kernel.
func (k FrozenLinear[T]) Forward(out []T, in []Arg[T]) {
	n := in[0].Shape[0]
	k.W.MulT(out, in[0].Data, n)
	addBias(out, k.Bias, n)
}

// Differentiable implements Kernel.
func (FrozenLinear[T]) Differentiable(i int) bool { return i == 0 }

// Backward implements Kernel.
func (k FrozenLinear[T]) Backward(wrt int, dIn, dOut []T, in []Arg[T]) {
	k.W.Mul(dIn, dOut, in[0].Shape[0])
}

// BackwardReads implements BackwardReader: dx = dy·W needs only x's shape.
func (FrozenLinear[T]) BackwardReads(wrt, i int) bool { return false }

// addBias adds b to each of the n rows of y.
func addBias[T kernels.Float](y, b []T, n int) {
	if b == nil {
		return
	}
	c := len(b)
	for r := 0; r < n; r++ {
		row := y[r*c : (r+1)*c]
		for j, v := range b {
			row[j] += v
		}
	}
}

// Linear is a projection by a trainable weight held in the graph: inputs x
// [N,In], w [Out,In] and optionally b [Out]; output [N,Out].
type Linear[T kernels.Float] struct{}

// Name implements Kernel.
func (Linear[T]) Name() string { return "Linear" }

// OutShape implements Kernel.
func (k Linear[T]) OutShape(in []tensor.Shape) (tensor.Shape, error) {
	dims := []int{2, 2}
	if len(in) == 3 {
		dims = append(dims, 1)
	}
	if err := wantShapes(k.Name(), in, dims...); err != nil {
		return nil, err
	}
	if in[0][1] != in[1][1] || (len(in) == 3 && in[2][0] != in[1][0]) {
		return nil, fmt.Errorf("%s: shapes %v do not fit", k.Name(), in)
	}
	return tensor.Shape{in[0][0], in[1][0]}, nil
}

// Forward implements Kernel.
func (Linear[T]) Forward(out []T, in []Arg[T]) {
	var b []T
	if len(in) == 3 {
		b = in[2].Data
	}
	kernels.LinearForward(out, in[0].Data, in[1].Data, b, in[0].Shape[0], in[1].Shape[1], in[1].Shape[0])
}

// Differentiable implements Kernel.
func (Linear[T]) Differentiable(int) bool { return true }

// Backward implements Kernel.
func (Linear[T]) Backward(wrt int, dIn, dOut []T, in []Arg[T]) {
	grads := [3][]T{}
	grads[wrt] = dIn
	kernels.LinearBackward(grads[0], grads[1], grads[2], dOut, in[0].Data, in[1].Data,
		in[0].Shape[0], in[1].Shape[1], in[1].Shape[0])
}

// BackwardReads implements BackwardReader: dx needs w, dw needs x, db
// neither.
func (Linear[T]) BackwardReads(wrt, i int) bool { return (wrt == 0 && i == 1) || (wrt == 1 && i == 0) }

// SelfAttention is the causal grouped-query attention layer with RoPE over
// packed projections: input qkv [N, (H+2KV)·D]; output [N, H·D]. With
// Positions set, each sequence holds several examples (see
// kernels.SelfAttention).
type SelfAttention[T kernels.Float] struct{ kernels.SelfAttention }

// Name implements Kernel.
func (k SelfAttention[T]) Name() string {
	s := k.SelfAttention
	rope := "none"
	if n := len(s.InvFreq); n > 0 {
		rope = fmt.Sprintf("%d:%g..%g", n, s.InvFreq[0], s.InvFreq[n-1])
	}
	packed := ""
	if s.Positions != nil {
		packed = ",packed"
	}
	if s.Precision != kernels.FP32 {
		packed += "," + s.Precision.String()
	}
	return fmt.Sprintf("SelfAttention(B=%d,T=%d,H=%d,KV=%d,D=%d,rope=%s%s)", s.Batch, s.Seq, s.Heads, s.KVHeads, s.HeadDim, rope, packed)
}

// OutShape implements Kernel.
func (k SelfAttention[T]) OutShape(in []tensor.Shape) (tensor.Shape, error) {
	s := k.SelfAttention
	if err := wantShapes(k.Name(), in, 2); err != nil {
		return nil, err
	}
	if in[0][0] != s.Batch*s.Seq || in[0][1] != (s.Heads+2*s.KVHeads)*s.HeadDim {
		return nil, fmt.Errorf("%s: input %v does not fit", k.Name(), in[0])
	}
	return tensor.Shape{s.Batch * s.Seq, s.Heads * s.HeadDim}, nil
}

// Forward implements Kernel.
func (k SelfAttention[T]) Forward(out []T, in []Arg[T]) {
	kernels.SelfAttentionForward(k.SelfAttention, out, in[0].Data)
}

// Differentiable implements Kernel.
func (SelfAttention[T]) Differentiable(int) bool { return true }

// Backward implements Kernel.
func (k SelfAttention[T]) Backward(wrt int, dIn, dOut []T, in []Arg[T]) {
	kernels.SelfAttentionBackward(k.SelfAttention, dIn, dOut, in[0].Data)
}

// SwiGLU is the gated MLP activation: inputs gate and up of equal shape;
// output silu(gate) ⊙ up.
type SwiGLU[T kernels.Float] struct{}

// Name implements Kernel.
func (SwiGLU[T]) Name() string { return "SwiGLU" }

// OutShape implements Kernel.
func (k SwiGLU[T]) OutShape(in []tensor.Shape) (tensor.Shape, error) {
	if len(in) != 2 || !in[0].Eq(in[1]) {
		return nil, fmt.Errorf("%s: want two inputs of equal shape, got %v", k.Name(), in)
	}
	return in[0].Clone(), nil
}

// Forward implements Kernel.
func (SwiGLU[T]) Forward(out []T, in []Arg[T]) { kernels.SwiGLUForward(out, in[0].Data, in[1].Data) }

// Differentiable implements Kernel.
func (SwiGLU[T]) Differentiable(int) bool { return true }

// Backward implements Kernel.
func (SwiGLU[T]) Backward(wrt int, dIn, dOut []T, in []Arg[T]) {
	if wrt == 0 {
		kernels.SwiGLUBackward(dIn, nil, dOut, in[0].Data, in[1].Data)
	} else {
		kernels.SwiGLUBackward(nil, dIn, dOut, in[0].Data, in[1].Data)
	}
}

// CrossEntropy is the masked mean next-token loss: inputs logits [N,V],
// targets (int [N]) and mask [N]; output a scalar. Differentiable in the
// logits.
type CrossEntropy[T kernels.Float] struct{}

// Name implements Kernel.
func (CrossEntropy[T]) Name() string { return "CrossEntropy" }

// OutShape implements Kernel.
func (k CrossEntropy[T]) OutShape(in []tensor.Shape) (tensor.Shape, error) {
	if err := wantShapes(k.Name(), in, 2, 1, 1); err != nil {
		return nil, err
	}
	if in[1][0] != in[0][0] || in[2][0] != in[0][0] {
		return nil, fmt.Errorf("%s: targets %v or mask %v do not match logits %v", k.Name(), in[1], in[2], in[0])
	}
	return tensor.ScalarShape(), nil
}

// Forward implements Kernel.
func (CrossEntropy[T]) Forward(out []T, in []Arg[T]) {
	out[0] = kernels.CrossEntropyForward(in[0].Data, in[0].Shape[0], in[0].Shape[1], in[1].Ints, in[2].Data)
}

// Differentiable implements Kernel.
func (CrossEntropy[T]) Differentiable(i int) bool { return i == 0 }

// Backward implements Kernel.
func (CrossEntropy[T]) Backward(wrt int, dIn, dOut []T, in []Arg[T]) {
	kernels.CrossEntropyBackward(dIn, in[0].Data, in[0].Shape[0], in[0].Shape[1], in[1].Ints, in[2].Data, dOut[0])
}

// Add sums two inputs of equal shape (the residual connections).
type Add[T kernels.Float] struct{}

// Name implements Kernel.
func (Add[T]) Name() string { return "Add" }

// OutShape implements Kernel.
func (k Add[T]) OutShape(in []tensor.Shape) (tensor.Shape, error) {
	if len(in) != 2 || !in[0].Eq(in[1]) {
		return nil, fmt.Errorf("%s: want two inputs of equal shape, got %v", k.Name(), in)
	}
	return in[0].Clone(), nil
}

// Forward implements Kernel.
func (Add[T]) Forward(out []T, in []Arg[T]) { kernels.AddElems(out, in[0].Data, in[1].Data) }

// Differentiable implements Kernel.
func (Add[T]) Differentiable(int) bool { return true }

// Backward implements Kernel.
func (Add[T]) Backward(wrt int, dIn, dOut []T, in []Arg[T]) { kernels.CopyElems(dIn, dOut) }

// BackwardReads implements BackwardReader: the gradient of a sum passes
// through.
func (Add[T]) BackwardReads(wrt, i int) bool { return false }

// ConcatColumns joins matrices [N, C_i] side by side into [N, ΣC_i] (the
// packed q|k|v input of attention).
type ConcatColumns[T kernels.Float] struct{}

// Name implements Kernel.
func (ConcatColumns[T]) Name() string { return "ConcatColumns" }

// OutShape implements Kernel.
func (k ConcatColumns[T]) OutShape(in []tensor.Shape) (tensor.Shape, error) {
	if len(in) == 0 {
		return nil, fmt.Errorf("%s: no inputs", k.Name())
	}
	cols := 0
	for _, s := range in {
		if s.Dims() != 2 || s[0] != in[0][0] {
			return nil, fmt.Errorf("%s: inputs %v are not matrices with equal row counts", k.Name(), in)
		}
		cols += s[1]
	}
	return tensor.Shape{in[0][0], cols}, nil
}

// Forward implements Kernel.
func (ConcatColumns[T]) Forward(out []T, in []Arg[T]) {
	n := in[0].Shape[0]
	width := len(out) / max(n, 1)
	off := 0
	for _, a := range in {
		c := a.Shape[1]
		for r := 0; r < n; r++ {
			copy(out[r*width+off:r*width+off+c], a.Data[r*c:(r+1)*c])
		}
		off += c
	}
}

// Differentiable implements Kernel.
func (ConcatColumns[T]) Differentiable(int) bool { return true }

// Backward implements Kernel.
func (ConcatColumns[T]) Backward(wrt int, dIn, dOut []T, in []Arg[T]) {
	n := in[0].Shape[0]
	width := len(dOut) / max(n, 1)
	off := 0
	for _, a := range in[:wrt] {
		off += a.Shape[1]
	}
	c := in[wrt].Shape[1]
	for r := 0; r < n; r++ {
		copy(dIn[r*c:(r+1)*c], dOut[r*width+off:r*width+off+c])
	}
}

// BackwardReads implements BackwardReader: only the inputs' widths matter.
func (ConcatColumns[T]) BackwardReads(wrt, i int) bool { return false }

// Weighted multiplies its first input by the one value of its second (not
// differentiated): out = w·x. A data-parallel run weighs each rank's loss by
// the rank's share of the batch's loss tokens with it, so that the ranks'
// gradients add up to the whole batch's.
type Weighted[T kernels.Float] struct{}

// Name implements Kernel.
func (Weighted[T]) Name() string { return "Weighted" }

// OutShape implements Kernel.
func (k Weighted[T]) OutShape(in []tensor.Shape) (tensor.Shape, error) {
	if len(in) != 2 || in[1].TotalSize() != 1 {
		return nil, fmt.Errorf("%s: want an input and a one-value weight, got %v", k.Name(), in)
	}
	return in[0].Clone(), nil
}

// Forward implements Kernel.
func (Weighted[T]) Forward(out []T, in []Arg[T]) {
	w := in[1].Data[0]
	for i, v := range in[0].Data {
		out[i] = w * v
	}
}

// Differentiable implements Kernel: the input, not the weight.
func (Weighted[T]) Differentiable(i int) bool { return i == 0 }

// Backward implements Kernel.
func (Weighted[T]) Backward(wrt int, dIn, dOut []T, in []Arg[T]) {
	w := in[1].Data[0]
	for i, d := range dOut {
		dIn[i] = w * d
	}
}

// BackwardReads implements BackwardReader: only the weight is read.
func (Weighted[T]) BackwardReads(wrt, i int) bool { return i == 1 }
