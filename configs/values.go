package configs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/salr-go/salr/model"
)

// Values of the key method.
const (
	MethodLoRA      = "lora"       // dense base, LoRA only
	MethodPruneLoRA = "prune-lora" // pruned base, LoRA only
	MethodSALR      = "salr"       // pruned base, LoRA and the SVD residual adapter
	MethodPrune     = "prune"      // pruned base only, no training
	MethodPruneSVD  = "prune-svd"  // pruned base and the SVD residual adapter, no training
	// LoRA on the dense base, then the merged W0 + s·BA pruned (prune after
	// training); the result has no adapter.
	MethodLoRAPrune = "lora-prune"
	// LoRA on the dense base trained through the mask of W0 + s·BA,
	// recomputed every sparsity.every steps (prune during training); the
	// result is the pruned merged weight, no adapter.
	MethodLoRAPruneDynamic = "lora-prune-dynamic"
	// dense base stored in NF4 (dense-nf4), LoRA only
	MethodQLoRA = "qlora"
)

// Values of sparsity.pattern other than "N:M".
const (
	PatternMatrix = "matrix" // ratio enforced over the whole matrix
	PatternRow    = "row"    // ratio enforced per output row
)

// Values of sparsity.score.
const (
	ScoreMagnitude = "magnitude"
	ScoreWanda     = "wanda"
)

// Values of adapters.lora_init.
const (
	InitKaiming  = "kaiming"
	InitGaussian = "gaussian"
)

// Values of adapters.svd_method.
const (
	SVDAuto       = "auto"
	SVDExact      = "exact"
	SVDRandomized = "randomized"
)

// Values of data.format.
const (
	FormatGSM8K      = "gsm8k"
	FormatJSONL      = "jsonl"
	FormatMetaMathQA = "metamathqa"
	FormatMMLU       = "mmlu"
)

// Values of data.overlong.
const (
	OverlongTruncate = "truncate"
	OverlongDrop     = "drop"
)

// Values of train.schedule.
const (
	ScheduleCosine   = "cosine"
	ScheduleLinear   = "linear"
	ScheduleConstant = "constant"
)

// Values of train.precision.
const (
	PrecisionFP32 = "fp32"
	PrecisionBF16 = "bf16"
)

// Values of eval.task ("" means no task).
const (
	TaskGSM8K = "gsm8k"
	TaskMMLU  = "mmlu"
)

// Values of eval.template ("" means the training data's template).
const (
	EvalTemplateLMEval   = "lm-eval"
	EvalTemplateMetaMath = "metamath"
)

// EvalBOSTokenizer is eval.bos's default: BOS as the tokenizer adds it.
const EvalBOSTokenizer = "tokenizer"

// Allowed values of eval.template and eval.bos.
var (
	evalTemplates = []string{"", EvalTemplateLMEval, EvalTemplateMetaMath}
	evalBOS       = []string{EvalBOSTokenizer, "true", "false"}
)

// AllLinear in a target_modules list stands for every projection.
const AllLinear = "all-linear"

// Allowed values of each enumerated key, in documentation order.
var (
	methods     = []string{MethodLoRA, MethodPruneLoRA, MethodSALR, MethodPrune, MethodPruneSVD, MethodLoRAPrune, MethodLoRAPruneDynamic, MethodQLoRA}
	scores      = []string{ScoreMagnitude, ScoreWanda}
	loraInits   = []string{InitKaiming, InitGaussian}
	svdMethods  = []string{SVDAuto, SVDExact, SVDRandomized}
	dataFormats = []string{FormatGSM8K, FormatJSONL, FormatMetaMathQA, FormatMMLU}
	overlongs   = []string{OverlongTruncate, OverlongDrop}
	schedules   = []string{ScheduleCosine, ScheduleLinear, ScheduleConstant}
	precisions  = []string{PrecisionFP32, PrecisionBF16}
	evalTasks   = []string{"", TaskGSM8K, TaskMMLU}
	baseFormats = model.BaseFormatNames()
	projections = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
	// The mixture-of-experts names (Mixtral's expert projections, and the
	// groups of every routed expert's and the shared expert's projections).
	moeProjections = []string{"w1", "w2", "w3", "experts", "shared_expert"}
)

// ProjectionNames returns the names of the linear projections of a Llama
// layer that target_modules may list, in layer order.
func ProjectionNames() []string { return append([]string(nil), projections...) }

// ExpandModules resolves a target_modules list to projection names in layer
// order, without duplicates; all-linear stands for every projection. Unknown
// names are dropped (Validate reports them).
func ExpandModules(targets []string) []string {
	want := make(map[string]bool, len(targets))
	for _, t := range targets {
		want[t] = true
	}
	var out []string
	for _, p := range projections {
		if want[p] || want[AllLinear] {
			out = append(out, p)
		}
	}
	for _, p := range moeProjections {
		if want[p] {
			out = append(out, p)
		}
	}
	return out
}

// Trains reports whether the method trains adapters (lora, prune-lora,
// salr, lora-prune, lora-prune-dynamic, qlora); prune and prune-svd only
// measure.
func (c *Config) Trains() bool {
	return c.Method == MethodLoRA || c.Method == MethodPruneLoRA || c.Method == MethodSALR || c.Method == MethodQLoRA || c.PrunesMerged()
}

// Prunes reports whether the method prunes the frozen base before training
// (every method but lora, qlora, lora-prune and lora-prune-dynamic).
func (c *Config) Prunes() bool {
	return c.Method != MethodLoRA && c.Method != MethodQLoRA && !c.PrunesMerged()
}

// PrunesMerged reports whether the method trains LoRA on the dense base and
// prunes the merged weight W0 + s·BA, after training (lora-prune) or during
// it (lora-prune-dynamic); its result is a pruned model without adapters.
func (c *Config) PrunesMerged() bool {
	return c.Method == MethodLoRAPrune || c.Method == MethodLoRAPruneDynamic
}

// BaseFormat is the storage of the frozen base the run trains on and
// exports: dense-nf4 for qlora (QLoRA's NF4 base), output.base_format
// otherwise.
func (c *Config) BaseFormat() string {
	if c.Method == MethodQLoRA {
		return string(model.BaseDenseNF4)
	}
	return c.Output.BaseFormat
}

// SavesAdapters reports whether the method's run directory holds adapters
// (every training method but lora-prune and lora-prune-dynamic, which merge
// them, and prune-svd).
func (c *Config) SavesAdapters() bool {
	return (c.HasLoRA() && !c.PrunesMerged()) || c.HasSVDAdapter()
}

// HasLoRA reports whether the method uses LoRA adapters.
func (c *Config) HasLoRA() bool { return c.Trains() }

// HasSVDAdapter reports whether the method adds the SVD residual adapter to
// every pruned projection (salr, prune-svd).
func (c *Config) HasSVDAdapter() bool {
	return c.Method == MethodSALR || c.Method == MethodPruneSVD
}

// Steps is the number of optimiser steps the run takes: train.max_steps for
// the training methods, 0 for prune and prune-svd.
func (c *Config) Steps() int {
	if !c.Trains() {
		return 0
	}
	return c.Train.MaxSteps
}

// NM returns N and M of an "N:M" pattern (keep N of every M consecutive
// weights); ok is false for matrix, row and malformed patterns.
func (s SparsityConfig) NM() (n, m int, ok bool) {
	n, m, err := parseNM(s.Pattern)
	return n, m, err == nil
}

// parseNM parses "N:M" with decimal N and M, 0 < N < M.
func parseNM(pattern string) (n, m int, err error) {
	ns, ms, found := strings.Cut(pattern, ":")
	if !found {
		return 0, 0, errors.New(`not of the form "N:M"`)
	}
	if n, err = parseDecimal(ns); err != nil {
		return 0, 0, fmt.Errorf("N: %w", err)
	}
	if m, err = parseDecimal(ms); err != nil {
		return 0, 0, fmt.Errorf("M: %w", err)
	}
	if n <= 0 || n >= m {
		return 0, 0, fmt.Errorf("need 0 < N < M, got N=%d M=%d", n, m)
	}
	return n, m, nil
}

// parseDecimal accepts only plain decimal digits (no sign, no spaces).
func parseDecimal(s string) (int, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a decimal number", s)
	}
	return strconv.Atoi(s)
}

// DataPathFor returns the benchmark data directory for task: data_path when
// set, else ${SALR_ASSETS}/<task>. It fails when neither is available.
func (e EvalConfig) DataPathFor(task string) (string, error) {
	if e.DataPath != "" {
		return e.DataPath, nil
	}
	assets, ok := os.LookupEnv("SALR_ASSETS")
	if !ok || assets == "" {
		return "", fmt.Errorf("eval.data_path: empty and SALR_ASSETS is not set; set one of them to the %s data directory", task)
	}
	return filepath.Join(assets, task), nil
}

// The adapters.modules_to_save names: a mixture-of-experts model's router
// (Mixtral's block_sparse_moe.gate, Qwen2-MoE's mlp.gate) and Qwen2-MoE's
// shared expert gate (mlp.shared_expert_gate).
const (
	ModuleRouter           = "gate"
	ModuleSharedExpertGate = "shared_expert_gate"
)

// SavableModules are the modules adapters.modules_to_save may list.
var SavableModules = []string{ModuleRouter, ModuleSharedExpertGate}
