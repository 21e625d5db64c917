// Command salr-eval evaluates a model on GSM8K or MMLU exactly as
// lm-evaluation-harness does, and prints lm-eval's results table.
//
//	salr-eval -task mmlu -model DIR [-shots 5] [-limit N] [-subjects a,b] [-batch B]
//	salr-eval -task gsm8k -model DIR [-shots 5] [-limit N] [-max-new-tokens 256]
//	salr-eval -task gsm8k -run RUN_DIR ...   (a salr-train run: pruned base + adapters)
//
// -model takes an HF model directory or a llama2.c .bin file. Task data
// defaults to $SALR_ASSETS/gsm8k (train.jsonl, test.jsonl) and
// $SALR_ASSETS/mmlu (dev/, test/); -data overrides. -out writes results.json,
// -log-samples one JSON line per document; neither overwrites an existing
// file without -overwrite. Exit status: 0 on success, 1 when the evaluation
// fails, 2 for bad usage, 130 when interrupted.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/term"

	"github.com/salr-go/salr/cmd/internal/cli"
	"github.com/salr-go/salr/datasets"
	"github.com/salr-go/salr/datasets/assets"
	"github.com/salr-go/salr/internal/atomicfile"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/trainer"
	"github.com/salr-go/salr/trainer/eval"
)

// OpenRun loads a salr-train run directory (its pruned base with its trained
// adapters); a variable so that tests can substitute it.
var OpenRun = trainer.OpenRun

// options are the command-line flags.
type options struct {
	task, model, run, tokenizer, data string
	shots, limit, batch, maxNew       int
	subjects                          string
	out, logSamples                   string
	bos, overwrite, quiet             bool
}

// addFlags registers the flags on fs.
func (o *options) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.task, "task", "", "task to run: gsm8k or mmlu")
	fs.StringVar(&o.model, "model", "", "HF model directory or llama2.c .bin file")
	fs.StringVar(&o.run, "run", "", "salr-train run directory: its pruned base plus its trained adapters")
	fs.StringVar(&o.tokenizer, "tokenizer", "", "tokenizer file or directory (default: the model's)")
	fs.StringVar(&o.data, "data", "", "task data directory (default: $"+assets.Env+"/<task>)")
	fs.IntVar(&o.shots, "shots", eval.DefaultShots, "few-shot examples per prompt")
	fs.IntVar(&o.limit, "limit", 0, "evaluate only the first N documents (MMLU: per subject); 0 = all")
	fs.StringVar(&o.subjects, "subjects", "", "MMLU: comma-separated subjects (default: all)")
	fs.IntVar(&o.batch, "batch", 8, "documents run through the model together")
	fs.IntVar(&o.maxNew, "max-new-tokens", datasets.GSM8KMaxNewTokens, "GSM8K: maximum tokens generated per problem")
	fs.StringVar(&o.out, "out", "", "write the results as JSON to this file")
	fs.StringVar(&o.logSamples, "log-samples", "", "write one JSON line per document (prompt, response, correct) to this file")
	fs.BoolVar(&o.bos, "bos", false, "start prompts with BOS (lm-eval's add_bos_token=True)")
	fs.BoolVar(&o.overwrite, "overwrite", false, "replace existing -out and -log-samples files")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress bar")
}

// parseArgs reads the command line.
func parseArgs(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("salr-eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.addFlags(fs)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, cli.UsageError(fmt.Sprintf("unexpected arguments %q", fs.Args()))
	}
	if o.task == "" {
		return o, cli.UsageError("-task is required (gsm8k or mmlu)")
	}
	if (o.model == "") == (o.run == "") {
		return o, cli.UsageError("give exactly one of -model and -run")
	}
	if o.run != "" && o.tokenizer != "" {
		return o, cli.UsageError("-tokenizer applies to -model only (a run directory holds its tokenizer)")
	}
	return o, nil
}

func main() {
	os.Exit(mainStatus(os.Args[1:]))
}

// mainStatus runs the command and returns its exit status.
func mainStatus(args []string) int {
	o, err := parseArgs(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if cli.IsUsage(err) {
		fmt.Fprintln(os.Stderr, "salr-eval:", err)
		return cli.ExitUsage
	}
	if err != nil {
		return 2 // the flag package has printed the problem and the usage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	progress := io.Writer(nil)
	if !o.quiet && term.IsTerminal(int(os.Stderr.Fd())) {
		progress = os.Stderr
	}
	err = run(ctx, o, os.Stdout, progress)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(os.Stderr, "salr-eval: interrupted; no results written")
		return cli.ExitInterrupted
	}
	fmt.Fprintln(os.Stderr, "salr-eval:", err)
	if cli.IsUsage(err) {
		return cli.ExitUsage
	}
	return 1
}

// run evaluates as o says, prints the results table to stdout and writes
// the requested files; progress (nil for none) receives the progress bar.
func run(ctx context.Context, o options, stdout, progress io.Writer) (err error) {
	dataDir, err := eval.DataDir(o.task, o.data)
	if err != nil {
		return err
	}
	subjects, err := parseSubjects(o.subjects)
	if err != nil {
		return err
	}
	// Claim the output files first, so that a run is not wasted on a file
	// that cannot be written.
	var resultsFile, samplesFile *atomicfile.File
	defer func() {
		for _, f := range []*atomicfile.File{resultsFile, samplesFile} {
			if f != nil && err != nil {
				f.Abort()
			}
		}
	}()
	if o.out != "" {
		if resultsFile, err = atomicfile.Create(o.out, o.overwrite); err != nil {
			return err
		}
	}
	opt := eval.Options{
		Task: o.task, DataDir: dataDir, Shots: o.shots, Limit: o.limit, Subjects: subjects,
		Batch: o.batch, MaxNewTokens: o.maxNew, BOS: o.bos, Progress: progress,
	}
	var samples *bufio.Writer
	if o.logSamples != "" {
		if samplesFile, err = atomicfile.Create(o.logSamples, o.overwrite); err != nil {
			return err
		}
		samples = bufio.NewWriter(samplesFile)
		opt.Samples = datasets.NewSampleWriter(samples)
	}

	m, err := load(o)
	if err != nil {
		return err
	}
	defer m.Close()
	res, err := eval.Run(ctx, m, opt)
	if err != nil {
		return err
	}
	res.Model = o.model
	if o.run != "" {
		res.Model, res.Adapters = o.run, &o.run
	}
	if _, err := io.WriteString(stdout, res.Markdown()); err != nil {
		return err
	}
	if samplesFile != nil {
		if err := samples.Flush(); err != nil {
			return fmt.Errorf("writing %s: %w", o.logSamples, err)
		}
		if err := samplesFile.Commit(); err != nil {
			return err
		}
	}
	if resultsFile != nil {
		data, err := res.JSON()
		if err != nil {
			return err
		}
		if _, err := resultsFile.Write(data); err != nil {
			return fmt.Errorf("writing %s: %w", o.out, err)
		}
		if err := resultsFile.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// load opens the model, or the run directory through OpenRun.
func load(o options) (*model.Loaded, error) {
	if o.run == "" {
		return model.Open(o.model, o.tokenizer)
	}
	if OpenRun == nil {
		return nil, fmt.Errorf("-run %s: evaluating salr-train run directories is not wired in this build yet (trainer.OpenRun)", o.run)
	}
	return OpenRun(o.run)
}

// parseSubjects splits the -subjects list; empty means all subjects.
func parseSubjects(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			return nil, cli.UsageError(fmt.Sprintf("-subjects %q has an empty entry", s))
		}
		out = append(out, name)
	}
	return out, nil
}
