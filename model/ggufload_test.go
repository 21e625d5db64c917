package model

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/salr-go/salr/internal/ggufbuild"
	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/model/gguf"
)

// stories260KVocab parses tok512.bin independently of the tokenizer package:
// the pieces in SentencePiece form, their scores and llama.cpp token types.
func stories260KVocab(t *testing.T) (pieces []string, scores []float32, types []int32) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(checkpointTestAssets(t), "stories260K", "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	for off := 4; off < len(data); {
		score := math.Float32frombits(binary.LittleEndian.Uint32(data[off:]))
		n := int(binary.LittleEndian.Uint32(data[off+4:]))
		raw := string(data[off+8 : off+8+n])
		off += 8 + n
		id := len(pieces)
		typ := int32(1)
		switch {
		case id == 0:
			typ, raw = 2, "<unk>"
		case id == 1:
			typ, raw = 3, "<s>"
		case id == 2:
			typ, raw = 3, "</s>"
		case id <= 258:
			typ = 6
		}
		pieces = append(pieces, strings.ReplaceAll(raw, " ", "\u2581"))
		scores = append(scores, score)
		types = append(types, typ)
	}
	return pieces, scores, types
}

// ggufMatrix encodes an HF [out, in] matrix as a GGUF tensor of type typ.
func ggufMatrix(name string, w []float32, rows, cols int, typ uint32) ggufbuild.Tensor {
	t := ggufbuild.Tensor{Name: name, Dims: []uint64{uint64(cols), uint64(rows)}, Type: typ}
	switch typ {
	case 0:
		t.Data = ggufbuild.F32(w)
	case 1:
		h := make([]uint16, len(w))
		for i, v := range w {
			h[i] = kernels.Float32ToF16(v)
		}
		t.Data = ggufbuild.Halves(h)
	case 30:
		h := make([]uint16, len(w))
		for i, v := range w {
			h[i] = kernels.Float32ToBF16(v)
		}
		t.Data = ggufbuild.Halves(h)
	case 8:
		t.Data = ggufbuild.Q8_0(w, kernels.Float32ToF16, kernels.F16ToFloat32)
	}
	return t
}

// storiesGGUF writes stories260K, taken from its HF directory, as a GGUF
// file the way llama.cpp's converter lays it out: llama.* keys,
// tokenizer.ggml.* keys, llama.cpp tensor names, q/k rows in interleaved
// order, matrices of type typ (Q8_0 only where rows are whole blocks: the
// FFN's 172 columns are not, so down_proj stays F32) and vectors in F32.
func storiesGGUF(t *testing.T, typ uint32) (path string, hf *Checkpoint) {
	t.Helper()
	src, err := LoadLlama2C(stories260KPath(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "hf")
	if err := WriteHF(dir, src, "F32"); err != nil {
		t.Fatal(err)
	}
	src.Close()
	if hf, err = LoadHF(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hf.Close() })
	c := hf.Config
	b := &ggufbuild.Builder{}
	b.KV("general.architecture", "llama")
	b.KV("general.name", "stories260K")
	b.KV("llama.context_length", uint32(c.MaxPositions))
	b.KV("llama.embedding_length", uint32(c.Hidden))
	b.KV("llama.block_count", uint32(c.Layers))
	b.KV("llama.feed_forward_length", uint32(c.Intermediate))
	b.KV("llama.rope.dimension_count", uint32(c.HeadDim))
	b.KV("llama.attention.head_count", uint32(c.Heads))
	b.KV("llama.attention.head_count_kv", uint32(c.KVHeads))
	b.KV("llama.attention.layer_norm_rms_epsilon", float32(c.RMSNormEps))
	b.KV("llama.rope.freq_base", float32(c.RopeTheta))
	pieces, scores, types := stories260KVocab(t)
	b.KV("tokenizer.ggml.model", "llama")
	b.KV("tokenizer.ggml.tokens", pieces)
	b.KV("tokenizer.ggml.scores", scores)
	b.KV("tokenizer.ggml.token_type", types)
	b.KV("tokenizer.ggml.bos_token_id", uint32(1))
	b.KV("tokenizer.ggml.eos_token_id", uint32(2))
	b.KV("tokenizer.ggml.unknown_token_id", uint32(0))
	b.KV("tokenizer.ggml.add_bos_token", true)
	vec := func(name string, w []float32) {
		b.Add(ggufbuild.Tensor{Name: name, Dims: []uint64{uint64(len(w))}, Type: 0, Data: ggufbuild.F32(w)})
	}
	b.Add(ggufMatrix("token_embd.weight", hf.Tensors[EmbedTokensName].Data, c.Vocab, c.Hidden, typ))
	vec("output_norm.weight", hf.Tensors[FinalNormName].Data)
	for l := range c.Layers {
		blk := "blk." + strconv.Itoa(l) + "."
		w := func(suffix string) []float32 { return hf.Tensors[LayerTensorName(l, suffix)].Data }
		vec(blk+"attn_norm.weight", w("input_layernorm.weight"))
		vec(blk+"ffn_norm.weight", w("post_attention_layernorm.weight"))
		b.Add(ggufMatrix(blk+"attn_q.weight", ggufbuild.PermuteQK(w("self_attn.q_proj.weight"), c.Heads, c.Hidden), c.QDim(), c.Hidden, typ))
		b.Add(ggufMatrix(blk+"attn_k.weight", ggufbuild.PermuteQK(w("self_attn.k_proj.weight"), c.KVHeads, c.Hidden), c.KVDim(), c.Hidden, typ))
		b.Add(ggufMatrix(blk+"attn_v.weight", w("self_attn.v_proj.weight"), c.KVDim(), c.Hidden, typ))
		b.Add(ggufMatrix(blk+"attn_output.weight", w("self_attn.o_proj.weight"), c.Hidden, c.QDim(), typ))
		b.Add(ggufMatrix(blk+"ffn_gate.weight", w("mlp.gate_proj.weight"), c.Intermediate, c.Hidden, typ))
		b.Add(ggufMatrix(blk+"ffn_up.weight", w("mlp.up_proj.weight"), c.Intermediate, c.Hidden, typ))
		downType := typ
		if typ == 8 {
			downType = 0
		}
		b.Add(ggufMatrix(blk+"ffn_down.weight", w("mlp.down_proj.weight"), c.Hidden, c.Intermediate, downType))
	}
	path = filepath.Join(t.TempDir(), "stories260K.gguf")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, hf
}

// TestLoadGGUFStories260KF32: an F32 GGUF of stories260K loads as exactly
// the HF checkpoint (same configuration, bit-identical tensors after the
// q/k rows are permuted back) and reproduces the reference outputs; Open
// takes the tokenizer from the file and greedy generation gives the
// reference tokens and text.
func TestLoadGGUFStories260KF32(t *testing.T) {
	path, hf := storiesGGUF(t, 0)
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, hf.Config) {
		t.Fatalf("config %+v\nwant %+v", cfg, hf.Config)
	}
	ck, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if len(ck.Tensors) != len(hf.Tensors) {
		t.Fatalf("%d tensors, want %d", len(ck.Tensors), len(hf.Tensors))
	}
	for name, w := range hf.Tensors {
		got := ck.Tensors[name]
		if got == nil || !slices.Equal(got.Shape, w.Shape) || !slices.Equal(got.Data, w.Data) {
			t.Fatalf("tensor %s differs from the HF checkpoint", name)
		}
	}
	checkReferenceOutputs(t, ck, 1e-3)

	tokPath, err := DefaultTokenizerPath(path)
	if err != nil || tokPath != path {
		t.Fatalf("DefaultTokenizerPath = %q, %v", tokPath, err)
	}
	m, err := Open(path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if !m.Tokenizer.AddBOS() || m.Tokenizer.EOS() != 2 {
		t.Fatalf("AddBOS %v EOS %d", m.Tokenizer.AddBOS(), m.Tokenizer.EOS())
	}
	checkReferenceContinuation(t, m)
}

// TestLoadGGUFStories260KHalfAndQ8_0: F16, BF16 and Q8_0 matrices load as
// their exact dequantized values (computed here from the test's own
// encoding), BF16 matrices as bf16 views, and the model's logits stay close
// to the F32 model's.
func TestLoadGGUFStories260KHalfAndQ8_0(t *testing.T) {
	for _, c := range []struct {
		name   string
		typ    uint32
		logits float64 // max |Δlogit| against F32 on the prompt
	}{{"F16", 1, 0.02}, {"BF16", 30, 0.1}, {"Q8_0", 8, 0.3}} {
		t.Run(c.name, func(t *testing.T) {
			path, hf := storiesGGUF(t, c.typ)
			ck, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			defer ck.Close()
			cfg := hf.Config
			for name, w := range hf.Tensors {
				got := ck.Tensors[name]
				if got == nil || !slices.Equal(got.Shape, w.Shape) {
					t.Fatalf("tensor %s: %v", name, got)
				}
				if len(w.Shape) == 1 || (c.typ == 8 && strings.HasSuffix(name, "down_proj.weight")) {
					if !slices.Equal(got.Data, w.Data) {
						t.Fatalf("F32 tensor %s changed", name)
					}
					continue
				}
				if (got.BF16 != nil) != (c.typ == 30) {
					t.Fatalf("tensor %s: bf16 view %v for type %s", name, got.BF16 != nil, c.name)
				}
				// The expected values: the HF matrix through the type's
				// rounding, q/k permuted to llama.cpp's order and back.
				src := w.Data
				heads := 0
				if strings.HasSuffix(name, "q_proj.weight") {
					heads = cfg.Heads
				} else if strings.HasSuffix(name, "k_proj.weight") {
					heads = cfg.KVHeads
				}
				if heads > 0 {
					src = ggufbuild.PermuteQK(src, heads, w.Shape[1])
				}
				want := make([]float32, len(src))
				switch c.typ {
				case 1:
					for i, v := range src {
						want[i] = kernels.F16ToFloat32(kernels.Float32ToF16(v))
					}
				case 30:
					for i, v := range src {
						want[i] = kernels.BF16ToFloat32(kernels.Float32ToBF16(v))
					}
				case 8:
					raw := ggufbuild.Q8_0(src, kernels.Float32ToF16, kernels.F16ToFloat32)
					for b := 0; b < len(raw)/34; b++ {
						d := kernels.F16ToFloat32(binary.LittleEndian.Uint16(raw[34*b:]))
						for i := range 32 {
							want[32*b+i] = d * float32(int8(raw[34*b+2+i]))
						}
					}
				}
				if heads > 0 {
					want = permuteRotaryRows(want, heads, cfg.HeadDim, w.Shape[1])
				}
				if !slices.Equal(got.Float32(), want) {
					t.Fatalf("tensor %s: values differ from its dequantized encoding", name)
				}
			}
			widened := &Checkpoint{Config: ck.Config, Tensors: map[string]*Tensor{}}
			for name, w := range ck.Tensors {
				widened.Tensors[name] = &Tensor{Shape: w.Shape, Data: w.Float32()}
			}
			ref, quant := &refModel{ck: hf}, &refModel{ck: widened}
			var worst float64
			for _, tok := range refPromptIDs {
				a, b := ref.step(tok), quant.step(tok)
				for i := range a {
					worst = max(worst, math.Abs(a[i]-b[i]))
				}
			}
			if worst > c.logits || worst == 0 {
				t.Errorf("max |logit difference| against F32 = %g, want in (0, %g]", worst, c.logits)
			}
			t.Logf("%s: max |logit difference| against F32 %.4g", c.name, worst)
		})
	}
}

// TestGGUFRowOrderMatchesRoPE: llama.cpp's converter permutation
// (ggufbuild.PermuteQK, HF -> interleaved) is undone exactly by
// permuteRotaryRows, and interleaved RoPE on the GGUF rows gives the same
// rotated vectors (up to that permutation) and attention scores as
// rotate-half RoPE on the HF rows.
func TestGGUFRowOrderMatchesRoPE(t *testing.T) {
	const heads, kvHeads, headDim, cols, theta = 4, 2, 8, 6, 10000.0
	rng := rand.New(rand.NewPCG(3, 4))
	wq, wk := randomFloat32s(rng, heads*headDim*cols), randomFloat32s(rng, kvHeads*headDim*cols)
	gq, gk := ggufbuild.PermuteQK(wq, heads, cols), ggufbuild.PermuteQK(wk, kvHeads, cols)
	if !slices.Equal(permuteRotaryRows(gq, heads, headDim, cols), wq) || !slices.Equal(permuteRotaryRows(gk, kvHeads, headDim, cols), wk) {
		t.Fatal("permuteRotaryRows does not undo llama.cpp's permutation")
	}
	if slices.Equal(gq, wq) {
		t.Fatal("the permutation is the identity; the test is vacuous")
	}
	x := make([]float64, cols)
	for i := range x {
		x[i] = rng.NormFloat64()
	}
	for _, pos := range []int{1, 5, 300} {
		qG, qH := matVec64(gq, x), matVec64(wq, x)
		kG, kH := matVec64(gk, x), matVec64(wk, x)
		ropeInterleaved(qG, headDim, pos, theta)
		ropeInterleaved(kG, headDim, pos/2, theta)
		ropeHalfSplit(qH, headDim, pos, theta)
		ropeHalfSplit(kH, headDim, pos/2, theta)
		for h := range heads {
			g := h / (heads / kvHeads)
			var sG, sH float64
			for d := range headDim {
				sG += qG[h*headDim+d] * kG[g*headDim+d]
				sH += qH[h*headDim+d] * kH[g*headDim+d]
				// GGUF row h*headDim+2i+j holds HF row h*headDim+j*headDim/2+i.
				i, j := d/2, d%2
				if hf := qH[h*headDim+j*headDim/2+i]; math.Abs(qG[h*headDim+d]-hf) > 1e-9*(1+math.Abs(hf)) {
					t.Fatalf("pos %d head %d dim %d: %v vs %v", pos, h, d, qG[h*headDim+d], hf)
				}
			}
			if math.Abs(sG-sH) > 1e-9*(1+math.Abs(sH)) {
				t.Fatalf("pos %d head %d: score %v (GGUF order) vs %v (HF order)", pos, h, sG, sH)
			}
		}
	}
}

// tinyLlamaGGUF is a valid 1-layer llama GGUF (hidden 32, 2 heads, FFN 64,
// vocab 8, tied head) whose metadata and tensors tests then change.
func tinyLlamaGGUF() *ggufbuild.Builder {
	b := &ggufbuild.Builder{}
	b.KV("general.architecture", "llama")
	b.KV("llama.context_length", uint32(64))
	b.KV("llama.embedding_length", uint32(32))
	b.KV("llama.block_count", uint32(1))
	b.KV("llama.feed_forward_length", uint32(64))
	b.KV("llama.attention.head_count", uint32(2))
	b.KV("llama.attention.layer_norm_rms_epsilon", float32(1e-5))
	ones := func(n int) []float32 {
		w := make([]float32, n)
		for i := range w {
			w[i] = 1 / float32(i+1)
		}
		return w
	}
	mat := func(name string, rows, cols int) {
		b.Add(ggufMatrix(name, ones(rows*cols), rows, cols, 0))
	}
	vec := func(name string, n int) {
		b.Add(ggufbuild.Tensor{Name: name, Dims: []uint64{uint64(n)}, Type: 0, Data: ggufbuild.F32(ones(n))})
	}
	mat("token_embd.weight", 8, 32)
	vec("output_norm.weight", 32)
	vec("blk.0.attn_norm.weight", 32)
	vec("blk.0.ffn_norm.weight", 32)
	for _, n := range []string{"attn_q", "attn_k", "attn_v", "attn_output"} {
		mat("blk.0."+n+".weight", 32, 32)
	}
	mat("blk.0.ffn_gate.weight", 64, 32)
	mat("blk.0.ffn_up.weight", 64, 32)
	mat("blk.0.ffn_down.weight", 32, 64)
	return b
}

func TestLoadGGUFErrorsNameTheKeyOrTensor(t *testing.T) {
	without := func(name string) func(*ggufbuild.Builder) *ggufbuild.Builder {
		return func(b *ggufbuild.Builder) *ggufbuild.Builder { b.Remove(name); return b }
	}
	cases := []struct {
		name   string
		modify func(*ggufbuild.Builder) *ggufbuild.Builder
		want   string
	}{
		{"valid", func(b *ggufbuild.Builder) *ggufbuild.Builder { return b }, ""},
		{"architecture", func(b *ggufbuild.Builder) *ggufbuild.Builder { b.Set("general.architecture", "gemma"); return b },
			`general.architecture "gemma" is not supported`},
		{"missing key", func(b *ggufbuild.Builder) *ggufbuild.Builder { b.Remove("llama.block_count"); return b },
			`missing metadata key "llama.block_count"`},
		{"key type", func(b *ggufbuild.Builder) *ggufbuild.Builder { b.Set("llama.embedding_length", "32"); return b },
			`metadata key "llama.embedding_length": want an integer, got a string`},
		{"zero", func(b *ggufbuild.Builder) *ggufbuild.Builder {
			b.Set("llama.attention.head_count", uint32(0))
			return b
		},
			`metadata key "llama.attention.head_count": 0 is out of range`},
		{"partial rope", func(b *ggufbuild.Builder) *ggufbuild.Builder {
			b.Set("llama.rope.dimension_count", uint32(8))
			return b
		},
			`llama.rope.dimension_count 8: rotary embeddings on part of each head`},
		{"rope scaling", func(b *ggufbuild.Builder) *ggufbuild.Builder { b.Set("llama.rope.scaling.type", "yarn"); return b },
			`llama.rope.scaling.type "yarn" is not supported`},
		{"vocab size", func(b *ggufbuild.Builder) *ggufbuild.Builder { b.Set("llama.vocab_size", uint32(9)); return b },
			`llama.vocab_size 9 differs from the 8 rows of tensor "token_embd.weight"`},
		{"missing tensor", without("blk.0.ffn_up.weight"),
			`missing tensor "model.layers.0.mlp.up_proj.weight" (GGUF "blk.0.ffn_up.weight")`},
		{"missing embedding", without("token_embd.weight"), `missing tensor "token_embd.weight"`},
		{"extra tensor", func(b *ggufbuild.Builder) *ggufbuild.Builder {
			b.Add(ggufbuild.Tensor{Name: "blk.0.attn_q_norm.weight", Dims: []uint64{16}, Type: 0, Data: make([]byte, 64)})
			return b
		}, `tensor "blk.0.attn_q_norm.weight" is not part of a llama model`},
		{"extra layer", func(b *ggufbuild.Builder) *ggufbuild.Builder {
			b.Add(ggufbuild.Tensor{Name: "blk.1.attn_norm.weight", Dims: []uint64{32}, Type: 0, Data: make([]byte, 128)})
			return b
		}, `"model.layers.1.input_layernorm.weight" (GGUF "blk.1.attn_norm.weight") is not part of the model`},
		{"wrong shape", func(b *ggufbuild.Builder) *ggufbuild.Builder {
			b.Remove("blk.0.ffn_down.weight")
			b.Add(ggufMatrix("blk.0.ffn_down.weight", make([]float32, 64*32), 64, 32, 0))
			return b
		}, `tensor "model.layers.0.mlp.down_proj.weight" (GGUF "blk.0.ffn_down.weight") has shape [64 32], but the configuration implies [32 64]`},
		{"non-finite", func(b *ggufbuild.Builder) *ggufbuild.Builder {
			b.Remove("output_norm.weight")
			w := make([]float32, 32)
			w[3] = float32(math.Inf(1))
			b.Add(ggufbuild.Tensor{Name: "output_norm.weight", Dims: []uint64{32}, Type: 0, Data: ggufbuild.F32(w)})
			return b
		}, `tensor "output_norm.weight"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.gguf")
			if err := os.WriteFile(path, c.modify(tinyLlamaGGUF()).Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			ck, err := Load(path)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if ck.Config.KVHeads != 2 || ck.Config.HeadDim != 16 || !ck.Config.TieEmbeddings || ck.Config.RopeTheta != 10000 {
					t.Errorf("config %+v", ck.Config)
				}
				ck.Close()
				return
			}
			if err == nil {
				ck.Close()
				t.Fatal("loaded without error")
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q\nwant it to name %s and contain %q", err, path, c.want)
			}
		})
	}
	// A file that is not GGUF at all, under a .gguf name.
	path := filepath.Join(t.TempDir(), "fake.gguf")
	if err := os.WriteFile(path, []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, load := range []func(string) error{
		func(p string) error { _, err := Load(p); return err },
		func(p string) error { _, err := LoadConfig(p); return err },
		func(p string) error { _, err := Open(p, ""); return err },
	} {
		if err := load(path); err == nil || !strings.Contains(err.Error(), path+": not a GGUF file") {
			t.Errorf("error %v", err)
		}
	}
}

// TestLoadGGUFQwen2KeepsRowOrder: a qwen2 GGUF reads qwen2.* keys, maps the
// q/k/v biases, and keeps q/k rows as stored (llama.cpp converts Qwen2
// without the RoPE permutation).
func TestLoadGGUFQwen2KeepsRowOrder(t *testing.T) {
	b := tinyLlamaGGUF()
	var kvs [][2]any
	for _, key := range []string{"context_length", "embedding_length", "block_count", "feed_forward_length", "attention.head_count", "attention.layer_norm_rms_epsilon"} {
		v, _ := b.Get("llama." + key)
		kvs = append(kvs, [2]any{"qwen2." + key, v})
		b.Remove("llama." + key)
	}
	for _, kv := range kvs {
		b.KV(kv[0].(string), kv[1])
	}
	b.Set("general.architecture", "qwen2")
	for _, n := range []string{"attn_q", "attn_k", "attn_v"} {
		bias := make([]float32, 32)
		bias[1] = 0.5
		b.Add(ggufbuild.Tensor{Name: "blk.0." + n + ".bias", Dims: []uint64{32}, Type: 0, Data: ggufbuild.F32(bias)})
	}
	path := filepath.Join(t.TempDir(), "q.gguf")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ck, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if ck.Config.ModelType != "qwen2" || !ck.Config.AttentionBias {
		t.Fatalf("config %+v", ck.Config)
	}
	q := ck.Tensors[LayerTensorName(0, "self_attn.q_proj.weight")].Data
	for i, v := range q {
		if v != 1/float32(i+1) {
			t.Fatalf("q_proj[%d] = %v: rows were reordered", i, v)
		}
	}
	if bias := ck.Tensors[LayerTensorName(0, "self_attn.k_proj.bias")]; bias == nil || bias.Data[1] != 0.5 {
		t.Fatal("k_proj bias missing or wrong")
	}
}

// FuzzLoadGGUF: no file that parses as GGUF panics the model loader; it
// loads or gives an error naming the file.
func FuzzLoadGGUF(f *testing.F) {
	f.Add(tinyLlamaGGUF().Bytes())
	b := tinyLlamaGGUF()
	b.Set("llama.attention.head_count_kv", uint32(1))
	b.Set("llama.rope.scaling.type", "linear")
	b.Set("llama.rope.scaling.factor", float32(2))
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := gguf.Parse(data, "fuzz.gguf")
		if err != nil {
			return
		}
		ck, err := loadGGUF(file)
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.gguf") {
				t.Fatalf("error without the file name: %v", err)
			}
			return
		}
		if _, err := NewParams(ck); err != nil {
			t.Fatalf("loaded, but NewParams fails: %v", err)
		}
	})
}

// BenchmarkLoadGGUFQ8_0 loads a Q8_0 GGUF of 15.2M parameters (hidden 512,
// 4 layers, FFN 1408, vocab 4096): parsing, dequantization to float32, the
// q/k permutation and the finiteness checks.
func BenchmarkLoadGGUFQ8_0(b *testing.B) {
	const hidden, layers, ffn, vocab = 512, 4, 1408, 4096
	rng := rand.New(rand.NewPCG(5, 6))
	gb := &ggufbuild.Builder{}
	gb.KV("general.architecture", "llama")
	for key, v := range map[string]uint32{"context_length": 2048, "embedding_length": hidden, "block_count": layers,
		"feed_forward_length": ffn, "attention.head_count": 8} {
		gb.KV("llama."+key, v)
	}
	gb.KV("llama.attention.layer_norm_rms_epsilon", float32(1e-5))
	params := 0
	mat := func(name string, rows, cols int) {
		gb.Add(ggufMatrix(name, randomFloat32s(rng, rows*cols), rows, cols, 8))
		params += rows * cols
	}
	vec := func(name string) {
		gb.Add(ggufbuild.Tensor{Name: name, Dims: []uint64{hidden}, Type: 0, Data: ggufbuild.F32(randomFloat32s(rng, hidden))})
		params += hidden
	}
	mat("token_embd.weight", vocab, hidden)
	vec("output_norm.weight")
	for l := range layers {
		blk := "blk." + strconv.Itoa(l) + "."
		vec(blk + "attn_norm.weight")
		vec(blk + "ffn_norm.weight")
		for _, n := range []string{"attn_q", "attn_k", "attn_v", "attn_output"} {
			mat(blk+n+".weight", hidden, hidden)
		}
		mat(blk+"ffn_gate.weight", ffn, hidden)
		mat(blk+"ffn_up.weight", ffn, hidden)
		mat(blk+"ffn_down.weight", hidden, ffn)
	}
	path := filepath.Join(b.TempDir(), "bench.gguf")
	data := gb.Bytes()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		ck, err := Load(path)
		if err != nil {
			b.Fatal(err)
		}
		ck.Close()
	}
	b.ReportMetric(float64(params)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mparams/s")
}
