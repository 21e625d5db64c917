// Command salr-convert turns a llama2.c checkpoint (and its tokenizer) into
// a HuggingFace model directory: config.json, model.safetensors,
// tokenizer.json and tokenizer_config.json.
//
//	salr-convert -from llama2c -in stories260K.bin -tokenizer tok512.bin -out DIR [-dtype f32|bf16|f16] [-force]
//
// Exit status: 0 on success, 1 when the conversion fails, 2 for usage errors.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/model/safetensors"
	"github.com/salr-go/salr/model/tokenizer"
)

// options are the command-line settings of one conversion.
type options struct {
	from      string // source format; only "llama2c"
	in        string // the checkpoint file
	tokenizer string // the llama2.c tokenizer file ("" = none)
	out       string // the HuggingFace directory to write
	dtype     safetensors.DType
	force     bool // replace a model already in out
}

// usageError marks errors in the command line (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// parseArgs reads the command line; -h prints the usage and returns
// flag.ErrHelp.
func parseArgs(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("salr-convert", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts options
	var dtype string
	fs.StringVar(&opts.from, "from", "llama2c", "source checkpoint format (llama2c)")
	fs.StringVar(&opts.in, "in", "", "source checkpoint `file` (llama2.c .bin)")
	fs.StringVar(&opts.tokenizer, "tokenizer", "", "llama2.c tokenizer `file` (tokenizer.bin / tok512.bin) to convert alongside")
	fs.StringVar(&opts.out, "out", "", "output HuggingFace model `directory`")
	fs.StringVar(&dtype, "dtype", "f32", "weight dtype in model.safetensors: f32, bf16 or f16")
	fs.BoolVar(&opts.force, "force", false, "replace a model already present in -out")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: salr-convert -from llama2c -in PATH.bin [-tokenizer TOK.bin] -out DIR [-dtype f32|bf16|f16] [-force]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return options{}, err
		}
		return options{}, usageError{err.Error()}
	}
	switch {
	case fs.NArg() > 0:
		return options{}, usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	case opts.from != "llama2c":
		return options{}, usageError{fmt.Sprintf("-from %q is not supported (want llama2c)", opts.from)}
	case opts.in == "":
		return options{}, usageError{"-in is required"}
	case opts.out == "":
		return options{}, usageError{"-out is required"}
	}
	d, err := safetensors.ParseDType(dtype)
	if err != nil || (d != safetensors.F32 && d != safetensors.BF16 && d != safetensors.F16) {
		return options{}, usageError{fmt.Sprintf("-dtype %q: want f32, bf16 or f16", dtype)}
	}
	opts.dtype = d
	return opts, nil
}

// run performs the conversion, reporting what it wrote to stdout.
func run(opts options, stdout io.Writer) error {
	ck, err := model.LoadLlama2C(opts.in)
	if err != nil {
		return err
	}
	defer ck.Close()
	var sp *tokenizer.SentencePiece
	if opts.tokenizer != "" {
		if sp, err = tokenizer.LoadLlama2C(opts.tokenizer); err != nil {
			return err
		}
		if sp.VocabSize() != ck.Config.Vocab {
			return fmt.Errorf("%s has %d tokens but %s has vocab_size %d", opts.tokenizer, sp.VocabSize(), opts.in, ck.Config.Vocab)
		}
		// The tokenizer is the authority on its special ids.
		ck.Config.BOSTokenID = sp.BOS()
		ck.Config.EOSTokenIDs = nil
		if sp.EOS() >= 0 {
			ck.Config.EOSTokenIDs = []int{sp.EOS()}
		}
	}
	var writeOpts []model.WriteOption
	if opts.force {
		writeOpts = append(writeOpts, model.ForceOverwrite())
	}
	if err := model.WriteHF(opts.out, ck, opts.dtype, writeOpts...); err != nil {
		return err
	}
	if sp != nil {
		if err := sp.WriteHF(opts.out); err != nil {
			return err
		}
	}
	c := ck.Config
	fmt.Fprintf(stdout, "wrote %s: %s, %d layers, hidden %d, %d heads (%d KV), vocab %d, %s weights",
		opts.out, c.ModelType, c.Layers, c.Hidden, c.Heads, c.KVHeads, c.Vocab, opts.dtype)
	if sp == nil {
		fmt.Fprint(stdout, ", no tokenizer")
	}
	fmt.Fprintln(stdout)
	return nil
}

func main() {
	opts, err := parseArgs(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "salr-convert: %v (see salr-convert -h)\n", err)
		os.Exit(2)
	}
	if err := run(opts, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "salr-convert: %v\n", err)
		os.Exit(1)
	}
}
