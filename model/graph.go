package model

import (
	"errors"
	"fmt"
	"slices"

	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/kernels/bitmap"
	"github.com/salr-go/salr/kernels/gop"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// GraphOptions configures BuildGraph.
type GraphOptions[T kernels.Float] struct {
	// Batch and Seq fix the graph's shape: Batch sequences of Seq tokens.
	Batch, Seq int
	// Trainable reports whether an HF tensor (by name, e.g.
	// "model.layers.0.input_layernorm.weight") is learned. Nil: nothing of
	// the base model is. A trainable projection weight needs a dense base.
	Trainable func(name string) bool
	// Adapter, when set, is called once per projection with the projection's
	// input; a non-nil node it returns is added to the projection's output.
	// Adapter parameters are created with Builder.Learnable.
	Adapter func(b *Builder[T], lin *Linear[T], x *G.Node) (*G.Node, error)
	// ExpertAdapter, when set, is called once per projection of a routed
	// expert (which runs inside a MoEExperts kernel on the rows routed to
	// it, not as a node of its own): a non-nil kernel it returns, of inputs
	// (x, A, B), adds its output to the projection's, with A and B the
	// nodes it returns (made with Builder.Learnable or Builder.Input).
	ExpertAdapter func(b *Builder[T], lin *Linear[T]) (k gop.Kernel[T], a, bn *G.Node, err error)
	// Packed lets each sequence hold several examples, separated by the
	// positions given to StepPositions (see kernels.SelfAttention.Positions).
	Packed bool
	// KeepLogits makes the graph hold the full [Batch·Seq, Vocab] logits
	// (see Logits). By default a frozen head is fused with the loss and the
	// logits are never materialised at once, which saves two N×V buffers.
	KeepLogits bool
	// GradientCheckpointing keeps only each decoder layer's input through
	// the forward pass and recomputes the layer's other activations when
	// the backward pass reaches it (see gop.NewPlan): one extra forward pass
	// of every layer buys the memory of all layers' activations but one.
	// Results are bitwise the same.
	GradientCheckpointing bool
	// Precision is the arithmetic of the graph's matrix products (see
	// kernels.Precision): the frozen projections, the head, attention and
	// the adapters the Adapter hook adds (Builder.Precision). With BF16 a
	// frozen float32 dense weight (a dense-fp32 base, the head) is
	// multiplied as a bf16 copy made here (CastBytes), bf16 bases as they
	// are, and bitmap-fp16/bitmap-fp32 bases at their storage precision
	// (only the activation operand rounds). Trainable base weights need
	// FP32.
	Precision kernels.Precision
	// LossWeight multiplies the loss by a weight set before each Step
	// (SetLossWeight; 1 until then), and so every gradient: a data-parallel
	// rank weighs its share of a batch with it.
	LossWeight bool
	// RouterAuxLossCoef, when > 0, adds coef · the load-balancing loss of
	// the MoE layers' routers (RouterAuxLoss over the router logits of all
	// layers) to the loss; RouterAuxLoss reads its value after a Step.
	// Ignored by a model without MoE layers. Under GradientCheckpointing the
	// router logits are kept rather than recomputed.
	RouterAuxLossCoef float64
}

// Builder is the graph under construction, handed to the Adapter hook.
type Builder[T kernels.Float] struct {
	g          *G.ExprGraph
	inputs     G.Nodes
	learnables G.Nodes
	precision  kernels.Precision
	moeScratch any // the *moeBuffers[T] the graph's MoEExperts kernels share
	// routerLogits are the MoE layers' router logits, in layer order.
	routerLogits G.Nodes
}

// Precision is the arithmetic of the graph's products (GraphOptions.Precision).
func (b *Builder[T]) Precision() kernels.Precision { return b.precision }

// Graph returns the expression graph.
func (b *Builder[T]) Graph() *G.ExprGraph { return b.g }

// Input adds a named input node holding data (not copied) with the given
// shape; it receives no gradient.
func (b *Builder[T]) Input(name string, data []T, shape ...int) *G.Node {
	n := G.NewTensor(b.g, gop.Dtype[T](), len(shape), G.WithShape(shape...), G.WithName(name),
		G.WithValue(tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))))
	b.inputs = append(b.inputs, n)
	return n
}

// Learnable adds a named trainable parameter backed by data (not copied: an
// optimizer updates data in place) and returns its node.
func (b *Builder[T]) Learnable(name string, data []T, shape ...int) *G.Node {
	n := b.Input(name, data, shape...)
	b.learnables = append(b.learnables, n)
	return n
}

// Apply adds a kernel node.
func (b *Builder[T]) Apply(k gop.Kernel[T], inputs ...*G.Node) (*G.Node, error) {
	return gop.Apply(k, inputs...)
}

// Graph is a compiled training graph of a decoder for one (batch, sequence)
// shape: token embedding, per layer RMSNorm → q/k/v projections → RoPE +
// causal GQA attention → o projection → residual, RMSNorm → gate/up
// projections → SwiGLU → down projection → residual; final RMSNorm, head,
// masked cross-entropy.
type Graph[T kernels.Float] struct {
	Params     *Params[T]
	Batch, Seq int
	Learnables G.Nodes // trainable parameters, named after their tensors

	g                  *G.ExprGraph
	ids, targets, mask *G.Node
	idsT, targetsT     []int
	posT               []int // RoPE positions of a packed graph, else nil
	maskT              []T
	lossWeightT        []T // nil without GraphOptions.LossWeight
	logits, loss       *G.Node
	aux                *G.Node // the routers' load-balancing loss, or nil
	plan               *gop.Plan
	vm                 G.VM
	castBytes          int64
	moeBytes           int64
	precision          kernels.Precision
}

// Precision is the arithmetic of the graph's products.
func (gr *Graph[T]) Precision() kernels.Precision { return gr.precision }

// CastBytes is the size of the bf16 copies of float32 weights the graph
// multiplies with (GraphOptions.Precision BF16), 0 otherwise.
func (gr *Graph[T]) CastBytes() int64 { return gr.castBytes }

// MoEBytes bounds the memory the graph's mixture-of-experts kernels hold
// outside the activation buffers (see Buffers): each one's gradients of its
// inputs and one set of shared scratch buffers; 0 for a dense model.
func (gr *Graph[T]) MoEBytes() int64 { return gr.moeBytes }

// autocast returns the matrix a graph of precision p multiplies by in place
// of m, adding the size of any copy it makes to *bytes: m itself with FP32;
// with BF16 a dense float32 m first rounded to a bitmap.DenseBF16 (a float64
// one to a rounded dense copy), then m's own bf16-activation kernels where
// the CPU has them (bitmap's BF16Activations), else m behind
// kernels.AutocastBF16.
func autocast[T kernels.Float](p kernels.Precision, m kernels.Matrix[T], bytes *int64) kernels.Matrix[T] {
	if p != kernels.BF16 {
		return m
	}
	if d, ok := m.(*kernels.Dense[T]); ok {
		if w, ok := any(d.W).([]float32); ok {
			c := bitmap.NewDenseBF16(w, d.R, d.C)
			*bytes += c.Bytes()
			m = any(c).(kernels.Matrix[T])
		} else {
			w := make([]T, len(d.W))
			kernels.RoundBF16(w, d.W)
			*bytes += int64(len(w)) * 8
			m = kernels.NewDense(w, d.R, d.C)
		}
	}
	if v, ok := nativeBF16(m); ok {
		return v
	}
	return kernels.AutocastBF16(m)
}

// nativeBF16 is the view of a bf16 bitmap or dense matrix whose kernels
// round the activation operand themselves (VDPBF16PS), when this CPU has
// them.
func nativeBF16[T kernels.Float](m kernels.Matrix[T]) (kernels.Matrix[T], bool) {
	var v any
	switch b := any(m).(type) {
	case *bitmap.Matrix:
		if c, ok := b.BF16Activations(); ok {
			v = c
		}
	case *bitmap.DenseBF16:
		if c, ok := b.BF16Activations(); ok {
			v = c
		}
	}
	if v == nil {
		return nil, false
	}
	return v.(kernels.Matrix[T]), true
}

// BuildGraph builds and compiles the training graph of p.
func BuildGraph[T kernels.Float](p *Params[T], opt GraphOptions[T]) (*Graph[T], error) {
	cfg := p.Config
	if opt.Batch < 1 || opt.Seq < 1 {
		return nil, fmt.Errorf("model: BuildGraph: batch %d and sequence %d must be positive", opt.Batch, opt.Seq)
	}
	if opt.Seq > cfg.MaxPositions && cfg.MaxPositions > 0 {
		return nil, fmt.Errorf("model: BuildGraph: sequence %d exceeds max_position_embeddings %d", opt.Seq, cfg.MaxPositions)
	}
	trainable := opt.Trainable
	if trainable == nil {
		trainable = func(string) bool { return false }
	}
	n := opt.Batch * opt.Seq
	b := &Builder[T]{g: G.NewGraph(), precision: opt.Precision}
	gr := &Graph[T]{Params: p, Batch: opt.Batch, Seq: opt.Seq, g: b.g, precision: opt.Precision,
		idsT: make([]int, n), targetsT: make([]int, n), maskT: make([]T, n)}
	if opt.Packed {
		gr.posT = make([]int, n)
	}

	intInput := func(name string, data []int) *G.Node {
		node := G.NewTensor(b.g, tensor.Int, 1, G.WithShape(n), G.WithName(name),
			G.WithValue(tensor.New(tensor.WithShape(n), tensor.WithBacking(data))))
		b.inputs = append(b.inputs, node)
		return node
	}
	param := func(name string, data []T, shape ...int) *G.Node {
		if trainable(name) {
			return b.Learnable(name, data, shape...)
		}
		return b.Input(name, data, shape...)
	}
	gr.ids = intInput("input_ids", gr.idsT)
	gr.targets = intInput("targets", gr.targetsT)
	gr.mask = b.Input("loss_mask", gr.maskT, n)

	must := func(node *G.Node, err error) *G.Node {
		if err != nil {
			panic(err) // recovered below: graph construction errors are returned
		}
		return node
	}
	proj := func(lin *Linear[T], x *G.Node) (y *G.Node) {
		wname, bname := lin.Module+".weight", lin.Module+".bias"
		if trainable(wname) || (lin.Bias != nil && trainable(bname)) {
			// A trained weight or bias lives in the graph; gradients nobody
			// asked for are pruned at compile time.
			d, ok := lin.Base.(*kernels.Dense[T])
			if !ok {
				panic(fmt.Errorf("model: %s is trainable but its base is not dense", wname))
			}
			if opt.Precision != kernels.FP32 {
				panic(fmt.Errorf("model: %s is trainable, which needs precision fp32, not %s", wname, opt.Precision))
			}
			ins := []*G.Node{x, param(wname, d.W, d.R, d.C)}
			if lin.Bias != nil {
				ins = append(ins, param(bname, lin.Bias, len(lin.Bias)))
			}
			y = must(b.Apply(gop.Linear[T]{}, ins...))
		} else {
			y = must(b.Apply(gop.FrozenLinear[T]{ID: lin.Module, W: autocast(opt.Precision, lin.Base, &gr.castBytes), Bias: lin.Bias}, x))
		}
		if opt.Adapter != nil {
			delta := must(opt.Adapter(b, lin, x))
			if delta != nil {
				y = must(b.Apply(gop.Add[T]{}, y, delta))
			}
		}
		return y
	}

	var buildErr error
	var segments []G.Nodes // per decoder layer, when checkpointing
	func() {
		defer func() {
			if r := recover(); r != nil {
				if e, ok := r.(error); ok {
					buildErr = e
					return
				}
				panic(r)
			}
		}()
		c := cfg.Hidden
		embedName := EmbedTokensName
		var embed, x *G.Node
		if trainable(embedName) {
			// A trained embedding lives in the graph, as a trained weight does.
			d, ok := p.Embed.(*kernels.Dense[T])
			if !ok {
				panic(fmt.Errorf("model: %s is trainable but is not stored densely", embedName))
			}
			embed = param(embedName, d.W, cfg.Vocab, c)
			x = must(b.Apply(gop.Embedding[T]{}, gr.ids, embed))
		} else {
			x = must(b.Apply(gop.FrozenEmbedding[T]{ID: embedName, Table: p.Embed}, gr.ids))
		}
		attn := gop.SelfAttention[T]{SelfAttention: kernels.SelfAttention{
			Batch: opt.Batch, Seq: opt.Seq, Heads: cfg.Heads, KVHeads: cfg.KVHeads,
			HeadDim: cfg.HeadDim, InvFreq: cfg.InvFreq(), Positions: gr.posT, Precision: opt.Precision}}
		norm := gop.RMSNorm[T]{Eps: cfg.RMSNormEps}
		for l := range p.Layers {
			first := len(b.g.AllNodes())
			L := &p.Layers[l]
			prefix := fmt.Sprintf("model.layers.%d.", l)
			h := must(b.Apply(norm, x, param(prefix+"input_layernorm.weight", L.AttnNorm, c)))
			q := proj(L.Proj[QProj], h)
			k := proj(L.Proj[KProj], h)
			v := proj(L.Proj[VProj], h)
			qkv := must(b.Apply(gop.ConcatColumns[T]{}, q, k, v))
			a := must(b.Apply(attn, qkv))
			x = must(b.Apply(gop.Add[T]{}, x, proj(L.Proj[OProj], a)))
			h = must(b.Apply(norm, x, param(prefix+"post_attention_layernorm.weight", L.MLPNorm, c)))
			if L.MoE != nil {
				x = must(b.Apply(gop.Add[T]{}, x, must(moeBlock(b, L.MoE, h, proj, opt, &gr.castBytes, &gr.moeBytes))))
			} else {
				gate := proj(L.Proj[GateProj], h)
				up := proj(L.Proj[UpProj], h)
				m := must(b.Apply(gop.SwiGLU[T]{}, gate, up))
				x = must(b.Apply(gop.Add[T]{}, x, proj(L.Proj[DownProj], m)))
			}
			if opt.GradientCheckpointing {
				// The router logits ([N, experts], small) stay out of the
				// segment: the load-balancing loss reads every layer's at the
				// end of the forward pass and first in the backward pass,
				// which would otherwise recompute every layer at once.
				segments = append(segments, layerNodes(b.g.AllNodes()[first:], append(G.Nodes{x}, b.routerLogits...)))
			}
		}
		x = must(b.Apply(norm, x, param("model.norm.weight", p.Norm, c)))
		headTrains := (cfg.TieEmbeddings && trainable(embedName)) || (!cfg.TieEmbeddings && trainable("lm_head.weight"))
		switch {
		case !headTrains && !opt.KeepLogits:
			head := gop.HeadCrossEntropy[T]{ID: "lm_head", W: autocast(opt.Precision, p.Head, &gr.castBytes)}
			if len(b.learnables) > 0 {
				// Something trains: the forward pass also computes the input
				// gradient (one pass over the head's logits instead of two).
				head.Grad = new(gop.HeadGrad[T])
			}
			gr.loss = must(b.Apply(head, x, gr.targets, gr.mask))
			return
		case cfg.TieEmbeddings && trainable(embedName):
			if opt.Precision != kernels.FP32 {
				panic(fmt.Errorf("model: %s is trainable, which needs precision fp32, not %s", embedName, opt.Precision))
			}
			gr.logits = must(b.Apply(gop.Linear[T]{}, x, embed))
		default:
			gr.logits = proj(&Linear[T]{Module: "lm_head", Base: p.Head}, x)
		}
		gr.loss = must(b.Apply(gop.CrossEntropy[T]{}, gr.logits, gr.targets, gr.mask))
	}()
	if buildErr != nil {
		return nil, fmt.Errorf("model: BuildGraph: %w", buildErr)
	}
	if opt.RouterAuxLossCoef > 0 && len(b.routerLogits) > 0 {
		if err := addRouterAuxLoss(b, gr, opt.RouterAuxLossCoef); err != nil {
			return nil, fmt.Errorf("model: BuildGraph: %w", err)
		}
	}
	if opt.LossWeight {
		gr.lossWeightT = []T{1}
		weighted, err := b.Apply(gop.Weighted[T]{}, gr.loss, b.Input("loss_weight", gr.lossWeightT, 1))
		if err != nil {
			return nil, fmt.Errorf("model: BuildGraph: %w", err)
		}
		gr.loss = weighted
	}

	gr.Learnables = b.learnables
	outputs := G.Nodes{gr.loss}
	if gr.aux != nil {
		outputs = append(outputs, gr.aux)
	}
	if gr.logits != nil {
		outputs = append(outputs, gr.logits)
	}
	var grads G.Nodes
	if len(b.learnables) > 0 {
		var err error
		if grads, err = G.Grad(gr.loss, b.learnables...); err != nil {
			return nil, fmt.Errorf("model: BuildGraph: differentiating: %w", err)
		}
		outputs = append(outputs, grads...)
	}
	prog, locs, err := G.CompileFunction(b.g, b.inputs, outputs)
	if err != nil {
		return nil, fmt.Errorf("model: BuildGraph: compiling: %w", err)
	}
	// The gradients accumulate in the learnables' dual values (see Grad):
	// their own buffers are free once added there.
	if gr.plan, err = gop.NewPlan[T](b.g, outputs, grads, segments...); err != nil {
		return nil, fmt.Errorf("model: BuildGraph: %w", err)
	}
	gr.vm = G.NewTapeMachine(b.g, G.WithPrecompiled(prog, locs), G.BindDualValues(b.learnables...))
	return gr, nil
}

// layerNodes returns the nodes a decoder layer added to the graph that it
// recomputes under gradient checkpointing: all but its inputs (parameters)
// and the nodes in keep (its output, say).
func layerNodes(added G.Nodes, keep G.Nodes) G.Nodes {
	var seg G.Nodes
	for _, n := range added {
		if !slices.Contains(keep, n) && n.Op() != nil {
			seg = append(seg, n)
		}
	}
	return seg
}

// Step runs the forward and backward pass on one batch: inputs and targets
// are Batch×Seq token ids, mask weights each target's loss (1 counts, 0 is
// ignored). It returns the masked mean loss; gradients are added to the
// learnables' gradients (see Grad and ZeroGrad), so calling Step several
// times accumulates them.
func (gr *Graph[T]) Step(inputs, targets []int, mask []T) (T, error) {
	return gr.StepPositions(inputs, targets, nil, mask)
}

// StepPositions is Step on a batch of packed sequences: positions holds the
// position of each of the Batch×Seq tokens within its example (0 where an
// example starts; see kernels.CheckPositions), and each example attends only
// to itself. It needs a graph built with GraphOptions.Packed; nil positions
// mean one example per sequence.
func (gr *Graph[T]) StepPositions(inputs, targets, positions []int, mask []T) (T, error) {
	n := gr.Batch * gr.Seq
	if len(inputs) != n || len(targets) != n || len(mask) != n {
		return 0, fmt.Errorf("model: Step: got %d inputs, %d targets, %d mask values; want %d each", len(inputs), len(targets), len(mask), n)
	}
	switch {
	case positions != nil && gr.posT == nil:
		return 0, fmt.Errorf("model: Step: positions given to a graph built without GraphOptions.Packed")
	case positions != nil:
		if err := kernels.CheckPositions(positions, gr.Batch, gr.Seq); err != nil {
			return 0, fmt.Errorf("model: Step: %w", err)
		}
		copy(gr.posT, positions)
	case gr.posT != nil:
		for r := range gr.posT {
			gr.posT[r] = r % gr.Seq
		}
	}
	vocab := gr.Params.Config.Vocab
	for i := range inputs {
		if inputs[i] < 0 || inputs[i] >= vocab || targets[i] < 0 || targets[i] >= vocab {
			return 0, fmt.Errorf("model: Step: token id out of range [0,%d) at row %d", vocab, i)
		}
	}
	copy(gr.idsT, inputs)
	copy(gr.targetsT, targets)
	copy(gr.maskT, mask)
	gr.plan.Begin()
	err := gr.vm.RunAll()
	gr.vm.Reset()
	if err != nil {
		return 0, fmt.Errorf("model: Step: %w", err)
	}
	return scalar[T](gr.loss.Value())
}

// SetLossWeight sets the weight of the loss of the next Steps (see
// GraphOptions.LossWeight).
func (gr *Graph[T]) SetLossWeight(w T) error {
	if gr.lossWeightT == nil {
		return errors.New("model: SetLossWeight: the graph was built without GraphOptions.LossWeight")
	}
	gr.lossWeightT[0] = w
	return nil
}

// addRouterAuxLoss makes the graph's loss loss + coef · RouterAuxLoss of
// the routers' logits.
func addRouterAuxLoss[T kernels.Float](b *Builder[T], gr *Graph[T], coef float64) error {
	var k int
	for _, L := range gr.Params.Layers {
		if L.MoE != nil {
			k = L.MoE.TopK
			break
		}
	}
	aux, err := b.Apply(RouterAuxLoss[T]{K: k}, b.routerLogits...)
	if err != nil {
		return err
	}
	weighted, err := b.Apply(gop.Weighted[T]{}, aux, b.Input("router_aux_loss_coef", []T{T(coef)}, 1))
	if err != nil {
		return err
	}
	if gr.loss, err = b.Apply(gop.Add[T]{}, gr.loss, weighted); err != nil {
		return err
	}
	gr.aux = aux
	return nil
}

// RouterAuxLoss returns the routers' load-balancing loss of the last Step
// (without its coefficient; the Step's loss includes coef times it), and
// false when the graph has none (see GraphOptions.RouterAuxLossCoef).
func (gr *Graph[T]) RouterAuxLoss() (T, bool) {
	if gr.aux == nil {
		return 0, false
	}
	v, err := scalar[T](gr.aux.Value())
	return v, err == nil
}

// Logits returns the logits [Batch·Seq, Vocab] of the last Step (valid until
// the next Step), or nil when the graph fuses the head with the loss (see
// GraphOptions.KeepLogits).
func (gr *Graph[T]) Logits() []T {
	if gr.logits == nil {
		return nil
	}
	return gr.logits.Value().Data().([]T)
}

// Grad returns the accumulated gradient of learnable i (a view, valid until
// the next Step; same length as its parameter).
func (gr *Graph[T]) Grad(i int) ([]T, error) {
	g, err := gr.Learnables[i].Grad()
	if err != nil {
		return nil, fmt.Errorf("model: gradient of %s: %w", gr.Learnables[i].Name(), err)
	}
	if g == nil {
		return nil, nil // no Step has run yet
	}
	return g.Data().([]T), nil
}

// ZeroGrad clears every learnable's accumulated gradient.
func (gr *Graph[T]) ZeroGrad() error {
	for i := range gr.Learnables {
		g, err := gr.Grad(i)
		if err != nil {
			return err
		}
		clear(g)
	}
	return nil
}

// Buffers describes how the graph's activations and activation gradients
// share memory (see gop.Plan).
func (gr *Graph[T]) Buffers() gop.PlanStats { return gr.plan.PlanStats }

// Close releases the tape machine.
func (gr *Graph[T]) Close() error { return gr.vm.Close() }

func scalar[T kernels.Float](v G.Value) (T, error) {
	switch s := v.(type) {
	case *G.F32:
		return T(*s), nil
	case *G.F64:
		return T(*s), nil
	}
	return 0, fmt.Errorf("model: loss is a %T, not a scalar", v)
}
