package adapters

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/salr-go/salr/model/safetensors"
)

func TestNativeRoundTrip(t *testing.T) {
	lora, err := NewLoRA(6, 5, LoRAConfig{Rank: 2, Alpha: 4, Dropout: 0.1}, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := range lora.B {
		lora.B[i] = float32(i) / 7
	}
	svd := &LowRank{Kind: KindSVD, Rank: 3, In: 5, Out: 6, A: make([]float32, 15), B: make([]float32, 18), Scale: 1}
	for i := range svd.A {
		svd.A[i] = float32(i)
	}
	f, err := Concat(lora, svd)
	if err != nil {
		t.Fatal(err)
	}
	mods := map[string]*Fused{"model.layers.0.self_attn.q_proj": f}
	path := filepath.Join(t.TempDir(), NativeFile)
	if err := WriteNative(path, mods); err != nil {
		t.Fatal(err)
	}
	got, err := ReadNative(path)
	if err != nil {
		t.Fatal(err)
	}
	g := got["model.layers.0.self_attn.q_proj"]
	if g == nil || g.In != 5 || g.Out != 6 || g.Rank != 5 || !slices.Equal(g.A, f.A) || !slices.Equal(g.B, f.B) ||
		!slices.Equal(g.Scale, f.Scale) || !slices.Equal(g.Parts, f.Parts) {
		t.Fatalf("round trip changed the adapter: %+v", g)
	}
	// A tensor whose shape disagrees with the parts is an error.
	bad := filepath.Join(t.TempDir(), NativeFile)
	err = safetensors.Write(bad, []safetensors.Tensor{
		{Name: "m.A", DType: safetensors.F32, Shape: []int{2, 1}, Data: make([]byte, 8)},
		{Name: "m.B", DType: safetensors.F32, Shape: []int{1, 2}, Data: make([]byte, 8)},
		{Name: "m.scale", DType: safetensors.F32, Shape: []int{2}, Data: make([]byte, 8)},
	}, map[string]string{nativePartsKey: `{"m":[{"Kind":"lora","Offset":0,"Rank":3}]}`})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ReadNative(bad); err == nil || !strings.Contains(err.Error(), "disagree") {
		t.Fatalf("inconsistent file accepted: %v", err)
	}
	os.WriteFile(bad, []byte("garbage"), 0o644)
	if _, err := ReadNative(bad); err == nil {
		t.Fatal("garbage accepted")
	}
}
