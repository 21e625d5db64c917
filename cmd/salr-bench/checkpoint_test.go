package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/salr-go/salr/datasets/assets"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/model/safetensors"
)

// storiesTokenizer is the 512-token llama2.c tokenizer of the shared
// assets; the test is skipped without them.
func storiesTokenizer(t *testing.T) string {
	return filepath.Join(assets.ForTest(t), "stories260K", "tok512.bin")
}

// checkRandomWeights checks that every tensor of the directory holds
// model.RandomTensor's values for the seed, rounded to bf16.
func checkRandomWeights(t *testing.T, dir string, seed uint64) {
	t.Helper()
	cfg, err := model.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	set, err := safetensors.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	for name, shape := range cfg.TensorShapes() {
		got, err := set.Bytes(name)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := safetensors.EncodeFloat32(model.RandomTensor(name, shape, seed), safetensors.BF16)
		if !bytes.Equal(got, want) {
			t.Fatalf("%s is not RandomTensor(seed %d) in bf16", name, seed)
		}
	}
}

func TestCheckpointLoadsWithTokenizer(t *testing.T) {
	tok := storiesTokenizer(t)
	dir := filepath.Join(t.TempDir(), "m")
	code, out, errOut := runCmd("checkpoint", "-shape", "llama-64x2", "-vocab", "512", "-seed", "9", "-tokenizer", tok, "-out", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "model.safetensors") || !strings.Contains(out, " s (") || strings.Contains(out, "no tokenizer") {
		t.Errorf("output %q", out)
	}
	l, err := model.Open(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if l.Tokenizer.VocabSize() != 512 || l.Params.Config.Vocab != 512 || l.Params.Config.TorchDtype != "bfloat16" {
		t.Errorf("tokenizer of %d tokens, config %+v", l.Tokenizer.VocabSize(), l.Params.Config)
	}
	l.Close()
	checkRandomWeights(t, dir, 9)
	if _, err := os.Stat(filepath.Join(dir, safetensors.IndexFileName)); !os.IsNotExist(err) {
		t.Errorf("an index beside a single model.safetensors: %v", err)
	}
}

// TestCheckpointCopiesAnHFTokenizer: an HF tokenizer.json is copied as is.
func TestCheckpointCopiesAnHFTokenizer(t *testing.T) {
	src := filepath.Join(assets.ForTest(t), "gpt2", "tokenizer.json")
	dir := filepath.Join(t.TempDir(), "m")
	if code, _, errOut := runCmd("checkpoint", "-shape", "llama-64x2", "-vocab", "50304", "-tokenizer", src, "-out", dir); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want, _ := os.ReadFile(src)
	got, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("tokenizer.json not copied (%v)", err)
	}
	l, err := model.Open(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
}

// TestCheckpointSharded: a tiny -max-shard-size gives shards and an index
// that model.Load reads; without -tokenizer the output says so.
func TestCheckpointSharded(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	code, out, errOut := runCmd("checkpoint", "-shape", "llama-64x2", "-vocab", "512", "-max-shard-size", "100KB", "-out", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "4 shards and model.safetensors.index.json") || !strings.Contains(out, "no tokenizer") {
		t.Errorf("output %q", out)
	}
	weightMap, err := safetensors.ReadIndex(filepath.Join(dir, safetensors.IndexFileName))
	if err != nil {
		t.Fatal(err)
	}
	shards := map[string]bool{}
	for _, f := range weightMap {
		shards[f] = true
	}
	for i := 1; i <= 4; i++ {
		if !shards[safetensors.ShardFileName(i, 4)] {
			t.Errorf("no tensor in %s", safetensors.ShardFileName(i, 4))
		}
	}
	if _, err := os.Stat(filepath.Join(dir, safetensors.SingleFileName)); !os.IsNotExist(err) {
		t.Errorf("model.safetensors beside shards: %v", err)
	}
	ck, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	ck.Close()
	checkRandomWeights(t, dir, 1)
}

// TestCheckpointRefusesAnExistingDirectory: an existing -out is left alone
// without -overwrite and replaced with it; no temporary directory remains.
func TestCheckpointRefusesAnExistingDirectory(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "m")
	os.Mkdir(dir, 0o755)
	marker := filepath.Join(dir, "keep")
	os.WriteFile(marker, []byte("x"), 0o644)
	code, _, errOut := runCmd("checkpoint", "-shape", "llama-64x2", "-out", dir)
	if code != 1 || !strings.Contains(errOut, "-out "+dir+" already exists; give -overwrite") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the existing directory was touched: %v", err)
	}
	code, _, errOut = runCmd("checkpoint", "-shape", "llama-64x2", "-vocab", "256", "-out", dir, "-overwrite")
	if code != 0 {
		t.Fatalf("-overwrite: exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Errorf("the old directory's file survived: %v", err)
	}
	checkRandomWeights(t, dir, 1)
	entries, _ := os.ReadDir(parent)
	if len(entries) != 1 {
		t.Errorf("parent holds %d entries, want only m", len(entries))
	}
}

func TestCheckpointBadFlags(t *testing.T) {
	tok := storiesTokenizer(t)
	out := filepath.Join(t.TempDir(), "m")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-out", out}, 2, "-shape is required"},
		{[]string{"-shape", "llama-64x2"}, 2, "-out is required"},
		{[]string{"-shape", "llama2-70b", "-out", out}, 1, `-shape: model: unknown shape "llama2-70b" (want bench-60M, llama2-7b`},
		{[]string{"-shape", "llama-64x2", "-dtype", "int8", "-out", out}, 2, `-dtype "int8": want bf16, fp16 or fp32`},
		{[]string{"-shape", "llama-64x2", "-dtype", "fp64", "-out", out}, 2, `-dtype "fp64"`},
		{[]string{"-shape", "llama-64x2", "-vocab", "-3", "-out", out}, 1, "-vocab -3: want a positive"},
		{[]string{"-shape", "llama-64x2", "-vocab", "500", "-tokenizer", tok, "-out", out}, 1, "-vocab: the tokenizer " + tok + " has 512 tokens, more than the vocabulary of 500"},
		{[]string{"-shape", "llama-64x2", "-tokenizer", filepath.Join(out, "absent.bin"), "-out", out}, 1, "-tokenizer: "},
		{[]string{"-shape", "llama-64x2", "-max-shard-size", "5XB", "-out", out}, 2, `-max-shard-size: size "5XB"`},
	} {
		code, _, errOut := runCmd(append([]string{"checkpoint"}, c.args...)...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("checkpoint %q: exit %d, stderr %q; want %d and %q", c.args, code, errOut, c.code, c.want)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed run created %s: %v", out, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(entries) != 0 {
		t.Errorf("failed runs left %d entries, e.g. %s", len(entries), entries[0].Name())
	}
}
