package model

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"math/bits"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/kernels/bitmap"
	"github.com/salr-go/salr/model/safetensors"
)

// compressedTestConfig is a small Llama whose intermediate width (40) is not a
// multiple of the 16-column chunks, so down_proj has a partial last chunk.
func compressedTestConfig(tied, bias bool) Config {
	cfg := Config{
		ModelType: "llama", Hidden: 32, Intermediate: 40, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8,
		Vocab: 29, MaxPositions: 64, RMSNormEps: 1e-5, RopeTheta: 10000, TieEmbeddings: tied,
		BOSTokenID: 1, EOSTokenIDs: []int{2}, TorchDtype: "float32",
	}
	if bias {
		cfg.ModelType, cfg.AttentionBias = "qwen2", true
	}
	return cfg
}

// deterministicCheckpoint fills every tensor of cfg with unit Gaussians, in
// name order so that a seed always gives the same weights.
func deterministicCheckpoint(cfg Config, seed uint64) *Checkpoint {
	rng := rand.New(rand.NewPCG(seed, 3))
	shapes := cfg.TensorShapes()
	ck := &Checkpoint{Config: cfg, Tensors: map[string]*Tensor{}, Source: "random"}
	names := make([]string, 0, len(shapes))
	for name := range shapes {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		n := 1
		for _, d := range shapes[name] {
			n *= d
		}
		ck.Tensors[name] = &Tensor{Shape: shapes[name], Data: randomFloat32s(rng, n)}
	}
	return ck
}

// pruneHalf zeroes the entries of w below the median magnitude (an
// independent stand-in for magnitude pruning) and the whole first row.
func pruneHalf(w []float32, cols int) []float32 {
	mags := make([]float64, len(w))
	for i, v := range w {
		mags[i] = math.Abs(float64(v))
	}
	slices.Sort(mags)
	median := mags[len(mags)/2]
	out := slices.Clone(w)
	for i, v := range out {
		if math.Abs(float64(v)) < median || i < cols {
			out[i] = 0
		}
	}
	return out
}

// compressedFixture is a model whose projections are pruned and encoded, with
// adapters on a few of them, and the dense pruned weights for comparison.
type compressedFixture struct {
	params *Params[float32]
	pruned map[string][]float32 // weight name -> W0 ⊙ M (float32)
}

func newCompressedFixture(t testing.TB, cfg Config, dt bitmap.DType, seed uint64) compressedFixture {
	t.Helper()
	ck := deterministicCheckpoint(cfg, seed)
	p, err := NewParams(ck)
	if err != nil {
		t.Fatal(err)
	}
	fx := compressedFixture{params: p, pruned: map[string][]float32{}}
	rng := rand.New(rand.NewPCG(seed, 4))
	for l := range p.Layers {
		for pj, lin := range p.Layers[l].Proj {
			d := lin.Base.(*kernels.Dense[float32])
			kept := pruneHalf(d.W, d.C)
			fx.pruned[lin.Module+".weight"] = kept
			m, err := bitmap.Encode(kept, d.R, d.C, dt)
			if err != nil {
				t.Fatal(err)
			}
			lin.Base = m
			if (l+pj)%3 == 0 {
				r := 1 + pj%3
				lin.Adapter = &LowRank[float32]{R: r, A: randomFloat32s(rng, r*d.C), B: randomFloat32s(rng, d.R*r), Scale: randomFloat32s(rng, r)}
			}
		}
	}
	return fx
}

// roundTo rounds v to a 16-bit float type (identity for F32).
func roundTo(v []float32, dt safetensors.DType) []float32 {
	out := slices.Clone(v)
	for i, x := range out {
		switch dt {
		case safetensors.BF16:
			out[i] = kernels.BF16ToFloat32(kernels.Float32ToBF16(x))
		case safetensors.F16:
			out[i] = kernels.F16ToFloat32(kernels.Float32ToF16(x))
		}
	}
	return out
}

func writeCompressedFixture(t testing.TB, fx compressedFixture, dt bitmap.DType) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "compressed")
	parts := map[string]json.RawMessage{}
	for _, L := range fx.params.Layers {
		for _, lin := range L.Proj {
			if lin.Adapter != nil {
				parts[lin.Module] = json.RawMessage(`[{"Kind":"lora","Rank":1}]`)
			}
		}
	}
	err := WriteParams(dir, fx.params, ParamsFileOptions{DType: valueDTypeOf(dt), Compressed: true, Adapters: true, AdapterParts: parts})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// loadParams loads the model directory dir as float32 parameters; the
// checkpoint is closed when the test ends.
func loadParams(t *testing.T, dir string) *Params[float32] {
	t.Helper()
	ck, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ck.Close() })
	p, err := NewParams(ck)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCompressedRoundTrip(t *testing.T) {
	for _, dt := range []bitmap.DType{bitmap.BF16, bitmap.F16, bitmap.F32} {
		for _, tied := range []bool{false, true} {
			t.Run(dt.String()+map[bool]string{false: "-untied", true: "-tied-bias"}[tied], func(t *testing.T) {
				cfg := compressedTestConfig(tied, tied)
				fx := newCompressedFixture(t, cfg, dt, 11)
				dir := writeCompressedFixture(t, fx, dt)
				if !IsCompressedDir(dir) {
					t.Fatal("IsCompressedDir = false")
				}
				p := loadParams(t, dir)
				checkLoadedCompressed(t, fx, p, dt)
			})
		}
	}
}

// checkLoadedCompressed compares a loaded compressed model with the fixture
// it was written from.
func checkLoadedCompressed(t *testing.T, fx compressedFixture, got *Params[float32], dt bitmap.DType) {
	t.Helper()
	dense := valueDTypeOf(dt)
	want := fx.params
	if !slices.Equal(DecodeBase(got.Embed), roundTo(DecodeBase(want.Embed), dense)) || !slices.Equal(got.Norm, roundTo(want.Norm, dense)) {
		t.Error("embedding or final norm differ from the written ones")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for l := range want.Layers {
		W, G := &want.Layers[l], &got.Layers[l]
		if !slices.Equal(G.AttnNorm, roundTo(W.AttnNorm, dense)) || !slices.Equal(G.MLPNorm, roundTo(W.MLPNorm, dense)) {
			t.Errorf("layer %d norms differ", l)
		}
		for pj := range W.Proj {
			wl, gl := W.Proj[pj], G.Proj[pj]
			name := wl.Module + ".weight"
			bm, ok := gl.Base.(*bitmap.Matrix)
			if !ok {
				t.Fatalf("%s loaded as %T, want *bitmap.Matrix", name, gl.Base)
			}
			// The loaded base decodes to exactly what Encode made of W0 ⊙ M.
			rows, cols := bm.Rows(), bm.Cols()
			dec := make([]float32, rows*cols)
			bm.Decode(dec)
			ref, _ := bitmap.Encode(fx.pruned[name], rows, cols, dt)
			refDec := make([]float32, rows*cols)
			ref.Decode(refDec)
			if !slices.Equal(dec, refDec) || bm.NNZ() != ref.NNZ() || bm.DType() != dt {
				t.Fatalf("%s: decoded weights differ from Encode(W0 ⊙ M)", name)
			}
			if dt == bitmap.F32 && !slices.Equal(dec, fx.pruned[name]) {
				t.Fatalf("%s: fp32 values are not exact", name)
			}
			checkProducts(t, name, bm, fx.pruned[name], dt, rng)
			if !slices.Equal(gl.Bias, roundTo(wl.Bias, dense)) {
				t.Errorf("%s: bias differs", wl.Module)
			}
			switch {
			case wl.Adapter == nil && gl.Adapter != nil:
				t.Errorf("%s: adapter appeared", wl.Module)
			case wl.Adapter != nil && (gl.Adapter == nil || gl.Adapter.R != wl.Adapter.R ||
				!slices.Equal(gl.Adapter.A, wl.Adapter.A) || !slices.Equal(gl.Adapter.B, wl.Adapter.B) || !slices.Equal(gl.Adapter.Scale, wl.Adapter.Scale)):
				t.Errorf("%s: adapter differs", wl.Module)
			}
		}
	}
	if !want.Config.TieEmbeddings {
		if !slices.Equal(DecodeBase(got.Head), roundTo(DecodeBase(want.Head), dense)) {
			t.Error("head differs")
		}
	}
}

// checkProducts compares the loaded base's MulT and Mul with float64
// products by the dense pruned weight: within the value type's rounding
// (relative 2⁻⁸ for bf16, 2⁻¹¹ for fp16) plus float32 accumulation.
func checkProducts(t *testing.T, name string, m kernels.Matrix[float32], w []float32, dt bitmap.DType, rng *rand.Rand) {
	t.Helper()
	rows, cols := m.Rows(), m.Cols()
	rel := map[bitmap.DType]float64{bitmap.BF16: 1.0 / 256, bitmap.F16: 1.0 / 2048, bitmap.F32: 0}[dt] + 1e-5
	// compare checks got (n × outDim) = in (n × inDim) times the weight
	// with entries weight(o, k).
	compare := func(op string, got, in []float32, n, outDim, inDim int, weight func(o, k int) float32) {
		for i := 0; i < n; i++ {
			for o := 0; o < outDim; o++ {
				var want, mag float64
				for k := 0; k < inDim; k++ {
					p := float64(in[i*inDim+k]) * float64(weight(o, k))
					want += p
					mag += math.Abs(p)
				}
				if d := math.Abs(float64(got[i*outDim+o]) - want); d > rel*mag+1e-6 {
					t.Fatalf("%s %s n=%d: out[%d,%d] = %v, want %v (|Δ| %.3g > %.3g)", name, op, n, i, o, got[i*outDim+o], want, d, rel*mag)
				}
			}
		}
	}
	for _, n := range []int{1, 3, 40} {
		x := randomFloat32s(rng, n*cols)
		y := make([]float32, n*rows)
		m.MulT(y, x, n)
		compare("MulT", y, x, n, rows, cols, func(r, j int) float32 { return w[r*cols+j] })
		dy := randomFloat32s(rng, n*rows)
		dx := make([]float32, n*cols)
		m.Mul(dx, dy, n)
		compare("Mul", dx, dy, n, cols, rows, func(j, r int) float32 { return w[r*cols+j] })
	}
}

func TestCompressedModelRunsLikeTheWrittenOne(t *testing.T) {
	// An fp32 file holds every value exactly: the loaded model's logits equal
	// the in-memory model's up to summation order.
	cfg := compressedTestConfig(false, true)
	fx := newCompressedFixture(t, cfg, bitmap.F32, 21)
	dir := writeCompressedFixture(t, fx, bitmap.F32)
	got := loadParams(t, dir)
	tokens := []int{1, 5, 9, 28, 3, 3, 17}
	logits := func(p *Params[float32]) []float32 {
		r := NewRunner(p)
		out, err := r.Forward([][]int{tokens}, []*Cache{r.NewCache(len(tokens))}, true)
		if err != nil {
			t.Fatal(err)
		}
		return out[0]
	}
	if d := maxAbsDiff(logits(got), logits(fx.params)); d > 1e-4 {
		t.Errorf("logits differ by %g", d)
	}
}

func TestCompressedFileLayout(t *testing.T) {
	cfg := compressedTestConfig(false, false)
	fx := newCompressedFixture(t, cfg, bitmap.BF16, 31)
	dir := writeCompressedFixture(t, fx, bitmap.BF16)
	f, err := safetensors.Open(filepath.Join(dir, safetensors.SingleFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var meta compressionMeta
	if err := json.Unmarshal([]byte(f.Metadata()[CompressionMetadataKey]), &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Format != "salr-bitmap" || meta.Version != 1 || meta.ValueDType != "bf16" || len(meta.Tensors) != cfg.Layers*int(NumProjections) {
		t.Fatalf("metadata %+v", meta)
	}
	var dataEnd int64
	for _, name := range f.Names() {
		info, _ := f.Info(name)
		dataEnd = max(dataEnd, info.End)
	}
	for name, tm := range meta.Tensors {
		if _, dense := f.Info(name); dense {
			t.Errorf("%s is also stored densely", name)
		}
		rows, cols := tm.Shape[0], tm.Shape[1]
		for suffix, want := range map[string][]int{BitmapSuffix: {rows, (cols + 15) / 16}, RowPtrSuffix: {rows + 1}, ValuesSuffix: {tm.NNZ}} {
			info, ok := f.Info(name + suffix)
			if !ok || !slices.Equal(info.Shape, want) {
				t.Fatalf("%s%s: %+v", name, suffix, info)
			}
			if suffix == ValuesSuffix && (info.DType != safetensors.BF16 || dataEnd-info.End < 64) {
				t.Errorf("%s: dtype %s, %d bytes after it (want >= 64)", info.Name, info.DType, dataEnd-info.End)
			}
		}
		if want := len(fx.pruned[name]) - countZeros(fx.pruned[name]); tm.NNZ != want {
			t.Errorf("%s: nnz %d, want %d", name, tm.NNZ, want)
		}
	}
}

func countZeros(w []float32) int {
	n := 0
	for _, v := range w {
		if v == 0 {
			n++
		}
	}
	return n
}

func TestViewAsAliasesAlignedData(t *testing.T) {
	raw := make([]byte, 64)
	for i := range raw {
		raw[i] = byte(i)
	}
	v := viewAs[uint16](raw, 8, 16)
	if len(v) != 4 || v[0] != 0x0908 || v[3] != 0x0f0e {
		t.Fatalf("view %x", v)
	}
	if littleEndianHost && (unsafe.Pointer(&v[0]) != unsafe.Pointer(&raw[8]) || cap(v) != 28) {
		t.Errorf("aligned view copied or lost the spare capacity: cap %d", cap(v))
	}
	odd := viewAs[uint32](raw, 9, 17) // misaligned: converted copy
	if len(odd) != 2 || odd[0] != 0x0c0b0a09 || odd[1] != 0x100f0e0d {
		t.Fatalf("misaligned view %x", odd)
	}
	if f := viewAs[float32](raw, 64, 64); len(f) != 0 {
		t.Fatalf("empty view %v", f)
	}
}

func TestWriteParamsDenseDecodesBitmapBases(t *testing.T) {
	cfg := compressedTestConfig(false, false)
	fx := newCompressedFixture(t, cfg, bitmap.BF16, 41)
	dir := t.TempDir()
	if err := WriteParams(dir, fx.params, ParamsFileOptions{DType: safetensors.BF16}); err != nil {
		t.Fatal(err)
	}
	if IsCompressedDir(dir) {
		t.Fatal("a dense directory looks compressed")
	}
	ck, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if len(ck.Compressed) != 0 || len(ck.Adapters) != 0 || ck.Config.TorchDtype != "bfloat16" {
		t.Fatalf("dense load: %d compressed, %d adapters, dtype %s", len(ck.Compressed), len(ck.Adapters), ck.Config.TorchDtype)
	}
	for name, kept := range fx.pruned {
		if !slices.Equal(ck.Tensors[name].Float32(), roundTo(kept, safetensors.BF16)) {
			t.Fatalf("%s: dense copy differs from W0 ⊙ M in bf16", name)
		}
	}
	// Adapters have no place in a plain HF directory.
	if err := WriteParams(t.TempDir(), fx.params, ParamsFileOptions{DType: safetensors.F32, Adapters: true}); err == nil {
		t.Error("adapters accepted without Compressed")
	}
	if err := WriteParams(dir, fx.params, ParamsFileOptions{DType: safetensors.BF16}); err == nil || !strings.Contains(err.Error(), "already holds a model") {
		t.Errorf("overwrite without the option: %v", err)
	}
}

func TestWriteParamsRejectsMixedValueTypes(t *testing.T) {
	cfg := compressedTestConfig(false, false)
	fx := newCompressedFixture(t, cfg, bitmap.BF16, 51)
	lin := fx.params.Layers[1].Proj[DownProj]
	w := fx.pruned[lin.Module+".weight"]
	var err error
	if lin.Base, err = bitmap.Encode(w, lin.Base.Rows(), lin.Base.Cols(), bitmap.F32); err != nil {
		t.Fatal(err)
	}
	err = WriteParams(t.TempDir(), fx.params, ParamsFileOptions{DType: safetensors.BF16, Compressed: true})
	if err == nil || !strings.Contains(err.Error(), lin.Module) {
		t.Errorf("mixed value types: %v", err)
	}
}

// rewriteCompressed copies the compressed model in src to a new directory,
// letting edit change its tensors and metadata first; the checksums are then
// recomputed (when the metadata still parses), so that the loader's other
// checks are what rejects the edit.
func rewriteCompressed(t *testing.T, src string, edit func(tensors map[string]*safetensors.Tensor, meta map[string]string)) string {
	t.Helper()
	f, err := safetensors.Open(filepath.Join(src, safetensors.SingleFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tensors := map[string]*safetensors.Tensor{}
	for _, name := range f.Names() {
		info, _ := f.Info(name)
		b, _ := f.Bytes(name)
		tensors[name] = &safetensors.Tensor{Name: name, DType: info.DType, Shape: info.Shape, Data: slices.Clone(b)}
	}
	meta := f.Metadata()
	edit(tensors, meta)
	var list []safetensors.Tensor
	for _, tensor := range tensors {
		list = append(list, *tensor)
	}
	var m compressionMeta
	if json.Unmarshal([]byte(meta[CompressionMetadataKey]), &m) == nil && m.CRC32C != nil {
		m.CRC32C = tensorChecksums(list)
		b, _ := json.Marshal(m)
		meta[CompressionMetadataKey] = string(b)
	}
	dst := t.TempDir()
	if err := safetensors.Write(filepath.Join(dst, safetensors.SingleFileName), list, meta); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(src, HFConfigFileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, HFConfigFileName), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestCompressedCorruptFilesAreErrors(t *testing.T) {
	cfg := compressedTestConfig(false, false)
	fx := newCompressedFixture(t, cfg, bitmap.BF16, 61)
	good := writeCompressedFixture(t, fx, bitmap.BF16)
	const q = "model.layers.1.self_attn.q_proj.weight"
	const down = "model.layers.0.mlp.down_proj.weight"
	editMeta := func(meta map[string]string, change func(m *compressionMeta)) {
		var m compressionMeta
		if err := json.Unmarshal([]byte(meta[CompressionMetadataKey]), &m); err != nil {
			t.Fatal(err)
		}
		change(&m)
		b, _ := json.Marshal(m)
		meta[CompressionMetadataKey] = string(b)
	}
	cases := []struct {
		name string
		edit func(ts map[string]*safetensors.Tensor, meta map[string]string)
		want []string
	}{
		{"truncated values", func(ts map[string]*safetensors.Tensor, meta map[string]string) {
			v := ts[q+ValuesSuffix]
			v.Shape = []int{v.Shape[0] - 3}
			v.Data = v.Data[:len(v.Data)-6]
		}, []string{q + ValuesSuffix, "shape"}},
		{"values count disagrees with row_ptr", func(ts map[string]*safetensors.Tensor, meta map[string]string) {
			v := ts[q+ValuesSuffix]
			v.Shape = []int{v.Shape[0] - 1}
			v.Data = v.Data[:len(v.Data)-2]
			editMeta(meta, func(m *compressionMeta) {
				tm := m.Tensors[q]
				tm.NNZ--
				m.Tensors[q] = tm
			})
		}, []string{q, "row_ptr"}},
		{"decreasing row_ptr", func(ts map[string]*safetensors.Tensor, meta map[string]string) {
			rp := ts[q+RowPtrSuffix].Data
			copy(rp[8:12], rp[4:8]) // row_ptr[2] = row_ptr[1] ...
			rp[4], rp[5], rp[6], rp[7] = 0xff, 0xff, 0, 0
		}, []string{q, "row_ptr"}},
		{"bitmap popcount disagrees", func(ts map[string]*safetensors.Tensor, meta map[string]string) {
			ts[q+BitmapSuffix].Data[5] ^= 0x10
		}, []string{q, "nonzeros"}},
		{"mask bits past the last column", func(ts map[string]*safetensors.Tensor, meta map[string]string) {
			b := ts[down+BitmapSuffix].Data
			chunks := (cfg.Intermediate + 15) / 16
			b[2*(2*chunks-1)+1] |= 0x80 // row 1, last chunk, bit 15
		}, []string{down, "past column"}},
		{"bitmap of the wrong dtype", func(ts map[string]*safetensors.Tensor, meta map[string]string) {
			ts[q+BitmapSuffix].DType = safetensors.I16
		}, []string{q + BitmapSuffix, "I16"}},
		{"missing row_ptr", func(ts map[string]*safetensors.Tensor, meta map[string]string) {
			delete(ts, q+RowPtrSuffix)
		}, []string{q + RowPtrSuffix, "missing"}},
		{"wrong value dtype", func(ts map[string]*safetensors.Tensor, meta map[string]string) {
			editMeta(meta, func(m *compressionMeta) { m.ValueDType = "fp16" })
		}, []string{"dtype BF16, want F16"}},
		{"unknown version", func(ts map[string]*safetensors.Tensor, meta map[string]string) {
			editMeta(meta, func(m *compressionMeta) { m.Version = 2 })
		}, []string{CompressionMetadataKey, "version 2"}},
		{"unparsable metadata", func(ts map[string]*safetensors.Tensor, meta map[string]string) {
			meta[CompressionMetadataKey] = "{"
		}, []string{CompressionMetadataKey}},
		{"compressed embedding", func(ts map[string]*safetensors.Tensor, meta map[string]string) {
			editMeta(meta, func(m *compressionMeta) {
				m.Tensors[EmbedTokensName] = compressedTensorMeta{Shape: []int{cfg.Vocab, cfg.Hidden}, NNZ: 1}
			})
		}, []string{EmbedTokensName, "not a projection"}},
		{"nnz out of range", func(ts map[string]*safetensors.Tensor, meta map[string]string) {
			editMeta(meta, func(m *compressionMeta) {
				tm := m.Tensors[q]
				tm.NNZ = -4
				m.Tensors[q] = tm
			})
		}, []string{q, "nnz -4"}},
		{"stored twice", func(ts map[string]*safetensors.Tensor, meta map[string]string) {
			ts[q] = &safetensors.Tensor{Name: q, DType: safetensors.BF16, Shape: []int{32, 32}, Data: make([]byte, 2*32*32)}
		}, []string{q, "both"}},
		{"adapter of the wrong shape", func(ts map[string]*safetensors.Tensor, meta map[string]string) {
			name := "model.layers.0.self_attn.q_proj" + AdapterBSuffix
			b := ts[name]
			b.Shape = []int{b.Shape[1], b.Shape[0]}
		}, []string{"model.layers.0.self_attn.q_proj" + AdapterBSuffix, "shape"}},
		{"adapter of an unknown module", func(ts map[string]*safetensors.Tensor, meta map[string]string) {
			var m adaptersMeta
			json.Unmarshal([]byte(meta[AdaptersMetadataKey]), &m)
			m.Modules["model.layers.9.self_attn.q_proj"] = adapterMeta{Rank: 1}
			b, _ := json.Marshal(m)
			meta[AdaptersMetadataKey] = string(b)
		}, []string{"model.layers.9.self_attn.q_proj"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := rewriteCompressed(t, good, c.edit)
			_, err := Load(dir)
			if err == nil {
				t.Fatal("accepted a corrupted file")
			}
			for _, want := range append(c.want, filepath.Join(dir, safetensors.SingleFileName)) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
	t.Run("truncated file", func(t *testing.T) {
		path := filepath.Join(good, safetensors.SingleFileName)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		dir := rewriteCompressed(t, good, func(map[string]*safetensors.Tensor, map[string]string) {})
		cut := filepath.Join(dir, safetensors.SingleFileName)
		if err := os.WriteFile(cut, b[:len(b)-100], 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), cut) {
			t.Errorf("truncated file: %v", err)
		}
	})
}

// flipInFile loads the compressed model file of dir, lets change edit the
// data bytes of tensor name in place and writes the file back, metadata
// untouched.
func flipInFile(t *testing.T, dir, name string, change func(data []byte)) {
	t.Helper()
	path := filepath.Join(dir, safetensors.SingleFileName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Parse(b, path)
	if err != nil {
		t.Fatal(err)
	}
	info, ok := f.Info(name)
	if !ok {
		t.Fatalf("no tensor %q", name)
	}
	start := 8 + int(binary.LittleEndian.Uint64(b))
	change(b[start+int(info.Begin) : start+int(info.End)])
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCompressedChecksumsCatchSilentCorruption flips bits that the structural
// checks cannot see: a value byte, a bit of the embedding, and a
// popcount-preserving swap of a set and a clear bit in one mask word. Each
// load must fail naming the file and the tensor.
func TestCompressedChecksumsCatchSilentCorruption(t *testing.T) {
	cfg := compressedTestConfig(false, false)
	fx := newCompressedFixture(t, cfg, bitmap.BF16, 62)
	const q = "model.layers.1.self_attn.q_proj.weight"
	cases := []struct {
		tensor string
		change func(data []byte)
	}{
		{q + ValuesSuffix, func(data []byte) { data[7] ^= 0x01 }},
		{EmbedTokensName, func(data []byte) { data[100] ^= 0x20 }},
		{q + BitmapSuffix, func(data []byte) {
			for i := 0; i+1 < len(data); i += 2 {
				w := binary.LittleEndian.Uint16(data[i:])
				if w == 0 || w == 0xffff {
					continue
				}
				set, clear := bits.TrailingZeros16(w), bits.TrailingZeros16(^w)
				binary.LittleEndian.PutUint16(data[i:], w^(1<<set|1<<clear))
				return
			}
			t.Fatal("no mask word with both set and clear bits")
		}},
	}
	for _, c := range cases {
		t.Run(c.tensor, func(t *testing.T) {
			dir := writeCompressedFixture(t, fx, bitmap.BF16)
			if _, err := Load(dir); err != nil {
				t.Fatalf("intact file: %v", err)
			}
			flipInFile(t, dir, c.tensor, c.change)
			_, err := Load(dir)
			if err == nil {
				t.Fatal("loaded a corrupted file")
			}
			for _, want := range []string{filepath.Join(dir, safetensors.SingleFileName), strconv.Quote(c.tensor), "corrupted"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

// TestCompressedFileWithoutChecksumsLoads: a file written before the
// checksums existed (no "crc32c" entry) still loads, unverified.
func TestCompressedFileWithoutChecksumsLoads(t *testing.T) {
	cfg := compressedTestConfig(false, false)
	fx := newCompressedFixture(t, cfg, bitmap.F32, 63)
	good := writeCompressedFixture(t, fx, bitmap.F32)
	dir := rewriteCompressed(t, good, func(_ map[string]*safetensors.Tensor, meta map[string]string) {
		var m compressionMeta
		if err := json.Unmarshal([]byte(meta[CompressionMetadataKey]), &m); err != nil || m.CRC32C == nil {
			t.Fatalf("metadata %v without checksums", err)
		}
		m.CRC32C = nil
		b, _ := json.Marshal(m)
		meta[CompressionMetadataKey] = string(b)
	})
	p := loadParams(t, dir)
	checkLoadedCompressed(t, fx, p, bitmap.F32)
}

// FuzzCompressedFile feeds corrupted compressed model files to the loader: it
// must return an error or a model whose kernels run, never read out of
// bounds or panic.
func FuzzCompressedFile(f *testing.F) {
	cfg := compressedTestConfig(true, false)
	cfg.Layers, cfg.Hidden, cfg.Intermediate, cfg.Heads, cfg.KVHeads, cfg.Vocab = 1, 16, 24, 2, 1, 8
	for i, dt := range []bitmap.DType{bitmap.BF16, bitmap.F32} {
		fx := newCompressedFixture(f, cfg, dt, uint64(70+i))
		dir := writeCompressedFixture(f, fx, dt)
		b, err := os.ReadFile(filepath.Join(dir, safetensors.SingleFileName))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ck, err := parseCompressed(data, "fuzz.safetensors", cfg, false)
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.safetensors") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		p, err := NewParams(ck)
		if err != nil {
			return
		}
		r := NewRunner(p)
		tokens := []int{1, 2, 3}
		if _, err := r.Forward([][]int{tokens}, []*Cache{r.NewCache(len(tokens))}, true); err != nil {
			t.Fatal(err)
		}
		for _, L := range p.Layers {
			for _, lin := range L.Proj {
				dx := make([]float32, 20*lin.Base.Cols())
				lin.Base.Mul(dx, make([]float32, 20*lin.Base.Rows()), 20)
			}
		}
	})
}
