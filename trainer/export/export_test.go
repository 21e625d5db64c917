package export

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/salr-go/salr/adapters"
	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/datasets/assets"
	"github.com/salr-go/salr/internal/testgguf"
	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/model/tokenizer"
	"github.com/salr-go/salr/trainer"
)

var (
	runOnce sync.Once
	runDir  string
	runErr  error
	tmpRoot string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if tmpRoot != "" {
		os.RemoveAll(tmpRoot)
	}
	os.Exit(code)
}

// trainedRun is a quickstart run shrunk to seconds (salr: a pruned bitmap
// base with LoRA and SVD adapters, a few steps so LoRA's B is not zero),
// made once for all tests.
func trainedRun(t *testing.T) string {
	t.Helper()
	assets.ForTest(t)
	runOnce.Do(func() {
		tmpRoot, runErr = os.MkdirTemp("", "salr-export-test")
		if runErr != nil {
			return
		}
		runDir = filepath.Join(tmpRoot, "run")
		var cfg *configs.Config
		cfg, runErr = configs.Load("quickstart.toml", []string{"output.dir=" + runDir,
			"data.seq_len=128", "data.max_examples=32", "data.eval_examples=0", "train.batch_size=4",
			"train.max_steps=4", "train.eval_every=0", "train.warmup_steps=1", "train.lr=3e-3",
			"adapters.lora_rank=4", "adapters.svd_rank=4"})
		if runErr == nil {
			_, runErr = trainer.Train(context.Background(), trainer.Options{Config: cfg})
		}
	})
	if runErr != nil {
		t.Fatal(runErr)
	}
	return runDir
}

// stTensor is a tensor read by readSafetensors.
type stTensor struct {
	dtype string
	shape []int
	data  []byte
}

// readSafetensors parses a safetensors file from its specification (an
// 8-byte header length, a JSON header of dtype, shape and data_offsets, the
// data), independently of package safetensors.
func readSafetensors(t *testing.T, path string) map[string]stTensor {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(b)
	var header map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &header); err != nil {
		t.Fatal(err)
	}
	data := b[8+n:]
	out := map[string]stTensor{}
	for name, raw := range header {
		if name == "__metadata__" {
			continue
		}
		var e struct {
			DType   string `json:"dtype"`
			Shape   []int  `json:"shape"`
			Offsets [2]int `json:"data_offsets"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatal(err)
		}
		out[name] = stTensor{e.DType, e.Shape, data[e.Offsets[0]:e.Offsets[1]]}
	}
	return out
}

// floats decodes F32 or BF16 data.
func (s stTensor) floats(t *testing.T) []float32 {
	var out []float32
	switch s.dtype {
	case "F32":
		for i := 0; i < len(s.data); i += 4 {
			out = append(out, math.Float32frombits(binary.LittleEndian.Uint32(s.data[i:])))
		}
	case "BF16":
		for i := 0; i < len(s.data); i += 2 {
			out = append(out, math.Float32frombits(uint32(binary.LittleEndian.Uint16(s.data[i:]))<<16))
		}
	default:
		t.Fatalf("dtype %s", s.dtype)
	}
	return out
}

// expectedMerged computes every projection's merged weight from the run's
// dense pruned base (base/) and its adapters with plain loops:
// W + Σ_k scale_k B[:,k] A[k,:].
func expectedMerged(t *testing.T, run string) map[string][]float32 {
	t.Helper()
	base := readSafetensors(t, filepath.Join(run, trainer.BaseDir, "model.safetensors"))
	mods, err := adapters.ReadNative(filepath.Join(run, trainer.AdapterDir, adapters.NativeFile))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]float32{}
	for name, st := range base {
		w := st.floats(t)
		if f, ok := mods[strings.TrimSuffix(name, ".weight")]; ok {
			for o := 0; o < f.Out; o++ {
				for i := 0; i < f.In; i++ {
					var s float64
					for k := 0; k < f.Rank; k++ {
						s += float64(f.B[o*f.Rank+k]) * float64(f.Scale[k]) * float64(f.A[k*f.In+i])
					}
					w[o*f.In+i] += float32(s)
				}
			}
		}
		out[name] = w
	}
	if len(mods) == 0 {
		t.Fatal("the run has no adapters")
	}
	return out
}

func maxDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var m float64
	for i := range a {
		m = max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

// logits runs the model over a prompt and returns the logits of every
// position.
func logits(t *testing.T, l *model.Loaded) []float32 {
	t.Helper()
	ids, err := l.Tokenizer.Encode("Question: Tom has 3 apples and buys 5 more. How many?\nAnswer:")
	if err != nil {
		t.Fatal(err)
	}
	ids = append([]int{l.Tokenizer.BOS()}, ids...)
	r := model.NewRunner(l.Params)
	out, err := r.Forward([][]int{ids}, []*model.Cache{r.NewCache(len(ids))}, true)
	if err != nil {
		t.Fatal(err)
	}
	return out[0]
}

// TestHFExportMatchesTheRun: the merged HF directory, sharded, read by a
// parser of its own, holds W_base + Σ scale·B A for every projection, and
// loaded gives the logits salr-generate -run computes within 1e-4.
func TestHFExportMatchesTheRun(t *testing.T) {
	run := trainedRun(t)
	out := filepath.Join(t.TempDir(), "hf")
	if err := Run(run, out, Options{Format: FormatHF, MaxShardSize: 300_000}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors.index.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	var index struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	b, err := os.ReadFile(filepath.Join(out, "model.safetensors.index.json"))
	if err != nil || json.Unmarshal(b, &index) != nil {
		t.Fatalf("index: %v", err)
	}
	shards := map[string]map[string]stTensor{}
	want := expectedMerged(t, run)
	for name, w := range want {
		file, ok := index.WeightMap[name]
		if !ok {
			t.Fatalf("the index lacks %s", name)
		}
		if shards[file] == nil {
			shards[file] = readSafetensors(t, filepath.Join(out, file))
		}
		got := shards[file][name]
		if got.dtype != "F32" {
			t.Fatalf("%s is %s", name, got.dtype)
		}
		if d := maxDiff(got.floats(t), w); d > 1e-5 {
			t.Errorf("%s differs from the merged weight by %g", name, d)
		}
	}
	if len(shards) < 2 || len(index.WeightMap) != len(want) {
		t.Errorf("%d shards, %d tensors indexed, want several shards and %d", len(shards), len(index.WeightMap), len(want))
	}

	ref, err := trainer.OpenRun(run)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	exported, err := model.Open(out, "")
	if err != nil {
		t.Fatal(err)
	}
	defer exported.Close()
	if d := maxDiff(logits(t, exported), logits(t, ref)); d > 1e-4 {
		t.Errorf("logits of the export differ from the run's by %g", d)
	}
	if got, want := greedyTokens(t, exported), greedyTokens(t, ref); !reflect.DeepEqual(got, want) {
		t.Errorf("greedy tokens of the export %v, of the run %v", got, want)
	}

	// Exported again in one file over the sharded export: the shards and
	// the index go; without -overwrite the directory is refused.
	if err := Run(run, out, Options{Format: FormatHF, DType: DTypeBF16}); err == nil || !strings.Contains(err.Error(), "already holds a model") {
		t.Errorf("export over a model without Overwrite: %v", err)
	}
	if err := Run(run, out, Options{Format: FormatHF, DType: DTypeBF16, Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(out)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}; !reflect.DeepEqual(names, want) {
		t.Errorf("files %v, want %v", names, want)
	}
	if st := readSafetensors(t, filepath.Join(out, "model.safetensors"))[model.EmbedTokensName]; st.dtype != "BF16" {
		t.Errorf("the bf16 export stores %s", st.dtype)
	}
}

// greedyTokens continues "Once upon a time" greedily for 40 tokens.
func greedyTokens(t *testing.T, l *model.Loaded) []int {
	t.Helper()
	ids, err := l.Tokenizer.Encode("Once upon a time")
	if err != nil {
		t.Fatal(err)
	}
	s, err := model.NewSampler(0, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	out, err := model.NewRunner(l.Params).Generate([][]int{append([]int{l.Tokenizer.BOS()}, ids...)}, model.GenerateOptions{MaxNewTokens: 40, Sampler: s})
	if err != nil {
		t.Fatal(err)
	}
	return out[0]
}

// TestGGUFRoundTrip: the merged model exported as GGUF and read back by
// model.Open (the package's own GGUF reader, tokenizer from tokenizer.ggml.*)
// gives the run's logits and greedy tokens: F32 within float rounding, F16
// and Q8_0 (steps of 1/254 of each block's largest weight, which move this
// tiny model's logits by up to about 0.7) within their rounding, all with
// the same greedy tokens.
func TestGGUFRoundTrip(t *testing.T) {
	run := trainedRun(t)
	ref, err := trainer.OpenRun(run)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	wantLogits, wantTokens := logits(t, ref), greedyTokens(t, ref)
	for _, c := range []struct {
		dtype string
		tol   float64
	}{{DTypeF32, 1e-4}, {DTypeF16, 0.05}, {DTypeQ8_0, 1.0}} {
		path := filepath.Join(t.TempDir(), "m.gguf")
		if err := Run(run, path, Options{Format: FormatGGUF, DType: c.dtype}); err != nil {
			t.Fatal(err)
		}
		l, err := model.Open(path, "")
		if err != nil {
			t.Fatal(err)
		}
		if d := maxDiff(logits(t, l), wantLogits); d > c.tol {
			t.Errorf("%s: logits of the GGUF differ from the run's by %g (tolerance %g)", c.dtype, d, c.tol)
		}
		if got := greedyTokens(t, l); !reflect.DeepEqual(got, wantTokens) {
			t.Errorf("%s: greedy tokens of the GGUF %v, of the run %v", c.dtype, got, wantTokens)
		}
		l.Close()
	}
}

// permuteLikeLlamaCpp is llama.cpp's converter's permute written as the
// index arithmetic of reshape(heads, 2, rows/heads/2, cols).swapaxes(1, 2):
// element [h, d, half, c] of the result is element [h, half, d, c] of w.
func permuteLikeLlamaCpp(w []float32, rows, cols, heads int) []float32 {
	half := rows / heads / 2
	out := make([]float32, len(w))
	for h := range heads {
		for d := range half {
			for s := range 2 {
				for c := range cols {
					out[((h*half+d)*2+s)*cols+c] = w[((h*2+s)*half+d)*cols+c]
				}
			}
		}
	}
	return out
}

// TestGGUFExport: the merged GGUF, read by the independent parser, has
// llama.cpp's metadata and tensor names, the tokenizer, and the merged
// weights (q and k rows permuted) in the requested types.
func TestGGUFExport(t *testing.T) {
	run := trainedRun(t)
	want := expectedMerged(t, run)
	ref, err := trainer.OpenRun(run)
	if err != nil {
		t.Fatal(err)
	}
	cfg := ref.Params.Config
	ref.Close()
	for _, dtype := range []string{DTypeF32, DTypeQ8_0} {
		path := filepath.Join(t.TempDir(), "m.gguf")
		if err := Run(run, path, Options{Format: FormatGGUF, DType: dtype}); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := testgguf.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		u := func(n int) uint32 { return uint32(n) }
		meta := map[string]any{
			"general.architecture": "llama", "general.name": "run", "general.alignment": uint32(32),
			"general.file_type":    map[string]uint32{DTypeF32: 0, DTypeQ8_0: 7}[dtype],
			"llama.context_length": u(cfg.MaxPositions), "llama.embedding_length": u(cfg.Hidden),
			"llama.block_count": u(cfg.Layers), "llama.feed_forward_length": u(cfg.Intermediate),
			"llama.rope.dimension_count": u(cfg.HeadDim), "llama.rope.freq_base": float32(cfg.RopeTheta),
			"llama.attention.head_count": u(cfg.Heads), "llama.attention.head_count_kv": u(cfg.KVHeads),
			"llama.attention.layer_norm_rms_epsilon": float32(cfg.RMSNormEps), "llama.vocab_size": u(cfg.Vocab),
			"tokenizer.ggml.model": "llama", "tokenizer.ggml.bos_token_id": uint32(1),
			"tokenizer.ggml.eos_token_id": uint32(2), "tokenizer.ggml.add_bos_token": true,
		}
		for k, v := range meta {
			if !reflect.DeepEqual(f.KV[k], v) {
				t.Errorf("%s: %s = %#v, want %#v", dtype, k, f.KV[k], v)
			}
		}
		tokens, _ := f.KV["tokenizer.ggml.tokens"].([]any)
		scores, _ := f.KV["tokenizer.ggml.scores"].([]any)
		types, _ := f.KV["tokenizer.ggml.token_type"].([]any)
		if len(tokens) != 512 || len(scores) != 512 || len(types) != 512 {
			t.Fatalf("%d tokens, %d scores, %d types", len(tokens), len(scores), len(types))
		}
		// tok512: <unk>, <s>, </s>, then 256 byte pieces.
		if tokens[0] != "<unk>" || tokens[1] != "<s>" || tokens[3] != "<0x00>" || types[0] != int32(2) || types[1] != int32(3) || types[3] != int32(6) || types[300] != int32(1) {
			t.Errorf("tokens %v..., types %v...", tokens[:4], types[:4])
		}
		if len(f.Tensors) != len(want) {
			t.Errorf("%d tensors, want %d", len(f.Tensors), len(want))
		}
		for name, w := range want {
			gname, err := GGUFName(name)
			if err != nil {
				t.Fatal(err)
			}
			gt, ok := f.Tensor(gname)
			if !ok {
				t.Fatalf("no tensor %s (%s)", gname, name)
			}
			rows := len(w) / int(gt.Dims[0])
			if len(gt.Dims) == 2 && int(gt.Dims[1]) != rows {
				t.Errorf("%s dims %v", gname, gt.Dims)
			}
			switch {
			case strings.HasSuffix(name, "q_proj.weight"):
				w = permuteLikeLlamaCpp(w, rows, int(gt.Dims[0]), cfg.Heads)
			case strings.HasSuffix(name, "k_proj.weight"):
				w = permuteLikeLlamaCpp(w, rows, int(gt.Dims[0]), cfg.KVHeads)
			}
			wantType, tol := uint32(0), 1e-7
			switch {
			case len(gt.Dims) == 1 || dtype == DTypeF32:
			case gt.Dims[0]%32 != 0: // down_proj rows of 172
				wantType, tol = 1, 2e-3
			default:
				wantType, tol = 8, 0.03
			}
			if gt.Type != wantType {
				t.Errorf("%s: %s is type %d, want %d", dtype, gname, gt.Type, wantType)
			}
			got, err := gt.Float32()
			if err != nil {
				t.Fatal(err)
			}
			if d := maxDiff(got, w); d > tol {
				t.Errorf("%s: %s differs from the merged weight by %g", dtype, gname, d)
			}
		}
	}
}

// TestPermutationIsInterleavedRoPE: rotating a head's half-split query by
// HF's RoPE and then permuting it gives the permuted query rotated by the
// interleaved RoPE llama.cpp applies to llama models (pairs 2i, 2i+1), and
// the permutation is llama.cpp's converter's reshape.
func TestPermutationIsInterleavedRoPE(t *testing.T) {
	const heads, d, pos = 3, 8, 7
	invFreq := make([]float64, d/2)
	for i := range invFreq {
		invFreq[i] = math.Pow(10000, -float64(2*i)/d)
	}
	q := make([]float32, heads*d)
	for i := range q {
		q[i] = float32(math.Sin(float64(3*i + 1)))
	}
	// Half-split RoPE on the HF-order vector: (x[i], x[i+d/2]) rotated.
	hf := append([]float32(nil), q...)
	kernelsRope(hf, heads, d, pos, invFreq)
	// Interleaved RoPE on the permuted vector: (x[2i], x[2i+1]) rotated.
	ggml := PermuteRoPERows(q, heads*d, 1, heads)
	for h := range heads {
		for i := range d / 2 {
			a, b := float64(ggml[h*d+2*i]), float64(ggml[h*d+2*i+1])
			s, c := math.Sincos(pos * invFreq[i])
			ggml[h*d+2*i], ggml[h*d+2*i+1] = float32(a*c-b*s), float32(a*s+b*c)
		}
	}
	if dd := maxDiff(PermuteRoPERows(hf, heads*d, 1, heads), ggml); dd > 1e-6 {
		t.Errorf("rotations differ by %g", dd)
	}
	w := make([]float32, heads*d*5)
	for i := range w {
		w[i] = float32(i)
	}
	if !reflect.DeepEqual(PermuteRoPERows(w, heads*d, 5, heads), permuteLikeLlamaCpp(w, heads*d, 5, heads)) {
		t.Error("PermuteRoPERows is not the converter's reshape")
	}
}

// TestPermutationRecoversLlama2CRows: stories260K's llama2.c file stores wq
// and wk in the interleaved order; loading converts them to HF's, and the
// GGUF permutation gives the file's rows back.
func TestPermutationRecoversLlama2CRows(t *testing.T) {
	dir := assets.ForTest(t)
	path := filepath.Join(dir, "stories260K", "stories260K.bin")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	hdr := make([]int, 7)
	for i := range hdr {
		hdr[i] = int(int32(binary.LittleEndian.Uint32(raw[4*i:])))
	}
	dim, layers, heads, kvHeads, vocab := hdr[0], hdr[2], hdr[3], hdr[4], hdr[5]
	if vocab < 0 {
		vocab = -vocab
	}
	hd := dim / heads
	floatsAt := func(off, n int) []float32 {
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[28+4*(off+i):]))
		}
		return out
	}
	wqOff := vocab*dim + layers*dim // after the embedding and the attention norms
	wkOff := wqOff + layers*dim*heads*hd
	ck, err := model.LoadLlama2C(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	for l := range layers {
		q := ck.Tensors[model.ModuleName(l, model.QProj)+".weight"].Float32()
		k := ck.Tensors[model.ModuleName(l, model.KProj)+".weight"].Float32()
		if !reflect.DeepEqual(PermuteRoPERows(q, heads*hd, dim, heads), floatsAt(wqOff+l*dim*heads*hd, heads*hd*dim)) {
			t.Errorf("layer %d: q rows differ from the llama2.c file", l)
		}
		if !reflect.DeepEqual(PermuteRoPERows(k, kvHeads*hd, dim, kvHeads), floatsAt(wkOff+l*dim*kvHeads*hd, kvHeads*hd*dim)) {
			t.Errorf("layer %d: k rows differ from the llama2.c file", l)
		}
	}
}

// TestLoRAExport: llama.cpp adds (alpha/rank)·lora_b·lora_a to the base; on
// the permuted pruned base that gives the merged GGUF weights.
func TestLoRAExport(t *testing.T) {
	run := trainedRun(t)
	path := filepath.Join(t.TempDir(), "lora.gguf")
	if err := Run(run, path, Options{Format: FormatGGUFLoRA}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := testgguf.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{"general.architecture": "llama", "general.type": "adapter", "adapter.type": "lora"} {
		if f.KV[k] != v {
			t.Errorf("%s = %v, want %v", k, f.KV[k], v)
		}
	}
	alpha, _ := f.KV["adapter.lora.alpha"].(float32)
	want := expectedMerged(t, run)
	base := readSafetensors(t, filepath.Join(run, trainer.BaseDir, "model.safetensors"))
	ref, err := trainer.OpenRun(run)
	if err != nil {
		t.Fatal(err)
	}
	cfg := ref.Params.Config
	ref.Close()
	pairs := 0
	for name, w := range want {
		gname, _ := GGUFName(name)
		ta, okA := f.Tensor(gname + ".lora_a")
		tb, okB := f.Tensor(gname + ".lora_b")
		if !okA || !okB {
			continue
		}
		pairs++
		in, r, out := int(ta.Dims[0]), int(ta.Dims[1]), int(tb.Dims[1])
		if int(tb.Dims[0]) != r || in*out != len(w) || alpha != float32(r) {
			t.Fatalf("%s: lora_a dims %v, lora_b dims %v, alpha %v", gname, ta.Dims, tb.Dims, alpha)
		}
		a, _ := ta.Float32()
		bb, _ := tb.Float32()
		merged := base[name].floats(t)
		heads := map[bool]int{true: cfg.Heads, false: cfg.KVHeads}[strings.Contains(name, "q_proj")]
		permuted := strings.Contains(name, "q_proj") || strings.Contains(name, "k_proj")
		if permuted {
			merged = permuteLikeLlamaCpp(merged, out, in, heads)
			w = permuteLikeLlamaCpp(w, out, in, heads)
		}
		scale := float64(alpha) / float64(r)
		for o := range out {
			for i := range in {
				var s float64
				for k := range r {
					s += float64(bb[o*r+k]) * float64(a[k*in+i])
				}
				merged[o*in+i] += float32(scale * s)
			}
		}
		if d := maxDiff(merged, w); d > 1e-5 {
			t.Errorf("%s: base + LoRA differs from the merged weight by %g", gname, d)
		}
	}
	if pairs != 7*cfg.Layers || len(f.Tensors) != 2*pairs {
		t.Errorf("%d LoRA pairs in %d tensors, want one per projection (%d)", pairs, len(f.Tensors), 7*cfg.Layers)
	}
}

func TestExportRefusesBadRequests(t *testing.T) {
	run := trainedRun(t)
	existing := filepath.Join(t.TempDir(), "x.gguf")
	if err := os.WriteFile(existing, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		run, out string
		o        Options
		want     string
	}{
		{run, "/tmp/never", Options{Format: FormatHF, DType: DTypeQ8_0}, "q8_0 is a GGUF type"},
		{run, "/tmp/never", Options{Format: "onnx"}, `format "onnx"`},
		{run, "/tmp/never", Options{Format: FormatGGUF, DType: "f8"}, `dtype "f8"`},
		{run, existing, Options{Format: FormatGGUF}, "already exists"},
		{run, filepath.Join(run, trainer.BaseDir), Options{Format: FormatHF}, "already holds a model"},
		{t.TempDir(), filepath.Join(t.TempDir(), "a.gguf"), Options{Format: FormatGGUFLoRA}, "config.json"},
	}
	for _, c := range cases {
		err := Run(c.run, c.out, c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Run(%+v) = %v, want an error with %q", c.o, err, c.want)
		}
	}
	if b, _ := os.ReadFile(existing); string(b) != "x" {
		t.Error("a refused export changed the existing file")
	}
}

// kernelsRope applies the project's half-split RoPE to one row of heads.
func kernelsRope(x []float32, heads, d, pos int, invFreq []float64) {
	kernels.RopeForward(x, 1, len(x), 0, heads, d, []int{pos}, invFreq)
}

// TestByteLevelTokenizerMetadata: GPT-2's tokenizer as tokenizer.ggml.*
// with llama.cpp's "gpt2" model, padded to a larger model vocabulary.
func TestByteLevelTokenizerMetadata(t *testing.T) {
	tok, err := tokenizer.Load(filepath.Join(assets.ForTest(t), "gpt2", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	kvs, err := tokenizerMetadata(tok, 50304)
	if err != nil {
		t.Fatal(err)
	}
	kv := map[string]any{}
	for _, e := range kvs {
		kv[e.Key] = e.Value
	}
	tokens, _ := kv["tokenizer.ggml.tokens"].([]string)
	types, _ := kv["tokenizer.ggml.token_type"].([]int32)
	merges, _ := kv["tokenizer.ggml.merges"].([]string)
	if kv["tokenizer.ggml.model"] != "gpt2" || kv["tokenizer.ggml.pre"] != "gpt-2" || kv["tokenizer.ggml.scores"] != nil {
		t.Errorf("model %v, pre %v, scores %v", kv["tokenizer.ggml.model"], kv["tokenizer.ggml.pre"], kv["tokenizer.ggml.scores"] != nil)
	}
	if len(tokens) != 50304 || len(types) != 50304 || len(merges) != 50000 || merges[0] != "Ġ t" {
		t.Fatalf("%d tokens, %d types, %d merges", len(tokens), len(types), len(merges))
	}
	if tokens[50256] != "<|endoftext|>" || types[50256] != 3 || tokens[50257] != "[PAD50257]" || types[50257] != 5 || types[0] != 1 {
		t.Errorf("tokens %q %q, types %d %d %d", tokens[50256], tokens[50257], types[50256], types[50257], types[0])
	}
	if kv["tokenizer.ggml.add_bos_token"] != false || kv["tokenizer.ggml.eos_token_id"] != uint32(50256) {
		t.Errorf("add_bos %v, eos %v", kv["tokenizer.ggml.add_bos_token"], kv["tokenizer.ggml.eos_token_id"])
	}
	if _, err := tokenizerMetadata(tok, 50000); err == nil || !strings.Contains(err.Error(), "50257 tokens") {
		t.Errorf("a vocabulary smaller than the tokenizer: %v", err)
	}
}

func TestChatTemplate(t *testing.T) {
	dir := t.TempDir()
	if got, err := model.ChatTemplate(dir); got != "" || err != nil {
		t.Errorf("no tokenizer_config.json: %q, %v", got, err)
	}
	write := func(text string) {
		if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"chat_template": "{% for m in messages %}{{ m['content'] }}{% endfor %}", "bos_token": "<s>"}`)
	if got, err := model.ChatTemplate(dir); got != "{% for m in messages %}{{ m['content'] }}{% endfor %}" || err != nil {
		t.Errorf("chat template %q, %v", got, err)
	}
	write(`{"bos_token": "<s>"}`)
	if got, err := model.ChatTemplate(dir); got != "" || err != nil {
		t.Errorf("no chat_template: %q, %v", got, err)
	}
	write(`{"chat_template": `)
	if _, err := model.ChatTemplate(dir); err == nil || !strings.Contains(err.Error(), "tokenizer_config.json") {
		t.Errorf("bad JSON: %v", err)
	}
}

// TestSlidingWindowCapsTheContext: llama.cpp's llama architecture has no
// sliding window, so a mistral model's GGUF context stops at the window.
func TestSlidingWindowCapsTheContext(t *testing.T) {
	for _, c := range []struct{ window, want int }{{0, 32768}, {4096, 4096}, {65536, 32768}} {
		kvs := modelMetadata(model.Config{ModelType: "mistral", MaxPositions: 32768, SlidingWindow: c.window}, "m", 1)
		for _, kv := range kvs {
			if kv.Key == "llama.context_length" && kv.Value != uint32(c.want) {
				t.Errorf("window %d: context_length %v, want %d", c.window, kv.Value, c.want)
			}
		}
	}
}
