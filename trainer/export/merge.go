package export

import (
	"fmt"

	"github.com/salr-go/salr/adapters"
	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/model"
)

// tensor is one tensor of the merged model under its HF name, shape in
// PyTorch order; values computes its float32 values when it is written.
type tensor struct {
	name   string
	shape  []int
	proj   model.Projection // for projection weights and biases, else -1
	values func() ([]float32, error)
}

// mergedTensors lists p's tensors in the order of a transformers state_dict
// (the embedding, each layer's projections and norms, the final norm, the
// head unless tied), each projection weight merged with its adapter.
func mergedTensors(p *model.Params[float32]) ([]tensor, error) {
	cfg := p.Config
	if len(p.Layers) != cfg.Layers {
		return nil, fmt.Errorf("export: the model has %d layers, its configuration %d", len(p.Layers), cfg.Layers)
	}
	vector := func(name string, v []float32) tensor {
		return tensor{name: name, shape: []int{len(v)}, proj: -1, values: func() ([]float32, error) { return v, nil }}
	}
	matrix := func(name string, m kernels.Matrix[float32]) tensor {
		return tensor{name: name, shape: []int{m.Rows(), m.Cols()}, proj: -1, values: func() ([]float32, error) { return denseCopy(name, m) }}
	}
	out := []tensor{matrix(model.EmbedTokensName, p.Embed)}
	for l := range p.Layers {
		L := &p.Layers[l]
		for pj, lin := range L.Proj {
			if lin == nil && L.MoE != nil && model.Projection(pj) >= model.GateProj {
				continue // a sparse layer's MLP: below
			}
			if lin == nil || lin.Base == nil {
				return nil, fmt.Errorf("export: layer %d has no %s", l, model.Projection(pj).Suffix())
			}
			out = append(out, tensor{name: lin.Module + ".weight", shape: []int{lin.Base.Rows(), lin.Base.Cols()},
				proj: model.Projection(pj), values: func() ([]float32, error) { return Merged(lin) }})
			if lin.Bias != nil {
				b := vector(lin.Module+".bias", lin.Bias)
				b.proj = model.Projection(pj)
				out = append(out, b)
			}
		}
		if L.MoE != nil {
			// The router, the experts (merged with their adapters), the
			// shared expert and its gate.
			for _, lin := range append(L.Gates(), L.Linears()[model.OProj+1:]...) {
				if lin == nil || lin.Base == nil {
					return nil, fmt.Errorf("export: layer %d: a mixture-of-experts projection has no base", l)
				}
				out = append(out, tensor{name: lin.Module + ".weight", shape: []int{lin.Base.Rows(), lin.Base.Cols()},
					proj: -1, values: func() ([]float32, error) { return Merged(lin) }})
			}
		}
		out = append(out, vector(model.LayerTensorName(l, "input_layernorm.weight"), L.AttnNorm),
			vector(model.LayerTensorName(l, "post_attention_layernorm.weight"), L.MLPNorm))
	}
	out = append(out, vector(model.FinalNormName, p.Norm))
	if !cfg.TieEmbeddings {
		out = append(out, matrix(model.LMHeadName, p.Head))
	}
	return out, nil
}

// Merged returns lin's weight with its trained update added, as a new
// row-major Out×In slice: W_base + B diag(Scale) A, the weight whose product
// equals what the inference path computes with the base and the adapter
// apart (up to float32 rounding).
func Merged(lin *model.Linear[float32]) ([]float32, error) {
	w, err := denseCopy(lin.Module, lin.Base)
	if err != nil {
		return nil, err
	}
	if a := lin.Adapter; a != nil {
		in, out := lin.Base.Cols(), lin.Base.Rows()
		if a.R <= 0 || len(a.A) != a.R*in || len(a.B) != out*a.R || len(a.Scale) != a.R {
			return nil, fmt.Errorf("export: adapter of %s: rank %d with %d, %d and %d values does not fit %d×%d", lin.Module, a.R, len(a.A), len(a.B), len(a.Scale), out, in)
		}
		(&adapters.Fused{In: in, Out: out, Rank: a.R, A: a.A, B: a.B, Scale: a.Scale}).MergeInto(w)
	}
	return w, nil
}

// denseCopy decodes a matrix in any storage into a new row-major float32
// slice (never a view: the model's own data may be a read-only file map).
func denseCopy(name string, m kernels.Matrix[float32]) ([]float32, error) {
	w := make([]float32, m.Rows()*m.Cols())
	switch x := m.(type) {
	case *kernels.Dense[float32]:
		copy(w, x.W)
	case interface{ Decode(dst []float32) }:
		x.Decode(w)
	case kernels.RowGatherer[float32]:
		ids := make([]int, m.Rows())
		for i := range ids {
			ids[i] = i
		}
		x.GatherRows(w, ids)
	default:
		return nil, fmt.Errorf("export: %s: cannot read a weight stored as %T", name, m)
	}
	return w, nil
}
