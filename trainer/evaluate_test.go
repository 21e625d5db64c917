package trainer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/salr-go/salr/datasets"
	"github.com/salr-go/salr/trainer/eval"
)

// evalSets are the [eval] overrides of the end-to-end tests: GSM8K with the
// metamath template on two documents, short generations.
var evalSets = []string{"train.max_steps=2", "eval.task=gsm8k", "eval.template=metamath", "eval.limit=2",
	"eval.max_new_tokens=8", "eval.batch=2"}

// TestTrainEvaluatesAfterTraining trains a tiny run whose config names a
// task and checks eval/results.json, the sample log and the headline in
// summary.json; that a finished run is not evaluated again; and that an
// evaluation that did not finish is redone by -resume.
func TestTrainEvaluatesAfterTraining(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	cfg := tinyConfig(t, dir, append(evalSets, "data.eval_examples=0")...)
	sum, err := Train(context.Background(), Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	want := EvalSummary{Task: "gsm8k", Template: "metamath", Shots: 0, BOS: true, Docs: 2, Metric: "exact_match,metamath"}
	if sum.Eval == nil {
		t.Fatal("summary has no eval")
	}
	got := *sum.Eval
	got.Value = 0
	if got != want || !(sum.Eval.Value >= 0 && sum.Eval.Value <= 1) {
		t.Errorf("summary eval %+v, want %+v", *sum.Eval, want)
	}
	onDisk, err := ReadSummary(dir)
	if err != nil || onDisk.Eval == nil || *onDisk.Eval != *sum.Eval || !onDisk.Finished {
		t.Fatalf("summary.json eval %+v, %v", onDisk, err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, SummaryFile))
	if strings.Contains(string(raw), "eval_loss") {
		t.Errorf("rewriting summary.json added the held-out losses of a run without a held-out set:\n%s", raw)
	}
	res := readResultsFile(t, dir)
	if res.Task != "gsm8k" || res.Template != "metamath" || res.Shots != 0 || !res.BOS || res.Docs != 2 ||
		res.Model != dir || res.Adapters == nil || *res.Adapters != dir || res.MaxNewTokens != 8 {
		t.Errorf("results.json %+v", res)
	}
	samples, err := os.ReadFile(filepath.Join(dir, EvalSamplesFile))
	if err != nil {
		t.Fatal(err)
	}
	test, err := datasets.ReadGSM8K(filepath.Join(assetsDir(t), "gsm8k", "test.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(samples)), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d sample lines, want 2", len(lines))
	}
	for i, line := range lines {
		var rec struct {
			Prompt string `json:"prompt"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if want := datasets.MetaMathPrompt(test[i].Question) + " Let's think step by step."; rec.Prompt != want {
			t.Errorf("sample %d prompt %q, want %q", i, rec.Prompt, want)
		}
	}

	// A finished, evaluated run is neither trained nor evaluated again.
	if _, err := Train(context.Background(), Options{Config: cfg}); err == nil || !strings.Contains(err.Error(), "finished") {
		t.Errorf("new run into the finished directory: %v", err)
	}
	if _, err := Train(context.Background(), Options{Resume: dir}); err == nil || !strings.Contains(err.Error(), "already finished") {
		t.Errorf("resuming the finished run: %v", err)
	}

	// An evaluation that did not finish (no results.json, no headline):
	// resuming with a cancelled context writes nothing, then a resume
	// redoes it with the same outcome.
	resultsBefore, _ := os.ReadFile(filepath.Join(dir, EvalResultsFile))
	if err := os.Remove(filepath.Join(dir, EvalResultsFile)); err != nil {
		t.Fatal(err)
	}
	onDisk.Eval = nil
	if err := writeJSON(filepath.Join(dir, SummaryFile), onDisk); err != nil {
		t.Fatal(err)
	}
	if !EvalPending(dir, cfg) {
		t.Fatal("evaluation not pending")
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Train(cancelled, Options{Resume: dir}); !errors.Is(err, ErrInterrupted) {
		t.Errorf("interrupted evaluation: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, EvalResultsFile)); err == nil {
		t.Error("an interrupted evaluation wrote results.json")
	}
	again, err := Train(context.Background(), Options{Resume: dir})
	if err != nil {
		t.Fatal(err)
	}
	if again.Eval == nil || *again.Eval != *sum.Eval {
		t.Errorf("redone evaluation %+v, first %+v", again.Eval, sum.Eval)
	}
	samplesAgain, _ := os.ReadFile(filepath.Join(dir, EvalSamplesFile))
	resultsAgain := readResultsFile(t, dir)
	var first eval.Results
	json.Unmarshal(resultsBefore, &first)
	if !bytes.Equal(samples, samplesAgain) || resultsAgain.Metrics["exact_match,metamath"] != first.Metrics["exact_match,metamath"] {
		t.Error("the redone evaluation differs from the first")
	}
}

func readResultsFile(t *testing.T, dir string) *eval.Results {
	t.Helper()
	res, err := readResults(filepath.Join(dir, EvalResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestEvalSettingsCheckedBeforeTraining checks that what the evaluation
// after training needs is checked before any pruning.
func TestEvalSettingsCheckedBeforeTraining(t *testing.T) {
	empty := t.TempDir()
	for _, tc := range []struct {
		sets []string
		want string
	}{
		{[]string{"eval.data_path=/no/such/gsm8k"}, "/no/such/gsm8k"},
		{[]string{"eval.data_path=" + empty}, filepath.Join(empty, "test.jsonl")},
		{[]string{"eval.shots=5"}, "zero-shot"},
		{[]string{"eval.task=mmlu", "eval.template=lm-eval", "eval.data_path=" + empty}, filepath.Join(empty, "test")},
		{[]string{"eval.task=mmlu"}, "metamath template is for gsm8k"},
		{[]string{"output.save_base=false"}, "output.save_base"},
	} {
		dir := filepath.Join(t.TempDir(), "run")
		cfg := tinyConfig(t, dir, append(evalSets, tc.sets...)...)
		_, err := Train(context.Background(), Options{Config: cfg})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error mentioning %q", tc.sets, err, tc.want)
		}
		if _, err := os.Stat(filepath.Join(dir, ConfigFile)); err == nil {
			t.Errorf("%v: the run directory was started", tc.sets)
		}
	}
}

// TestEvalOptionsFromConfig checks how a config's [eval] section becomes
// evaluation options: the template from the training data, the template's
// shots, BOS from the tokenizer unless eval.bos says otherwise.
func TestEvalOptionsFromConfig(t *testing.T) {
	cfg := tinyConfig(t, t.TempDir(), "eval.task=gsm8k")
	if EvalTemplate(cfg) != eval.TemplateLMEval || EvalShots(cfg) != 5 {
		t.Errorf("GSM8K data: template %q, %d shots", EvalTemplate(cfg), EvalShots(cfg))
	}
	cfg.Data.Format = "metamathqa"
	if EvalTemplate(cfg) != eval.TemplateMetaMath || EvalShots(cfg) != 0 {
		t.Errorf("MetaMathQA data: template %q, %d shots", EvalTemplate(cfg), EvalShots(cfg))
	}
	cfg.Eval.Template = eval.TemplateLMEval
	if EvalTemplate(cfg) != eval.TemplateLMEval || EvalShots(cfg) != 5 {
		t.Errorf("eval.template = lm-eval: template %q, %d shots", EvalTemplate(cfg), EvalShots(cfg))
	}
	for _, tc := range []struct {
		setting       string
		tokenizer, on bool
	}{{"tokenizer", true, true}, {"tokenizer", false, false}, {"false", true, false}, {"true", false, true}} {
		cfg.Eval.BOS = tc.setting
		opt, err := EvalOptions(cfg, tc.tokenizer)
		if err != nil || opt.BOS != tc.on {
			t.Errorf("eval.bos %q, tokenizer BOS %v: BOS %v, %v; want %v", tc.setting, tc.tokenizer, opt.BOS, err, tc.on)
		}
	}
}
