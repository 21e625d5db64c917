package model

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/salr-go/salr/kernels/bitmap"
	"github.com/salr-go/salr/model/safetensors"
)

// preparedFixture writes the compressed fixture with prepared factors on
// two projections and returns its directory and the factors.
func preparedFixture(t *testing.T) (string, *Prepared) {
	t.Helper()
	cfg := compressedTestConfig(false, false)
	fx := newCompressedFixture(t, cfg, bitmap.BF16, 71)
	for _, L := range fx.params.Layers {
		for _, lin := range L.Proj {
			lin.Adapter = nil
		}
	}
	rng := rand.New(rand.NewPCG(71, 5))
	pr := &Prepared{Settings: json.RawMessage(`{"method":"prune+svd","x":[1,2]}`), Factors: map[string]*PreparedFactors{}}
	for _, m := range []struct {
		module  string
		out, in int
	}{{"model.layers.0.self_attn.q_proj", 32, 32}, {"model.layers.1.mlp.down_proj", 32, 40}} {
		pr.Factors[m.module] = &PreparedFactors{Rank: 3, A: randomFloat32s(rng, 3*m.in), B: randomFloat32s(rng, m.out*3), Scale: 1}
	}
	dir := t.TempDir()
	if err := WriteParams(dir, fx.params, ParamsFileOptions{DType: safetensors.BF16, Compressed: true, Prepared: pr, Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	return dir, pr
}

// TestPreparedRoundTrip: the settings and factors come back exactly, and the
// factors are not attached to the projections.
func TestPreparedRoundTrip(t *testing.T) {
	dir, pr := preparedFixture(t)
	ck, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	got := ck.Prepared
	if got == nil {
		t.Fatal("Checkpoint.Prepared is nil")
	}
	if string(got.Settings) != string(pr.Settings) {
		t.Errorf("settings %s, want %s", got.Settings, pr.Settings)
	}
	if len(got.Factors) != len(pr.Factors) {
		t.Fatalf("%d factors, want %d", len(got.Factors), len(pr.Factors))
	}
	for m, want := range pr.Factors {
		f := got.Factors[m]
		if f == nil || f.Rank != want.Rank || f.Scale != want.Scale || !slices.Equal(f.A, want.A) || !slices.Equal(f.B, want.B) {
			t.Errorf("factors of %s differ", m)
		}
	}
	p, err := NewParams(ck)
	if err != nil {
		t.Fatal(err)
	}
	for _, L := range p.Layers {
		for _, lin := range L.Proj {
			if lin.Adapter != nil {
				t.Errorf("%s has an adapter attached", lin.Module)
			}
			if _, ok := lin.Base.(*bitmap.Matrix); !ok {
				t.Errorf("%s's base is %T, not the bitmap", lin.Module, lin.Base)
			}
		}
	}
}

// TestPreparedBadFilesAreErrors: factors that do not fit the model, and a
// malformed entry, are errors naming the file and the entry.
func TestPreparedBadFilesAreErrors(t *testing.T) {
	dir, _ := preparedFixture(t)
	const q = "model.layers.0.self_attn.q_proj"
	edit := func(meta map[string]string, change func(m *preparedMeta)) {
		var m preparedMeta
		if err := json.Unmarshal([]byte(meta[PreparedMetadataKey]), &m); err != nil {
			t.Fatal(err)
		}
		change(&m)
		b, _ := json.Marshal(m)
		meta[PreparedMetadataKey] = string(b)
	}
	for _, c := range []struct {
		name string
		edit func(ts map[string]*safetensors.Tensor, meta map[string]string)
		want string
	}{
		{"rank differs from the tensors", func(_ map[string]*safetensors.Tensor, meta map[string]string) {
			edit(meta, func(m *preparedMeta) { m.Factors[q] = preparedFactorsMeta{Rank: 2, Scale: 1} })
		}, `tensor "` + q + `.svd_init.A" has shape [3 32], want [2 32]`},
		{"not a projection", func(_ map[string]*safetensors.Tensor, meta map[string]string) {
			edit(meta, func(m *preparedMeta) { m.Factors["model.layers.7.self_attn.q_proj"] = preparedFactorsMeta{Rank: 1} })
		}, `lists "model.layers.7.self_attn.q_proj", which is not a projection`},
		{"missing tensor", func(ts map[string]*safetensors.Tensor, _ map[string]string) {
			delete(ts, q+PreparedBSuffix)
		}, `missing tensor "` + q + `.svd_init.B"`},
		{"unknown version", func(_ map[string]*safetensors.Tensor, meta map[string]string) {
			edit(meta, func(m *preparedMeta) { m.Version = 9 })
		}, "version 9"},
		{"not JSON", func(_ map[string]*safetensors.Tensor, meta map[string]string) {
			meta[PreparedMetadataKey] = "{"
		}, `metadata "salr_prepared"`},
	} {
		bad := rewriteCompressed(t, dir, c.edit)
		_, err := Load(bad)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), safetensors.SingleFileName) {
			t.Errorf("%s: error %v, want one naming the file and %q", c.name, err, c.want)
		}
	}
}

// TestWriteParamsPreparedNeedsCompressed: prepared factors are refused in a
// plain HF directory, and factors that do not fit are refused.
func TestWriteParamsPreparedNeedsCompressed(t *testing.T) {
	cfg := compressedTestConfig(false, false)
	fx := newCompressedFixture(t, cfg, bitmap.BF16, 72)
	pr := &Prepared{Settings: json.RawMessage(`{}`)}
	if err := WriteParams(t.TempDir(), fx.params, ParamsFileOptions{DType: safetensors.F32, Prepared: pr}); err == nil {
		t.Error("prepared factors written into a plain HF directory")
	}
	pr.Factors = map[string]*PreparedFactors{"model.layers.0.self_attn.q_proj": {Rank: 2, A: make([]float32, 3), B: make([]float32, 64)}}
	err := WriteParams(t.TempDir(), fx.params, ParamsFileOptions{DType: safetensors.F32, Compressed: true, Prepared: pr})
	if err == nil || !strings.Contains(err.Error(), "do not fit 32×32") {
		t.Errorf("error %v, want one about factors that do not fit", err)
	}
}
