package model

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/kernels/gop"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TopKRouter is the routing of a mixture-of-experts layer as a graph kernel:
// input the router logits [N, E], output the dense routing weights [N, E]
// (RouteTopK's weights at each token's chosen experts, 0 elsewhere).
// Differentiable in the logits: the choice is piecewise constant, the
// weights are a softmax (over the chosen experts when Norm, else over all).
type TopKRouter[T kernels.Float] struct {
	ID   string // the router module, for the op's hash
	K    int
	Norm bool
}

// Name implements gop.Kernel.
func (k TopKRouter[T]) Name() string {
	return fmt.Sprintf("TopKRouter(%s,k=%d,norm=%v)", k.ID, k.K, k.Norm)
}

// OutShape implements gop.Kernel.
func (k TopKRouter[T]) OutShape(in []tensor.Shape) (tensor.Shape, error) {
	if len(in) != 1 || len(in[0]) != 2 || in[0][1] < k.K || k.K < 1 {
		return nil, fmt.Errorf("%s: want logits [N, experts >= k], got %v", k.Name(), in)
	}
	return in[0].Clone(), nil
}

// Forward implements gop.Kernel.
func (k TopKRouter[T]) Forward(out []T, in []gop.Arg[T]) {
	n, e := in[0].Shape[0], in[0].Shape[1]
	idx := make([]int, n*k.K)
	w := make([]T, n*k.K)
	RouteTopK(in[0].Data, n, e, k.K, k.Norm, idx, w)
	clear(out)
	for r := 0; r < n; r++ {
		for j := 0; j < k.K; j++ {
			out[r*e+idx[r*k.K+j]] = w[r*k.K+j]
		}
	}
}

// Differentiable implements gop.Kernel.
func (TopKRouter[T]) Differentiable(i int) bool { return i == 0 }

// Backward implements gop.Kernel: with q the softmax the weights are taken
// from (over the chosen experts when Norm, else over all) and g the output
// gradient at the chosen experts (0 elsewhere), dl_j = q_j (g_j − Σ_k w_k g_k).
func (k TopKRouter[T]) Backward(wrt int, dIn, dOut []T, in []gop.Arg[T]) {
	n, e := in[0].Shape[0], in[0].Shape[1]
	idx := make([]int, n*k.K)
	w := make([]T, n*k.K)
	RouteTopK(in[0].Data, n, e, k.K, k.Norm, idx, w)
	p := make([]float64, e)
	for r := 0; r < n; r++ {
		var dot float64
		for j := 0; j < k.K; j++ {
			dot += float64(w[r*k.K+j]) * float64(dOut[r*e+idx[r*k.K+j]])
		}
		d := dIn[r*e : (r+1)*e]
		clear(d)
		if k.Norm {
			for j := 0; j < k.K; j++ {
				c := idx[r*k.K+j]
				d[c] = T(float64(w[r*k.K+j]) * (float64(dOut[r*e+c]) - dot))
			}
			continue
		}
		softmax64(p, in[0].Data[r*e:(r+1)*e])
		chosen := idx[r*k.K : (r+1)*k.K]
		for c := range d {
			var g float64
			for _, x := range chosen {
				if x == c {
					g = float64(dOut[r*e+c])
				}
			}
			d[c] = T(p[c] * (g - dot))
		}
	}
}

// SigmoidGate scales rows by a gate: inputs s [N, C] and g [N, 1], output
// s ⊙ sigmoid(g) (Qwen2-MoE's shared expert). Differentiable in both.
type SigmoidGate[T kernels.Float] struct{}

// Name implements gop.Kernel.
func (SigmoidGate[T]) Name() string { return "SigmoidGate" }

// OutShape implements gop.Kernel.
func (k SigmoidGate[T]) OutShape(in []tensor.Shape) (tensor.Shape, error) {
	if len(in) != 2 || len(in[0]) != 2 || len(in[1]) != 2 || in[1][0] != in[0][0] || in[1][1] != 1 {
		return nil, fmt.Errorf("SigmoidGate: want [N, C] and [N, 1], got %v", in)
	}
	return in[0].Clone(), nil
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// Forward implements gop.Kernel.
func (SigmoidGate[T]) Forward(out []T, in []gop.Arg[T]) {
	n, c := in[0].Shape[0], in[0].Shape[1]
	for r := 0; r < n; r++ {
		g := T(sigmoid(float64(in[1].Data[r])))
		for j := 0; j < c; j++ {
			out[r*c+j] = in[0].Data[r*c+j] * g
		}
	}
}

// Differentiable implements gop.Kernel.
func (SigmoidGate[T]) Differentiable(i int) bool { return i < 2 }

// Backward implements gop.Kernel.
func (SigmoidGate[T]) Backward(wrt int, dIn, dOut []T, in []gop.Arg[T]) {
	n, c := in[0].Shape[0], in[0].Shape[1]
	for r := 0; r < n; r++ {
		g := sigmoid(float64(in[1].Data[r]))
		if wrt == 0 {
			for j := 0; j < c; j++ {
				dIn[r*c+j] = dOut[r*c+j] * T(g)
			}
			continue
		}
		var s float64
		for j := 0; j < c; j++ {
			s += float64(dOut[r*c+j]) * float64(in[0].Data[r*c+j])
		}
		dIn[r] = T(s * g * (1 - g))
	}
}

// ExpertProj is one projection of an expert in a MoEExperts kernel: its
// frozen base and, optionally, an adapter kernel of inputs (x, A, B) whose
// output is added to the base's (e.g. adapters.FusedKernel), with A and B
// the kernel inputs AIndex and AIndex+1.
type ExpertProj[T kernels.Float] struct {
	Base    kernels.Matrix[T]
	Adapter gop.Kernel[T] // nil: base only
	AIndex  int
}

// MoEExperts is the routed experts of a mixture-of-experts layer as one
// graph kernel: inputs h [N, C], the routing weights w [N, E] (TopKRouter)
// and the adapters' A and B; output Σ_e w[:, e] ⊙ down_e(silu(gate_e h) ⊙
// up_e h). Each expert runs one GEMM per projection over the rows routed to
// it (gathered), never over the others. Differentiable in h, w and every
// adapter input.
//
// Backward computes all the gradients at once, on its first call after a
// Forward, from a recomputation of the experts' forward (nothing but the
// gradients is kept between passes), and hands each out on its own call.
type MoEExperts[T kernels.Float] struct {
	ID      string
	Experts [][3]ExpertProj[T] // gate, up, down per expert
	state   *moeGradState[T]
}

type moeGradState[T kernels.Float] struct {
	gen, done uint64
	grads     [][]T          // per input
	buf       *moeBuffers[T] // scratch, shared by the MoE kernels of a graph (they never run at once)
}

type moeBuffers[T kernels.Float] struct {
	xe, g, u, act, ye, tmp, dye, dact, dg, du, dxe []T
}

// NewMoEExperts returns the kernel of experts (see MoEExperts).
func NewMoEExperts[T kernels.Float](id string, experts [][3]ExpertProj[T]) *MoEExperts[T] {
	return &MoEExperts[T]{ID: id, Experts: experts, state: &moeGradState[T]{buf: new(moeBuffers[T])}}
}

// bytes is an upper bound of the memory the kernel holds for a graph of n
// rows and the given input sizes: its gradients, and, when withScratch, the
// scratch buffers (shared between the kernels of a graph).
func (k *MoEExperts[T]) bytes(n int, inputSizes []int, withScratch bool) int64 {
	var elems int64
	for _, s := range inputSizes {
		elems += int64(s)
	}
	if withScratch && len(k.Experts) > 0 {
		c, ff := int64(k.Experts[0][2].Base.Rows()), int64(k.Experts[0][0].Base.Rows())
		elems += int64(n) * (4*c + 6*ff + max(c, ff))
	}
	var zero T
	return elems * int64(unsafe.Sizeof(zero))
}

// Name implements gop.Kernel.
func (k *MoEExperts[T]) Name() string { return fmt.Sprintf("MoEExperts(%s,%d)", k.ID, len(k.Experts)) }

// OutShape implements gop.Kernel.
func (k *MoEExperts[T]) OutShape(in []tensor.Shape) (tensor.Shape, error) {
	if len(in) < 2 || len(in[0]) != 2 || len(in[1]) != 2 || in[1][0] != in[0][0] || in[1][1] != len(k.Experts) {
		return nil, fmt.Errorf("%s: want h [N, C] and w [N, %d], got %v", k.Name(), len(k.Experts), in)
	}
	for _, ex := range k.Experts {
		if ex[0].Base.Cols() != in[0][1] || ex[2].Base.Rows() != in[0][1] {
			return nil, fmt.Errorf("%s: an expert does not map %d features to %d", k.Name(), in[0][1], in[0][1])
		}
		for _, p := range ex {
			if p.Adapter != nil && (p.AIndex < 2 || p.AIndex+1 >= len(in)) {
				return nil, fmt.Errorf("%s: adapter inputs %d, %d out of range", k.Name(), p.AIndex, p.AIndex+1)
			}
		}
	}
	return in[0].Clone(), nil
}

// Differentiable implements gop.Kernel.
func (k *MoEExperts[T]) Differentiable(int) bool { return true }

func growT[T kernels.Float](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, n)
	}
	return b[:n]
}

// routed returns the rows of expert e (those with a nonzero weight) and
// their weights.
func routed[T kernels.Float](w []T, n, experts, e int) ([]int, []T) {
	var rows []int
	var wts []T
	for r := 0; r < n; r++ {
		if v := w[r*experts+e]; v != 0 {
			rows = append(rows, r)
			wts = append(wts, v)
		}
	}
	return rows, wts
}

// project computes y = x Wᵀ (+ the adapter) for n rows.
func (k *MoEExperts[T]) project(p ExpertProj[T], y, x []T, n int, in []gop.Arg[T]) {
	p.Base.MulT(y, x, n)
	if p.Adapter == nil {
		return
	}
	b := k.state.buf
	b.tmp = growT(b.tmp, len(y))
	p.Adapter.Forward(b.tmp, k.adapterArgs(p, x, n, in))
	kernels.AddElems(y, y, b.tmp)
}

func (k *MoEExperts[T]) adapterArgs(p ExpertProj[T], x []T, n int, in []gop.Arg[T]) []gop.Arg[T] {
	return []gop.Arg[T]{{Shape: tensor.Shape{n, p.Base.Cols()}, Data: x}, in[p.AIndex], in[p.AIndex+1]}
}

// expertForward runs expert e on the ne gathered rows in buf.xe, leaving
// gate, up, their SwiGLU and the output in buf.
func (k *MoEExperts[T]) expertForward(e, ne int, in []gop.Arg[T]) {
	b := k.state.buf
	ex := k.Experts[e]
	ff, c := ex[0].Base.Rows(), ex[2].Base.Rows()
	b.g, b.u, b.act = growT(b.g, ne*ff), growT(b.u, ne*ff), growT(b.act, ne*ff)
	b.ye = growT(b.ye, ne*c)
	k.project(ex[0], b.g, b.xe, ne, in)
	k.project(ex[1], b.u, b.xe, ne, in)
	kernels.SwiGLUForward(b.act, b.g, b.u)
	k.project(ex[2], b.ye, b.act, ne, in)
}

// rowGatherer is an adapter kernel that can be told which rows of the whole
// input its gathered input holds (adapters.FusedKernel.SetGatheredRows), so
// that its dropout masks follow the tokens, not their place in an expert's
// group.
type rowGatherer interface{ SetGatheredRows(rows []int, n int) }

// gathered tells expert e's adapters which of the n rows they see (nil
// rows: none, back to plain inputs).
func (k *MoEExperts[T]) gathered(e int, rows []int, n int) {
	for _, p := range k.Experts[e] {
		if g, ok := p.Adapter.(rowGatherer); ok {
			g.SetGatheredRows(rows, n)
		}
	}
}

// Forward implements gop.Kernel.
func (k *MoEExperts[T]) Forward(out []T, in []gop.Arg[T]) {
	n, c := in[0].Shape[0], in[0].Shape[1]
	experts := len(k.Experts)
	b := k.state.buf
	clear(out)
	for e := range k.Experts {
		rows, wts := routed(in[1].Data, n, experts, e)
		if len(rows) == 0 {
			continue
		}
		b.xe = growT(b.xe, len(rows)*c)
		gatherRows(b.xe, in[0].Data, rows, c)
		k.gathered(e, rows, n)
		k.expertForward(e, len(rows), in)
		k.gathered(e, nil, 0)
		for i, r := range rows {
			axpy(wts[i], b.ye[i*c:(i+1)*c], out[r*c:(r+1)*c])
		}
	}
	k.state.gen++
}

// Backward implements gop.Kernel.
func (k *MoEExperts[T]) Backward(wrt int, dIn, dOut []T, in []gop.Arg[T]) {
	s := k.state
	if s.done != s.gen || s.grads == nil {
		k.backwardAll(dOut, in)
		s.done = s.gen
	}
	copy(dIn, s.grads[wrt])
}

// backwardAll computes the gradients of every input into state.grads.
func (k *MoEExperts[T]) backwardAll(dOut []T, in []gop.Arg[T]) {
	s := k.state
	n, c := in[0].Shape[0], in[0].Shape[1]
	experts := len(k.Experts)
	if len(s.grads) != len(in) {
		s.grads = make([][]T, len(in))
	}
	for i := range in {
		s.grads[i] = growT(s.grads[i], in[i].Shape.TotalSize())
		clear(s.grads[i])
	}
	dh, dw := s.grads[0], s.grads[1]
	b := s.buf
	// backProject adds the input gradient of projection p (dy over ne rows
	// of x) into dx and writes its adapter's gradients.
	backProject := func(p ExpertProj[T], dx, dy, x []T, ne int) {
		b.tmp = growT(b.tmp, len(dx))
		p.Base.Mul(b.tmp, dy, ne)
		kernels.AddElems(dx, dx, b.tmp)
		if p.Adapter == nil {
			return
		}
		args := k.adapterArgs(p, x, ne, in)
		p.Adapter.Backward(0, b.tmp, dy, args)
		kernels.AddElems(dx, dx, b.tmp)
		p.Adapter.Backward(1, s.grads[p.AIndex], dy, args)
		p.Adapter.Backward(2, s.grads[p.AIndex+1], dy, args)
	}
	for e, ex := range k.Experts {
		rows, wts := routed(in[1].Data, n, experts, e)
		ne := len(rows)
		if ne == 0 {
			continue
		}
		ff := ex[0].Base.Rows()
		b.xe = growT(b.xe, ne*c)
		gatherRows(b.xe, in[0].Data, rows, c)
		k.gathered(e, rows, n)
		k.expertForward(e, ne, in)
		b.dye = growT(b.dye, ne*c)
		for i, r := range rows {
			d := dOut[r*c : (r+1)*c]
			var dot T
			for j, v := range b.ye[i*c : (i+1)*c] {
				dot += v * d[j]
			}
			dw[r*experts+e] = dot
			for j, v := range d {
				b.dye[i*c+j] = wts[i] * v
			}
		}
		b.dact = growT(b.dact, ne*ff)
		clear(b.dact)
		backProject(ex[2], b.dact, b.dye, b.act, ne)
		b.dg, b.du = growT(b.dg, ne*ff), growT(b.du, ne*ff)
		kernels.SwiGLUBackward(b.dg, b.du, b.dact, b.g, b.u)
		b.dxe = growT(b.dxe, ne*c)
		clear(b.dxe)
		backProject(ex[0], b.dxe, b.dg, b.xe, ne)
		backProject(ex[1], b.dxe, b.du, b.xe, ne)
		k.gathered(e, nil, 0)
		for i, r := range rows {
			kernels.AddElems(dh[r*c:(r+1)*c], dh[r*c:(r+1)*c], b.dxe[i*c:(i+1)*c])
		}
	}
}

// moeBlock adds the sparse MLP block m on h to the graph: the router (frozen
// unless opt.Trainable names its weight; its logits are kept for the
// load-balancing loss),
// TopKRouter, the routed experts as one MoEExperts kernel (adapters from
// opt.ExpertAdapter) and, for Qwen2-MoE, the shared expert (projections by
// proj, adapters from opt.Adapter) gated by sigmoid(SharedGate h).
func moeBlock[T kernels.Float](b *Builder[T], m *MoE[T], h *G.Node, proj func(*Linear[T], *G.Node) *G.Node, opt GraphOptions[T], castBytes, moeBytes *int64) (*G.Node, error) {
	trainable := func(lin *Linear[T]) bool { return opt.Trainable != nil && opt.Trainable(lin.Module+".weight") }
	for _, lin := range expertLinears(m) {
		if trainable(lin) {
			return nil, fmt.Errorf("model: %s: training the weights of an expert is not supported (adapters train experts)", lin.Module)
		}
	}
	// gate is a router or the shared expert gate: trained in full (a
	// learnable dense weight, fp32 graphs only) when Trainable says so, else
	// frozen and run in full precision whatever the graph's, so that its
	// choices do not depend on rounding.
	gate := func(lin *Linear[T]) (*G.Node, error) {
		if trainable(lin) {
			return proj(lin, h), nil
		}
		return b.Apply(gop.FrozenLinear[T]{ID: lin.Module, W: lin.Base, Bias: lin.Bias}, h)
	}
	logits, err := gate(m.Router)
	if err != nil {
		return nil, err
	}
	b.routerLogits = append(b.routerLogits, logits)
	w, err := b.Apply(TopKRouter[T]{ID: m.Router.Module, K: m.TopK, Norm: m.NormTopK}, logits)
	if err != nil {
		return nil, err
	}
	inputs := []*G.Node{h, w}
	experts := make([][3]ExpertProj[T], len(m.Experts))
	for e, ex := range m.Experts {
		for i, lin := range ex {
			p := ExpertProj[T]{Base: autocast(opt.Precision, lin.Base, castBytes)}
			if opt.ExpertAdapter != nil {
				k, a, bn, err := opt.ExpertAdapter(b, lin)
				if err != nil {
					return nil, err
				}
				if k != nil {
					p.Adapter, p.AIndex = k, len(inputs)
					inputs = append(inputs, a, bn)
				}
			}
			experts[e][i] = p
		}
	}
	k := NewMoEExperts(m.Router.Module, experts)
	sizes := make([]int, len(inputs))
	for i, in := range inputs {
		sizes[i] = in.Shape().TotalSize()
	}
	if b.moeScratch == nil {
		b.moeScratch = k.state.buf
		*moeBytes += k.bytes(h.Shape()[0], sizes, true)
	} else {
		k.state.buf = b.moeScratch.(*moeBuffers[T])
		*moeBytes += k.bytes(h.Shape()[0], sizes, false)
	}
	y, err := b.Apply(k, inputs...)
	if err != nil || m.Shared == nil {
		return y, err
	}
	sgate := proj(m.Shared[0], h)
	up := proj(m.Shared[1], h)
	act, err := b.Apply(gop.SwiGLU[T]{}, sgate, up)
	if err != nil {
		return nil, err
	}
	s := proj(m.Shared[2], act)
	sg, err := gate(m.SharedGate)
	if err != nil {
		return nil, err
	}
	gated, err := b.Apply(SigmoidGate[T]{}, s, sg)
	if err != nil {
		return nil, err
	}
	return b.Apply(gop.Add[T]{}, y, gated)
}

// expertLinears lists m's routed experts' projections.
func expertLinears[T kernels.Float](m *MoE[T]) []*Linear[T] {
	var out []*Linear[T]
	for _, ex := range m.Experts {
		out = append(out, ex[:]...)
	}
	return out
}

// RouterAuxLoss is the load-balancing loss of a mixture-of-experts model as
// a graph kernel (transformers' load_balancing_loss_func, Mixtral's and
// Qwen2-MoE's router auxiliary loss): inputs the router logits [N_l, E] of
// every MoE layer, output the scalar E · Σ_e f_e · P_e over the T = Σ N_l
// rows of all layers together, with f_e = (rows that have e among their top
// K) / T and P_e the mean over the rows of softmax(logits)_e. Every row
// counts (no attention mask). The selections are constants for the gradient; it flows
// through P: d/dl_{t,j} = (E/T) p_{t,j} (f_j − Σ_e f_e p_{t,e}).
type RouterAuxLoss[T kernels.Float] struct {
	K int
}

// Name implements gop.Kernel.
func (k RouterAuxLoss[T]) Name() string { return fmt.Sprintf("RouterAuxLoss(k=%d)", k.K) }

// OutShape implements gop.Kernel.
func (k RouterAuxLoss[T]) OutShape(in []tensor.Shape) (tensor.Shape, error) {
	if len(in) == 0 || k.K < 1 {
		return nil, fmt.Errorf("%s: want the router logits of at least one layer", k.Name())
	}
	for _, s := range in {
		if len(s) != 2 || s[1] != in[0][1] || s[1] < k.K {
			return nil, fmt.Errorf("%s: want logits [N, experts >= k] of equal experts, got %v", k.Name(), in)
		}
	}
	return tensor.ScalarShape(), nil
}

// routerAuxStats returns f (selections per expert / rows) and P (mean
// routing probability per expert) over every row of in, and the row count.
func routerAuxStats[T kernels.Float](k int, in []gop.Arg[T]) (f, P []float64, rows int) {
	e := in[0].Shape[1]
	f, P = make([]float64, e), make([]float64, e)
	p := make([]float64, e)
	for _, a := range in {
		n := a.Shape[0]
		idx := make([]int, n*k)
		RouteTopK(a.Data, n, e, k, false, idx, make([]T, n*k))
		for _, c := range idx {
			f[c]++
		}
		for r := 0; r < n; r++ {
			softmax64(p, a.Data[r*e:(r+1)*e])
			for c, v := range p {
				P[c] += v
			}
		}
		rows += n
	}
	for c := range f {
		f[c] /= float64(rows)
		P[c] /= float64(rows)
	}
	return f, P, rows
}

// Forward implements gop.Kernel.
func (k RouterAuxLoss[T]) Forward(out []T, in []gop.Arg[T]) {
	f, P, _ := routerAuxStats(k.K, in)
	var s float64
	for c := range f {
		s += f[c] * P[c]
	}
	out[0] = T(float64(len(f)) * s)
}

// Differentiable implements gop.Kernel.
func (RouterAuxLoss[T]) Differentiable(int) bool { return true }

// Backward implements gop.Kernel.
func (k RouterAuxLoss[T]) Backward(wrt int, dIn, dOut []T, in []gop.Arg[T]) {
	f, _, rows := routerAuxStats(k.K, in)
	e := len(f)
	scale := float64(dOut[0]) * float64(e) / float64(rows)
	p := make([]float64, e)
	a := in[wrt]
	for r := 0; r < a.Shape[0]; r++ {
		softmax64(p, a.Data[r*e:(r+1)*e])
		var dot float64
		for c, v := range p {
			dot += f[c] * v
		}
		for c, v := range p {
			dIn[r*e+c] = T(scale * v * (f[c] - dot))
		}
	}
}
