package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/salr-go/salr/cmd/internal/cli/clitest"
	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/datasets/assets"
	"github.com/salr-go/salr/trainer"
)

// TestExitCodes runs the command's main in a child process, on a prune run
// (pruned base, no adapters) made without training.
func TestExitCodes(t *testing.T) {
	clitest.Child("salr-export", main)
	assets.ForTest(t)
	tmp := t.TempDir()
	run := filepath.Join(tmp, "prune")
	cfg, err := configs.Load("quickstart.toml", []string{"output.dir=" + run, "method=prune", "train.max_steps=0",
		"data.max_examples=8", "data.eval_examples=0"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trainer.Train(context.Background(), trainer.Options{Config: cfg}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "base.gguf")
	for _, c := range []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"-h"}, 0, "usage: salr-export -run RUN_DIR -format hf|gguf|gguf-lora", ""},
		{[]string{"-format", "hf", "-out", out}, 2, "", "salr-export: -run is required\n"},
		{[]string{"-run", run, "-out", out}, 2, "", "-format is required"},
		{[]string{"-run", run, "-format", "hf", "-dtype", "q8_0", "-out", out}, 2, "", "q8_0 is a GGUF type"},
		{[]string{"-run", run, "-format", "gguf", "-dtype", "int4", "-out", out}, 2, "", `dtype "int4"`},
		{[]string{"-run", run, "-format", "gguf", "-out", out, "extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"-run", filepath.Join(tmp, "absent"), "-format", "gguf", "-out", out}, 1, "", "has no base model"},
		{[]string{"-run", run, "-format", "gguf", "-dtype", "q8_0", "-out", out}, 0, "wrote " + out, ""},
		{[]string{"-run", run, "-format", "gguf", "-out", out}, 1, "", "already exists"},
		{[]string{"-run", run, "-format", "gguf", "-out", out, "-overwrite"}, 0, "wrote", ""},
		{[]string{"-run", run, "-format", "gguf-lora", "-out", filepath.Join(tmp, "lora.gguf")}, 1, "", "needs the run's adapters"},
	} {
		code, stdout, stderr := clitest.Exec(t, "TestExitCodes", c.args...)
		if code != c.code || !strings.Contains(stdout, c.stdout) || !strings.Contains(stderr, c.stderr) {
			t.Errorf("salr-export %q: exit %d, stdout %q, stderr %q; want exit %d, %q and %q", c.args, code, stdout, stderr, c.code, c.stdout, c.stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(tmp, "lora.gguf")); err == nil {
		t.Error("a failed export left its output")
	}
}
