package adapters

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/salr-go/salr/model/safetensors"
)

// exportFixture returns three projections' adapters: q_proj and v_proj with
// LoRA rank 3 + SVD rank 2 (total 5), down_proj with LoRA 3 + SVD 1 (total 4).
func exportFixture(t *testing.T) map[string]*Fused {
	t.Helper()
	mods := map[string]*Fused{}
	for _, m := range []struct {
		name             string
		out, in, svdRank int
	}{
		{"model.layers.0.self_attn.q_proj", 6, 8, 2},
		{"model.layers.1.self_attn.v_proj", 4, 8, 2},
		{"model.layers.0.mlp.down_proj", 8, 12, 1},
	} {
		lora, svd := testAdapters(t, m.out, m.in, 0.05, false)
		svd.Rank, svd.A, svd.B = m.svdRank, svd.A[:m.svdRank*m.in], svd.B[:m.out*m.svdRank]
		mods[m.name] = mustConcat(t, lora, svd)
	}
	return mods
}

func TestPEFTExportKeysShapesAndConfig(t *testing.T) {
	dir := t.TempDir()
	mods := exportFixture(t)
	if err := WritePEFT(dir, mods, "runs/x/pruned-base"); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, PEFTConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 5.0, "lora_alpha": 5.0, "lora_dropout": 0.0,
		"bias": "none", "base_model_name_or_path": "runs/x/pruned-base", "fan_in_fan_out": false, "inference_mode": true,
	}
	for k, v := range want {
		if cfg[k] != v {
			t.Errorf("adapter_config.json %s = %v, want %v", k, cfg[k], v)
		}
	}
	if got, _ := json.Marshal(cfg["target_modules"]); string(got) != `["down_proj","q_proj","v_proj"]` {
		t.Errorf("target_modules = %s", got)
	}
	rp, _ := json.Marshal(cfg["rank_pattern"])
	ap, _ := json.Marshal(cfg["alpha_pattern"])
	if string(rp) != `{"model.layers.0.mlp.down_proj":4}` || string(ap) != `{"model.layers.0.mlp.down_proj":4}` {
		t.Errorf("rank_pattern %s alpha_pattern %s; the rank-4 module needs both = 4", rp, ap)
	}
	salr, ok := cfg["salr"].(map[string]any)
	if !ok || salr["format"] != salrExportFormat || !strings.Contains(salr["note"].(string), "folded") {
		t.Errorf("salr metadata %v", cfg["salr"])
	}

	st, err := safetensors.Open(filepath.Join(dir, PEFTWeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	wantShapes := map[string][]int{
		"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": {5, 8},
		"base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": {6, 5},
		"base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight": {5, 8},
		"base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight": {4, 5},
		"base_model.model.model.layers.0.mlp.down_proj.lora_A.weight":    {4, 12},
		"base_model.model.model.layers.0.mlp.down_proj.lora_B.weight":    {8, 4},
	}
	if names := st.Names(); len(names) != len(wantShapes) {
		t.Fatalf("tensors %v", names)
	}
	for key, shape := range wantShapes {
		info, ok := st.Info(key)
		if !ok || !slices.Equal(info.Shape, shape) || info.DType != safetensors.F32 {
			t.Errorf("%s: %+v (present %v), want F32 %v", key, info, ok, shape)
		}
	}
	// lora_B holds the scales: [2·B_lora, B_svd].
	f := mods["model.layers.0.self_attn.q_proj"]
	b, _ := st.Float32("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight")
	if b[0] != 2*f.B[0] || b[4] != f.B[4] {
		t.Errorf("lora_B[0,0] = %g (B_lora %g, scale 2), lora_B[0,4] = %g (B_svd %g)", b[0], f.B[0], b[4], f.B[4])
	}
}

func TestPEFTRoundTripKeepsTheUpdate(t *testing.T) {
	dir := t.TempDir()
	mods := exportFixture(t)
	if err := WritePEFT(dir, mods, "base"); err != nil {
		t.Fatal(err)
	}
	got, err := ReadPEFT(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Modules) != len(mods) || got.Config.SALR == nil {
		t.Fatalf("read %d modules", len(got.Modules))
	}
	for name, f := range mods {
		g := got.Modules[name]
		if g == nil {
			t.Fatalf("module %s missing", name)
		}
		want := make([]float32, f.Out*f.In)
		f.MergeInto(want)
		have := make([]float32, f.Out*f.In)
		g.MergeInto(have)
		if !slices.Equal(have, want) {
			t.Errorf("%s: merged update differs after the round trip", name)
		}
		if len(g.Parts) != 2 || g.Parts[0].Kind != KindLoRA || g.Parts[1].Kind != KindSVD ||
			g.Parts[1].Rank != f.Parts[1].Rank || g.Parts[0].Dropout != 0.05 || g.Parts[1].Trainable {
			t.Errorf("%s: parts %+v, want those of %+v (scales folded)", name, g.Parts, f.Parts)
		}
		for _, s := range g.Scale {
			if s != 1 {
				t.Fatalf("%s: scale %g, want 1 (folded into B)", name, s)
			}
		}
	}
}

// writeForeignPEFT writes a PEFT directory by hand, as PEFT itself would for
// a plain LoRA (no salr metadata).
func writeForeignPEFT(t *testing.T, dir, config string, tensors map[string][]int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, PEFTConfigFile), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	var ts []safetensors.Tensor
	for name, shape := range tensors {
		n := shape[0] * shape[1]
		vals := make([]float32, n)
		for i := range vals {
			vals[i] = float32(i%7) * 0.1
		}
		ts = append(ts, safetensors.Tensor{Name: name, DType: safetensors.F32, Shape: shape, Data: safetensors.Float32View(vals)})
	}
	if err := safetensors.Write(filepath.Join(dir, PEFTWeightsFile), ts, nil); err != nil {
		t.Fatal(err)
	}
}

func TestReadPEFTForeignAndErrors(t *testing.T) {
	const key = "base_model.model.model.layers.0.self_attn.q_proj"
	good := map[string][]int{key + ".lora_A.weight": {4, 6}, key + ".lora_B.weight": {3, 4}}
	dir := t.TempDir()
	writeForeignPEFT(t, dir, `{"peft_type":"LORA","r":4,"lora_alpha":8,"lora_dropout":0.1,"target_modules":["q_proj"],"bias":"none","use_dora":false}`, good)
	got, err := ReadPEFT(dir)
	if err != nil {
		t.Fatal(err)
	}
	f := got.Modules["model.layers.0.self_attn.q_proj"]
	if f == nil || f.Rank != 4 || f.Scale[0] != 2 || len(f.Parts) != 1 || f.Parts[0].Dropout != 0.1 {
		t.Fatalf("foreign adapter %+v", f)
	}
	rs := t.TempDir()
	writeForeignPEFT(t, rs, `{"peft_type":"LORA","r":4,"lora_alpha":8,"use_rslora":true}`, good)
	if got, err := ReadPEFT(rs); err != nil || got.Modules["model.layers.0.self_attn.q_proj"].Scale[0] != 4 {
		t.Fatalf("rsLoRA scale: %v", err)
	}

	cases := []struct {
		config  string
		tensors map[string][]int
		want    string
	}{
		{`{"peft_type":"LORA","r":4`, good, "adapter_config.json"},
		{`{"peft_type":"IA3","r":4,"lora_alpha":8}`, good, `peft_type "IA3"`},
		{`{"peft_type":"LORA","r":4,"lora_alpha":8,"fan_in_fan_out":true}`, good, "fan_in_fan_out"},
		{`{"peft_type":"LORA","r":8,"lora_alpha":8}`, good, "rank 4 but the config says r = 8"},
		{`{"peft_type":"LORA","r":4,"lora_alpha":8}`, map[string][]int{key + ".lora_A.weight": {4, 6}}, "no matching"},
		{`{"peft_type":"LORA","r":4,"lora_alpha":8}`, map[string][]int{key + ".lora_B.weight": {3, 4}}, "no matching lora_A"},
		{`{"peft_type":"LORA","r":4,"lora_alpha":8}`, map[string][]int{key + ".lora_A.weight": {4, 6}, key + ".lora_B.weight": {3, 5}}, "do not form"},
		{`{"peft_type":"LORA","r":4,"lora_alpha":8}`, map[string][]int{"model.layers.0.q.lora_A.weight": {4, 6}, "model.layers.0.q.lora_B.weight": {3, 4}}, "does not start with"},
	}
	for i, c := range cases {
		d := t.TempDir()
		writeForeignPEFT(t, d, c.config, c.tensors)
		if _, err := ReadPEFT(d); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("case %d: error %v, want %q", i, err, c.want)
		}
	}
	if _, err := ReadPEFT(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing directory was accepted")
	}
	if err := WritePEFT(t.TempDir(), map[string]*Fused{"model.layers.0.self_attn.q_proj.weight": f}, "b"); err == nil {
		t.Error("WritePEFT accepted a tensor name as a module name")
	}
}

// TestPEFTModulesToSave: modules trained in full go in under PEFT's saved
// names (base_model.model.{module}.weight, modules_to_save.default.
// removed) with their short names in modules_to_save, and read back.
func TestPEFTModulesToSave(t *testing.T) {
	dir := t.TempDir()
	mods := exportFixture(t)
	saved := []PEFTSaved{
		{Module: "model.layers.1.block_sparse_moe.gate", Shape: []int{2, 3}, Weight: []float32{1, 2, 3, 4, 5, 6}},
		{Module: "model.layers.0.block_sparse_moe.gate", Shape: []int{2, 3}, Weight: []float32{-1, -2, -3, -4, -5, -6}},
	}
	if err := WritePEFT(dir, mods, "base", saved...); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, PEFTConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "\"modules_to_save\": [\n    \"gate\"\n  ]") {
		t.Errorf("adapter_config.json lacks modules_to_save [gate]:\n%s", raw)
	}
	got, err := ReadPEFT(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Modules) != len(mods) || len(got.Saved) != 2 {
		t.Fatalf("read %d modules, %d saved", len(got.Modules), len(got.Saved))
	}
	for _, s := range saved {
		g := got.Saved[s.Module]
		if !slices.Equal(g.Weight, s.Weight) || !slices.Equal(g.Shape, s.Shape) {
			t.Errorf("%s: read %+v, wrote %+v", s.Module, g, s)
		}
	}
	st, err := safetensors.Open(filepath.Join(dir, PEFTWeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, ok := st.Info("base_model.model.model.layers.0.block_sparse_moe.gate.weight"); !ok {
		t.Errorf("no PEFT-named router among %v", st.Names())
	}
	// Without saved modules the config has no modules_to_save at all.
	plain := t.TempDir()
	if err := WritePEFT(plain, mods, "base"); err != nil {
		t.Fatal(err)
	}
	if raw, _ := os.ReadFile(filepath.Join(plain, PEFTConfigFile)); strings.Contains(string(raw), "modules_to_save") {
		t.Error("modules_to_save written without saved modules")
	}
	bad := []PEFTSaved{{Module: "model.layers.0.block_sparse_moe.gate", Shape: []int{2, 2}, Weight: []float32{1}}}
	if err := WritePEFT(t.TempDir(), mods, "base", bad...); err == nil || !strings.Contains(err.Error(), "has 1 values, not [2 2]") {
		t.Errorf("wrong shape: %v", err)
	}
}
