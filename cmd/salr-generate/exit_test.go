package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/salr-go/salr/cmd/internal/cli/clitest"
	"github.com/salr-go/salr/datasets/assets"
)

// TestExitCodes runs the command's main in a child process.
func TestExitCodes(t *testing.T) {
	clitest.Child("salr-generate", main)
	missing := filepath.Join(t.TempDir(), "absent.bin")
	for _, c := range []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"-h"}, 0, "usage: salr-generate -model PATH", ""},
		{[]string{"-model", missing, "-prompt", "x"}, 1, "", "salr-generate: "},
		{[]string{"-prompt", "x"}, 2, "", "salr-generate: give exactly one of -model and -run\nrun 'salr-generate -h' for usage\n"},
		{[]string{"-model", missing, "extra", "-prompt", "x"}, 2, "", `salr-generate: unexpected argument "extra"`},
		{[]string{"-model", missing, "-max-new-tokens", "-1"}, 2, "", "-max-new-tokens -1"},
	} {
		code, stdout, stderr := clitest.Exec(t, "TestExitCodes", c.args...)
		if code != c.code || !strings.Contains(stdout, c.stdout) || !strings.Contains(stderr, c.stderr) {
			t.Errorf("salr-generate %q: exit %d, stdout %q, stderr %q; want exit %d, %q and %q", c.args, code, stdout, stderr, c.code, c.stdout, c.stderr)
		}
	}
}

// TestContextNoteMain: more new tokens than the context holds are said on
// stderr, and generation goes as far as it can.
func TestContextNoteMain(t *testing.T) {
	clitest.Child("salr-generate", main)
	stories := filepath.Join(assets.ForTest(t), "stories260K", "stories260K.bin")
	code, stdout, stderr := clitest.Exec(t, "TestContextNoteMain", "-model", stories, "-prompt", "Once upon a time", "-max-new-tokens", "1000", "-temperature", "0")
	if code != 0 || !strings.HasPrefix(stdout, "Once upon a time, there was") || !strings.Contains(stderr, "generation will stop at the context length (512 tokens)") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
