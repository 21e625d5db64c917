// Package configs is the run configuration of the SALR tools: the TOML
// schema (Config), its defaults, validation, -set overrides, the embedded
// presets and the generated key reference. It knows nothing about tensors
// and imports no other package of the project.
//
// A run is described by one TOML file with the sections [model],
// [sparsity], [adapters], [data], [train], [eval] and [output] plus the
// top-level key method; Reference lists every key. Load resolves a file or
// an embedded preset (quickstart, gsm8k, mmlu; Presets lists them), decodes
// it on top of Default, applies "-set KEY=VALUE" overrides, expands
// environment variables in path fields and validates:
//
//	cfg, err := configs.Load("gsm8k.toml", []string{"train.lr=1e-4", "method=lora"})
//
// Rules worth knowing:
//
//   - Unknown keys, wrong types and out-of-range values are errors that name
//     the file and line ("gsm8k.toml:12: train.lr: must be > 0, got 0") or
//     the -set flag; all problems of a config are reported together.
//   - Path fields (model.path, model.tokenizer, data.train_path,
//     data.eval_path, eval.data_path, output.dir) expand ${VAR} and $VAR;
//     an unset variable is an error; $$ is a literal '$'. Relative paths are
//     relative to the working directory.
//   - The loaded Config holds the expanded paths: the run directory records
//     the effective config (MarshalTOML), which Load reads back unchanged.
//   - method lora ignores the sparsity section; prune and prune-svd never
//     train and ignore the train section (Steps returns 0). Ignored keys are
//     still range-checked, so a config stays valid when its method changes.
//   - With salr and prune-svd the SVD residual adapter sits on every pruned
//     projection (sparsity.target_modules); LoRA sits on
//     adapters.target_modules.
package configs
