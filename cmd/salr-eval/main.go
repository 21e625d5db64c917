// Command salr-eval evaluates a model on GSM8K or MMLU as
// lm-evaluation-harness does (or GSM8K as MetaMath does), and prints
// lm-eval's results table.
//
//	salr-eval -task mmlu -model DIR [-shots 5] [-limit N] [-subjects a,b] [-batch B]
//	salr-eval -task gsm8k -model DIR [-template lm-eval|metamath] [-shots 5] [-limit N] [-max-new-tokens 256]
//	salr-eval -run RUN_DIR ...   (a salr-train run: pruned base + adapters)
//
// -model takes an HF model directory, a llama.cpp .gguf file or a llama2.c
// .bin file. With -run,
// the task, template, shots, generation budget, data directory and BOS
// setting default to the run's [eval] section (the template to the one it
// trained with); flags override them. Task data defaults to
// $SALR_ASSETS/gsm8k (train.jsonl, test.jsonl) and $SALR_ASSETS/mmlu (dev/,
// test/); -data overrides. Prompts start with BOS when the tokenizer adds
// it (as training does), unless -bos says otherwise. -out writes
// results.json, -log-samples one JSON line per document; neither overwrites
// an existing file without -overwrite. Exit status: 0 on success, 1 when the
// evaluation fails, 2 for bad usage, 130 when interrupted.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/salr-go/salr/cmd/internal/cli"
	"github.com/salr-go/salr/configs"
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

// options are the command-line flags. The zero values of task, template
// and data, a negative shots, a zero maxNew and a nil bos mean "not given":
// the run's config or the defaults decide (see resolve).
type options struct {
	cli.ModelFlags
	task, template, data        string
	shots, limit, batch, maxNew int
	subjects                    string
	out, logSamples             string
	bos                         *bool
	overwrite, quiet            bool
}

// boolFlag is a boolean flag that remembers whether it was given.
type boolFlag struct{ p **bool }

func (f boolFlag) IsBoolFlag() bool { return true }

func (f boolFlag) String() string {
	if f.p == nil || *f.p == nil {
		return ""
	}
	return strconv.FormatBool(**f.p)
}

func (f boolFlag) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want true or false")
	}
	*f.p = &v
	return nil
}

// shotsFlag is -shots: a count, negative while not given.
type shotsFlag struct{ p *int }

func (f shotsFlag) String() string {
	if f.p == nil || *f.p < 0 {
		return ""
	}
	return strconv.Itoa(*f.p)
}

func (f shotsFlag) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return fmt.Errorf("want a count >= 0")
	}
	*f.p = n
	return nil
}

// addFlags registers the flags on fs.
func (o *options) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.task, "task", "", "task to run: gsm8k or mmlu (required); with -run, default: the run's eval.task")
	fs.StringVar(&o.template, "template", "", "GSM8K prompt template: lm-eval (few-shot Question:/Answer:, strict-match and flexible-extract) or metamath\n(MetaMath's zero-shot instruction, answer after \"The answer is: \"); default: the run's, else lm-eval")
	o.ModelFlags.Register(fs, "its pruned base plus its trained adapters, and its [eval] settings as defaults")
	fs.StringVar(&o.data, "data", "", "task data directory (default: the run's eval.data_path, else $"+assets.Env+"/<task>)")
	o.shots = -1
	fs.Var(shotsFlag{&o.shots}, "shots", "few-shot examples per prompt, an `int` (default: the run's eval.shots, else 5 as lm-eval; 0 for metamath)")
	fs.IntVar(&o.limit, "limit", 0, "evaluate only the first N documents (MMLU: per subject); 0 = all")
	fs.StringVar(&o.subjects, "subjects", "", "MMLU: comma-separated subjects (default: all)")
	fs.IntVar(&o.batch, "batch", 8, "documents run through the model together")
	fs.IntVar(&o.maxNew, "max-new-tokens", 0, "GSM8K: maximum tokens generated per problem (default: the run's, else 256 as lm-eval; 512 for metamath as MetaMath)")
	fs.StringVar(&o.out, "out", "", "write the results as JSON to this file")
	fs.StringVar(&o.logSamples, "log-samples", "", "write one JSON line per document (prompt, response, correct) to this file")
	fs.Var(boolFlag{&o.bos}, "bos", "start prompts with BOS: -bos or -bos=true, -bos=false (default: the run's eval.bos, else as the tokenizer adds it)")
	fs.BoolVar(&o.overwrite, "overwrite", false, "replace existing -out and -log-samples files")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress bar")
}

// parseArgs reads the command line; -h prints the help to stdout.
func parseArgs(args []string, stdout io.Writer) (options, error) {
	var o options
	fs := cli.NewFlagSet("salr-eval",
		"salr-eval -task gsm8k|mmlu -model PATH [-tokenizer PATH] [flags]\nsalr-eval -run RUN_DIR [-task gsm8k|mmlu] [flags]",
		"Evaluate a model, or a salr-train run's pruned base and trained adapters, on GSM8K or MMLU as\nlm-evaluation-harness does (GSM8K also as MetaMath does), and print lm-eval's results table.\nOne of -model and -run is required, and -task unless the run's config names one.")
	o.addFlags(fs)
	if err := cli.Parse(fs, args, stdout); err != nil {
		return o, err
	}
	if err := o.Check(); err != nil {
		return o, err
	}
	if o.task == "" && o.Run == "" {
		return o, cli.UsageError("-task is required (gsm8k or mmlu)")
	}
	return o, nil
}

// resolve fills in what o leaves open: from the run's config.toml (with
// -run, when the run has one), then the defaults (lm-eval's template, the
// template's shots). BOS stays open when neither says; the tokenizer
// decides then.
func resolve(o options) (options, error) {
	if o.Run != "" {
		cfg, err := runConfig(o.Run)
		if err != nil {
			return o, err
		}
		if cfg != nil {
			o = withRunConfig(o, cfg)
		}
	}
	if o.task == "" {
		return o, cli.UsageError(fmt.Sprintf("-task is required: the run's %s sets no eval.task", trainer.ConfigFile))
	}
	if o.template == "" {
		o.template = eval.TemplateLMEval
	}
	if o.shots < 0 {
		o.shots = eval.DefaultShotsFor(o.template)
	}
	if err := eval.CheckTemplate(o.task, o.template, o.shots); err != nil {
		return o, cli.UsageError(err.Error())
	}
	return o, nil
}

// runConfig loads a run directory's config.toml, or returns nil when it has
// none (a directory assembled by hand).
func runConfig(runDir string) (*configs.Config, error) {
	path := filepath.Join(runDir, trainer.ConfigFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return configs.Load(path, nil)
}

// withRunConfig takes what o leaves open from a run's [eval] section. The
// template, shots, generation budget and data directory are the config's
// only when it evaluates the same task (or none: then the template is the
// one the run trained with), and the shots only with the config's template.
func withRunConfig(o options, cfg *configs.Config) options {
	ec := cfg.Eval
	if o.task == "" {
		o.task = ec.Task
	}
	if ec.Task == "" || ec.Task == o.task {
		t := trainer.EvalTemplate(cfg)
		if o.template == "" && eval.CheckTemplate(o.task, t, 0) == nil {
			o.template = t
		}
		// The config's shots go with its template.
		if o.shots < 0 && ec.Shots >= 0 && o.template == t {
			o.shots = ec.Shots
		}
		if o.maxNew == 0 {
			o.maxNew = ec.MaxNewTokens
		}
		if o.data == "" {
			o.data = ec.DataPath
		}
	}
	if o.bos == nil && ec.BOS != configs.EvalBOSTokenizer {
		if v, err := trainer.EvalBOS(ec.BOS, false); err == nil {
			o.bos = &v
		}
	}
	return o
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
	if o, err = resolve(o); err != nil {
		return err
	}
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
		Task: o.task, Template: o.template, DataDir: dataDir, Shots: o.shots, Limit: o.limit, Subjects: subjects,
		Batch: o.batch, MaxNewTokens: o.maxNew, Progress: progress,
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
	opt.BOS = m.Tokenizer.AddBOS()
	if o.bos != nil {
		opt.BOS = *o.bos
	}
	res, err := eval.Run(ctx, m, opt)
	if err != nil {
		return err
	}
	res.Model = o.Model
	if o.Run != "" {
		res.Model, res.Adapters = o.Run, &o.Run
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
	if o.Run == "" {
		return model.Open(o.Model, o.Tokenizer)
	}
	return OpenRun(o.Run)
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
