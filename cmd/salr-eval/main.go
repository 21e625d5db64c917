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
	"flag"
	"fmt"
	"io"
	"strings"

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
	fs.StringVar(&o.task, "task", "", "task to run: gsm8k or mmlu (required)")
	fs.StringVar(&o.model, "model", "", "HF model directory or llama2.c .bin file (required unless -run)")
	fs.StringVar(&o.run, "run", "", "salr-train run directory: its pruned base plus its trained adapters (required unless -model)")
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

// parseArgs reads the command line; -h prints the help to stdout.
func parseArgs(args []string, stdout io.Writer) (options, error) {
	var o options
	fs := cli.NewFlagSet("salr-eval",
		"salr-eval -task gsm8k|mmlu -model PATH [-tokenizer PATH] [flags]\nsalr-eval -task gsm8k|mmlu -run RUN_DIR [flags]",
		"Evaluate a model, or a salr-train run's pruned base and trained adapters, on GSM8K or MMLU as\nlm-evaluation-harness does, and print lm-eval's results table. -task and one of -model and -run\nare required.")
	o.addFlags(fs)
	if err := cli.Parse(fs, args, stdout); err != nil {
		return o, err
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

func main() { cli.Main("salr-eval", command) }

// command parses args and runs.
func command(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseArgs(args, stdout)
	if err != nil {
		return err
	}
	var progress io.Writer
	if !o.quiet {
		progress = cli.Progress(stderr)
	}
	err = run(ctx, o, stdout, progress)
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("interrupted; no results written: %w", err)
	}
	return err
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
