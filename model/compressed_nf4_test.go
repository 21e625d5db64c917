package model

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/kernels/bitmap"
	"github.com/salr-go/salr/model/safetensors"
)

// TestCompressedNF4RoundTrip writes bitmap-nf4 and dense-nf4 bases (with and
// without double quantization) to a compressed model directory and loads
// them back: every projection is the same NF4 matrix (its decoded weights
// bit for bit), the metadata says version 2, value dtype nf4 and the layout.
func TestCompressedNF4RoundTrip(t *testing.T) {
	for _, dense := range []bool{false, true} {
		for _, dq := range []bool{false, true} {
			name := map[bool]string{false: "bitmap-nf4", true: "dense-nf4"}[dense] + map[bool]string{false: "", true: "-dq"}[dq]
			t.Run(name, func(t *testing.T) {
				cfg := compressedTestConfig(false, true)
				fx := newCompressedFixture(t, cfg, bitmap.F32, 13)
				want := map[string][]float32{}
				for l := range fx.params.Layers {
					for pj, lin := range fx.params.Layers[l].Proj {
						w := fx.pruned[lin.Module+".weight"]
						m, err := bitmap.EncodeNF4(w, lin.Base.Rows(), lin.Base.Cols(), dense, dq)
						if err != nil {
							t.Fatal(err)
						}
						fx.params.Layers[l].Proj[pj].Base = m
						want[lin.Module+".weight"] = DecodeBase(m)
					}
				}
				dir := filepath.Join(t.TempDir(), "c")
				if err := WriteParams(dir, fx.params, ParamsFileOptions{DType: safetensors.BF16, Compressed: true, Adapters: true}); err != nil {
					t.Fatal(err)
				}
				f, err := safetensors.Open(filepath.Join(dir, safetensors.SingleFileName))
				if err != nil {
					t.Fatal(err)
				}
				var meta compressionMeta
				if err := json.Unmarshal([]byte(f.Metadata()[CompressionMetadataKey]), &meta); err != nil {
					t.Fatal(err)
				}
				f.Close()
				layout := map[bool]string{false: "bitmap", true: "dense"}[dense]
				tm := meta.Tensors[ModuleName(0, QProj)+".weight"]
				if meta.Version != 2 || meta.ValueDType != "nf4" || tm.Layout != layout || tm.DoubleQuant != dq {
					t.Fatalf("metadata: version %d, value dtype %q, layout %q, double quant %v", meta.Version, meta.ValueDType, tm.Layout, tm.DoubleQuant)
				}
				p := loadParams(t, dir)
				for l := range p.Layers {
					for pj, lin := range p.Layers[l].Proj {
						m, ok := lin.Base.(*bitmap.NF4)
						if !ok || m.Dense() != dense || m.DoubleQuant() != dq {
							t.Fatalf("%s loaded as %s (%T)", lin.Module, BaseFormatName(lin.Base), lin.Base)
						}
						if !slices.Equal(DecodeBase(m), want[lin.Module+".weight"]) {
							t.Fatalf("%s: decoded weights differ from the written ones", lin.Module)
						}
						if (fx.params.Layers[l].Proj[pj].Adapter == nil) != (lin.Adapter == nil) {
							t.Fatalf("%s: adapter lost or invented", lin.Module)
						}
						y := make([]float32, m.Rows())
						x := make([]float32, m.Cols())
						x[0] = 1
						m.MulT(y, x, 1)
						ref := kernels.NewDense(want[lin.Module+".weight"], m.Rows(), m.Cols())
						yr := make([]float32, m.Rows())
						ref.MulT(yr, x, 1)
						if !slices.Equal(y, yr) {
							t.Fatalf("%s: product differs from the dense decoded one", lin.Module)
						}
					}
				}
			})
		}
	}
}

// TestCompressedNF4Refusals: a version-1 file claiming nf4 values, a
// version this build does not know, and a corrupted NF4 tensor are errors
// naming the file.
func TestCompressedNF4Refusals(t *testing.T) {
	cfg := compressedTestConfig(false, false)
	fx := newCompressedFixture(t, cfg, bitmap.F32, 17)
	for l := range fx.params.Layers {
		for _, lin := range fx.params.Layers[l].Proj {
			m, err := bitmap.EncodeNF4(fx.pruned[lin.Module+".weight"], lin.Base.Rows(), lin.Base.Cols(), false, true)
			if err != nil {
				t.Fatal(err)
			}
			lin.Base = m
		}
	}
	dir := filepath.Join(t.TempDir(), "c")
	if err := WriteParams(dir, fx.params, ParamsFileOptions{DType: safetensors.BF16, Compressed: true}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, safetensors.SingleFileName)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ old, new, want string }{
		{`\"version\":2`, `\"version\":1`, "nf4 needs format version 2"},
		{`\"version\":2`, `\"version\":3`, "versions 1 and 2"},
		{`\"layout\":\"bitmap\"`, `\"layout\":\"sparse\"`, `layout "sparse"`},
	} {
		bad := strings.Replace(string(raw), c.old, c.new, 1)
		if bad == string(raw) {
			t.Fatalf("%s not in the header", c.old)
		}
		_, err := parseCompressed([]byte(bad), path, cfg, false)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s -> %s: %v, want an error with %q", c.old, c.new, err, c.want)
		}
	}
}
