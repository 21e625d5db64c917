package configs

import "github.com/salr-go/salr/model"

// The field doc comments in this file are the single source of the key
// documentation: TestGeneratedFiles turns them into docs_gen.go (used by
// Reference) and REFERENCE.md. After editing a comment run
//
//	go test ./configs -run TestGeneratedFiles -update
//
//go:generate go test -run TestGeneratedFiles -update

// Config is one fully specified run: what to prune, which adapters to train,
// on which data, and where to write the results. Its toml tags are the public
// key names of the config files; Load fills it from a preset or a file,
// Default gives the built-in values of absent keys.
type Config struct {
	// Fine-tuning method. lora: dense base plus LoRA (the sparsity section is
	// ignored). prune-lora: pruned base plus LoRA. salr: pruned base plus LoRA
	// plus the trainable SVD residual adapter. prune and prune-svd measure the
	// pruned base alone or with the SVD residual adapter; they never train, so
	// the train section is ignored (the run still writes its outputs).
	// lora-prune: LoRA on the dense base, then the merged weight W0 + s·BA of
	// every sparsity.target_modules projection pruned at sparsity.ratio
	// (prune after training). lora-prune-dynamic: LoRA on the dense base
	// whose forward uses (W0 + s·BA) ⊙ M, the mask M recomputed from the
	// merged weight every sparsity.every steps (prune during training). Both
	// end with the pruned merged model and no adapter, written like prune's
	// pruned base.
	// qlora: QLoRA, the dense base quantized to NF4 (dense-nf4: 4-bit
	// NormalFloat, an absmax scale per block of 64 values, scales
	// double-quantized) plus LoRA; the sparsity section and
	// output.base_format are ignored.
	Method string `toml:"method"`
	// Model holds the base checkpoint and tokenizer.
	Model ModelConfig `toml:"model"`
	// Sparsity holds how the frozen base weights are pruned.
	Sparsity SparsityConfig `toml:"sparsity"`
	// Adapters holds the LoRA and SVD residual adapter settings.
	Adapters AdaptersConfig `toml:"adapters"`
	// Data holds the training data and its tokenisation.
	Data DataConfig `toml:"data"`
	// Train holds the optimiser, schedule and loop settings.
	Train TrainConfig `toml:"train"`
	// Eval holds the benchmark run after training, and salr-eval -run's
	// defaults.
	Eval EvalConfig `toml:"eval"`
	// Output holds what the run writes and where.
	Output OutputConfig `toml:"output"`

	// Notes are remarks on how Load read the config that are not errors,
	// such as an old spelling it replaced ("file:line: key: ..."); callers
	// print them. They are not a key.
	Notes []string `toml:"-"`
	// written is set by LoadPrintable: path fields hold text in the written
	// form Load expands (${VAR} of unset variables kept, '$' doubled).
	written bool
}

// ModelConfig locates the base checkpoint and its tokenizer.
type ModelConfig struct {
	// Base checkpoint: a HuggingFace model directory (config.json plus
	// safetensors), a llama.cpp .gguf file (F32, F16, BF16 or Q8_0 tensors;
	// its tokenizer comes with it) or a llama2.c .bin file. It may name a prepared base
	// written by salr-prepare: pruning and the SVD are then skipped, and
	// its sparsity, base format and SVD settings must match this config's.
	Path string `toml:"path" env:"expand"`
	// Tokenizer file or directory (tokenizer.json, a directory holding it, or
	// a llama2.c tok*.bin). Empty: tokenizer.json from the model directory,
	// the tokenizer inside a .gguf model, or tok512.bin beside a .bin model.
	Tokenizer string `toml:"tokenizer" env:"expand"`
}

// SparsityConfig says how the frozen base weights are pruned (ignored by
// method lora), or the merged weights of lora-prune and lora-prune-dynamic.
type SparsityConfig struct {
	// Fraction of the weights of each pruned projection set to zero. With an
	// N:M pattern it must equal 1 - N/M.
	Ratio float64 `toml:"ratio"`
	// Where the ratio is enforced: matrix (the smallest scores of the whole
	// matrix, as in the paper), row (per output row), or N:M (keep N of every M
	// consecutive weights along the input dimension, e.g. 2:4).
	Pattern string `toml:"pattern"`
	// Pruning score: magnitude (|W|) or wanda (|W| times the input activation
	// norm, from calibration batches of the training data).
	Score string `toml:"score"`
	// Number of training batches used to collect activation norms for wanda.
	CalibrationBatches int `toml:"calibration_batches"`
	// Projections whose frozen base is pruned: any of q_proj, k_proj, v_proj,
	// o_proj, gate_proj, up_proj, down_proj, or all-linear for all of them.
	// Mixture-of-experts models also take w1, w2, w3 (Mixtral's expert
	// projections), experts (every routed expert's projections) and
	// shared_expert (Qwen2-MoE's); gate_proj, up_proj and down_proj select
	// Qwen2-MoE's experts too, and all-linear includes every expert. Routers
	// are never pruned. With salr and prune-svd every pruned projection gets
	// the SVD residual adapter.
	TargetModules []string `toml:"target_modules"`
	// Steps between recomputations of the mask of W0 + s·BA (method
	// lora-prune-dynamic only): before steps 0, every, 2·every, ... and once
	// more after the last step, which gives the final model's mask.
	Every int `toml:"every"`
}

// AdaptersConfig holds the LoRA and SVD residual adapter settings.
type AdaptersConfig struct {
	// Projections that get a LoRA adapter (methods lora, prune-lora, salr,
	// lora-prune, lora-prune-dynamic); same names as sparsity.target_modules.
	TargetModules []string `toml:"target_modules"`
	// LoRA rank r; at least 1 for the methods that train LoRA.
	LoRARank int `toml:"lora_rank"`
	// LoRA alpha; the LoRA update is scaled by alpha/r (alpha/sqrt(r) with
	// rslora).
	LoRAAlpha float64 `toml:"lora_alpha"`
	// Dropout probability on the LoRA input during training.
	LoRADropout float64 `toml:"lora_dropout"`
	// Initialisation of LoRA A (B starts at zero): kaiming (uniform, as PEFT's
	// default) or gaussian (normal with std 1/r).
	LoRAInit string `toml:"lora_init"`
	// Rank-stabilised LoRA: scale by alpha/sqrt(r) instead of alpha/r.
	RSLoRA bool `toml:"rslora"`
	// Rank of the truncated SVD of the pruning residual; at least 1 for salr
	// and prune-svd, 0 allowed for the other methods.
	SVDRank int `toml:"svd_rank"`
	// Train the SVD residual adapter along with LoRA (salr); false keeps it
	// frozen at its SVD initialisation.
	SVDTrainable bool `toml:"svd_trainable"`
	// How the SVD of the pruning residual is computed: exact (the optimum;
	// slow on wide matrices), randomized (svd_oversample, svd_power_iters), or
	// auto (exact when the matrix's smaller side is at most 128, else
	// randomized).
	SVDMethod string `toml:"svd_method"`
	// Extra random directions of the randomized SVD beyond svd_rank.
	SVDOversample int `toml:"svd_oversample"`
	// Power iterations of the randomized SVD (more: closer to the exact SVD).
	SVDPowerIters int `toml:"svd_power_iters"`
	// Modules trained in full besides the adapters (PEFT's modules_to_save),
	// by short name: gate (a mixture-of-experts model's router, Mixtral's
	// block_sparse_moe.gate, Qwen2-MoE's mlp.gate) and shared_expert_gate
	// (Qwen2-MoE's). They train as dense fp32 weights with AdamW (train.lr,
	// train.weight_decay), are saved in checkpoints and in the exported
	// base, and the PEFT adapter holds them under their module names, as
	// PEFT saves modules_to_save. Needs a method that trains, train.precision
	// fp32 and a model that has the modules; empty (the default) trains none.
	ModulesToSave []string `toml:"modules_to_save"`
}

// DataConfig names the training data and how it is tokenised.
type DataConfig struct {
	// Training data format: gsm8k (JSONL with question/answer), jsonl
	// (instruction JSONL with the fields below), metamathqa (MetaMathQA as
	// released, MetaMathQA-395K.json, or the same records as JSONL, in the
	// MetaMath authors' prompt template) or mmlu (a directory of MMLU CSV
	// files: auxiliary_train, or the data.tar root holding it).
	Format string `toml:"format"`
	// Training data: a file for gsm8k, jsonl and metamathqa, a directory for
	// mmlu.
	TrainPath string `toml:"train_path" env:"expand"`
	// Held-out data in the same format. Empty: hold out eval_examples
	// examples of the training data.
	EvalPath string `toml:"eval_path" env:"expand"`
	// Number of training examples held out for evaluation when eval_path is
	// empty; 0 disables the held-out loss.
	EvalExamples int `toml:"eval_examples"`
	// JSON field holding the prompt (format jsonl only).
	PromptField string `toml:"prompt_field"`
	// JSON field holding the response, the only tokens with loss (format
	// jsonl only).
	ResponseField string `toml:"response_field"`
	// Tokens per training sequence (prompt plus response).
	SeqLen int `toml:"seq_len"`
	// What to do with an example longer than seq_len: truncate (cut the end)
	// or drop (skip it).
	Overlong string `toml:"overlong"`
	// Use at most this many training examples; 0 uses all. The first ones of
	// the file, except for metamathqa, which draws them by a shuffle seeded
	// by train.seed.
	MaxExamples int `toml:"max_examples"`
	// MetaMathQA types to train on, e.g. ["GSM_AnsAug", "GSM_Rephrased"]
	// (format metamathqa only); empty uses all.
	Types []string `toml:"types"`
	// Pack several training examples into each seq_len row (first fit, in
	// the shuffled order), each with its own positions and attending only to
	// itself, instead of one padded example per row: the same loss per
	// example with less padding, so fewer steps per epoch.
	Packing bool `toml:"packing"`
}

// TrainConfig holds the optimiser, learning-rate schedule and loop settings.
type TrainConfig struct {
	// Optimiser steps. 0 is valid: prune, initialise the adapters and write
	// the run directory without training.
	MaxSteps int `toml:"max_steps"`
	// Sequences per micro-batch.
	BatchSize int `toml:"batch_size"`
	// Micro-batches accumulated per optimiser step (effective batch =
	// batch_size * grad_accum).
	GradAccum int `toml:"grad_accum"`
	// Peak AdamW learning rate, reached after warmup.
	LR float64 `toml:"lr"`
	// AdamW decoupled weight decay.
	WeightDecay float64 `toml:"weight_decay"`
	// AdamW beta1.
	AdamBeta1 float64 `toml:"adam_beta1"`
	// AdamW beta2.
	AdamBeta2 float64 `toml:"adam_beta2"`
	// AdamW epsilon.
	AdamEps float64 `toml:"adam_eps"`
	// Steps of linear warmup from 0 to lr.
	WarmupSteps int `toml:"warmup_steps"`
	// Decay after warmup: cosine, linear (both down to min_lr_ratio * lr at
	// max_steps) or constant.
	Schedule string `toml:"schedule"`
	// Final learning rate as a fraction of lr (cosine and linear).
	MinLRRatio float64 `toml:"min_lr_ratio"`
	// Clip the global gradient norm to this value; 0 disables clipping.
	GradClip float64 `toml:"grad_clip"`
	// Weight of a mixture-of-experts model's load-balancing loss (Mixtral's
	// router auxiliary loss, num_experts · Σ_e f_e · P_e, over every token
	// position of the batch rows and every MoE layer), added to the loss as
	// coef · aux. Above 0 it needs a trained router (adapters.modules_to_save
	// listing gate), since the loss trains nothing else; other models
	// ignore the key.
	RouterAuxLossCoef float64 `toml:"router_aux_loss_coef"`
	// Keep only each decoder layer's input through the forward pass and
	// recompute the layer when the backward pass reaches it (HF's
	// gradient_checkpointing): the activations of all layers but one are
	// not held, for one extra forward pass per step. Results are bitwise the
	// same.
	GradientCheckpointing bool `toml:"gradient_checkpointing"`
	// Arithmetic of the training step's matrix products: fp32, or bf16
	// autocast as PyTorch's CPU autocast does it (both operands of every
	// product of the frozen projections, the adapters forward and
	// backward, attention and the head rounded to bfloat16, products
	// accumulated and returned in fp32; weights, gradients, AdamW state,
	// norms, softmax and losses stay fp32; a dense fp32 frozen weight is
	// multiplied as a bf16 copy, a bitmap-fp16/bitmap-fp32 base at its
	// storage precision). Held-out losses, evaluation and inference run in
	// fp32. Without AVX512-BF16 the rounding is emulated (round, then the
	// fp32 GEMM), which is slower than fp32; fp32 is the default and keeps
	// earlier results bitwise.
	Precision string `toml:"precision"`
	// Seed of every random choice (adapter init, dropout, data order,
	// held-out split, randomized SVD). A prepared base (model.path) keeps
	// the SVD seed it was made with.
	Seed int64 `toml:"seed"`
	// Evaluate the held-out loss every this many steps; 0: only at the end.
	EvalEvery int `toml:"eval_every"`
	// Held-out batches per evaluation; 0: the whole held-out set.
	EvalBatches int `toml:"eval_batches"`
	// Log metrics every this many steps.
	LogEvery int `toml:"log_every"`
	// Write a checkpoint every this many steps; 0: only at the end and on
	// interrupt.
	CheckpointEvery int `toml:"checkpoint_every"`
	// Worker threads; 0 uses all cores.
	Threads int `toml:"threads"`
}

// EvalConfig describes the benchmark run after training.
type EvalConfig struct {
	// Benchmark run after training (salr-eval -run takes it as the default
	// task): empty for none, gsm8k or mmlu.
	Task string `toml:"task"`
	// Prompt template: lm-eval (lm-evaluation-harness's gsm8k and mmlu
	// prompts) or metamath (GSM8K zero-shot as MetaMath evaluates:
	// its instruction template, "The answer is: " extraction). Empty: the
	// training data's template (metamath for MetaMathQA, else lm-eval).
	Template string `toml:"template"`
	// Few-shot examples per prompt; -1: the template's default (5 for
	// lm-eval, 0 for metamath, which is zero-shot only).
	Shots int `toml:"shots"`
	// Evaluate at most this many documents; 0: all.
	Limit int `toml:"limit"`
	// Benchmark data directory. Empty: ${SALR_ASSETS}/gsm8k or
	// ${SALR_ASSETS}/mmlu.
	DataPath string `toml:"data_path" env:"expand"`
	// Generation limit for gsm8k answers; 0: the template's default (256 as
	// lm-eval, 512 as MetaMath).
	MaxNewTokens int `toml:"max_new_tokens"`
	// Start every prompt with BOS: tokenizer (the tokenizer's own setting,
	// add_bos_token, which training follows too), true or false.
	BOS string `toml:"bos"`
	// Prompts evaluated together.
	Batch int `toml:"batch"`
}

// OutputConfig says what a run writes and where.
type OutputConfig struct {
	// Run directory (config, metrics, checkpoints, adapters, compressed base).
	Dir string `toml:"dir" env:"expand"`
	// Also export the adapters in HuggingFace PEFT format.
	SavePEFT bool `toml:"save_peft"`
	// Write the pruned base model.
	SaveBase bool `toml:"save_base"`
	// Storage of the pruned base, in training and in the run directory:
	// dense-fp32, dense-bf16 (dense with zeros), or bitmap-bf16, bitmap-fp16,
	// bitmap-fp32 (one bit per position plus the packed nonzero values; the
	// run directory then also holds compressed/), or bitmap-nf4 (the bitmap
	// with the kept values in QLoRA's 4-bit NormalFloat, an absmax scale per
	// 64 values, scales double-quantized: 0.19x the bytes of dense bf16 at
	// 50%) and dense-nf4 (every value in NF4, as method qlora stores its
	// base), also with compressed/. base/ is always a dense HF directory, in
	// bf16 for the bf16 and nf4 formats, fp16 for bitmap-fp16, else fp32. The old spellings dense-f32, bitmap-f32 and bitmap-f16 are read
	// as dense-fp32, bitmap-fp32 and bitmap-fp16, with a note.
	BaseFormat string `toml:"base_format"`
}

// Default returns the value of every key a config file leaves out: the
// quickstart run (SALR on stories260K and GSM8K under ${SALR_ASSETS}).
// Path fields are returned unexpanded; Load expands them.
func Default() Config {
	return Config{
		Method: MethodSALR,
		Model: ModelConfig{
			Path: "${SALR_ASSETS}/stories260K/stories260K.bin",
		},
		Sparsity: SparsityConfig{
			Ratio:              0.5,
			Pattern:            PatternMatrix,
			Score:              ScoreMagnitude,
			CalibrationBatches: 4,
			TargetModules:      []string{AllLinear},
			Every:              10,
		},
		Adapters: AdaptersConfig{
			TargetModules: []string{AllLinear},
			LoRARank:      16,
			LoRAAlpha:     32,
			LoRADropout:   0.05,
			LoRAInit:      InitKaiming,
			SVDRank:       16,
			SVDTrainable:  true,
			SVDMethod:     SVDAuto,
			SVDOversample: 64,
			SVDPowerIters: 16,
			ModulesToSave: []string{},
		},
		Data: DataConfig{
			Format:        FormatGSM8K,
			TrainPath:     "${SALR_ASSETS}/gsm8k/train.jsonl",
			EvalExamples:  200,
			PromptField:   "query",
			ResponseField: "response",
			SeqLen:        256,
			Overlong:      OverlongTruncate,
			Types:         []string{},
		},
		Train: TrainConfig{
			MaxSteps:        300,
			BatchSize:       8,
			GradAccum:       1,
			LR:              2e-4,
			AdamBeta1:       0.9,
			AdamBeta2:       0.999,
			AdamEps:         1e-8,
			WarmupSteps:     10,
			Schedule:        ScheduleCosine,
			GradClip:        1,
			Seed:            42,
			EvalEvery:       50,
			LogEvery:        1,
			CheckpointEvery: 50,
			Precision:       PrecisionFP32,
		},
		Eval: EvalConfig{
			Shots: -1,
			Batch: 8,
			BOS:   EvalBOSTokenizer,
		},
		Output: OutputConfig{
			Dir:        "runs/quickstart",
			SavePEFT:   true,
			SaveBase:   true,
			BaseFormat: string(model.BaseBitmapBF16),
		},
	}
}
