// Command salr-train fine-tunes a model with SALR (or LoRA, or pruned LoRA)
// as a TOML config says, writing a run directory with metrics, checkpoints,
// the trained adapters and the pruned base.
//
//	salr-train -config quickstart.toml
//	salr-train -config gsm8k.toml -set model.path=/models/llama-2-7b -set output.dir=runs/l2
//	salr-train -resume runs/quickstart
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/salr-go/salr/cmd/internal/cli"
	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/trainer"
	"golang.org/x/term"
)

type options struct {
	config      string
	sets        cli.StringList
	printConfig bool
	resume      string
	overwrite   bool
	quiet       bool
	cpuProfile  string
}

func main() {
	var o options
	fs := flag.NewFlagSet("salr-train", flag.ContinueOnError)
	fs.StringVar(&o.config, "config", "", "config file or embedded preset (quickstart.toml, gsm8k.toml, mmlu.toml)")
	fs.Var(&o.sets, "set", "override a config key, KEY=VALUE (repeatable), e.g. -set train.lr=1e-4")
	fs.BoolVar(&o.printConfig, "print-config", false, "print the effective config and exit")
	fs.StringVar(&o.resume, "resume", "", "continue the unfinished run in this run directory")
	fs.BoolVar(&o.overwrite, "overwrite", false, "replace an existing run directory")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress bar or status lines")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile (go tool pprof) to this file")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: salr-train -config NAME|FILE [-set KEY=VALUE ...] [-print-config] [-overwrite]\n       salr-train -resume RUN_DIR\n\npresets: %s\n\n", strings.Join(configs.Presets(), ", "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(cli.ExitUsage)
	}
	if (o.config == "") == (o.resume == "") {
		fmt.Fprintln(os.Stderr, "salr-train: give exactly one of -config and -resume")
		fs.Usage()
		os.Exit(cli.ExitUsage)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, o, os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, trainer.ErrInterrupted):
		fmt.Fprintln(os.Stderr, "salr-train:", err)
		os.Exit(cli.ExitInterrupted)
	case err != nil:
		fmt.Fprintln(os.Stderr, "salr-train:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, stdout, stderr io.Writer) error {
	opt := trainer.Options{Resume: o.resume, Overwrite: o.overwrite}
	var threads int
	if o.config != "" {
		load := configs.Load
		if o.printConfig {
			load = configs.LoadPrintable // ${VAR} of unset variables shown as written
		}
		cfg, err := load(o.config, o.sets)
		if err != nil {
			return err
		}
		for _, note := range cfg.Notes {
			fmt.Fprintln(stderr, "salr-train: note:", note)
		}
		if o.printConfig {
			b, err := cfg.MarshalTOML()
			if err != nil {
				return err
			}
			_, err = stdout.Write(b)
			return err
		}
		opt.Config = cfg
		threads = cfg.Train.Threads
	}
	kernels.SetThreads(threads)
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if !o.quiet {
		opt.Log = stderr
		if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			opt.Progress = stderr
		}
	}
	sum, err := trainer.Train(ctx, opt)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "held-out loss %.4f (before training %.4f), %.0f tokens/s, %d trainable parameters, sparsity %.3f\n",
		sum.EvalLoss, sum.InitialEvalLoss, sum.TokensPerSecond, sum.TrainableParams, sum.Sparsity)
	return nil
}
