// Package export turns a salr-train run directory into files other tools
// load: a merged HF model directory (transformers, vLLM), a merged GGUF
// model (llama.cpp, ollama) and a GGUF LoRA adapter (llama.cpp's --lora).
//
// Merging adds each projection's trained update to its pruned base,
// W = W_base + B diag(scale) A (adapters.Fused.MergeInto), one projection at
// a time as the output is written: the merged model never exists whole in
// memory. The merged weights are dense, so the sparsity of the base is lost.
package export

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/model/safetensors"
	"github.com/salr-go/salr/trainer"
)

// The formats of Options.Format.
const (
	FormatHF       = "hf"
	FormatGGUF     = "gguf"
	FormatGGUFLoRA = "gguf-lora"
)

// The element types of Options.DType.
const (
	DTypeF32  = "f32"
	DTypeF16  = "f16"
	DTypeBF16 = "bf16"
	DTypeQ8_0 = "q8_0"
)

// DefaultMaxShardSize is the largest weight file of an HF export, as
// transformers' save_pretrained splits by default (5 GB).
const DefaultMaxShardSize int64 = 5_000_000_000

// Options say what to export.
type Options struct {
	Format string // FormatHF, FormatGGUF or FormatGGUFLoRA
	DType  string // DTypeF32 (when empty), DTypeF16, DTypeBF16 or DTypeQ8_0 (GGUF only)
	// Overwrite replaces an existing output.
	Overwrite bool
	// MaxShardSize bounds the tensor bytes of one HF weight file (0:
	// DefaultMaxShardSize).
	MaxShardSize int64
}

// Check reports options that cannot work, before anything is read.
func (o Options) Check() error {
	switch o.Format {
	case FormatHF, FormatGGUF, FormatGGUFLoRA:
	default:
		return fmt.Errorf("format %q: want hf, gguf or gguf-lora", o.Format)
	}
	switch o.DType {
	case "", DTypeF32, DTypeF16, DTypeBF16:
	case DTypeQ8_0:
		if o.Format == FormatHF {
			return fmt.Errorf("dtype q8_0 is a GGUF type: an HF export takes f32, f16 or bf16")
		}
	default:
		return fmt.Errorf("dtype %q: want f32, f16, bf16 or q8_0", o.DType)
	}
	if o.MaxShardSize < 0 {
		return fmt.Errorf("max shard size %d: want 0 (the default) or more", o.MaxShardSize)
	}
	return nil
}

// Run exports the run directory runDir to out (a directory for hf, a file
// for the GGUF formats) as o says.
func Run(runDir, out string, o Options) error {
	if err := o.Check(); err != nil {
		return err
	}
	if o.DType == "" {
		o.DType = DTypeF32
	}
	if err := checkOutput(out, o); err != nil {
		return err
	}
	if o.Format == FormatGGUFLoRA {
		return writeLoRA(runDir, out, o)
	}
	l, err := trainer.OpenRun(runDir)
	if err != nil {
		return err
	}
	defer l.Close()
	if o.Format == FormatHF {
		return writeHF(out, l, modelDir(runDir), o)
	}
	return writeGGUF(out, l, modelDir(runDir), filepath.Base(filepath.Clean(runDir)), o)
}

// checkOutput refuses an existing output without o.Overwrite before any
// work is done.
func checkOutput(out string, o Options) error {
	st, err := os.Stat(out)
	if err != nil {
		return nil
	}
	if o.Format == FormatHF {
		if !st.IsDir() {
			return fmt.Errorf("%s exists and is not a directory", out)
		}
		if o.Overwrite {
			return nil
		}
		for _, name := range []string{model.HFConfigFileName, safetensors.SingleFileName, safetensors.IndexFileName} {
			if _, err := os.Stat(filepath.Join(out, name)); err == nil {
				return fmt.Errorf("%s already holds a model (%s); pass -overwrite to replace it", out, name)
			}
		}
		return nil
	}
	if st.IsDir() {
		return fmt.Errorf("%s is a directory; a GGUF export is one file", out)
	}
	if !o.Overwrite {
		return fmt.Errorf("%s already exists (pass -overwrite to replace it)", out)
	}
	return nil
}

// modelDir is the directory trainer.OpenRun loads the model of runDir from,
// whose tokenizer files an HF export copies.
func modelDir(runDir string) string {
	compressed := filepath.Join(runDir, trainer.CompressedDir)
	if _, err := os.Stat(filepath.Join(compressed, model.HFConfigFileName)); err == nil {
		return compressed
	}
	return filepath.Join(runDir, trainer.BaseDir)
}
