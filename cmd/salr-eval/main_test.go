package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/salr-go/salr/cmd/internal/cli"
	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/datasets/assets"
	"github.com/salr-go/salr/kernels/bitmap"
	"github.com/salr-go/salr/trainer"

	"github.com/salr-go/salr/model"
)

// storiesModel is the path of the stories260K checkpoint in the shared assets.
func storiesModel(t *testing.T) string {
	return filepath.Join(assets.ForTest(t), "stories260K", "stories260K.bin")
}

// writeMMLU writes a one-subject MMLU directory (anatomy, 3 test and 5 dev
// questions).
func writeMMLU(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	row := "What is the largest bone?,femur,tibia,skull,rib,A\n"
	for name, content := range map[string]string{
		"dev/anatomy_dev.csv":   strings.Repeat(row, 5),
		"test/anatomy_test.csv": strings.Repeat(row, 3),
	} {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-model", "m"}, "-task is required"},
		{[]string{"-task", "mmlu"}, "exactly one of -model and -run"},
		{[]string{"-task", "mmlu", "-model", "m", "-run", "r"}, "exactly one of -model and -run"},
		{[]string{"-task", "mmlu", "-run", "r", "-tokenizer", "t"}, "-tokenizer applies to -model only"},
		{[]string{"-task", "mmlu", "-model", "m", "extra"}, `unexpected argument "extra"`},
		{[]string{"-task", "mmlu", "extra", "-model", "m"}, `unexpected argument "extra" (flags after it are not read)`},
	} {
		_, err := parseArgs(tc.args, io.Discard)
		if !cli.IsUsage(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want a usage error mentioning %q", tc.args, err, tc.want)
		}
	}
	o, err := parseArgs([]string{"-task", "gsm8k", "-model", "m"}, io.Discard)
	if err == nil {
		o, err = resolve(o)
	}
	// Without -run, lm-eval's defaults; maxNew 0 is the template's budget
	// (256 for lm-eval) and a nil bos the tokenizer's choice.
	if err != nil || o.template != "lm-eval" || o.shots != 5 || o.maxNew != 0 || o.batch < 1 || o.bos != nil || o.limit != 0 {
		t.Errorf("defaults %+v, %v", o, err)
	}
	o, err = parseArgs([]string{"-task", "gsm8k", "-model", "m", "-template", "metamath", "-bos=false"}, io.Discard)
	if err == nil {
		o, err = resolve(o)
	}
	if err != nil || o.shots != 0 || o.bos == nil || *o.bos {
		t.Errorf("metamath defaults %+v, %v; want 0 shots and BOS off", o, err)
	}
	for _, args := range [][]string{
		{"-task", "mmlu", "-model", "m", "-template", "metamath"},
		{"-task", "gsm8k", "-model", "m", "-template", "metamath", "-shots", "5"},
		{"-task", "gsm8k", "-model", "m", "-template", "alpaca"},
	} {
		o, err := parseArgs(args, io.Discard)
		if err == nil {
			_, err = resolve(o)
		}
		if !cli.IsUsage(err) || !strings.Contains(err.Error(), "template") {
			t.Errorf("%v: %v, want a usage error about the template", args, err)
		}
	}
	if _, err := parseArgs([]string{"-task", "gsm8k", "-model", "m", "-bos=maybe"}, io.Discard); err == nil {
		t.Error("-bos=maybe accepted")
	}
	if _, err := parseArgs([]string{"-bogus"}, io.Discard); err == nil {
		t.Error("unknown flag accepted")
	}
	var stderr bytes.Buffer
	if got := cli.Run("salr-eval", command, []string{"-task", "mmlu"}, io.Discard, &stderr); got != 2 ||
		stderr.String() != "salr-eval: give exactly one of -model and -run\nrun 'salr-eval -h' for usage\n" {
		t.Errorf("exit status for bad usage %d, stderr %q; want 2", got, stderr.String())
	}
	var help bytes.Buffer
	if got := cli.Run("salr-eval", command, []string{"-h"}, &help, io.Discard); got != 0 ||
		!strings.HasPrefix(help.String(), "usage: salr-eval -task gsm8k|mmlu -model PATH") || !strings.Contains(help.String(), "(required)") {
		t.Errorf("-h: exit %d, help:\n%s", got, help.String())
	}
	if _, err := parseSubjects("anatomy,,virology"); err == nil {
		t.Error("empty subject accepted")
	}
	if s, err := parseSubjects(" anatomy , virology "); err != nil || len(s) != 2 || s[1] != "virology" {
		t.Errorf("subjects %q, %v", s, err)
	}
}

func TestRunWritesResultsAndSamples(t *testing.T) {
	modelPath := storiesModel(t)
	dir := t.TempDir()
	o := options{
		task: "mmlu", ModelFlags: cli.ModelFlags{Model: modelPath}, data: writeMMLU(t), shots: 2, batch: 2, maxNew: 256,
		out: filepath.Join(dir, "results.json"), logSamples: filepath.Join(dir, "samples.jsonl"),
	}
	var stdout bytes.Buffer
	if err := run(context.Background(), o, &stdout, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "|   - anatomy ") || !strings.Contains(stdout.String(), "docs/s") {
		t.Errorf("stdout:\n%s", stdout.String())
	}
	var res map[string]any
	data, err := os.ReadFile(o.out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	if res["task"] != "mmlu" || res["model"] != modelPath || res["adapters"] != nil || res["n_docs"] != 3.0 {
		t.Errorf("results %v", res)
	}
	if p := bitmap.CurrentPaths(); res["blas_core"] != p.BLASCore || res["kernel_path"] != p.KernelPath || !strings.Contains(stdout.String(), p.String()) {
		t.Errorf("results blas_core %v, kernel_path %v, want %+v, also in stdout:\n%s", res["blas_core"], res["kernel_path"], p, stdout.String())
	}
	samples, err := os.ReadFile(o.logSamples)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(samples), "\n"); n != 3 {
		t.Errorf("%d sample lines, want 3", n)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("output directory holds %d entries, want 2 (no temporary files)", len(entries))
	}

	// A second run refuses to overwrite, before loading anything.
	o.Model = filepath.Join(dir, "no-such-model")
	if err := run(context.Background(), o, io.Discard, nil); err == nil || !strings.Contains(err.Error(), "-overwrite") {
		t.Errorf("existing results: %v", err)
	}
	o.Model, o.overwrite = modelPath, true
	if err := run(context.Background(), o, io.Discard, nil); err != nil {
		t.Errorf("-overwrite: %v", err)
	}
}

func TestRunDirectory(t *testing.T) {
	modelPath := storiesModel(t)
	o := options{task: "mmlu", ModelFlags: cli.ModelFlags{Run: "/runs/r1"}, data: writeMMLU(t), shots: 1, limit: 1, batch: 1, maxNew: 256}
	defer func(saved func(string) (*model.Loaded, error)) { OpenRun = saved }(OpenRun)

	var opened string
	OpenRun = func(dir string) (*model.Loaded, error) {
		opened = dir
		return model.Open(modelPath, "")
	}
	o.out = filepath.Join(t.TempDir(), "results.json")
	if err := run(context.Background(), o, io.Discard, nil); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(o.out)
	if err != nil {
		t.Fatal(err)
	}
	var res map[string]any
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	if opened != "/runs/r1" || res["model"] != "/runs/r1" || res["adapters"] != "/runs/r1" {
		t.Errorf("opened %q, results model %v adapters %v", opened, res["model"], res["adapters"])
	}
}

func TestRunReportsBadData(t *testing.T) {
	modelPath := storiesModel(t)
	data := t.TempDir() // no test/ split
	outDir := t.TempDir()
	out := filepath.Join(outDir, "results.json")
	err := run(context.Background(), options{task: "mmlu", ModelFlags: cli.ModelFlags{Model: modelPath}, data: data, batch: 1, out: out}, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(data, "test")) {
		t.Errorf("missing split: %v", err)
	}
	if entries, _ := os.ReadDir(outDir); len(entries) != 0 {
		t.Errorf("a failed run left %d files in the output directory", len(entries))
	}
}

// writeRunConfig writes a run directory holding only config.toml: the
// quickstart config with the given overrides.
func writeRunConfig(t *testing.T, sets ...string) string {
	t.Helper()
	t.Setenv(assets.Env, assets.ForTest(t))
	cfg, err := configs.Load("quickstart.toml", sets)
	if err != nil {
		t.Fatal(err)
	}
	text, err := cfg.MarshalTOML()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, trainer.ConfigFile), text, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestRunConfigDefaults checks that -run takes the task, template, shots,
// budget and BOS from the run's config, and that flags win.
func TestRunConfigDefaults(t *testing.T) {
	dir := writeRunConfig(t, "eval.task=gsm8k", "eval.template=metamath", "eval.bos=false", "eval.max_new_tokens=8")
	parse := func(args ...string) options {
		t.Helper()
		o, err := parseArgs(append([]string{"-run", dir}, args...), io.Discard)
		if err == nil {
			o, err = resolve(o)
		}
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return o
	}
	if o := parse(); o.task != "gsm8k" || o.template != "metamath" || o.shots != 0 || o.maxNew != 8 || o.bos == nil || *o.bos {
		t.Errorf("from the run's config: %+v", o)
	}
	if o := parse("-template", "lm-eval", "-bos"); o.template != "lm-eval" || o.shots != 5 || o.bos == nil || !*o.bos {
		t.Errorf("-template lm-eval -bos: %+v, want lm-eval's 5 shots and BOS on", o)
	}
	if o := parse("-shots", "3", "-template", "lm-eval"); o.shots != 3 {
		t.Errorf("-shots 3: %+v", o)
	}
	// The config's shots go with its template.
	fewShot := writeRunConfig(t, "eval.task=gsm8k", "eval.template=lm-eval", "eval.shots=3")
	o, err := parseArgs([]string{"-run", fewShot, "-template", "metamath"}, io.Discard)
	if err == nil {
		o, err = resolve(o)
	}
	if err != nil || o.shots != 0 {
		t.Errorf("-template metamath on a 3-shot lm-eval run: %+v, %v; want 0 shots", o, err)
	}
	if o, _ := resolve(options{ModelFlags: cli.ModelFlags{Run: fewShot}, shots: -1}); o.shots != 3 || o.template != "lm-eval" {
		t.Errorf("3-shot lm-eval run: %+v", o)
	}
	if o := parse("-task", "mmlu"); o.task != "mmlu" || o.template != "lm-eval" || o.shots != 5 || o.maxNew != 0 {
		t.Errorf("-task mmlu on a gsm8k run: %+v, want lm-eval's defaults", o)
	}
	// A run that trained on GSM8K and names no task: -task is required, and
	// the template is the training data's.
	plain := writeRunConfig(t)
	o, _ = parseArgs([]string{"-run", plain}, io.Discard)
	if _, err := resolve(o); !cli.IsUsage(err) || !strings.Contains(err.Error(), "-task is required") {
		t.Errorf("no task anywhere: %v", err)
	}
	o, _ = parseArgs([]string{"-run", plain, "-task", "gsm8k"}, io.Discard)
	if o, err := resolve(o); err != nil || o.template != "lm-eval" || o.shots != 5 || o.bos != nil {
		t.Errorf("GSM8K-trained run: %+v, %v", o, err)
	}
}

// TestRunDirectoryUsesItsConfig evaluates a run directory (its model
// substituted by stories260K) with nothing but -run and -limit, and checks
// that results.json records the run's template, shots and BOS.
func TestRunDirectoryUsesItsConfig(t *testing.T) {
	modelPath := storiesModel(t)
	dir := writeRunConfig(t, "eval.task=gsm8k", "eval.template=metamath", "eval.bos=false", "eval.max_new_tokens=4")
	defer func(saved func(string) (*model.Loaded, error)) { OpenRun = saved }(OpenRun)
	OpenRun = func(string) (*model.Loaded, error) { return model.Open(modelPath, "") }
	o, err := parseArgs([]string{"-run", dir, "-limit", "1", "-out", filepath.Join(t.TempDir(), "r.json"), "-quiet"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	if err := run(context.Background(), o, &stdout, nil); err != nil {
		t.Fatal(err)
	}
	var res map[string]any
	data, _ := os.ReadFile(o.out)
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	if res["template"] != "metamath" || res["shots"] != 0.0 || res["bos"] != false || res["max_new_tokens"] != 4.0 ||
		res["metrics"].(map[string]any)["exact_match,metamath"] == nil {
		t.Errorf("results %s", data)
	}
	if !strings.Contains(stdout.String(), "| metamath ") {
		t.Errorf("stdout:\n%s", stdout.String())
	}
	// Without -run and -bos, BOS is the tokenizer's: stories260K adds it.
	o = options{task: "gsm8k", ModelFlags: cli.ModelFlags{Model: modelPath}, limit: 1, batch: 1, maxNew: 2, shots: -1, out: filepath.Join(t.TempDir(), "r.json")}
	if err := run(context.Background(), o, io.Discard, nil); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(o.out)
	if err := json.Unmarshal(data, &res); err != nil || res["bos"] != true || res["template"] != "lm-eval" || res["shots"] != 5.0 {
		t.Errorf("defaults without -run: %s", data)
	}
}
