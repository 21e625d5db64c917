// Package model holds the Llama-family decoders SALR fine-tunes (model_type
// llama, mistral and qwen2): their configuration, loading and saving, and the
// two ways of running them.
//
// Config is the architecture, read from a HuggingFace config.json
// (LoadHFConfig, ParseHFConfig) or a llama2.c header and written back with
// MarshalHF. A Checkpoint is a configuration plus its float32 tensors under
// HuggingFace names and in HuggingFace layout, whatever the source: Load
// reads a HuggingFace model directory (LoadHF, safetensors in F32, BF16, F16
// or F64), a llama2.c .bin file (LoadLlama2C) or a compressed model
// directory, whose pruned projections stay in kernels/bitmap form. Loading
// refuses tensors that do not match the configuration (missing or misshapen;
// in HuggingFace and llama2.c checkpoints, unused ones too) and dense weights
// that are NaN or infinite. Open loads a model together with its tokenizer
// (package model/tokenizer) and checks that the two agree on the vocabulary.
//
// Params arranges a checkpoint's tensors by role (embedding, per-layer norms
// and the seven projections of each Layer as Linear, the head) without
// copying; each Linear has a frozen base matrix (dense, pruned or bitmap) and
// an optional LowRank adapter. WriteHF and WriteParams save a model as a
// HuggingFace directory, dense or compressed.
//
// BuildGraph compiles the training graph (forward, masked cross-entropy and
// backward on gorgonia, through kernels/gop); Runner is the inference
// forward pass with a key/value cache, used by Generate and GenerateText.
// RandomCheckpoint and Bench60M give random-weight models of benchmark
// shapes. Subpackages: safetensors (the file format) and tokenizer.
package model
