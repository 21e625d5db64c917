package trainer

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/salr-go/salr/datasets"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/model/safetensors"
)

// quickMoEConfigs are quickstart-size random models of both MoE families
// over the quickstart's 512-token vocabulary.
func quickMoEConfigs() map[string]model.Config {
	mixtral := model.Config{ModelType: "mixtral", Hidden: 64, Intermediate: 96, Layers: 2, Heads: 8, KVHeads: 4, HeadDim: 8,
		Vocab: 512, MaxPositions: 512, RMSNormEps: 1e-5, RopeTheta: 10000, BOSTokenID: 1, EOSTokenIDs: []int{2},
		Experts: 4, ExpertsPerToken: 2, ExpertIntermediate: 96, NormTopKProb: true, SparseStep: 1}
	qwen := model.Config{ModelType: "qwen2_moe", Hidden: 64, Intermediate: 128, Layers: 3, Heads: 8, KVHeads: 4, HeadDim: 8,
		Vocab: 512, MaxPositions: 512, RMSNormEps: 1e-6, RopeTheta: 10000, BOSTokenID: 1, EOSTokenIDs: []int{2}, AttentionBias: true,
		Experts: 4, ExpertsPerToken: 2, ExpertIntermediate: 48, SharedIntermediate: 64, SparseStep: 1, MLPOnlyLayers: []int{1}}
	return map[string]model.Config{"mixtral": mixtral, "qwen2_moe": qwen}
}

// TestSALROnMoE fine-tunes a random Mixtral and Qwen2-MoE checkpoint (HF
// layout) with SALR on the quickstart data: every expert projection pruned
// and adapted, the router dense and frozen, the held-out loss falling, and
// the PEFT export named as PEFT names these models' modules.
func TestSALROnMoE(t *testing.T) {
	for name, mc := range quickMoEConfigs() {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			modelDir := filepath.Join(root, "model")
			if _, err := model.WriteRandomHF(context.Background(), modelDir, mc, model.RandomHFOptions{DType: safetensors.F32, Seed: 3}); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(root, "run")
			cfg := tinyConfig(t, dir, "model.path="+modelDir, "model.tokenizer="+filepath.Join(assetsDir(t), "stories260K", "tok512.bin"),
				"train.max_steps=10", "train.lr=3e-3", "data.seq_len=128", "train.checkpoint_every=0")
			sum, err := Train(context.Background(), Options{Config: cfg})
			if err != nil {
				t.Fatal(err)
			}
			if !(sum.EvalLoss < sum.InitialEvalLoss) {
				t.Errorf("held-out loss did not fall: %.4f -> %.4f", sum.InitialEvalLoss, sum.EvalLoss)
			}
			if sum.Sparsity != 0.5 {
				t.Errorf("sparsity %v, want 0.5", sum.Sparsity)
			}
			pc, tensors := readPEFTExport(t, dir)
			names := slices.Collect(maps.Keys(tensors))
			want := []string{
				"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
				"base_model.model.model.layers.1.block_sparse_moe.experts.3.w1.lora_A.weight",
				"base_model.model.model.layers.1.block_sparse_moe.experts.3.w2.lora_B.weight",
				"base_model.model.model.layers.0.block_sparse_moe.experts.0.w3.lora_A.weight",
			}
			targets := []string{"k_proj", "o_proj", "q_proj", "v_proj", "w1", "w2", "w3"}
			if name == "qwen2_moe" {
				want = []string{
					"base_model.model.model.layers.0.mlp.experts.3.gate_proj.lora_A.weight",
					"base_model.model.model.layers.2.mlp.experts.0.down_proj.lora_B.weight",
					"base_model.model.model.layers.0.mlp.shared_expert.up_proj.lora_A.weight",
					"base_model.model.model.layers.1.mlp.gate_proj.lora_A.weight",
				}
				targets = []string{"down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"}
			}
			for _, w := range want {
				if !slices.Contains(names, w) {
					t.Errorf("PEFT export lacks %s", w)
				}
			}
			for _, n := range names {
				if strings.Contains(n, ".gate.") || strings.Contains(n, "shared_expert_gate") {
					t.Errorf("PEFT export adapts a router or gate: %s", n)
				}
			}
			if !slices.Equal(pc.TargetModules, targets) {
				t.Errorf("target_modules %v, want %v", pc.TargetModules, targets)
			}
			// The exported run (a compressed base with the routers dense)
			// evaluates as the trained model did.
			checkRunEvalLoss(t, dir, cfg, sum.EvalLoss, 2e-2)
		})
	}
}

// TestWandaOnMoEUnroutedExperts prunes a Mixtral whose router sends every
// token to experts 0 and 1 (all-zero router logits: ties go to the lower
// index) with Wanda: experts 2 and 3 see no calibration token and are
// pruned by magnitude instead, with a log line saying so.
func TestWandaOnMoEUnroutedExperts(t *testing.T) {
	mc := quickMoEConfigs()["mixtral"]
	ck, err := model.RandomCheckpoint(mc, 5)
	if err != nil {
		t.Fatal(err)
	}
	for l := range mc.Layers {
		clear(ck.Tensors[mc.RouterModuleName(l)+".weight"].Data)
	}
	p, err := model.NewParams(ck)
	if err != nil {
		t.Fatal(err)
	}
	cfg := tinyConfig(t, filepath.Join(t.TempDir(), "run"), "sparsity.score=wanda", "sparsity.calibration_batches=1")
	seqs := make([]datasets.Sequence, 8)
	for i := range seqs {
		s := datasets.Sequence{Tokens: make([]int, 33), Loss: make([]bool, 33)}
		for j := range s.Tokens {
			s.Tokens[j], s.Loss[j] = (i*31+j*7)%mc.Vocab, true
		}
		seqs[i] = s
	}
	var logs []string
	setup, err := Prepare(cfg, &model.Loaded{Checkpoint: ck, Params: p}, &Data{Train: seqs}, func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) })
	if err != nil {
		t.Fatal(err)
	}
	defer setup.Close()
	unrouted := mc.ExpertModuleName(1, 3, model.DownProj)
	if st, ok := setup.Pruned[unrouted]; !ok || st.Pruned*2 != st.Rows*st.Cols {
		t.Errorf("%s: pruned %+v", unrouted, st)
	}
	if !slices.ContainsFunc(logs, func(s string) bool { return strings.Contains(s, "no calibration token reached 12 expert projections") }) {
		t.Errorf("no log of the unrouted experts in %q", logs)
	}
}

// TestMoERanksTrainLikeOneProcess: a Mixtral trained with LoRA dropout as 2
// data-parallel ranks ends with the adapters of one process (up to float32
// summation order): the experts' dropout follows the tokens, not their
// place in an expert's group.
func TestMoERanksTrainLikeOneProcess(t *testing.T) {
	root := t.TempDir()
	modelDir := filepath.Join(root, "model")
	if _, err := model.WriteRandomHF(context.Background(), modelDir, quickMoEConfigs()["mixtral"], model.RandomHFOptions{DType: safetensors.F32, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	sets := []string{"model.path=" + modelDir, "model.tokenizer=" + filepath.Join(assetsDir(t), "stories260K", "tok512.bin"),
		"train.max_steps=4", "adapters.lora_dropout=0.2", "train.lr=3e-3", "data.seq_len=96", "train.checkpoint_every=0"}
	ref, two := filepath.Join(root, "ref"), filepath.Join(root, "two")
	if _, err := Train(context.Background(), Options{Config: tinyConfig(t, ref, sets...)}); err != nil {
		t.Fatal(err)
	}
	if _, err := trainRanks(t, []Options{{Config: tinyConfig(t, two, sets...)}, {Config: tinyConfig(t, two, sets...)}}); err != nil {
		t.Fatal(err)
	}
	checkSameAdapters(t, ref, two)
}
