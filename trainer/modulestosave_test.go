package trainer

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/salr-go/salr/adapters"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/model/safetensors"
)

// peftConfig is what the tests read of adapter_config.json.
type peftConfig struct {
	TargetModules []string `json:"target_modules"`
	ModulesToSave []string `json:"modules_to_save"`
}

// peftAdapter reads a run's exported PEFT adapter: its modules_to_save and
// its tensors.
func peftAdapter(t *testing.T, dir string) ([]string, map[string][]float32) {
	pc, tensors := readPEFTExport(t, dir)
	return pc.ModulesToSave, tensors
}

// readPEFTExport reads a run's exported PEFT adapter: its config and its
// tensors by name.
func readPEFTExport(t *testing.T, dir string) (peftConfig, map[string][]float32) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, AdapterDir, adapters.PEFTConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var pc peftConfig
	if err := json.Unmarshal(b, &pc); err != nil {
		t.Fatal(err)
	}
	st, err := safetensors.Open(filepath.Join(dir, AdapterDir, adapters.PEFTWeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tensors := map[string][]float32{}
	for _, n := range st.Names() {
		v, err := st.Float32(n)
		if err != nil {
			t.Fatal(err)
		}
		tensors[n] = slices.Clone(v)
	}
	return pc, tensors
}

// TestMoERouterTrainsWithAuxLoss fine-tunes a random Mixtral with its
// routers trained (adapters.modules_to_save = ["gate"]) and the
// load-balancing loss: the routers change, the held-out loss falls, the
// metrics report the aux loss, a resumed run ends as an uninterrupted one,
// the PEFT adapter holds the routers under PEFT's modules_to_save names,
// and the run directory evaluates with the trained routers.
func TestMoERouterTrainsWithAuxLoss(t *testing.T) {
	root := t.TempDir()
	mc := quickMoEConfigs()["mixtral"]
	modelDir := filepath.Join(root, "model")
	if _, err := model.WriteRandomHF(context.Background(), modelDir, mc, model.RandomHFOptions{DType: safetensors.F32, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	sets := []string{"model.path=" + modelDir, "model.tokenizer=" + filepath.Join(assetsDir(t), "stories260K", "tok512.bin"),
		"train.max_steps=8", "train.lr=3e-3", "data.seq_len=96", "train.checkpoint_every=2", "train.log_every=1",
		"adapters.modules_to_save=gate", "train.router_aux_loss_coef=0.01", "output.base_format=dense-f32"}
	ref := filepath.Join(root, "ref")
	cfg := tinyConfig(t, ref, sets...)
	sum, err := Train(context.Background(), Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if !(sum.EvalLoss < sum.InitialEvalLoss) {
		t.Errorf("held-out loss did not fall: %.4f -> %.4f", sum.InitialEvalLoss, sum.EvalLoss)
	}
	ms, err := ReadMetrics(ref)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 8 {
		t.Fatalf("%d metrics lines, want 8", len(ms))
	}
	for _, m := range ms {
		if m.RouterAuxLoss == nil || !(*m.RouterAuxLoss > 0) || math.IsInf(*m.RouterAuxLoss, 0) {
			t.Fatalf("step %d: router_aux_loss %v", m.Step, m.RouterAuxLoss)
		}
	}

	saved, tensors := peftAdapter(t, ref)
	if !slices.Equal(saved, []string{"gate"}) {
		t.Errorf("adapter_config.json modules_to_save %v, want [gate]", saved)
	}
	orig, err := safetensors.Open(filepath.Join(modelDir, safetensors.SingleFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	for l := range mc.Layers {
		key := "base_model.model." + mc.RouterModuleName(l) + ".weight"
		if key != "base_model.model.model.layers."+string(rune('0'+l))+".block_sparse_moe.gate.weight" {
			t.Fatalf("router key %s", key)
		}
		got, ok := tensors[key]
		if !ok {
			t.Fatalf("PEFT adapter lacks %s", key)
		}
		w0, err := orig.Float32(mc.RouterModuleName(l) + ".weight")
		if err != nil {
			t.Fatal(err)
		}
		var diff float64
		for i := range w0 {
			diff = max(diff, math.Abs(float64(got[i]-w0[i])))
		}
		if len(got) != mc.Experts*mc.Hidden || diff == 0 {
			t.Errorf("%s: %d values, max change %g: the router did not train", key, len(got), diff)
		}
	}
	base, err := safetensors.Open(filepath.Join(ref, BaseDir, safetensors.SingleFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	for l := range mc.Layers {
		w, err := base.Float32(mc.RouterModuleName(l) + ".weight")
		if err != nil || !slices.Equal(w, tensors["base_model.model."+mc.RouterModuleName(l)+".weight"]) {
			t.Errorf("base/ does not hold layer %d's trained router (%v)", l, err)
		}
	}
	for n := range tensors {
		if strings.Contains(n, "modules_to_save") || strings.Contains(n, ".default.") {
			t.Errorf("PEFT key %s keeps PEFT's wrapper path", n)
		}
	}

	// Stopped after 2 steps and resumed: the same routers and adapters.
	stopped := filepath.Join(root, "stopped")
	if _, err := Train(context.Background(), Options{Config: tinyConfig(t, stopped, sets...), StopAfter: 2}); err != ErrInterrupted {
		t.Fatalf("stop: %v", err)
	}
	if _, err := Train(context.Background(), Options{Resume: stopped}); err != nil {
		t.Fatal(err)
	}
	sameAdapters(t, ref, stopped)
	_, resumed := peftAdapter(t, stopped)
	for l := range mc.Layers {
		key := "base_model.model." + mc.RouterModuleName(l) + ".weight"
		if !slices.Equal(resumed[key], tensors[key]) {
			t.Errorf("%s: the resumed run's router differs from the uninterrupted run's", key)
		}
	}

	// The run directory (base/ holds the trained routers) evaluates as the
	// trained model did.
	checkRunEvalLoss(t, ref, cfg, sum.EvalLoss, 1e-4)
}

// TestModulesToSaveQwen2MoEAndRefusals: Qwen2-MoE's router and shared
// expert gate train (with gradient checkpointing) and are exported under
// their names; a data-parallel run with the load-balancing loss and a model
// without routers are refused before training.
func TestModulesToSaveQwen2MoEAndRefusals(t *testing.T) {
	root := t.TempDir()
	mc := quickMoEConfigs()["qwen2_moe"]
	modelDir := filepath.Join(root, "model")
	if _, err := model.WriteRandomHF(context.Background(), modelDir, mc, model.RandomHFOptions{DType: safetensors.F32, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "run")
	cfg := tinyConfig(t, dir, "model.path="+modelDir, "model.tokenizer="+filepath.Join(assetsDir(t), "stories260K", "tok512.bin"),
		"train.max_steps=2", "data.seq_len=96", "train.checkpoint_every=0", "train.gradient_checkpointing=true",
		"adapters.modules_to_save=shared_expert_gate,gate", "train.router_aux_loss_coef=0.02")
	if _, err := Train(context.Background(), Options{Config: cfg}); err != nil {
		t.Fatal(err)
	}
	saved, tensors := peftAdapter(t, dir)
	if !slices.Equal(saved, []string{"gate", "shared_expert_gate"}) {
		t.Errorf("modules_to_save %v", saved)
	}
	for _, key := range []string{
		"base_model.model.model.layers.0.mlp.gate.weight",
		"base_model.model.model.layers.2.mlp.gate.weight",
		"base_model.model.model.layers.0.mlp.shared_expert_gate.weight",
		"base_model.model.model.layers.2.mlp.shared_expert_gate.weight",
	} {
		if _, ok := tensors[key]; !ok {
			t.Errorf("PEFT adapter lacks %s", key)
		}
	}
	if _, ok := tensors["base_model.model.model.layers.1.mlp.gate.weight"]; ok {
		t.Error("the dense layer 1 exports a router")
	}

	// Data-parallel runs refuse the load-balancing loss.
	two := filepath.Join(root, "two")
	c2 := *cfg
	c2.Output.Dir = two
	if _, err := trainRanks(t, []Options{{Config: &c2}, {Config: &c2}}); err == nil || !strings.Contains(err.Error(), "train.router_aux_loss_coef = 0.02 with 2 processes") {
		t.Errorf("2 ranks with the aux loss: %v", err)
	}

	_, err := Build(tinyConfig(t, filepath.Join(root, "dense"), "adapters.modules_to_save=gate"), nil)
	if err == nil || !strings.Contains(err.Error(), `adapters.modules_to_save: the model (llama) has no "gate" module`) {
		t.Errorf("stories260K with modules_to_save: %v", err)
	}
}
