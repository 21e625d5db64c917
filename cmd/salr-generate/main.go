// Command salr-generate continues a prompt with a model: an HF model
// directory, a llama2.c .bin file, or (with -run) a salr-train run directory's
// pruned base and trained adapters.
//
//	salr-generate -model DIR -prompt "Once upon a time" -max-new-tokens 56 -temperature 0
//	salr-generate -run runs/quickstart -prompt "Question: ...\nAnswer:" -temperature 0
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/trainer"
)

type options struct {
	model, run, tokenizer, prompt string
	maxNew                        int
	temperature, topP             float64
	seed                          uint64
}

func main() {
	var o options
	fs := flag.NewFlagSet("salr-generate", flag.ContinueOnError)
	fs.StringVar(&o.model, "model", "", "HF model directory or llama2.c .bin file")
	fs.StringVar(&o.run, "run", "", "salr-train run directory: its pruned base with its trained adapters")
	fs.StringVar(&o.tokenizer, "tokenizer", "", "tokenizer file or directory (default: the model's)")
	fs.StringVar(&o.prompt, "prompt", "", "text to continue")
	fs.IntVar(&o.maxNew, "max-new-tokens", 128, "maximum number of tokens to generate")
	fs.Float64Var(&o.temperature, "temperature", 0.8, "sampling temperature; 0 means greedy")
	fs.Float64Var(&o.topP, "top-p", 1, "nucleus sampling threshold in (0, 1]")
	fs.Uint64Var(&o.seed, "seed", 0, "random seed for sampling")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if (o.model == "") == (o.run == "") {
		fmt.Fprintln(os.Stderr, "salr-generate: give exactly one of -model and -run")
		fs.Usage()
		os.Exit(2)
	}
	if err := run(o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "salr-generate:", err)
		os.Exit(1)
	}
}

func run(o options, w io.Writer) error {
	var m *model.Loaded
	var err error
	if o.run != "" {
		m, err = trainer.OpenRun(o.run)
	} else {
		m, err = model.Open(o.model, o.tokenizer)
	}
	if err != nil {
		return err
	}
	defer m.Close()
	s, err := model.NewSampler(o.temperature, o.topP, o.seed)
	if err != nil {
		return err
	}
	fmt.Fprint(w, o.prompt)
	_, err = model.GenerateText(model.NewRunner(m.Params), m.Tokenizer, []string{o.prompt}, model.TextOptions{
		MaxNewTokens: o.maxNew,
		Sampler:      s,
		OnText:       func(delta string) { fmt.Fprint(w, delta) },
	})
	fmt.Fprintln(w)
	return err
}
