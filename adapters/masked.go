package adapters

import (
	"fmt"

	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/kernels/gop"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// MaskedKernel is the adapter op of method lora-prune-dynamic (pruning
// during training): with the frozen base of the projection holding W0 ⊙ M,
// it adds ((s·B A) ⊙ M) x to the output, so that the projection computes
//
//	y = ((W0 + s·B A) ⊙ M) x
//
// and the gradients of A and B flow through the mask:
//
//	D  = (B diag(scale) A) ⊙ M               (Out×In, formed every forward)
//	y  = dropout(x) Dᵀ                        (gop.Linear)
//	dD = dyᵀ dropout(x)                       (gop.Linear's weight gradient)
//	dA = diag(scale) Bᵀ (dD ⊙ M)
//	dB = (dD ⊙ M) Aᵀ diag(scale)
//
// In a graph (Apply) it is three nodes: Weight (A, B → D), the dropout of x
// (when the adapter has dropout) and gop.Linear. Keep holds M as 0/1 values
// (row-major Out×In); the trainer overwrites it in place when it recomputes
// the mask, between steps. Dropout draws the masks of the FusedKernel it is
// made with, so SetStep/SetRows/SetTraining of that kernel drive it.
//
// The kernel is also a gop.Kernel of the whole op (inputs x, A, B), for
// direct calls and gradient checks. It serves adapters without frozen ranks
// (LoRA alone).
type MaskedKernel[T kernels.Float] struct {
	k    *FusedKernel[T]
	Keep []T
}

// NewMaskedKernel returns the op of f (LoRA only: every rank trainable) with
// mask keep (Out×In, 0 or 1), drawing dropout from k.
func NewMaskedKernel[T kernels.Float](f *Fused, k *FusedKernel[T], keep []T) (*MaskedKernel[T], error) {
	if len(keep) != f.Out*f.In {
		return nil, fmt.Errorf("adapters: masked adapter: mask has %d values, want %d×%d", len(keep), f.Out, f.In)
	}
	if len(k.frozen) > 0 {
		return nil, fmt.Errorf("adapters: masked adapter: %d frozen ranks; only fully trainable adapters (LoRA) are supported", len(k.frozen))
	}
	if k.in != f.In || k.out != f.Out || k.rank != f.Rank {
		return nil, fmt.Errorf("adapters: masked adapter: kernel is %d→%d rank %d, adapter %d→%d rank %d", k.in, k.out, k.rank, f.In, f.Out, f.Rank)
	}
	return &MaskedKernel[T]{k: k, Keep: keep}, nil
}

// Apply adds the op to the graph of x (2-D, [N, In]) and returns the delta's
// node [N, Out].
func (m *MaskedKernel[T]) Apply(x, a, b *G.Node) (*G.Node, error) {
	d, err := gop.Apply(maskedWeight[T]{m}, a, b)
	if err != nil {
		return nil, err
	}
	if m.k.dropped > 0 {
		if x, err = gop.Apply(maskedDropout[T]{m}, x); err != nil {
			return nil, err
		}
	}
	return gop.Apply(gop.Linear[T]{}, x, d)
}

// Name implements gop.Kernel.
func (m *MaskedKernel[T]) Name() string { return m.k.Name() + ".masked" }

// OutShape implements gop.Kernel: x [N, In], A [Rank, In], B [Out, Rank]
// give [N, Out].
func (m *MaskedKernel[T]) OutShape(in []tensor.Shape) (tensor.Shape, error) {
	if len(in) != 3 {
		return nil, fmt.Errorf("masked adapter takes x, A, B; got %d inputs", len(in))
	}
	d, err := maskedWeight[T]{m}.OutShape(in[1:])
	if err != nil {
		return nil, err
	}
	return gop.Linear[T]{}.OutShape([]tensor.Shape{in[0], d})
}

// Differentiable implements gop.Kernel: x, A and B all are.
func (m *MaskedKernel[T]) Differentiable(i int) bool { return i >= 0 && i < 3 }

// Forward implements gop.Kernel.
func (m *MaskedKernel[T]) Forward(out []T, in []gop.Arg[T]) {
	d, xd, release := m.parts(in)
	defer release()
	gop.Linear[T]{}.Forward(out, []gop.Arg[T]{xd, d})
}

// Backward implements gop.Kernel through the backward passes of the parts.
func (m *MaskedKernel[T]) Backward(wrt int, dIn, dOut []T, in []gop.Arg[T]) {
	d, xd, release := m.parts(in)
	defer release()
	switch wrt {
	case 0:
		if m.k.dropped == 0 || !m.k.training {
			gop.Linear[T]{}.Backward(0, dIn, dOut, []gop.Arg[T]{xd, d})
			return
		}
		dxd := borrow[T](len(dIn))
		defer giveBack(dxd)
		gop.Linear[T]{}.Backward(0, dxd, dOut, []gop.Arg[T]{xd, d})
		maskedDropout[T]{m}.Backward(0, dIn, dxd, in[:1])
	case 1, 2:
		dD := borrow[T](len(d.Data))
		defer giveBack(dD)
		gop.Linear[T]{}.Backward(1, dD, dOut, []gop.Arg[T]{xd, d})
		maskedWeight[T]{m}.Backward(wrt-1, dIn, dD, in[1:])
	default:
		panic(fmt.Sprintf("adapters: MaskedKernel.Backward: input %d is not differentiable", wrt))
	}
}

// parts computes D and the dropped-out x of the whole op's inputs.
func (m *MaskedKernel[T]) parts(in []gop.Arg[T]) (d, xd gop.Arg[T], release func()) {
	k := m.k
	d = gop.Arg[T]{Shape: tensor.Shape{k.out, k.in}, Data: borrow[T](k.out * k.in)}
	maskedWeight[T]{m}.Forward(d.Data, in[1:])
	xd = in[0]
	if k.dropped == 0 || !k.training {
		return d, xd, func() { giveBack(d.Data) }
	}
	xd = gop.Arg[T]{Shape: in[0].Shape, Data: borrow[T](len(in[0].Data))}
	maskedDropout[T]{m}.Forward(xd.Data, in[:1])
	return d, xd, func() { giveBack(d.Data); giveBack(xd.Data) }
}

// maskedWeight is the node D = (B diag(scale) A) ⊙ M of inputs A, B.
type maskedWeight[T kernels.Float] struct{ m *MaskedKernel[T] }

func (w maskedWeight[T]) Name() string { return w.m.Name() + ".weight" }

func (w maskedWeight[T]) OutShape(in []tensor.Shape) (tensor.Shape, error) {
	k := w.m.k
	if len(in) != 2 {
		return nil, fmt.Errorf("masked adapter's weight takes A, B; got %d inputs", len(in))
	}
	if !in[0].Eq(tensor.Shape{k.rank, k.in}) {
		return nil, fmt.Errorf("masked adapter: A has shape %v, want [%d %d]", in[0], k.rank, k.in)
	}
	if !in[1].Eq(tensor.Shape{k.out, k.rank}) {
		return nil, fmt.Errorf("masked adapter: B has shape %v, want [%d %d]", in[1], k.out, k.rank)
	}
	return tensor.Shape{k.out, k.in}, nil
}

func (w maskedWeight[T]) Differentiable(i int) bool { return i == 0 || i == 1 }

func (w maskedWeight[T]) Forward(out []T, in []gop.Arg[T]) {
	k := w.m.k
	sb := borrow[T](k.out * k.rank)
	defer giveBack(sb)
	scaleColumns(sb, in[1].Data, k.scale)
	kernels.Gemm(false, false, k.out, k.in, k.rank, 1, sb, k.rank, in[0].Data, k.in, 0, out, k.in)
	for i, keep := range w.m.Keep {
		out[i] *= keep
	}
}

func (w maskedWeight[T]) Backward(wrt int, dIn, dD []T, in []gop.Arg[T]) {
	k := w.m.k
	g := borrow[T](len(dD))
	defer giveBack(g)
	for i, keep := range w.m.Keep {
		g[i] = dD[i] * keep
	}
	switch wrt {
	case 0: // dA = diag(scale) Bᵀ G
		kernels.Gemm(true, false, k.rank, k.in, k.out, 1, in[1].Data, k.rank, g, k.in, 0, dIn, k.in)
		for r := 0; r < k.rank; r++ {
			row := dIn[r*k.in : (r+1)*k.in]
			for i := range row {
				row[i] *= k.scale[r]
			}
		}
	case 1: // dB = G Aᵀ diag(scale)
		kernels.Gemm(false, true, k.out, k.rank, k.in, 1, g, k.in, in[0].Data, k.in, 0, dIn, k.rank)
		scaleColumns(dIn, dIn, k.scale)
	default:
		panic(fmt.Sprintf("adapters: masked adapter weight: input %d is not differentiable", wrt))
	}
}

// scaleColumns writes src (rows × len(scale)) with every column multiplied
// by its scale into dst (which may be src).
func scaleColumns[T kernels.Float](dst, src, scale []T) {
	r := len(scale)
	for o := 0; o < len(src)/r; o++ {
		for j, s := range scale {
			dst[o*r+j] = src[o*r+j] * s
		}
	}
}

// maskedDropout is the node dropout(x) of the adapter's FusedKernel's masks
// (all In features of x are dropped out: LoRA alone has no clean ranks).
type maskedDropout[T kernels.Float] struct{ m *MaskedKernel[T] }

func (d maskedDropout[T]) Name() string { return d.m.Name() + ".dropout" }

func (d maskedDropout[T]) OutShape(in []tensor.Shape) (tensor.Shape, error) {
	if len(in) != 1 || in[0].Dims() < 1 || in[0][in[0].Dims()-1] != d.m.k.in {
		return nil, fmt.Errorf("masked adapter's dropout takes x [..., %d]; got %v", d.m.k.in, in)
	}
	return in[0].Clone(), nil
}

func (d maskedDropout[T]) Differentiable(i int) bool { return i == 0 }

func (d maskedDropout[T]) Forward(out []T, in []gop.Arg[T]) {
	_, _, xd, release := d.m.k.prepare(in[0].Data, false)
	defer release()
	if xd == nil { // no dropout now (eval mode)
		copy(out, in[0].Data)
		return
	}
	copy(out, xd)
}

// BackwardReads implements gop.BackwardReader: the mask depends on x's
// shape only.
func (d maskedDropout[T]) BackwardReads(wrt, i int) bool { return false }

func (d maskedDropout[T]) Backward(wrt int, dIn, dOut []T, in []gop.Arg[T]) {
	// prepare reads only the length of x for the multiplier (x's data may
	// be nil here, see BackwardReads), and dOut has x's length.
	_, drop, _, release := d.m.k.prepare(dOut, true)
	defer release()
	if drop == nil {
		copy(dIn, dOut)
		return
	}
	for i, g := range dOut {
		dIn[i] = g * drop[i]
	}
}
