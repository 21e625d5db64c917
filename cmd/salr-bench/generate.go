package main

import (
	"context"
	"fmt"
	"io"
	"runtime"

	"github.com/salr-go/salr/cmd/internal/cli"
	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/kernels/bitmap"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/trainer"
)

func init() {
	register(subcommand{
		name:    "generate",
		summary: "greedy generation tokens/s of a random-weight model, its pruned projections dense vs bitmap-compressed",
		run:     runGenerate,
	})
}

func runGenerate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o trainer.GenerateBenchOptions
	var formats string
	var jsonOut, verbose bool
	fs := newFlagSet("generate")
	fs.StringVar(&o.Shape, "shape", "llama-2048x16", "model `shape`: "+model.ShapeNames)
	fs.IntVar(&o.Vocab, "vocab", 0, "vocabulary size (0: the shape's, 32000)")
	fs.Float64Var(&o.Sparsity, "sparsity", 0.5, "fraction of each projection pruned by magnitude")
	fs.IntVar(&o.PromptTokens, "prompt-tokens", 16, "random prompt length")
	fs.IntVar(&o.NewTokens, "new-tokens", 64, "tokens generated (timed as decode)")
	fs.StringVar(&formats, "formats", "dense-fp32,dense-bf16,bitmap-bf16", "comma-separated projection `formats`: dense-fp32, dense-bf16, bitmap-bf16, bitmap-fp16, bitmap-fp32, bitmap-nf4, dense-nf4 (built one at a time)")
	fs.IntVar(&o.Reps, "reps", 3, "timed generations per format (the median is reported)")
	fs.Uint64Var(&o.Seed, "seed", 1, "random seed of weights and prompt")
	fs.BoolVar(&o.InTurns, "in-turns", false, "build every format first and time them in turns (same machine load for all; holds all models in memory)")
	fs.BoolVar(&jsonOut, "json", false, "print one JSON object per line")
	fs.BoolVar(&verbose, "v", false, "print build and per-repetition lines to stderr")
	if err := cli.Parse(fs, args, stdout); err != nil {
		return err
	}
	var err error
	if o.Formats, err = model.ParseBaseFormats(formats); err != nil {
		return err
	}
	logf := func(string, ...any) {}
	if verbose {
		logf = func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
	}
	results, err := trainer.RunGenerateBench(ctx, o, logf)
	if err != nil {
		return err
	}
	if jsonOut {
		return writeJSONLines(stdout, results)
	}
	order := "formats one after the other"
	if o.InTurns {
		order = "formats in turns"
	}
	fmt.Fprintf(stdout, "# %s, sparsity %.2f, prompt %d + %d new tokens, median of %d, %s; %s, BLAS %s, %d threads\n",
		o.Shape, o.Sparsity, o.PromptTokens, o.NewTokens, o.Reps, order, bitmap.CurrentPaths(), kernels.BackendName(), runtime.GOMAXPROCS(0))
	fmt.Fprintf(stdout, "%-12s %12s %10s %12s %9s %12s %10s\n", "format", "decode tok/s", "ms/token", "prefill tok/s", "vs bf16", "model MB", "proj bytes")
	for _, r := range results {
		speedup := "-"
		if r.SpeedupVsDenseBF16 > 0 {
			speedup = fmt.Sprintf("%.2fx", r.SpeedupVsDenseBF16)
		}
		fmt.Fprintf(stdout, "%-12s %12.2f %10.2f %12.1f %9s %12.0f %9.3fx\n", r.Format, r.TokensPerSecond, r.MsPerToken,
			r.PrefillTokensPerSecond, speedup, float64(r.ModelBytes)/(1<<20), r.ProjectionBytesRatio)
	}
	return nil
}
