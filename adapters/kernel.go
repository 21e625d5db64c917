package adapters

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"

	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/kernels/gop"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// FusedKernel is the gorgonia op of one projection's Fused adapter, with
// inputs x [..., In], A_cat [Rank, In] and B_cat [Out, Rank] and output the
// delta ((x A_catᵀ) ⊙ scale) B_catᵀ of shape [..., Out], which the model adds
// to the frozen base output. All three inputs are differentiable (x's
// gradient flows on to earlier layers). The math is
// kernels.FusedAdapterForward/Backward: two GEMMs forward without dropout,
// three with it.
//
// In a graph (Apply) the adapter is two nodes: Hidden, h = (x A_catᵀ) ⊙ scale
// (N×Rank), and Output, h B_catᵀ. The graph keeps h for the backward pass,
// and gorgonia hands the gradient dh = dy B_cat of the one Output node to both
// backward nodes of Hidden, so a step costs the 2 forward GEMMs and 4
// backward ones: dh, dB = dyᵀ h, dx = (dh ⊙ scale) A_cat, dA = (dh ⊙ scale)ᵀ x
// (each of the first product, dx and dA split in two with dropout). The
// kernel itself is also a gop.Kernel of the whole adapter as one node, for
// direct calls and gradient checks; as a graph node its Backward would
// recompute dh for x and A_cat and h for B_cat.
//
// Dropout (training mode, probability p > 0 on the leading Dropped ranks):
// each element of x is kept with probability 1−p and scaled by 1/(1−p), as
// torch.nn.Dropout does, for the LoRA ranks only; the SVD ranks read the clean
// x. The mask is a pure function of (seed, step, number of rows): the trainer
// calls SetStep before each forward pass (once per micro-batch), so a resumed
// run draws exactly the same masks, and every Forward and Backward of one step
// sees the same mask. The kernel caches the mask bits (one bit per element of
// x) between calls of the same step; nothing else is cached between calls,
// so recomputing a node (gradient checkpointing) gives the same values. In
// eval mode (SetTraining false) there is no dropout.
//
// Backward zeroes the gradient rows of A_cat and columns of B_cat that belong
// to frozen adapters (Fused.TrainableRanks).
type FusedKernel[T kernels.Float] struct {
	name                   string
	in, out, rank, dropped int
	keepProb               float64
	scale                  []T
	frozen                 []int // ranks whose gradients are zeroed
	seed, step             uint64
	rowFirst, rowTotal     int
	gather                 []int // SetGatheredRows: the input's rows among gatherOf
	gatherOf               int
	training               bool
	precision              kernels.Precision

	maskValid bool
	maskStep  uint64
	maskRows  int
	// maskFirst, maskTotal are the rowFirst, rowTotal of the cached mask.
	maskFirst, maskTotal int
	maskBits             []uint64 // kept elements of x for (maskStep, maskRows)
	maskMu               sync.Mutex
}

// NewFusedKernel returns the kernel for f. name identifies the projection
// (e.g. its HF module name) and makes the op's hash unique; seed selects the
// dropout stream (derive it per projection, e.g. SeedFor(runSeed, name)).
// The kernel starts in training mode at step 0. It reads f's shapes, scales,
// dropout and trainable ranks now; A and B come through the graph inputs.
func NewFusedKernel[T kernels.Float](f *Fused, name string, seed uint64) *FusedKernel[T] {
	k := &FusedKernel[T]{in: f.In, out: f.Out, rank: f.Rank, dropped: f.Dropped(), keepProb: 1 - f.Dropout(),
		seed: seed, training: true, scale: make([]T, f.Rank)}
	for i, s := range f.Scale {
		k.scale[i] = T(s)
	}
	for i, t := range f.TrainableRanks() {
		if !t {
			k.frozen = append(k.frozen, i)
		}
	}
	var parts []string
	for _, p := range f.Parts {
		parts = append(parts, fmt.Sprintf("%s:%d*%g", p.Kind, p.Rank, p.Scale))
	}
	k.name = fmt.Sprintf("salr.fused_adapter[%s](%d->%d,%s,p=%g,seed=%d)", name, f.In, f.Out, strings.Join(parts, "+"), f.Dropout(), seed)
	return k
}

// SetStep selects the dropout mask of a training step (or micro-step).
func (k *FusedKernel[T]) SetStep(step uint64) { k.step = step }

// SetRows makes the dropout masks those of rows [first, first+n) of a batch
// of total rows, n being the rows of the op's input (a rank's share of a
// data-parallel batch draws what one process draws for the whole batch).
// total 0 (the default) means the input is the whole batch.
func (k *FusedKernel[T]) SetRows(first, total int) { k.rowFirst, k.rowTotal = first, total }

// SetGatheredRows makes the dropout masks those of rows rows (in order) of
// an input of n rows, for an input gathered from a larger one (the tokens
// routed to one expert of a mixture-of-experts layer): each row is dropped
// as it would be in the whole input, so the masks do not depend on how the
// tokens are grouped, and a data-parallel rank (SetRows) draws what one
// process draws. Nil rows returns to plain inputs. The slice is not copied.
func (k *FusedKernel[T]) SetGatheredRows(rows []int, n int) {
	k.maskMu.Lock()
	defer k.maskMu.Unlock()
	k.gather, k.gatherOf = rows, n
}

// SetTraining switches dropout on (training) or off (evaluation).
func (k *FusedKernel[T]) SetTraining(on bool) { k.training = on }

// SetPrecision selects the arithmetic of the adapter's GEMMs, forward and
// backward (kernels.MatMul); the kernel starts with FP32. Set it before
// adding the kernel to a graph.
func (k *FusedKernel[T]) SetPrecision(p kernels.Precision) { k.precision = p }

// Name implements gop.Kernel.
func (k *FusedKernel[T]) Name() string {
	if k.precision != kernels.FP32 {
		return k.name + "," + k.precision.String()
	}
	return k.name
}

// Apply adds the adapter to the graph of x as the two nodes Hidden and
// Output and returns the delta's node.
func (k *FusedKernel[T]) Apply(x, a, b *G.Node) (*G.Node, error) {
	h, err := gop.Apply(k.Hidden(), x, a)
	if err != nil {
		return nil, err
	}
	return gop.Apply(k.Output(), h, b)
}

// Hidden returns the kernel of the first half of the adapter: inputs x
// [..., In] and A_cat [Rank, In], output h = (x A_catᵀ) ⊙ scale [..., Rank]
// (with the dropout of the current step on the dropped ranks).
func (k *FusedKernel[T]) Hidden() gop.Kernel[T] { return fusedHidden[T]{k} }

// Output returns the kernel of the second half of the adapter: inputs h
// [..., Rank] and B_cat [Out, Rank], output h B_catᵀ [..., Out].
func (k *FusedKernel[T]) Output() gop.Kernel[T] { return fusedOutput[T]{k} }

// OutShape implements gop.Kernel: x [..., In], A [Rank, In], B [Out, Rank]
// give [..., Out].
func (k *FusedKernel[T]) OutShape(in []tensor.Shape) (tensor.Shape, error) {
	if len(in) != 3 {
		return nil, fmt.Errorf("fused adapter takes x, A_cat, B_cat; got %d inputs", len(in))
	}
	h, err := k.Hidden().OutShape(in[:2])
	if err != nil {
		return nil, err
	}
	return k.Output().OutShape([]tensor.Shape{h, in[2]})
}

// Differentiable implements gop.Kernel: x, A_cat and B_cat all are.
func (k *FusedKernel[T]) Differentiable(i int) bool { return i >= 0 && i < 3 }

// Forward implements gop.Kernel: Hidden, then Output.
func (k *FusedKernel[T]) Forward(out []T, in []gop.Arg[T]) {
	hArg, release := k.hidden(in)
	defer release()
	fusedHidden[T]{k}.Forward(hArg.Data, in[:2])
	fusedOutput[T]{k}.Forward(out, []gop.Arg[T]{hArg, in[2]})
}

// Backward implements gop.Kernel through the backward passes of Output and
// Hidden.
func (k *FusedKernel[T]) Backward(wrt int, dIn, dOut []T, in []gop.Arg[T]) {
	hArg, release := k.hidden(in)
	defer release()
	switch wrt {
	case 0, 1:
		dh := hArg.Data
		fusedOutput[T]{k}.Backward(0, dh, dOut, []gop.Arg[T]{{Shape: hArg.Shape}, in[2]})
		fusedHidden[T]{k}.Backward(wrt, dIn, dh, in[:2])
	case 2:
		fusedHidden[T]{k}.Forward(hArg.Data, in[:2])
		fusedOutput[T]{k}.Backward(1, dIn, dOut, []gop.Arg[T]{hArg, in[2]})
	default:
		panic(fmt.Sprintf("adapters: FusedKernel.Backward: input %d is not differentiable", wrt))
	}
}

// hidden returns a scratch argument of h's shape for the inputs x, A_cat,
// B_cat of the whole adapter, and the function that returns it to the pool.
func (k *FusedKernel[T]) hidden(in []gop.Arg[T]) (gop.Arg[T], func()) {
	s := in[0].Shape.Clone()
	s[len(s)-1] = k.rank
	h := borrow[T](s.TotalSize())
	return gop.Arg[T]{Shape: s, Data: h}, func() { giveBack(h) }
}

// fusedHidden is FusedKernel.Hidden.
type fusedHidden[T kernels.Float] struct{ k *FusedKernel[T] }

func (f fusedHidden[T]) Name() string { return f.k.Name() + ".hidden" }

func (f fusedHidden[T]) OutShape(in []tensor.Shape) (tensor.Shape, error) {
	k := f.k
	if len(in) != 2 {
		return nil, fmt.Errorf("fused adapter's hidden half takes x, A_cat; got %d inputs", len(in))
	}
	x, a := in[0], in[1]
	if x.Dims() < 1 || x[x.Dims()-1] != k.in {
		return nil, fmt.Errorf("fused adapter: x has shape %v, want [..., %d]", x, k.in)
	}
	if !a.Eq(tensor.Shape{k.rank, k.in}) {
		return nil, fmt.Errorf("fused adapter: A_cat has shape %v, want [%d %d]", a, k.rank, k.in)
	}
	out := x.Clone()
	out[len(out)-1] = k.rank
	return out, nil
}

func (f fusedHidden[T]) Differentiable(i int) bool { return i == 0 || i == 1 }

func (f fusedHidden[T]) Forward(h []T, in []gop.Arg[T]) {
	x, a := in[0].Data, in[1].Data
	d, drop, xd, release := f.k.prepare(x, false)
	defer release()
	kernels.FusedAdapterHidden(d, h, xd, x, drop, a, f.k.scale)
}

func (f fusedHidden[T]) Backward(wrt int, dIn, dh []T, in []gop.Arg[T]) {
	k := f.k
	x, a := in[0].Data, in[1].Data
	d, drop, xd, release := k.prepare(x, wrt == 0)
	defer release()
	g := borrow[T](len(dh))
	defer giveBack(g)
	switch wrt {
	case 0:
		kernels.FusedAdapterHiddenBackward(d, dIn, nil, g, dh, nil, nil, drop, a, k.scale)
	case 1:
		kernels.FusedAdapterHiddenBackward(d, nil, dIn, g, dh, xd, x, nil, nil, k.scale)
		for _, r := range k.frozen {
			clear(dIn[r*k.in : (r+1)*k.in])
		}
	default:
		panic(fmt.Sprintf("adapters: FusedKernel.Hidden().Backward: input %d is not differentiable", wrt))
	}
}

// fusedOutput is FusedKernel.Output.
type fusedOutput[T kernels.Float] struct{ k *FusedKernel[T] }

func (f fusedOutput[T]) Name() string { return f.k.Name() + ".output" }

func (f fusedOutput[T]) OutShape(in []tensor.Shape) (tensor.Shape, error) {
	k := f.k
	if len(in) != 2 {
		return nil, fmt.Errorf("fused adapter's output half takes h, B_cat; got %d inputs", len(in))
	}
	h, b := in[0], in[1]
	if h.Dims() < 1 || h[h.Dims()-1] != k.rank {
		return nil, fmt.Errorf("fused adapter: h has shape %v, want [..., %d]", h, k.rank)
	}
	if !b.Eq(tensor.Shape{k.out, k.rank}) {
		return nil, fmt.Errorf("fused adapter: B_cat has shape %v, want [%d %d]", b, k.out, k.rank)
	}
	out := h.Clone()
	out[len(out)-1] = k.out
	return out, nil
}

func (f fusedOutput[T]) Differentiable(i int) bool { return i == 0 || i == 1 }

// dims are the adapter dims for h of the given shape (rows, Rank).
func (f fusedOutput[T]) dims(h tensor.Shape) kernels.AdapterDims {
	return kernels.AdapterDims{N: h.TotalSize() / f.k.rank, In: f.k.in, Out: f.k.out, R: f.k.rank, Precision: f.k.precision}
}

func (f fusedOutput[T]) Forward(out []T, in []gop.Arg[T]) {
	kernels.FusedAdapterOutput(f.dims(in[0].Shape), out, in[0].Data, in[1].Data)
}

// BackwardReads implements gop.BackwardReader: dh reads B_cat only, dB h only.
func (f fusedOutput[T]) BackwardReads(wrt, i int) bool { return wrt != i }

func (f fusedOutput[T]) Backward(wrt int, dIn, dOut []T, in []gop.Arg[T]) {
	k := f.k
	d := f.dims(in[0].Shape)
	switch wrt {
	case 0:
		kernels.FusedAdapterOutputBackward(d, dIn, nil, dOut, nil, in[1].Data)
	case 1:
		kernels.FusedAdapterOutputBackward(d, nil, dIn, dOut, in[0].Data, nil)
		for o := 0; o < k.out; o++ {
			for _, r := range k.frozen {
				dIn[o*k.rank+r] = 0
			}
		}
	default:
		panic(fmt.Sprintf("adapters: FusedKernel.Output().Backward: input %d is not differentiable", wrt))
	}
}

// prepare returns the dims for input x and, when dropout is active, either
// the expanded dropout multiplier drop (wantDrop: for dx) or the dropped-out
// input xd = x ⊙ drop written straight from the mask bits (otherwise; drop is
// then nil, which the kernels read as "xd is ready"); release returns the
// scratch to the pool.
func (k *FusedKernel[T]) prepare(x []T, wantDrop bool) (d kernels.AdapterDims, drop, xd []T, release func()) {
	n := len(x) / k.in
	d = kernels.AdapterDims{N: n, In: k.in, Out: k.out, R: k.rank, Precision: k.precision}
	if !k.training || k.dropped == 0 {
		return d, nil, nil, func() {}
	}
	d.Dropped = k.dropped
	bits, scale := k.maskFor(n), T(1/k.keepProb)
	if wantDrop {
		drop = borrow[T](n * k.in)
		kernels.ExpandDropout(drop, bits, scale)
		return d, drop, nil, func() { giveBack(drop) }
	}
	xd = borrow[T](n * k.in)
	kernels.ApplyDropout(xd, x, bits, scale)
	return d, nil, xd, func() { giveBack(xd) }
}

// maskFor returns the kept-element bits of the current step for n rows,
// drawing them from PCG(seed, step) when not cached: element i is kept when
// its 32-bit uniform draw is below keepProb·2³².
func (k *FusedKernel[T]) maskFor(n int) []uint64 {
	k.maskMu.Lock()
	defer k.maskMu.Unlock()
	return k.drawMask(n)
}

// drawMask is maskFor with maskMu held.
func (k *FusedKernel[T]) drawMask(n int) []uint64 {
	if k.gather != nil {
		if len(k.gather) != n {
			panic(fmt.Sprintf("adapters: FusedKernel: %d gathered rows for an input of %d", len(k.gather), n))
		}
		// Draw (or reuse) the whole input's mask, keep the gathered rows in
		// a slice of their own.
		rows, of := k.gather, k.gatherOf
		k.gather = nil
		all := k.drawMask(of)
		k.gather = rows
		size := n * k.in
		bits := make([]uint64, (size+63)/64)
		for i, r := range rows {
			for c := range k.in {
				j, d := r*k.in+c, i*k.in+c
				bits[d/64] |= (all[j/64] >> (j % 64) & 1) << (d % 64)
			}
		}
		return bits
	}
	if k.maskValid && k.maskStep == k.step && k.maskRows == n && k.maskFirst == k.rowFirst && k.maskTotal == k.rowTotal {
		return k.maskBits
	}
	if k.rowTotal > 0 && (k.rowFirst != 0 || k.rowTotal != n) {
		// Draw the whole batch's mask, keep this input's rows.
		first, total := k.rowFirst, k.rowTotal
		k.rowFirst, k.rowTotal = 0, 0
		all := slices.Clone(k.drawMask(total))
		k.rowFirst, k.rowTotal = first, total
		size := n * k.in
		k.maskBits = slices.Grow(k.maskBits[:0], (size+63)/64)[:(size+63)/64]
		clear(k.maskBits)
		start := first * k.in
		for i := range size {
			j := start + i
			k.maskBits[i/64] |= (all[j/64] >> (j % 64) & 1) << (i % 64)
		}
		k.maskValid, k.maskStep, k.maskRows, k.maskFirst, k.maskTotal = true, k.step, n, first, total
		return k.maskBits
	}
	size := n * k.in
	k.maskBits = slices.Grow(k.maskBits[:0], (size+63)/64)[:(size+63)/64]
	threshold := uint64(math.Min(math.Round(k.keepProb*(1<<32)), 1<<32-1))
	rng := rand.NewPCG(k.seed, k.step)
	// Two 32-bit draws per Uint64, low half first; (draw - threshold) wraps
	// to a number with the top bit set exactly when draw < threshold.
	for w := range k.maskBits {
		count := min(64, size-w*64)
		var word uint64
		for j := 0; j < count; j += 2 {
			u := rng.Uint64()
			word |= ((u&0xffffffff - threshold) >> 63) << j
			if j+1 < count {
				word |= ((u>>32 - threshold) >> 63) << (j + 1)
			}
		}
		k.maskBits[w] = word
	}
	k.maskValid, k.maskStep, k.maskRows, k.maskFirst, k.maskTotal = true, k.step, n, k.rowFirst, k.rowTotal
	return k.maskBits
}

// Scratch buffers shared by all fused kernels (the N×In dropout buffers would
// otherwise cost memory per projection), pooled by power-of-two capacity so
// that small and large requests do not evict each other.
var scratchPools [2][64]sync.Pool // [float32, float64][log2 capacity]

func poolFor[T kernels.Float](n int) *sync.Pool {
	typ := 1
	var z T
	if _, ok := any(z).(float32); ok {
		typ = 0
	}
	return &scratchPools[typ][bits.Len(uint(max(n, 1)-1))]
}

// borrow returns a scratch slice of length n (contents undefined).
func borrow[T kernels.Float](n int) []T {
	if p, ok := poolFor[T](n).Get().(*[]T); ok {
		return (*p)[:n]
	}
	return make([]T, n, 1<<bits.Len(uint(max(n, 1)-1)))
}

// giveBack returns a slice from borrow to the pool.
func giveBack[T kernels.Float](s []T) { poolFor[T](cap(s)).Put(&s) }
