package model

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/salr-go/salr/model/safetensors"
	"github.com/salr-go/salr/model/tokenizer"
)

// wantErr fails unless err is non-nil and mentions every fragment.
func wantErr(t *testing.T, err error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted, want an error mentioning %q", fragments)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q lacks %q", err, f)
		}
	}
}

// truncatedTok512 writes the first n records of stories260K's tok512.bin
// into dir: a file cut on a record boundary, which parses as a smaller
// vocabulary.
func truncatedTok512(t *testing.T, dir string, n int) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(checkpointTestAssets(t), "stories260K", "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	off := 4
	for range n {
		off += 8 + int(binary.LittleEndian.Uint32(data[off+4:]))
	}
	path := filepath.Join(dir, "tok512.bin")
	if err := os.WriteFile(path, data[:off], 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestOpenRefusesTruncatedLlama2CTokenizer(t *testing.T) {
	tokPath := truncatedTok512(t, t.TempDir(), 7)
	_, err := Open(stories260KPath(t), tokPath)
	wantErr(t, err, tokPath, "7 tokens", "512")

	// The same file beside a copy of the model, found by default.
	dir := t.TempDir()
	model, err := os.ReadFile(stories260KPath(t))
	if err != nil {
		t.Fatal(err)
	}
	modelPath := filepath.Join(dir, "stories260K.bin")
	if err := os.WriteFile(modelPath, model, 0o644); err != nil {
		t.Fatal(err)
	}
	tokPath = truncatedTok512(t, dir, 7)
	_, err = Open(modelPath, "")
	wantErr(t, err, tokPath, "7 tokens")
}

func TestCheckTokenizerAllowsPaddedHFVocabulary(t *testing.T) {
	full := filepath.Join(checkpointTestAssets(t), "stories260K", "tok512.bin")
	sp, err := tokenizer.LoadLlama2C(full)
	if err != nil {
		t.Fatal(err)
	}
	hfDir := t.TempDir()
	if err := sp.WriteHF(hfDir); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(hfDir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := tinyQwen2Config(false)
	cfg.Vocab = 576 // padded beyond the 512 tokens, as HF models may be
	if err := CheckTokenizer(tok, hfDir, cfg, hfDir); err != nil {
		t.Errorf("padded HF vocabulary refused: %v", err)
	}
	// A llama2.c tokenizer file must match exactly, even beside an HF model.
	wantErr(t, CheckTokenizer(sp, full, cfg, hfDir), full, "512 tokens", "576")
	cfg.Vocab = 500
	wantErr(t, CheckTokenizer(tok, hfDir, cfg, hfDir), hfDir, "512 tokens", "500")
}

func TestLoadHFRefusesTensorsTheConfigDoesNotUse(t *testing.T) {
	two := tinyQwen2Config(false) // 2 layers
	src := tinyRandomCheckpoint(two, 4)
	one := two
	one.Layers = 1
	dir := t.TempDir()
	writeRawHFDir(t, dir, one, src.Tensors, 1)
	_, err := Load(dir)
	wantErr(t, err, safetensors.SingleFileName, `"model.layers.1.input_layernorm.weight"`, "1 layers")

	// An unknown tensor outside the layers too.
	tensors := map[string]*Tensor{"model.embed_positions.weight": {Shape: []int{2}, Data: []float32{1, 2}}}
	for name, tensor := range src.Tensors {
		tensors[name] = tensor
	}
	dir = t.TempDir()
	writeRawHFDir(t, dir, two, tensors, 2)
	_, err = Load(dir)
	wantErr(t, err, ".safetensors", `"model.embed_positions.weight"`)
}

func TestLoadHFRefusesNonFiniteWeights(t *testing.T) {
	cfg := tinyQwen2Config(false)
	const bad = "model.layers.1.mlp.up_proj.weight"
	for _, tc := range []struct {
		dtype safetensors.DType
		value float32
		want  string
	}{
		{safetensors.BF16, float32(math.NaN()), "NaN"},
		{safetensors.F32, float32(math.Inf(-1)), "-Inf"},
	} {
		src := tinyRandomCheckpoint(cfg, 5)
		src.Tensors[bad].Data[37] = tc.value
		dir := t.TempDir()
		writeRawHFDir(t, dir, cfg, src.Tensors, 1)
		if tc.dtype == safetensors.F32 { // a view of the mapped file rather than a conversion
			var list []safetensors.Tensor
			for name, tensor := range src.Tensors {
				list = append(list, safetensors.Tensor{Name: name, DType: safetensors.F32, Shape: tensor.Shape, Data: safetensors.Float32View(tensor.Data)})
			}
			if err := safetensors.Write(filepath.Join(dir, safetensors.SingleFileName), list, nil); err != nil {
				t.Fatal(err)
			}
		}
		_, err := Load(dir)
		wantErr(t, err, safetensors.SingleFileName, `"`+bad+`"`, tc.want, "index 37")
	}
}

// stories260K: dim 64, 5 layers, 8 heads of 8, 4 KV heads, vocabulary 512.
const storiesDim, storiesLayers, storiesVocab, storiesHeadDim = 64, 5, 512, 8

func TestLoadLlama2CRefusesNonFiniteWeights(t *testing.T) {
	data, err := os.ReadFile(stories260KPath(t))
	if err != nil {
		t.Fatal(err)
	}
	// wq of layer 2, row 3, column 5: after the header, the embedding and
	// the attention norms.
	const layer, row, col = 2, 3, 5
	at := 7 + storiesVocab*storiesDim + storiesLayers*storiesDim + layer*storiesDim*storiesDim + row*storiesDim + col
	binary.LittleEndian.PutUint32(data[4*at:], math.Float32bits(float32(math.NaN())))
	path := filepath.Join(t.TempDir(), "bad.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path)
	// Row 3 = 2·1+1 of head 0 is row 1 + headDim/2 = 5 in HF's layout.
	hfIndex := 5*storiesDim + col
	wantErr(t, err, path, `"model.layers.2.self_attn.q_proj.weight"`, "NaN", "index "+strconv.Itoa(hfIndex))
}

func TestLoadLlama2CRefusesAHeaderWithFewerLayers(t *testing.T) {
	data, err := os.ReadFile(stories260KPath(t))
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint32(data[8:], 4) // n_layers 5 -> 4
	path := filepath.Join(t.TempDir(), "fewer-layers.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path)
	wantErr(t, err, path, "n_layers 4", "bytes follow")
}
