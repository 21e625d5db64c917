package model

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/model/safetensors"
)

// TestWriteHFRoundTripStories260K: Load(WriteHF(Load(stories260K))) gives
// identical float32 tensors and the same configuration, and the written
// directory still reproduces the reference outputs.
func TestWriteHFRoundTripStories260K(t *testing.T) {
	src, err := Load(stories260KPath(t))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dir := filepath.Join(t.TempDir(), "hf")
	if err := WriteHF(dir, src, safetensors.F32); err != nil {
		t.Fatal(err)
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	if !reflect.DeepEqual(back.Config, src.Config) {
		t.Errorf("config changed:\n%+v\n%+v", back.Config, src.Config)
	}
	if len(back.Tensors) != len(src.Tensors) {
		t.Errorf("%d tensors, want %d", len(back.Tensors), len(src.Tensors))
	}
	for name, want := range src.Tensors {
		got := back.Tensors[name]
		if got == nil || !slices.Equal(got.Shape, want.Shape) || !slices.Equal(got.Data, want.Data) {
			t.Fatalf("tensor %s changed in the round trip", name)
		}
	}
	// The tied head is not duplicated.
	f, err := safetensors.Open(filepath.Join(dir, safetensors.SingleFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok := f.Info(LMHeadName); ok {
		t.Error("model.safetensors holds lm_head.weight for a tied model")
	}
	if f.Metadata()["format"] != "pt" {
		t.Errorf("metadata %v", f.Metadata())
	}
	checkReferenceOutputs(t, back, 1e-3)
}

func TestWriteHFHalfPrecision(t *testing.T) {
	src := tinyRandomCheckpoint(tinyQwen2Config(false), 4)
	for _, dtype := range []safetensors.DType{safetensors.BF16, safetensors.F16} {
		dir := t.TempDir()
		if err := WriteHF(dir, src, dtype); err != nil {
			t.Fatal(err)
		}
		back, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if back.Config.TorchDtype != dtype.TorchName() {
			t.Errorf("torch_dtype %q, want %q", back.Config.TorchDtype, dtype.TorchName())
		}
		for name, want := range src.Tensors {
			for i, v := range want.Data {
				var rounded float32
				if dtype == safetensors.BF16 {
					rounded = kernels.BF16ToFloat32(kernels.Float32ToBF16(v))
				} else {
					rounded = kernels.F16ToFloat32(kernels.Float32ToF16(v))
				}
				if back.Tensors[name].Float32()[i] != rounded {
					t.Fatalf("%s %s[%d] = %v, want %v", dtype, name, i, back.Tensors[name].Float32()[i], rounded)
				}
			}
		}
		back.Close()
	}
	if err := WriteHF(t.TempDir(), src, safetensors.I8); err == nil {
		t.Error("WriteHF accepted I8")
	}
}

func TestWriteHFRefusesToOverwriteAModel(t *testing.T) {
	src := tinyRandomCheckpoint(tinyQwen2Config(true), 5)
	dir := t.TempDir()
	// Other files (a tokenizer) do not count as a model.
	os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte("{}"), 0o644)
	if err := WriteHF(dir, src, safetensors.F32); err != nil {
		t.Fatalf("directory with only a tokenizer: %v", err)
	}
	other := tinyRandomCheckpoint(tinyQwen2Config(true), 6)
	err := WriteHF(dir, other, safetensors.F32)
	if err == nil || !strings.Contains(err.Error(), "already holds a model") {
		t.Fatalf("second write: err = %v", err)
	}
	if err := WriteHF(dir, other, safetensors.BF16, ForceOverwrite()); err != nil {
		t.Fatalf("forced write: %v", err)
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	if got, want := back.Tensors[FinalNormName].Data, bf16Rounded(other.Tensors[FinalNormName].Data); !slices.Equal(got, want) {
		t.Error("forced write did not replace the weights")
	}
	if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); err != nil {
		t.Error("WriteHF removed an unrelated file")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestWriteHFForceReplacesAShardedModel(t *testing.T) {
	cfg := tinyQwen2Config(false)
	old := tinyRandomCheckpoint(cfg, 7)
	dir := t.TempDir()
	writeRawHFDir(t, dir, cfg, old.Tensors, 3)
	if err := WriteHF(dir, old, safetensors.F32); err == nil {
		t.Fatal("wrote over a sharded model without force")
	}
	if err := WriteHF(dir, old, safetensors.F32, ForceOverwrite()); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{HFConfigFileName, safetensors.SingleFileName}; !slices.Equal(names, want) {
		t.Errorf("directory holds %v, want %v", names, want)
	}
}

func TestWriteHFRejectsInconsistentCheckpoints(t *testing.T) {
	ck := tinyRandomCheckpoint(tinyQwen2Config(false), 8)
	delete(ck.Tensors, "model.layers.0.mlp.up_proj.weight")
	err := WriteHF(t.TempDir(), ck, safetensors.F32)
	if err == nil || !strings.Contains(err.Error(), "model.layers.0.mlp.up_proj.weight") {
		t.Errorf("missing tensor: err = %v", err)
	}
	ck = tinyRandomCheckpoint(tinyQwen2Config(false), 8)
	ck.Tensors[FinalNormName].Data = ck.Tensors[FinalNormName].Data[:3]
	if err := WriteHF(t.TempDir(), ck, safetensors.F32); err == nil || !strings.Contains(err.Error(), FinalNormName) {
		t.Errorf("short data: err = %v", err)
	}
	if err := WriteHF(t.TempDir(), nil, safetensors.F32); err == nil {
		t.Error("nil checkpoint accepted")
	}
}
