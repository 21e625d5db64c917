package model

import (
	"fmt"
	"slices"

	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/kernels/bitmap"
)

// Projection names a linear layer of a decoder layer by its HF module suffix.
type Projection int

// The seven projections of a Llama-family decoder layer, in HF order.
const (
	QProj Projection = iota
	KProj
	VProj
	OProj
	GateProj
	UpProj
	DownProj
	NumProjections
)

var projectionSuffix = [NumProjections]string{
	"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
	"mlp.gate_proj", "mlp.up_proj", "mlp.down_proj",
}

// Suffix is the HF module path inside a layer, e.g. "self_attn.q_proj".
func (p Projection) Suffix() string { return projectionSuffix[p] }

// Short is the PEFT target_modules name, e.g. "q_proj".
func (p Projection) Short() string {
	s := projectionSuffix[p]
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '.' {
			return s[i+1:]
		}
	}
	return s
}

// ModuleName is the HF module name of projection p in layer l, e.g.
// "model.layers.3.self_attn.q_proj"; its weight is ModuleName + ".weight".
func ModuleName(l int, p Projection) string {
	return fmt.Sprintf("model.layers.%d.%s", l, p.Suffix())
}

// Linear is one projection y = x Wᵀ + b (+ a low-rank update) with a frozen
// base W in any storage format.
type Linear[T kernels.Float] struct {
	Module  string            // HF module name
	Base    kernels.Matrix[T] // frozen base, [Out, In]: dense, pruned or compressed
	Bias    []T               // [Out] or nil
	Adapter *LowRank[T]       // optional trained update, nil when absent
}

// LowRank is an additive low-rank update of a projection,
// y += ((x Aᵀ) ⊙ Scale) Bᵀ: the concatenated adapters (LoRA and the SVD
// residual adapter) of one projection. A is [R, In], B is [Out, R].
type LowRank[T kernels.Float] struct {
	A, B  []T
	Scale []T // [R] per-rank scale
	R     int
}

// Layer holds one decoder layer's parameters. A mixture-of-experts layer
// has MoE set and no GateProj, UpProj, DownProj in Proj (nil).
type Layer[T kernels.Float] struct {
	AttnNorm []T // input_layernorm [C]
	MLPNorm  []T // post_attention_layernorm [C]
	Proj     [NumProjections]*Linear[T]
	MoE      *MoE[T]
}

// MoE is the sparse MLP block of a mixture-of-experts layer: a router picks
// TopK of the experts for every token, whose SwiGLU outputs are summed with
// the routing weights (softmax over all experts, renormalised over the
// chosen ones when NormTopK); Qwen2-MoE adds a shared expert scaled by
// sigmoid(SharedGate x).
type MoE[T kernels.Float] struct {
	Router     *Linear[T]      // [Experts, C], dense and frozen
	Experts    [][3]*Linear[T] // per expert: gate (w1), up (w3), down (w2)
	TopK       int
	NormTopK   bool
	Shared     *[3]*Linear[T] // shared expert gate, up, down, or nil
	SharedGate *Linear[T]     // [1, C], nil without a shared expert
}

// Linears returns the layer's projections that carry a frozen base worth
// pruning and adapting, in HF order: attention, then the dense MLP or every
// expert's gate, up, down and the shared expert's. Routers and the shared
// expert gate are not among them.
func (L *Layer[T]) Linears() []*Linear[T] {
	var out []*Linear[T]
	for _, lin := range L.Proj {
		if lin != nil {
			out = append(out, lin)
		}
	}
	if m := L.MoE; m != nil {
		for _, e := range m.Experts {
			out = append(out, e[:]...)
		}
		if m.Shared != nil {
			out = append(out, m.Shared[:]...)
		}
	}
	return out
}

// Gates returns the layer's router and shared expert gate (dense, frozen,
// never pruned), nil for a dense layer.
func (L *Layer[T]) Gates() []*Linear[T] {
	m := L.MoE
	if m == nil {
		return nil
	}
	if m.SharedGate != nil {
		return []*Linear[T]{m.Router, m.SharedGate}
	}
	return []*Linear[T]{m.Router}
}

// linearSlots returns pointers to the slots holding Linears' projections,
// so that a copy of the layer (see MoE.clone) can replace them.
func (L *Layer[T]) linearSlots() []**Linear[T] {
	var out []**Linear[T]
	for i := range L.Proj {
		if L.Proj[i] != nil {
			out = append(out, &L.Proj[i])
		}
	}
	if m := L.MoE; m != nil {
		for e := range m.Experts {
			for i := range m.Experts[e] {
				out = append(out, &m.Experts[e][i])
			}
		}
		if m.Shared != nil {
			for i := range m.Shared {
				out = append(out, &m.Shared[i])
			}
		}
	}
	return out
}

// clone copies m's slices of projections (not the projections), nil for nil.
func (m *MoE[T]) clone() *MoE[T] {
	if m == nil {
		return nil
	}
	c := *m
	c.Experts = append([][3]*Linear[T](nil), m.Experts...)
	if m.Shared != nil {
		s := *m.Shared
		c.Shared = &s
	}
	return &c
}

// MLPProjection is the role (GateProj, UpProj or DownProj) of an MLP
// projection module of any layer kind, e.g. "...block_sparse_moe.experts.3.w2"
// is DownProj; ok is false for attention and anything else.
func MLPProjection(module string) (p Projection, ok bool) {
	for i := len(module) - 1; i >= 0; i-- {
		if module[i] == '.' {
			switch module[i+1:] {
			case "gate_proj", "w1":
				return GateProj, true
			case "up_proj", "w3":
				return UpProj, true
			case "down_proj", "w2":
				return DownProj, true
			}
			return 0, false
		}
	}
	return 0, false
}

// Params holds a Llama-family decoder's parameters by role, in HF layout
// (RoPE in the half-split convention).
type Params[T kernels.Float] struct {
	Config Config
	Embed  kernels.RowGatherer[T] // [V, C], looked up by row
	Layers []Layer[T]
	Norm   []T               // final norm [C]
	Head   kernels.Matrix[T] // [V, C]; Embed itself when the head is tied
}

// NewParams arranges a checkpoint's tensors by role without copying them.
// A projection stored compressed (Checkpoint.Compressed) keeps its bitmap
// form as its base, and an adapter stored with the checkpoint
// (Checkpoint.Adapters) is attached to its projection.
func NewParams(ck *Checkpoint) (*Params[float32], error) {
	cfg := ck.Config
	tensor := func(name string, shape ...int) (*Tensor, error) {
		t, ok := ck.Tensors[name]
		if !ok {
			return nil, fmt.Errorf("model: %s: missing tensor %s", ck.Source, name)
		}
		if !slices.Equal(t.Shape, shape) {
			return nil, fmt.Errorf("model: %s: tensor %s has shape %v, want %v", ck.Source, name, t.Shape, shape)
		}
		return t, nil
	}
	vec := func(name string, n int) ([]float32, error) {
		t, err := tensor(name, n)
		if err != nil {
			return nil, err
		}
		return t.Float32(), nil
	}
	// mat wraps a matrix without copying it: float32 values as a
	// kernels.Dense, bf16 ones as a bitmap.DenseBF16.
	mat := func(name string, rows, cols int) (kernels.RowGatherer[float32], error) {
		t, err := tensor(name, rows, cols)
		if err != nil {
			return nil, err
		}
		if t.BF16 != nil {
			return bitmap.DenseBF16FromBits(t.BF16, rows, cols)
		}
		return kernels.NewDense(t.Data, rows, cols), nil
	}
	c, kv := cfg.Hidden, cfg.KVDim()
	q := cfg.Heads * cfg.HeadDim
	dims := [NumProjections][2]int{
		{q, c}, {kv, c}, {kv, c}, {c, q},
		{cfg.Intermediate, c}, {cfg.Intermediate, c}, {c, cfg.Intermediate},
	}
	p := &Params[float32]{Config: cfg, Layers: make([]Layer[float32], cfg.Layers)}
	var err error
	if p.Embed, err = mat(EmbedTokensName, cfg.Vocab, c); err != nil {
		return nil, err
	}
	if p.Norm, err = vec(FinalNormName, c); err != nil {
		return nil, err
	}
	p.Head = p.Embed
	if !cfg.TieEmbeddings {
		if p.Head, err = mat(LMHeadName, cfg.Vocab, c); err != nil {
			return nil, err
		}
	}
	linear := func(name string, out, in int, bias bool) (*Linear[float32], error) {
		lin := &Linear[float32]{Module: name}
		var err error
		if m, ok := ck.Compressed[name+".weight"]; ok {
			if m.Rows() != out || m.Cols() != in {
				return nil, fmt.Errorf("model: %s: compressed tensor %s is %d×%d, want %d×%d", ck.Source, name+".weight", m.Rows(), m.Cols(), out, in)
			}
			lin.Base = m
		} else if lin.Base, err = mat(name+".weight", out, in); err != nil {
			return nil, err
		}
		if a, ok := ck.Adapters[name]; ok {
			if a.R <= 0 || len(a.A) != a.R*in || len(a.B) != out*a.R || len(a.Scale) != a.R {
				return nil, fmt.Errorf("model: %s: the adapter of %s (rank %d) does not fit its %d×%d weight", ck.Source, name, a.R, out, in)
			}
			lin.Adapter = a
		}
		if bias {
			if lin.Bias, err = vec(name+".bias", out); err != nil {
				return nil, err
			}
		}
		return lin, nil
	}
	// swiglu reads the gate, up and down projections of an MLP of width ff.
	swiglu := func(names [3]string, ff int) (out [3]*Linear[float32], err error) {
		shapes := [3][2]int{{ff, c}, {ff, c}, {c, ff}}
		for i := range out {
			if out[i], err = linear(names[i], shapes[i][0], shapes[i][1], false); err != nil {
				return out, err
			}
		}
		return out, nil
	}
	for l := range p.Layers {
		L := &p.Layers[l]
		if L.AttnNorm, err = vec(LayerTensorName(l, "input_layernorm.weight"), c); err != nil {
			return nil, err
		}
		if L.MLPNorm, err = vec(LayerTensorName(l, "post_attention_layernorm.weight"), c); err != nil {
			return nil, err
		}
		for pj := Projection(0); pj < NumProjections; pj++ {
			if pj >= GateProj && cfg.SparseLayer(l) {
				break
			}
			if L.Proj[pj], err = linear(ModuleName(l, pj), dims[pj][0], dims[pj][1], cfg.AttentionBias && pj <= VProj); err != nil {
				return nil, err
			}
		}
		if !cfg.SparseLayer(l) {
			continue
		}
		m := &MoE[float32]{TopK: cfg.ExpertsPerToken, NormTopK: cfg.NormTopKProb, Experts: make([][3]*Linear[float32], cfg.Experts)}
		if m.Router, err = linear(cfg.RouterModuleName(l), cfg.Experts, c, false); err != nil {
			return nil, err
		}
		for e := range m.Experts {
			names := [3]string{cfg.ExpertModuleName(l, e, GateProj), cfg.ExpertModuleName(l, e, UpProj), cfg.ExpertModuleName(l, e, DownProj)}
			if m.Experts[e], err = swiglu(names, cfg.ExpertIntermediate); err != nil {
				return nil, err
			}
		}
		if cfg.SharedIntermediate > 0 {
			names := [3]string{cfg.SharedExpertModuleName(l, GateProj), cfg.SharedExpertModuleName(l, UpProj), cfg.SharedExpertModuleName(l, DownProj)}
			shared, err := swiglu(names, cfg.SharedIntermediate)
			if err != nil {
				return nil, err
			}
			m.Shared = &shared
			if m.SharedGate, err = linear(cfg.SharedExpertGateName(l), 1, c, false); err != nil {
				return nil, err
			}
		}
		L.MoE = m
	}
	return p, nil
}

// ConvertParams copies float32 parameters into another element type (float64
// for gradient checks). Every base must be a *kernels.Dense.
func ConvertParams[T kernels.Float](p *Params[float32]) *Params[T] {
	conv := func(x []float32) []T {
		if x == nil {
			return nil
		}
		y := make([]T, len(x))
		for i, v := range x {
			y[i] = T(v)
		}
		return y
	}
	convDense := func(m kernels.Matrix[float32]) kernels.Matrix[T] {
		d, ok := m.(*kernels.Dense[float32])
		if !ok {
			panic("model: ConvertParams: base is not dense")
		}
		return kernels.NewDense(conv(d.W), d.R, d.C)
	}
	embed, ok := p.Embed.(*kernels.Dense[float32])
	if !ok {
		panic("model: ConvertParams: embedding is not dense")
	}
	q := &Params[T]{Config: p.Config, Embed: kernels.NewDense(conv(embed.W), embed.R, embed.C), Norm: conv(p.Norm), Layers: make([]Layer[T], len(p.Layers))}
	if p.Config.TieEmbeddings {
		q.Head = q.Embed
	} else {
		q.Head = convDense(p.Head)
	}
	for l, L := range p.Layers {
		Q := &q.Layers[l]
		Q.AttnNorm, Q.MLPNorm = conv(L.AttnNorm), conv(L.MLPNorm)
		convLinear := func(lin *Linear[float32]) *Linear[T] {
			if lin == nil {
				return nil
			}
			nl := &Linear[T]{Module: lin.Module, Base: convDense(lin.Base), Bias: conv(lin.Bias)}
			if a := lin.Adapter; a != nil {
				nl.Adapter = &LowRank[T]{A: conv(a.A), B: conv(a.B), Scale: conv(a.Scale), R: a.R}
			}
			return nl
		}
		for pj, lin := range L.Proj {
			Q.Proj[pj] = convLinear(lin)
		}
		if m := L.MoE; m != nil {
			qm := &MoE[T]{Router: convLinear(m.Router), TopK: m.TopK, NormTopK: m.NormTopK,
				Experts: make([][3]*Linear[T], len(m.Experts)), SharedGate: convLinear(m.SharedGate)}
			for e, ex := range m.Experts {
				for i, lin := range ex {
					qm.Experts[e][i] = convLinear(lin)
				}
			}
			if m.Shared != nil {
				qm.Shared = &[3]*Linear[T]{convLinear(m.Shared[0]), convLinear(m.Shared[1]), convLinear(m.Shared[2])}
			}
			Q.MoE = qm
		}
	}
	return q
}

// InvFreq returns the RoPE inverse frequencies of the config.
func (c Config) InvFreq() []float64 {
	var s kernels.RopeScaling
	if c.RopeScaling != nil {
		s = *c.RopeScaling
	}
	return kernels.RopeInvFreq(c.HeadDim, c.RopeTheta, s)
}
