// Command salr-convert turns a llama2.c checkpoint (and its tokenizer) or a
// HuggingFace model directory into a HuggingFace model directory:
// config.json, model.safetensors, tokenizer.json and tokenizer_config.json.
// With -compress it prunes every projection by weight magnitude (per matrix,
// at -sparsity) and writes the compressed form SALR loads (bitmap weights,
// their kept values in bf16, fp16, fp32 or NF4; see model.WriteParams),
// readable by salr-generate and salr-eval.
//
//	salr-convert -from llama2c -in stories260K.bin -tokenizer tok512.bin -out DIR [-dtype fp32|bf16|fp16] [-overwrite]
//	salr-convert -compress -sparsity 0.5 [-compress-dtype bf16|fp16|fp32|nf4] -from llama2c|hf -in PATH [-tokenizer PATH] -out DIR
//
// A compressed directory given to -from hf -in (without -compress) is written
// back densely.
//
// -force is an old spelling of -overwrite; f32, f16 and the other spellings
// of safetensors.ParseDType are accepted by -dtype.
//
// Exit status: 0 on success, 1 when the conversion fails, 2 for usage
// errors, 130 when interrupted.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/salr-go/salr/cmd/internal/cli"
	"github.com/salr-go/salr/kernels/bitmap"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/model/safetensors"
	"github.com/salr-go/salr/model/tokenizer"
	"github.com/salr-go/salr/trainer"
)

// options are the command-line settings of one conversion.
type options struct {
	from      string // source format: "llama2c" or "hf"
	in        string // the checkpoint file or HF directory
	tokenizer string // the tokenizer file or directory ("" = the source's own, if any)
	out       string // the HuggingFace directory to write
	dtype     safetensors.DType
	overwrite bool // replace a model already in out

	compress       bool             // prune and write the compressed form
	sparsity       float64          // fraction of each projection pruned
	compressFormat model.BaseFormat // of the compressed weights (-compress-dtype): bitmap-bf16, -fp16, -fp32 or bitmap-nf4
}

// parseArgs reads the command line; -h prints the help to stdout, a note
// on a deprecated flag goes to stderr.
func parseArgs(args []string, stdout, stderr io.Writer) (options, error) {
	fs := cli.NewFlagSet("salr-convert",
		"salr-convert [-from llama2c|hf] -in PATH [-tokenizer PATH] -out DIR [-dtype fp32|bf16|fp16] [-overwrite]\nsalr-convert -compress [-sparsity 0.5] [-compress-dtype bf16|fp16|fp32|nf4] [-from llama2c|hf] -in PATH [-tokenizer PATH] -out DIR [-overwrite]",
		"Convert a llama2.c checkpoint or an HF model directory into an HF model directory, optionally\npruned by magnitude and bitmap-compressed. -in and -out are required.")
	var opts options
	var dtype, compressDType string
	var force bool
	fs.StringVar(&opts.from, "from", "llama2c", "source checkpoint format: llama2c or hf")
	fs.StringVar(&opts.in, "in", "", "source checkpoint: a llama2.c .bin `file` or an HF model directory (required)")
	fs.StringVar(&opts.tokenizer, "tokenizer", "", "tokenizer `path` to convert alongside (llama2c: tokenizer.bin / tok512.bin; hf: default the source directory's)")
	fs.StringVar(&opts.out, "out", "", "output HuggingFace model `directory` (required)")
	fs.StringVar(&dtype, "dtype", "fp32", "weight dtype in model.safetensors: fp32, bf16 or fp16 (without -compress)")
	fs.BoolVar(&opts.overwrite, "overwrite", false, "replace a model already present in -out")
	fs.BoolVar(&force, "force", false, "deprecated spelling of -overwrite")
	fs.BoolVar(&opts.compress, "compress", false, "prune every projection by magnitude and write the bitmap-compressed model")
	fs.Float64Var(&opts.sparsity, "sparsity", 0.5, "with -compress: fraction of each projection's weights pruned, in (0, 1)")
	fs.StringVar(&compressDType, "compress-dtype", "bf16", "with -compress: value type of the compressed weights and of the dense tensors: bf16, fp16, fp32, or nf4 (QLoRA's 4-bit NormalFloat with absmax scales per 64 values, double-quantized; the dense tensors then in bf16)")
	if err := cli.Parse(fs, args, stdout); err != nil {
		return options{}, err
	}
	if force {
		fmt.Fprintln(stderr, "salr-convert: note: -force is deprecated; use -overwrite")
		opts.overwrite = true
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case opts.from != "llama2c" && opts.from != "hf":
		return options{}, cli.UsageError(fmt.Sprintf("-from %q is not supported (want llama2c or hf)", opts.from))
	case opts.in == "":
		return options{}, cli.UsageError("-in is required")
	case opts.out == "":
		return options{}, cli.UsageError("-out is required")
	case opts.compress && set["dtype"]:
		return options{}, cli.UsageError("-dtype does not apply with -compress (the dense tensors follow -compress-dtype)")
	case !opts.compress && (set["sparsity"] || set["compress-dtype"]):
		return options{}, cli.UsageError("-sparsity and -compress-dtype need -compress")
	case opts.compress && !(opts.sparsity > 0 && opts.sparsity < 1):
		return options{}, cli.UsageError(fmt.Sprintf("-sparsity %v: want a fraction in (0, 1)", opts.sparsity))
	}
	d, err := safetensors.ParseDType(dtype)
	if err != nil || (d != safetensors.F32 && d != safetensors.BF16 && d != safetensors.F16) {
		return options{}, cli.UsageError(fmt.Sprintf("-dtype %q: want fp32, bf16 or fp16", dtype))
	}
	opts.dtype = d
	if opts.compress {
		if strings.EqualFold(compressDType, "nf4") {
			opts.compressFormat = model.BaseBitmapNF4
		} else {
			dt, err := bitmap.ParseDType(compressDType)
			if err != nil {
				return options{}, cli.UsageError(fmt.Sprintf("-compress-dtype %q: want bf16, fp16, fp32 or nf4", compressDType))
			}
			opts.compressFormat = model.BaseFormat("bitmap-" + dt.String())
		}
		// The dense tensors of a compressed model share the values' type
		// (bf16 beside NF4 values).
		opts.dtype = opts.compressFormat.DType()
	}
	return opts, nil
}

// run performs the conversion, reporting what it wrote to stdout.
func run(opts options, stdout io.Writer) error {
	load := model.LoadLlama2C
	if opts.from == "hf" {
		load = model.LoadHF
	}
	ck, err := load(opts.in)
	if err != nil {
		return err
	}
	defer ck.Close()
	tok, err := loadTokenizer(opts)
	if err != nil {
		return err
	}
	if tok != nil {
		tokPath := opts.tokenizer
		if tokPath == "" {
			tokPath = opts.in
		}
		if err := model.CheckTokenizer(tok, tokPath, ck.Config, opts.in); err != nil {
			return err
		}
		if sp, ok := tok.(*tokenizer.SentencePiece); ok && opts.from == "llama2c" {
			// The tokenizer is the authority on its special ids.
			ck.Config.BOSTokenID = sp.BOS()
			ck.Config.EOSTokenIDs = nil
			if sp.EOS() >= 0 {
				ck.Config.EOSTokenIDs = []int{sp.EOS()}
			}
		}
	}
	p, err := model.NewParams(ck)
	if err != nil {
		return err
	}
	var stats trainer.CompressStats
	if opts.compress {
		if stats, err = trainer.CompressParams(p, opts.sparsity, opts.compressFormat, ck.Drop); err != nil {
			return err
		}
	}
	err = model.WriteParams(opts.out, p, model.ParamsFileOptions{DType: opts.dtype, Compressed: opts.compress, Overwrite: opts.overwrite})
	if err != nil {
		return err
	}
	if tok != nil {
		if err := trainer.WriteTokenizer(tok, opts.tokenizer, opts.in, opts.out); err != nil {
			return err
		}
	}
	c := p.Config
	fmt.Fprintf(stdout, "wrote %s: %s, %d layers, hidden %d, %d heads (%d KV), vocab %d, %s weights",
		opts.out, c.ModelType, c.Layers, c.Hidden, c.Heads, c.KVHeads, c.Vocab, opts.dtype)
	if tok == nil {
		fmt.Fprint(stdout, ", no tokenizer")
	}
	fmt.Fprintln(stdout)
	if opts.compress {
		fmt.Fprintf(stdout, "compressed %d projections: sparsity %.4f (%d of %d weights pruned), %s, %.1f KiB vs %.1f KiB dense bf16 (%.3fx)\n",
			stats.Projections, float64(stats.Pruned)/float64(stats.Weights), stats.Pruned, stats.Weights, opts.compressFormat,
			float64(stats.CompressedBytes)/1024, float64(stats.DenseBF16Bytes)/1024, float64(stats.CompressedBytes)/float64(stats.DenseBF16Bytes))
	}
	return nil
}

// loadTokenizer reads the tokenizer to write beside the model: -tokenizer
// when given, else (for -from hf) the source directory's tokenizer.json when
// present; nil when there is none.
func loadTokenizer(opts options) (tokenizer.Tokenizer, error) {
	switch {
	case opts.tokenizer != "" && opts.from == "llama2c":
		return tokenizer.LoadLlama2C(opts.tokenizer)
	case opts.tokenizer != "":
		return tokenizer.Load(opts.tokenizer)
	case opts.from == "hf":
		if _, err := os.Stat(filepath.Join(opts.in, "tokenizer.json")); err != nil {
			return nil, nil
		}
		return tokenizer.Load(opts.in)
	}
	return nil, nil
}

func main() { cli.Main("salr-convert", command) }

// command parses args and converts.
func command(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parseArgs(args, stdout, stderr)
	if err != nil {
		return err
	}
	// The conversion does not watch ctx: a signal ends the command at once
	// (each file it writes appears whole or not at all).
	return cli.Cancellable(ctx, func() error { return run(opts, stdout) })
}
