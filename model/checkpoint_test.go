package model

import (
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/kernels/bitmap"
	"github.com/salr-go/salr/model/safetensors"
)

// tinyQwen2Config is a small architecture with q/k/v biases and GQA.
func tinyQwen2Config(tied bool) Config {
	return Config{
		ModelType: "qwen2", Hidden: 16, Intermediate: 24, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 4,
		Vocab: 11, MaxPositions: 64, RMSNormEps: 1e-6, RopeTheta: 10000, TieEmbeddings: tied,
		AttentionBias: true, BOSTokenID: -1, EOSTokenIDs: []int{10}, TorchDtype: "bfloat16",
	}
}

// tinyRandomCheckpoint fills every tensor cfg implies with Gaussian values.
func tinyRandomCheckpoint(cfg Config, seed uint64) *Checkpoint {
	rng := rand.New(rand.NewPCG(seed, 7))
	ck := &Checkpoint{Config: cfg, Tensors: map[string]*Tensor{}, Source: "random"}
	shapes := cfg.TensorShapes()
	// In name order: one random stream fills them all, so the order decides
	// the values.
	for _, name := range slices.Sorted(maps.Keys(shapes)) {
		shape := shapes[name]
		n := 1
		for _, d := range shape {
			n *= d
		}
		ck.Tensors[name] = &Tensor{Shape: shape, Data: randomFloat32s(rng, n)}
	}
	return ck
}

// writeRawHFDir writes config.json and the given tensors (BF16) into dir,
// split across shards when shards > 1. It deliberately avoids WriteHF.
func writeRawHFDir(t *testing.T, dir string, cfg Config, tensors map[string]*Tensor, shards int) {
	t.Helper()
	text, err := cfg.MarshalHF()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, HFConfigFileName), text, 0o644); err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(tensors))
	for name := range tensors {
		names = append(names, name)
	}
	sort.Strings(names)
	files := make([][]safetensors.Tensor, shards)
	var index []string
	for i, name := range names {
		data, err := safetensors.EncodeFloat32(tensors[name].Data, safetensors.BF16)
		if err != nil {
			t.Fatal(err)
		}
		files[i%shards] = append(files[i%shards], safetensors.Tensor{Name: name, DType: safetensors.BF16, Shape: tensors[name].Shape, Data: data})
		index = append(index, `"`+name+`": "`+shardName(i%shards, shards)+`"`)
	}
	for s, list := range files {
		if err := safetensors.Write(filepath.Join(dir, shardName(s, shards)), list, nil); err != nil {
			t.Fatal(err)
		}
	}
	if shards > 1 {
		doc := `{"metadata": {"total_size": 0}, "weight_map": {` + strings.Join(index, ", ") + `}}`
		if err := os.WriteFile(filepath.Join(dir, safetensors.IndexFileName), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func shardName(i, shards int) string {
	if shards == 1 {
		return safetensors.SingleFileName
	}
	return "model-0000" + string(rune('1'+i)) + "-of-0000" + string(rune('0'+shards)) + ".safetensors"
}

func bf16Rounded(v []float32) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = kernels.BF16ToFloat32(kernels.Float32ToBF16(x))
	}
	return out
}

func TestLoadHFSingleAndSharded(t *testing.T) {
	for _, shards := range []int{1, 3} {
		src := tinyRandomCheckpoint(tinyQwen2Config(false), 1)
		tensors := map[string]*Tensor{
			// Extra tensors are ignored.
			"model.layers.0.self_attn.rotary_emb.inv_freq": {Shape: []int{2}, Data: []float32{1, 0.01}},
		}
		for name, tensor := range src.Tensors {
			tensors[name] = tensor
		}
		dir := t.TempDir()
		writeRawHFDir(t, dir, src.Config, tensors, shards)
		ck, err := Load(dir)
		if err != nil {
			t.Fatalf("%d shards: %v", shards, err)
		}
		if !equalConfigs(ck.Config, src.Config) || ck.Source != dir {
			t.Errorf("config %+v, source %s", ck.Config, ck.Source)
		}
		if len(ck.Tensors) != len(src.Tensors) {
			t.Errorf("%d tensors, want %d", len(ck.Tensors), len(src.Tensors))
		}
		for name, want := range src.Tensors {
			got := ck.Tensors[name]
			if got == nil || !slices.Equal(got.Shape, want.Shape) || !slices.Equal(got.Float32(), bf16Rounded(want.Data)) {
				t.Fatalf("%d shards: tensor %s differs", shards, name)
			}
		}
		if err := ck.Close(); err != nil {
			t.Error(err)
		}
	}
}

func equalConfigs(a, b Config) bool {
	text1, err1 := a.MarshalHF()
	text2, err2 := b.MarshalHF()
	return err1 == nil && err2 == nil && string(text1) == string(text2)
}

func TestLoadHFTiedHead(t *testing.T) {
	cfg := tinyQwen2Config(true)
	src := tinyRandomCheckpoint(cfg, 2)
	// A tied checkpoint that still carries lm_head.weight: ignored.
	withHead := map[string]*Tensor{LMHeadName: {Shape: []int{cfg.Vocab, cfg.Hidden}, Data: make([]float32, cfg.Vocab*cfg.Hidden)}}
	for name, tensor := range src.Tensors {
		withHead[name] = tensor
	}
	dir := t.TempDir()
	writeRawHFDir(t, dir, cfg, withHead, 1)
	ck, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if _, ok := ck.Tensors[LMHeadName]; ok {
		t.Error("tied checkpoint kept lm_head.weight")
	}
}

func TestLoadHFErrors(t *testing.T) {
	cfg := tinyQwen2Config(false)
	base := tinyRandomCheckpoint(cfg, 3)
	without := func(name string) map[string]*Tensor {
		out := map[string]*Tensor{}
		for n, tensor := range base.Tensors {
			if n != name {
				out[n] = tensor
			}
		}
		return out
	}
	reshaped := without("")
	reshaped["model.layers.1.self_attn.k_proj.weight"] = &Tensor{Shape: []int{16, 8}, Data: make([]float32, 128)}

	cases := []struct {
		name    string
		tensors map[string]*Tensor
		shards  int
		want    []string
	}{
		{"missing bias", without("model.layers.1.self_attn.v_proj.bias"), 1, []string{"model.safetensors", `"model.layers.1.self_attn.v_proj.bias"`}},
		{"untied without head", without(LMHeadName), 2, []string{safetensors.IndexFileName, `"lm_head.weight"`}},
		{"wrong shape", reshaped, 2, []string{".safetensors", `"model.layers.1.self_attn.k_proj.weight"`, "[16 8]", "[8 16]"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeRawHFDir(t, dir, cfg, c.tensors, c.shards)
			_, err := Load(dir)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, want := range c.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}

	t.Run("integer tensor", func(t *testing.T) {
		dir := t.TempDir()
		writeRawHFDir(t, dir, cfg, base.Tensors, 1)
		var list []safetensors.Tensor
		for name, tensor := range base.Tensors {
			dtype, data := safetensors.F32, safetensors.Float32View(tensor.Data)
			if name == FinalNormName {
				dtype = safetensors.I32
			}
			list = append(list, safetensors.Tensor{Name: name, DType: dtype, Shape: tensor.Shape, Data: data})
		}
		if err := safetensors.Write(filepath.Join(dir, safetensors.SingleFileName), list, nil); err != nil {
			t.Fatal(err)
		}
		_, err := Load(dir)
		if err == nil || !strings.Contains(err.Error(), FinalNormName) || !strings.Contains(err.Error(), "I32") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("no config", func(t *testing.T) {
		dir := t.TempDir()
		writeRawHFDir(t, dir, cfg, base.Tensors, 1)
		os.Remove(filepath.Join(dir, HFConfigFileName))
		if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), HFConfigFileName) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("safetensors file instead of dir", func(t *testing.T) {
		dir := t.TempDir()
		writeRawHFDir(t, dir, cfg, base.Tensors, 1)
		if _, err := Load(filepath.Join(dir, safetensors.SingleFileName)); err == nil || !strings.Contains(err.Error(), "directory") {
			t.Errorf("err = %v", err)
		}
	})
}

// TestBF16MatricesStayBF16: a BF16 checkpoint's matrices reach the model as
// bf16 views of the mapped file (embedding, head, projections: no float32
// copy), its vectors as float32; the model computes what the float32 model
// of the same rounded weights computes; and a dropped tensor's released
// pages read back unchanged.
func TestBF16MatricesStayBF16(t *testing.T) {
	cfg := tinyQwen2Config(false)
	src := tinyRandomCheckpoint(cfg, 9)
	dir := t.TempDir()
	writeRawHFDir(t, dir, cfg, src.Tensors, 2)
	ck, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	for name, tensor := range ck.Tensors {
		if matrix := len(tensor.Shape) == 2; matrix != (tensor.BF16 != nil) || matrix == (tensor.Data != nil) {
			t.Errorf("%s %v: bf16 %v, float32 %v", name, tensor.Shape, tensor.BF16 != nil, tensor.Data != nil)
		}
	}
	p, err := NewParams(ck)
	if err != nil {
		t.Fatal(err)
	}
	for what, m := range map[string]kernels.Matrix[float32]{"embedding": p.Embed, "head": p.Head, "q_proj": p.Layers[1].Proj[QProj].Base} {
		if _, ok := m.(*bitmap.DenseBF16); !ok {
			t.Errorf("%s stored as %T, want bf16", what, m)
		}
	}

	// The same rounded weights in float32.
	rounded := &Checkpoint{Config: cfg, Tensors: map[string]*Tensor{}}
	for name, tensor := range src.Tensors {
		rounded.Tensors[name] = &Tensor{Shape: tensor.Shape, Data: bf16Rounded(tensor.Data)}
	}
	q, err := NewParams(rounded)
	if err != nil {
		t.Fatal(err)
	}
	ids := [][]int{{1, 5, 7, 3, 10, 0}}
	logits := func(p *Params[float32]) []float32 {
		r := NewRunner(p)
		out, err := r.Forward(ids, []*Cache{r.NewCache(len(ids[0]))}, true)
		if err != nil {
			t.Fatal(err)
		}
		return out[0]
	}
	got, want := logits(p), logits(q)
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 2e-4*(1+math.Abs(float64(want[i]))) { // float32 sums in another order
			t.Fatalf("logit %d: %v with bf16 storage, %v in float32", i, got[i], want[i])
		}
	}

	name := LayerTensorName(1, "mlp.up_proj.weight")
	view := ck.Tensors[name].BF16
	before := slices.Clone(view)
	ck.Drop(name)
	if _, ok := ck.Tensors[name]; ok {
		t.Error("Drop kept the tensor")
	}
	if !slices.Equal(view, before) {
		t.Error("a released view reads back different values")
	}
}
