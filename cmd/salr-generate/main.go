// Command salr-generate continues a prompt with a model: an HF model
// directory, a llama.cpp .gguf file, a llama2.c .bin file, or (with -run) a salr-train run directory's
// pruned base and trained adapters.
//
//	salr-generate -model DIR -prompt "Once upon a time" -max-new-tokens 56 -temperature 0
//	salr-generate -run runs/quickstart -prompt "Question: ...\nAnswer:" -temperature 0
//
// Exit status: 0 on success, 1 when generation fails, 2 for bad usage, 130
// when interrupted.
package main

import (
	"context"
	"fmt"
	"io"

	"github.com/salr-go/salr/cmd/internal/cli"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/trainer"
)

type options struct {
	cli.ModelFlags
	prompt            string
	maxNew            int
	temperature, topP float64
	seed              uint64
}

func main() { cli.Main("salr-generate", command) }

// command parses args and runs.
func command(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseArgs(args, stdout)
	if err != nil {
		return err
	}
	// Generation does not watch ctx: a signal ends the command at once.
	return cli.Cancellable(ctx, func() error { return run(o, stdout, stderr) })
}

// parseArgs reads the command line; -h prints the help to stdout.
func parseArgs(args []string, stdout io.Writer) (options, error) {
	var o options
	fs := cli.NewFlagSet("salr-generate",
		"salr-generate -model PATH [-tokenizer PATH] -prompt TEXT [-max-new-tokens N] [-temperature T] [-top-p P] [-seed S]\nsalr-generate -run RUN_DIR -prompt TEXT [-max-new-tokens N] [-temperature T] [-top-p P] [-seed S]",
		"Continue a prompt with a model, or with a salr-train run's pruned base and trained adapters,\nprinting the prompt and its continuation. One of -model and -run is required.")
	o.ModelFlags.Register(fs, "its pruned base with its trained adapters")
	fs.StringVar(&o.prompt, "prompt", "", "text to continue")
	fs.IntVar(&o.maxNew, "max-new-tokens", 128, "maximum number of tokens to generate (generation also stops at the model's context length)")
	fs.Float64Var(&o.temperature, "temperature", 0.8, "sampling temperature; 0 means greedy")
	fs.Float64Var(&o.topP, "top-p", 1, "nucleus sampling threshold in (0, 1]")
	fs.Uint64Var(&o.seed, "seed", 0, "random seed for sampling")
	if err := cli.Parse(fs, args, stdout); err != nil {
		return o, err
	}
	if err := o.Check(); err != nil {
		return o, err
	}
	switch {
	case o.maxNew < 0:
		return o, cli.UsageError(fmt.Sprintf("-max-new-tokens %d: want 0 or more", o.maxNew))
	}
	return o, nil
}

// run prints the prompt and its continuation to stdout; a note that the
// context cuts the generation short goes to stderr.
func run(o options, stdout, stderr io.Writer) error {
	s, err := model.NewSampler(o.temperature, o.topP, o.seed)
	if err != nil {
		return err
	}
	m, err := trainer.OpenModelOrRun(o.Model, o.Tokenizer, o.Run)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := noteContext(o, m, stderr); err != nil {
		return err
	}
	fmt.Fprint(stdout, o.prompt)
	_, err = model.GenerateText(model.NewRunner(m.Params), m.Tokenizer, []string{o.prompt}, model.TextOptions{
		MaxNewTokens: o.maxNew,
		Sampler:      s,
		OnText:       func(delta string) { fmt.Fprint(stdout, delta) },
	})
	fmt.Fprintln(stdout)
	return err
}

// noteContext tells stderr when the prompt and -max-new-tokens do not fit in
// the model's context, where generation stops.
func noteContext(o options, m *model.Loaded, stderr io.Writer) error {
	ctxLen := m.Params.Config.MaxPositions
	if ctxLen <= 0 || o.maxNew == 0 {
		return nil
	}
	ids, err := m.Tokenizer.Encode(o.prompt)
	if err != nil {
		return fmt.Errorf("encoding the prompt: %w", err)
	}
	n := len(ids)
	if m.Tokenizer.AddBOS() && m.Tokenizer.BOS() >= 0 {
		n++
	}
	// The last token generated is not fed back, so it needs no position.
	if n+o.maxNew-1 > ctxLen {
		fmt.Fprintf(stderr, "salr-generate: note: the prompt (%d tokens) and -max-new-tokens %d exceed the model's context; generation will stop at the context length (%d tokens)\n",
			n, o.maxNew, ctxLen)
	}
	return nil
}
