package trainer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/datasets"
	"github.com/salr-go/salr/kernels/bitmap"
	"github.com/salr-go/salr/model/tokenizer"
)

// Fixtures of package datasets, in the released layouts.
const (
	metaMathFixture = "../datasets/testdata/metamathqa/MetaMathQA-tiny.json"
	mmluRootFixture = "../datasets/testdata/mmlu"
)

// presetConfig loads a preset for stories260K with the sets of a tiny run.
func presetConfig(t *testing.T, preset, outDir string, sets ...string) *configs.Config {
	t.Helper()
	assets := assetsDir(t)
	t.Setenv("SALR_ASSETS", assets)
	base := []string{
		"model.path=" + filepath.Join(assets, "stories260K", "stories260K.bin"),
		"output.dir=" + outDir, "data.seq_len=256", "data.eval_examples=2",
		"adapters.lora_rank=4", "adapters.svd_rank=4",
		"train.max_steps=3", "train.batch_size=4", "train.grad_accum=1", "train.warmup_steps=1",
		"train.eval_every=0", "train.checkpoint_every=0",
		"eval.limit=2", // the presets evaluate after training
	}
	cfg, err := configs.Load(preset, append(base, sets...))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestGSM8KPresetTrainsOnMetaMathQA runs gsm8k.toml on the MetaMathQA
// fixture: the log shows the first example in the MetaMath template with the
// prompt/response boundary at "### Response:".
func TestGSM8KPresetTrainsOnMetaMathQA(t *testing.T) {
	t.Setenv("SALR_METAMATHQA", filepath.Dir(metaMathFixture))
	cfg := presetConfig(t, "gsm8k.toml", filepath.Join(t.TempDir(), "run"),
		"data.train_path="+metaMathFixture)
	if cfg.Data.Format != configs.FormatMetaMathQA {
		t.Fatalf("gsm8k.toml data.format = %q", cfg.Data.Format)
	}
	var log bytes.Buffer
	sum, err := Train(context.Background(), Options{Config: cfg, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Finished || sum.TrainExamples != 10 || sum.EvalExamples != 2 {
		t.Errorf("summary %+v", sum)
	}
	if want := "kernels: " + bitmap.CurrentPaths().String() + "\n"; !strings.Contains(log.String(), want) {
		t.Errorf("run log lacks %q:\n%s", want, log.String())
	}
	if e := sum.Eval; e == nil || e.Task != "gsm8k" || e.Template != "metamath" || e.Shots != 0 || e.Docs != 2 || e.Metric != "exact_match,metamath" {
		t.Errorf("evaluation after training: %+v", e)
	}
	recs, err := datasets.ReadMetaMathQA(metaMathFixture, datasets.MetaMathSelection{Seed: uint64(cfg.Train.Seed)})
	if err != nil {
		t.Fatal(err)
	}
	// The first training example is the first of the shuffle not held out.
	train, _ := datasets.SplitHeldOut(len(recs), 2, uint64(cfg.Train.Seed))
	first := recs[train[0]]
	want := `data: first training example, prompt "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\n` +
		strings.Trim(strconv.Quote(first.Query), `"`) + `\n\n### Response:", response ` + strconv.Quote(first.Response) + "\n"
	if !strings.Contains(log.String(), want) {
		t.Errorf("log lacks\n%s\nlog:\n%s", want, log.String())
	}
}

// TestMMLUPresetTrainsOnAuxiliaryTrain runs mmlu.toml with SALR_MMLU at the
// data.tar-layout fixture: its auxiliary_train questions are rendered without
// a subject line, the answer letter as the response.
func TestMMLUPresetTrainsOnAuxiliaryTrain(t *testing.T) {
	t.Setenv("SALR_MMLU", mmluRootFixture)
	cfg := presetConfig(t, "mmlu.toml", filepath.Join(t.TempDir(), "run"), "data.eval_examples=0")
	if cfg.Data.TrainPath != filepath.Join(mmluRootFixture, "auxiliary_train") {
		t.Fatalf("mmlu.toml data.train_path = %q", cfg.Data.TrainPath)
	}
	var log bytes.Buffer
	sum, err := Train(context.Background(), Options{Config: cfg, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Finished || sum.TrainExamples != 7 {
		t.Errorf("summary %+v", sum)
	}
	if e := sum.Eval; e == nil || e.Task != "mmlu" || e.Shots != 5 || e.Metric != "acc" {
		t.Errorf("evaluation after training: %+v", e)
	}
	want := `data: first training example, prompt "Which gas do plants take in from the air to make food?\nA. oxygen\nB. carbon dioxide\nC. nitrogen\nD. helium\nAnswer:", response " B"` + "\n"
	if !strings.Contains(log.String(), want) {
		t.Errorf("log lacks\n%s\nlog:\n%s", want, log.String())
	}
}

// TestLoadDataMetaMathQASelection: data.types and data.max_examples select
// from the seeded shuffle, and the data.tar root works as an mmlu train_path.
func TestLoadDataMetaMathQASelection(t *testing.T) {
	tok, err := tokenizer.Load(filepath.Join(assetsDir(t), "stories260K", "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	load := func(preset string, sets ...string) *Data {
		t.Helper()
		t.Setenv("SALR_METAMATHQA", filepath.Dir(metaMathFixture))
		t.Setenv("SALR_MMLU", mmluRootFixture)
		cfg := presetConfig(t, preset, t.TempDir(), append([]string{"data.eval_examples=0"}, sets...)...)
		d, err := LoadData(cfg, tok)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	d := load("gsm8k.toml", "data.train_path="+metaMathFixture, "data.types=GSM_SV,MATH_FOBAR")
	if len(d.Train) != 3 || !strings.Contains(d.First.Prompt, "value of") {
		t.Errorf("types GSM_SV, MATH_FOBAR: %d sequences, first %q", len(d.Train), d.First.Prompt)
	}
	sel, err := datasets.ReadMetaMathQA(metaMathFixture, datasets.MetaMathSelection{Max: 5, Seed: 42})
	if err != nil {
		t.Fatal(err)
	}
	d = load("gsm8k.toml", "data.train_path="+metaMathFixture, "data.max_examples=5", "train.seed=42")
	if len(d.Train) != 5 || d.First != datasets.MetaMathTrainExample(sel[0]) {
		t.Errorf("max_examples 5: %d sequences, first %+v, want %+v", len(d.Train), d.First, datasets.MetaMathTrainExample(sel[0]))
	}
	if d := load("mmlu.toml", "data.train_path="+mmluRootFixture); len(d.Train) != 7 {
		t.Errorf("data.tar root: %d sequences, want 7", len(d.Train))
	}
}

// TestBadMetaMathQAFailsBeforePruning: a record without a response is
// reported with the file, record and line before the model is pruned.
func TestBadMetaMathQAFailsBeforePruning(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(root, "MetaMathQA-395K.json")
	os.WriteFile(path, []byte("[\n  {\"query\": \"q\", \"response\": \"r\", \"type\": \"GSM_SV\"},\n  {\"query\": \"q\", \"type\": \"GSM_SV\"}\n]\n"), 0o644)
	cfg := presetConfig(t, "gsm8k.toml", filepath.Join(root, "run"), "data.train_path="+path)
	var log bytes.Buffer
	_, err := Train(context.Background(), Options{Config: cfg, Log: &log})
	if err == nil || !strings.Contains(err.Error(), path+":3: record 1: missing field \"response\"") {
		t.Fatalf("error %v", err)
	}
	if strings.Contains(log.String(), "prun") {
		t.Errorf("the error came after pruning:\n%s", log.String())
	}
}

// TestSeqLenBeyondContextFailsBeforeLoading: mmlu.toml's seq_len of 1024 on
// stories260K (context 512) is reported before the data is read or the
// model pruned.
func TestSeqLenBeyondContextFailsBeforeLoading(t *testing.T) {
	t.Setenv("SALR_MMLU", mmluRootFixture)
	cfg := presetConfig(t, "mmlu.toml", filepath.Join(t.TempDir(), "run"), "data.seq_len=1024")
	var log bytes.Buffer
	_, err := Train(context.Background(), Options{Config: cfg, Log: &log})
	if err == nil || !strings.Contains(err.Error(), "data.seq_len = 1024 exceeds the model's context, max_position_embeddings = 512") {
		t.Fatalf("error %v", err)
	}
	if strings.Contains(log.String(), "prun") || strings.Contains(log.String(), "first training example") {
		t.Errorf("the error came after reading the data or pruning:\n%s", log.String())
	}
}
