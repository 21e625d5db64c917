// Command salr-train fine-tunes a model with SALR (or LoRA, or pruned LoRA)
// as a TOML config says, writing a run directory with metrics, checkpoints,
// the trained adapters and the pruned base, then evaluates it when the
// config's [eval] names a task (eval/results.json).
//
//	salr-train -config quickstart.toml
//	salr-train -config gsm8k.toml -set model.path=/models/llama-2-7b -set output.dir=runs/l2
//	salr-train -resume runs/quickstart
//
// Exit status: 0 on success, 1 when training fails, 2 for bad usage, 130
// when interrupted (after saving a checkpoint; continue with -resume).
package main

import (
	"context"
	"fmt"
	"io"
	"runtime/pprof"
	"strings"

	"github.com/salr-go/salr/cmd/internal/cli"
	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/internal/atomicfile"
	"github.com/salr-go/salr/internal/mpi"
	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/trainer"
)

type options struct {
	cli.ConfigFlags
	resume     string
	overwrite  bool
	quiet      bool
	cpuProfile string
}

func main() { cli.Main("salr-train", command) }

// command parses args and runs, as one rank of a data-parallel run when
// started by mpirun (a build with the tag mpi).
func command(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseArgs(args, stdout)
	if err != nil {
		return err
	}
	return cli.RunAsRank("salr-train", stderr, func(world *mpi.World) error {
		return run(ctx, o, world, stdout, stderr)
	})
}

// parseArgs reads the command line; -h prints the help to stdout.
func parseArgs(args []string, stdout io.Writer) (options, error) {
	var o options
	fs := cli.NewFlagSet("salr-train",
		"salr-train -config NAME|FILE [-set KEY=VALUE ...] [-print-config] [-overwrite] [-quiet]\nsalr-train -resume RUN_DIR [-quiet]",
		"Fine-tune a model as a TOML config says, or continue an unfinished run. One of -config and\n-resume is required. Presets: "+strings.Join(configs.Presets(), ", ")+".")
	o.Register(fs, "required unless -resume", "train.lr=1e-4")
	fs.StringVar(&o.resume, "resume", "", "continue the unfinished run (or its unfinished evaluation) in this run `directory` with its own config (required unless -config)")
	fs.BoolVar(&o.overwrite, "overwrite", false, "replace an existing run directory")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress bar or status lines")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile (go tool pprof) to this `file`")
	if err := cli.Parse(fs, args, stdout); err != nil {
		return o, err
	}
	if (o.Path == "") == (o.resume == "") {
		return o, cli.UsageError("give exactly one of -config and -resume")
	}
	if o.resume != "" && o.Print {
		return o, cli.UsageError("-print-config needs -config (a run directory keeps its config in " + trainer.ConfigFile + ")")
	}
	if o.resume != "" && (len(o.Sets) > 0 || o.overwrite) {
		// A run continues with the config it started with: flags that would
		// change or replace it are refused rather than ignored.
		return o, cli.UsageError("-set and -overwrite cannot be used with -resume: a run's config cannot change on resume (start a new run with -config, or use a new output.dir)")
	}
	return o, nil
}

// run trains (or prints the config) as o says; the summary goes to stdout,
// the log and progress to stderr.
func run(ctx context.Context, o options, comm trainer.Comm, stdout, stderr io.Writer) (err error) {
	opt := trainer.Options{Resume: o.resume, Overwrite: o.overwrite, Comm: comm}
	var threads int
	if o.Path != "" {
		cfg, err := o.Load("salr-train", stdout, stderr)
		if cfg == nil || err != nil {
			return err
		}
		opt.Config = cfg
		threads = cfg.Train.Threads
	}
	kernels.SetThreads(threads)
	if o.cpuProfile != "" {
		f, err := atomicfile.Create(o.cpuProfile, true)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Abort()
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			if cerr := f.Commit(); cerr != nil && err == nil {
				err = cerr
			}
		}()
	}
	if !o.quiet {
		opt.Log = stderr
		opt.Progress = cli.Progress(stderr)
	}
	sum, err := trainer.Train(ctx, opt)
	if err != nil || sum == nil { // nil: a rank other than 0
		return err
	}
	if sum.HasHeldOutLoss() {
		fmt.Fprintf(stdout, "held-out loss %.4f (before training %.4f), ", sum.EvalLoss, sum.InitialEvalLoss)
	} else {
		fmt.Fprintf(stdout, "no held-out set, final training loss %.4f, ", sum.FinalTrainLoss)
	}
	fmt.Fprintf(stdout, "%.0f tokens/s, %d trainable parameters, sparsity %.3f\n", sum.TokensPerSecond, sum.TrainableParams, sum.Sparsity)
	if e := sum.Eval; e != nil {
		fmt.Fprintf(stdout, "%s %d-shot (%s template): %s %.4f over %d documents\n", e.Task, e.Shots, e.Template, e.Metric, float64(e.Value), e.Docs)
	}
	return nil
}
