package trainer

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/datasets"
	"github.com/salr-go/salr/internal/atomicfile"
	"github.com/salr-go/salr/trainer/eval"
)

// The evaluation a run's [eval] section asks for is written to EvalDir:
// EvalResultsFile (eval.Results as JSON) and EvalSamplesFile (one sample
// record per document, as salr-eval -log-samples writes).
const (
	EvalDir         = "eval"
	EvalResultsFile = "eval/results.json"
	EvalSamplesFile = "eval/samples.jsonl"
)

// EvalSummary is summary.json's "eval": the headline of eval/results.json.
type EvalSummary struct {
	Task     string      `json:"task"`
	Template string      `json:"template"`
	Shots    int         `json:"shots"`
	BOS      bool        `json:"bos"`
	Docs     int         `json:"n_docs"`
	Metric   string      `json:"metric"`
	Value    eval.Number `json:"value"`
}

// EvalTemplate is the prompt template of cfg's evaluation: eval.template,
// or when empty the template the training data was rendered with
// (metamath for MetaMathQA data, lm-eval's for the other formats).
func EvalTemplate(cfg *configs.Config) string {
	if t := cfg.Eval.Template; t != "" {
		return t
	}
	if cfg.Data.Format == configs.FormatMetaMathQA {
		return eval.TemplateMetaMath
	}
	return eval.TemplateLMEval
}

// EvalShots is the number of shots of cfg's evaluation: eval.shots, or when
// negative the template's default (eval.DefaultShotsFor).
func EvalShots(cfg *configs.Config) int {
	if cfg.Eval.Shots < 0 {
		return eval.DefaultShotsFor(EvalTemplate(cfg))
	}
	return cfg.Eval.Shots
}

// EvalBOS resolves an eval.bos setting ("tokenizer", "true" or "false")
// against the tokenizer's own choice, tokenizerBOS.
func EvalBOS(setting string, tokenizerBOS bool) (bool, error) {
	switch setting {
	case configs.EvalBOSTokenizer, "":
		return tokenizerBOS, nil
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("trainer: eval.bos %q: want %s, true or false", setting, configs.EvalBOSTokenizer)
}

// EvalOptions turns cfg's [eval] section into evaluation options for a model
// whose tokenizer adds BOS when tokenizerBOS is set. Progress and Samples
// are left to the caller.
func EvalOptions(cfg *configs.Config, tokenizerBOS bool) (eval.Options, error) {
	ec := cfg.Eval
	dataDir, err := eval.DataDir(ec.Task, ec.DataPath)
	if err != nil {
		return eval.Options{}, err
	}
	bos, err := EvalBOS(ec.BOS, tokenizerBOS)
	if err != nil {
		return eval.Options{}, err
	}
	return eval.Options{Task: ec.Task, Template: EvalTemplate(cfg), DataDir: dataDir, Shots: EvalShots(cfg),
		Limit: ec.Limit, Batch: ec.Batch, MaxNewTokens: ec.MaxNewTokens, BOS: bos}, nil
}

// checkEval checks, before any training, what the evaluation after training
// will need: a template that fits the task and shots, the benchmark files,
// and an exported model to load.
func checkEval(cfg *configs.Config) error {
	ec := cfg.Eval
	if ec.Task == "" {
		return nil
	}
	if err := eval.CheckTemplate(ec.Task, EvalTemplate(cfg), EvalShots(cfg)); err != nil {
		return fmt.Errorf("trainer: [eval]: %w", err)
	}
	if _, err := EvalBOS(ec.BOS, false); err != nil {
		return err
	}
	if !cfg.Output.SaveBase {
		return fmt.Errorf("trainer: eval.task = %q needs output.save_base = true: the evaluation loads the run's exported model", ec.Task)
	}
	dir, err := eval.DataDir(ec.Task, ec.DataPath)
	if err != nil {
		return fmt.Errorf("trainer: eval.data_path: %w", err)
	}
	need := []string{eval.GSM8KTestFile}
	if EvalShots(cfg) > 0 {
		need = append(need, eval.GSM8KTrainFile)
	}
	if ec.Task == eval.TaskMMLU {
		need = []string{"test"}
		if EvalShots(cfg) > 0 {
			need = append(need, "dev")
		}
	}
	for _, name := range need {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("trainer: eval.data_path: the %s data %s is missing: %w", ec.Task, filepath.Join(dir, name), err)
		}
	}
	return nil
}

// evalPending reports whether the run in runDir, whose summary is sum,
// still owes the evaluation its config asks for: eval/results.json or its
// headline in summary.json is missing.
func evalPending(cfg *configs.Config, runDir string, sum *Summary) bool {
	if cfg.Eval.Task == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(runDir, EvalResultsFile))
	return sum.Eval == nil || err != nil
}

// EvalPending reports whether the finished run in runDir still owes the
// evaluation its config asks for; salr-train -resume does it.
func EvalPending(runDir string, cfg *configs.Config) bool {
	sum, err := ReadSummary(runDir)
	return err == nil && sum.Finished && evalPending(cfg, runDir, sum)
}

// evaluateRun runs the evaluation cfg's [eval] asks for on the run's
// exported model, writes eval/samples.jsonl and eval/results.json, and
// adds the headline to summary.json. A run whose eval/results.json exists
// is not evaluated again: its headline is read from that file. sum is the
// run's summary, updated and returned.
func evaluateRun(ctx context.Context, cfg *configs.Config, runDir string, sum *Summary, rep *reporter, progress io.Writer) (*Summary, error) {
	if !evalPending(cfg, runDir, sum) {
		return sum, nil
	}
	resultsPath := filepath.Join(runDir, EvalResultsFile)
	res, err := readResults(resultsPath)
	if errors.Is(err, os.ErrNotExist) {
		res, err = evaluate(ctx, cfg, runDir, rep, progress)
	}
	if err != nil {
		return nil, err
	}
	metric, value := res.Headline()
	sum.Eval = &EvalSummary{Task: res.Task, Template: res.Template, Shots: res.Shots, BOS: res.BOS, Docs: res.Docs,
		Metric: metric, Value: value}
	if err := writeJSON(filepath.Join(runDir, SummaryFile), sum); err != nil {
		return nil, err
	}
	rep.logf("evaluation: %s %s = %.4f over %d documents; %s", res.Task, metric, float64(value), res.Docs, resultsPath)
	return sum, nil
}

// evaluate runs the evaluation and writes its files: the samples first,
// then results.json, whose presence marks the evaluation done (never
// replaced).
func evaluate(ctx context.Context, cfg *configs.Config, runDir string, rep *reporter, progress io.Writer) (*eval.Results, error) {
	m, err := OpenRun(runDir)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	opt, err := EvalOptions(cfg, m.Tokenizer.AddBOS())
	if err != nil {
		return nil, err
	}
	opt.Progress = progress
	rep.logf("evaluating %s: %s template, %d-shot, BOS %v, limit %d", opt.Task, opt.Template, opt.Shots, opt.BOS, opt.Limit)
	if err := os.MkdirAll(filepath.Join(runDir, EvalDir), 0o755); err != nil {
		return nil, fmt.Errorf("trainer: %w", err)
	}
	samplesPath := filepath.Join(runDir, EvalSamplesFile)
	samplesFile, err := atomicfile.Create(samplesPath, true) // left by an evaluation that did not finish
	if err != nil {
		return nil, err
	}
	w := bufio.NewWriter(samplesFile)
	opt.Samples = datasets.NewSampleWriter(w)
	res, err := eval.Run(ctx, m, opt)
	if err == nil {
		if err = w.Flush(); err != nil {
			err = fmt.Errorf("trainer: writing %s: %w", samplesPath, err)
		}
	}
	if err != nil {
		samplesFile.Abort()
		if ctx.Err() != nil {
			rep.logf("evaluation interrupted; salr-train -resume %s redoes it", runDir)
			return nil, ErrInterrupted
		}
		return nil, err
	}
	if err := samplesFile.Commit(); err != nil {
		return nil, err
	}
	res.Model, res.Adapters = runDir, &runDir
	if rep.log != nil {
		io.WriteString(rep.log, res.Markdown())
	}
	if err := eval.WriteResults(filepath.Join(runDir, EvalResultsFile), res, false); err != nil {
		return nil, err
	}
	return res, nil
}

// readResults reads an eval/results.json.
func readResults(path string) (*eval.Results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r eval.Results
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("trainer: %s: %w", path, err)
	}
	return &r, nil
}
