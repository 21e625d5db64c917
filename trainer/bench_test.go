package trainer

import (
	"slices"
	"strings"
	"testing"

	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/model"
)

// TestBenchModelGeneratesPrunedProjections: the bench's model has
// RandomCheckpoint's weights, with the projections it prunes generated when
// read instead of held.
func TestBenchModelGeneratesPrunedProjections(t *testing.T) {
	cfg, err := model.NamedShape("llama-64x2")
	if err != nil {
		t.Fatal(err)
	}
	const seed = 7
	ref, err := model.RandomCheckpoint(cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	ck, p, err := benchModel(cfg, seed, func(module string) bool { return !strings.HasSuffix(module, ".o_proj") })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(model.DecodeBase(p.Embed), ref.Tensors[model.EmbedTokensName].Data) || !slices.Equal(p.Layers[1].MLPNorm, ref.Tensors[model.LayerTensorName(1, "post_attention_layernorm.weight")].Data) {
		t.Error("embedding or norms differ from RandomCheckpoint's")
	}
	for _, L := range p.Layers {
		for pj, lin := range L.Proj {
			name := lin.Module + ".weight"
			want := ref.Tensors[name].Data
			_, held := ck.Tensors[name]
			var got []float32
			switch b := lin.Base.(type) {
			case *randomBase:
				if model.Projection(pj) == model.OProj || held {
					t.Errorf("%s: generated (held %v)", name, held)
				}
				got = b.Dense().W
			case *kernels.Dense[float32]:
				if model.Projection(pj) != model.OProj || !held {
					t.Errorf("%s: held densely (in the checkpoint %v)", name, held)
				}
				got = b.W
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: weights differ from RandomCheckpoint's", name)
			}
		}
	}
}
