// Command salr-prepare prunes a model (and computes the SVD residual
// adapters' initial factors) as a TOML config says, once, and writes a
// prepared base: a compressed model directory that salr-train, given it as
// model.path, uses instead of pruning again, as long as the config's
// sparsity, base format and SVD settings match.
//
//	salr-prepare -config gsm8k.toml -out /tmp/llama2-7b-prepared
//	salr-train -config gsm8k.toml -set model.path=/tmp/llama2-7b-prepared
//
// Exit status: 0 on success, 1 when preparation fails, 2 for bad usage, 130
// when interrupted (nothing is left half-written).
package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/salr-go/salr/cmd/internal/cli"
	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/trainer"
)

type options struct {
	cli.ConfigFlags
	out       string
	overwrite bool
	quiet     bool
}

func main() { cli.Main("salr-prepare", command) }

// command parses args and runs.
func command(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseArgs(args, stdout)
	if err != nil {
		return err
	}
	return run(ctx, o, stdout, stderr)
}

// parseArgs reads the command line; -h prints the help to stdout.
func parseArgs(args []string, stdout io.Writer) (options, error) {
	var o options
	fs := cli.NewFlagSet("salr-prepare",
		"salr-prepare -config NAME|FILE [-set KEY=VALUE ...] -out DIR [-overwrite] [-quiet]\nsalr-prepare -config NAME|FILE [-set KEY=VALUE ...] -print-config",
		"Prune the model of a config (and compute the SVD residual adapters' initial factors) once, and\nwrite a prepared base to DIR for salr-train -set model.path=DIR. Presets: "+strings.Join(configs.Presets(), ", ")+".")
	o.Register(fs, "required", "sparsity.ratio=0.6")
	fs.StringVar(&o.out, "out", "", "write the prepared base to this `directory` (required unless -print-config)")
	fs.BoolVar(&o.overwrite, "overwrite", false, "replace an existing output directory's model")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress bar or log lines")
	if err := cli.Parse(fs, args, stdout); err != nil {
		return o, err
	}
	if o.Path == "" {
		return o, cli.UsageError("-config is required")
	}
	if o.out == "" && !o.Print {
		return o, cli.UsageError("-out is required")
	}
	return o, nil
}

// run prepares the base (or prints the config) as o says; the summary goes
// to stdout, the log and progress to stderr.
func run(ctx context.Context, o options, stdout, stderr io.Writer) error {
	cfg, err := o.Load("salr-prepare", stdout, stderr)
	if cfg == nil || err != nil {
		return err
	}
	kernels.SetThreads(cfg.Train.Threads)
	opt := trainer.PrepareOptions{Overwrite: o.overwrite}
	if !o.quiet {
		opt.Log = stderr
		opt.Progress = cli.Progress(stderr)
	}
	var sum *trainer.PreparedSummary
	err = cli.Cancellable(ctx, func() (err error) {
		sum, err = trainer.WritePrepared(cfg, o.out, opt)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d pruned projections, sparsity %.4f, bases %s", o.out, sum.Projections, sum.Sparsity, sum.BaseFormat)
	if sum.SVDRank > 0 {
		fmt.Fprintf(stdout, ", SVD factors of rank %d", sum.SVDRank)
	}
	fmt.Fprintf(stdout, "\ntrain from it with -set model.path=%s\n", o.out)
	return nil
}
