package model

import (
	"fmt"

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

// Layer holds one decoder layer's parameters.
type Layer[T kernels.Float] struct {
	AttnNorm []T // input_layernorm [C]
	MLPNorm  []T // post_attention_layernorm [C]
	Proj     [NumProjections]*Linear[T]
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
		if !sameShape(t.Shape, shape) {
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
	for l := range p.Layers {
		L := &p.Layers[l]
		if L.AttnNorm, err = vec(LayerTensorName(l, "input_layernorm.weight"), c); err != nil {
			return nil, err
		}
		if L.MLPNorm, err = vec(LayerTensorName(l, "post_attention_layernorm.weight"), c); err != nil {
			return nil, err
		}
		for pj := Projection(0); pj < NumProjections; pj++ {
			name := ModuleName(l, pj)
			out, in := dims[pj][0], dims[pj][1]
			lin := &Linear[float32]{Module: name}
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
			if cfg.AttentionBias && pj <= VProj {
				if lin.Bias, err = vec(name+".bias", out); err != nil {
					return nil, err
				}
			}
			L.Proj[pj] = lin
		}
	}
	return p, nil
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
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
		for pj, lin := range L.Proj {
			nl := &Linear[T]{Module: lin.Module, Base: convDense(lin.Base), Bias: conv(lin.Bias)}
			if a := lin.Adapter; a != nil {
				nl.Adapter = &LowRank[T]{A: conv(a.A), B: conv(a.B), Scale: conv(a.Scale), R: a.R}
			}
			Q.Proj[pj] = nl
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
