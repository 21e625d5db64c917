package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/salr-go/salr/cmd/internal/cli/clitest"
	"github.com/salr-go/salr/datasets/assets"
)

// TestExitCodes runs the command's main in a child process: usage errors
// exit 2, a refused or failed preparation 1, and an existing -out is kept
// unless -overwrite is given.
func TestExitCodes(t *testing.T) {
	clitest.Child("salr-prepare", main)
	t.Setenv("SALR_ASSETS", assets.ForTest(t))
	out := filepath.Join(t.TempDir(), "prepared")
	small := []string{"-config", "quickstart.toml", "-set", "data.max_examples=16", "-set", "data.eval_examples=4", "-quiet"}
	for _, c := range []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{nil, 2, "", "salr-prepare: -config is required\nrun 'salr-prepare -h' for usage\n"},
		{[]string{"-config", "quickstart.toml"}, 2, "", "-out is required"},
		{[]string{"-h"}, 0, "usage: salr-prepare -config NAME|FILE", ""},
		{[]string{"-config", "quickstart.toml", "-print-config"}, 0, `method = "salr"`, ""},
		{append(small, "-out", out, "-set", "method=lora"), 1, "", `method "lora" does not prune`},
		{append(small, "-out", out, "-set", "sparsity.ratio=2"), 1, "", "sparsity.ratio"},
		{append(small, "-out", out), 0, "35 pruned projections, sparsity 0.5000, bases bitmap-bf16, SVD factors of rank 8", ""},
		{append(small, "-out", out), 1, "", "already exists; pass -overwrite"},
		{append(small, "-out", out, "-overwrite", "-set", "method=prune-lora"), 0, "35 pruned projections", ""},
	} {
		code, stdout, stderr := clitest.Exec(t, "TestExitCodes", c.args...)
		if code != c.code || !strings.Contains(stdout, c.stdout) || !strings.Contains(stderr, c.stderr) {
			t.Errorf("salr-prepare %q: exit %d, stdout %q, stderr %q; want exit %d, %q and %q", c.args, code, stdout, stderr, c.code, c.stdout, c.stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "model.safetensors")); err != nil {
		t.Error(err)
	}
}
