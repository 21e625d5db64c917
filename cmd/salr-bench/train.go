package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"github.com/salr-go/salr/cmd/internal/cli"
	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/kernels/bitmap"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/trainer"
)

func init() {
	register(subcommand{
		name:    "train",
		summary: "time full training steps (forward, backward, AdamW) of a random-weight model",
		run:     runTrain,
	})
}

func runTrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o trainer.TrainBenchOptions
	var methods string
	var jsonOut, verbose, checkpointing bool
	var precision string
	fs := newFlagSet("train")
	fs.StringVar(&o.Shape, "shape", "bench-60M", "model `shape`: "+model.ShapeNames)
	fs.StringVar(&methods, "method", "lora", "comma-separated `methods` among lora, prune-lora, salr, lora-prune, lora-prune-dynamic (each in its own process when several, so each peak RSS is its own)")
	fs.IntVar(&o.Batch, "batch", 4, "sequences per step")
	fs.IntVar(&o.Seq, "seq", 256, "tokens per sequence")
	fs.IntVar(&o.Steps, "steps", 5, "timed steps (the median is reported)")
	fs.IntVar(&o.Warmup, "warmup", 1, "untimed steps first")
	fs.Uint64Var(&o.Seed, "seed", 1, "random seed of weights and data")
	fs.BoolVar(&checkpointing, "gradient-checkpointing", false, "recompute each layer in the backward pass (train.gradient_checkpointing)")
	fs.StringVar(&precision, "precision", "fp32", "arithmetic of the products: fp32 or bf16 (train.precision)")
	fs.BoolVar(&jsonOut, "json", false, "print one JSON object per line")
	fs.BoolVar(&verbose, "v", false, "print setup and per-step lines to stderr")
	if err := cli.Parse(fs, args, stdout); err != nil {
		return err
	}
	if checkpointing {
		o.Sets = append(o.Sets, "train.gradient_checkpointing=true")
	}
	if _, err := kernels.ParsePrecision(precision); err != nil {
		return cli.UsageError(fmt.Sprintf("-precision: %v", err))
	}
	o.Sets = append(o.Sets, "train.precision="+precision)
	logf := func(string, ...any) {}
	if verbose {
		logf = func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
	}
	if !jsonOut {
		fmt.Fprintf(stdout, "# %s, BLAS %s, %d threads, precision %s (bf16 products: %s)\n", bitmap.CurrentPaths(), kernels.BackendName(), runtime.GOMAXPROCS(0), precision, kernels.BF16GemmPath())
		fmt.Fprintf(stdout, "%-10s %-10s %5s %5s %12s %12s %12s %10s %10s %10s\n", "method", "shape", "batch", "seq", "ms/step", "tokens/s", "trainable", "plan MB", "peak MB", "act MB")
	}
	list := strings.Split(methods, ",")
	for _, m := range list {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		o.Method = strings.TrimSpace(m)
		var r *trainer.TrainBenchResult
		var err error
		if len(list) == 1 {
			r, err = trainer.RunTrainBench(o, logf)
		} else {
			r, err = trainInChild(ctx, args, o.Method, stderr)
		}
		if err != nil {
			return err
		}
		if jsonOut {
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, string(b))
			continue
		}
		fmt.Fprintf(stdout, "%-10s %-10s %5d %5d %12.1f %12.0f %12d %10.0f %10.0f %10.0f\n", r.Method, r.Shape, r.Batch, r.Seq, r.MedianMsPerStep, r.TokensPerSecond, r.TrainableParams, float64(r.Memory.Plan.Total)/(1<<20), r.PeakRSSMB, r.ActivationMB)
	}
	return nil
}

// trainInChild benchmarks one method in a child salr-bench process (the same
// flags, this method, JSON output), so that each method's peak RSS is its
// own and not the high-water mark of the methods before it.
func trainInChild(ctx context.Context, args []string, method string, stderr io.Writer) (*trainer.TrainBenchResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	// The flag package keeps the last value of a repeated flag.
	cmd := exec.CommandContext(ctx, exe, append(append([]string{"train"}, args...), "-method", method, "-json")...)
	cmd.Stderr = stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("salr-bench train -method %s (child process): %w", method, err)
	}
	var r trainer.TrainBenchResult
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("salr-bench train -method %s: reading the child's result %q: %w", method, out, err)
	}
	return &r, nil
}
