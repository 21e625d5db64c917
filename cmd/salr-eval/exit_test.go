package main

import (
	"strings"
	"testing"

	"github.com/salr-go/salr/cmd/internal/cli/clitest"
)

// TestExitCodes runs the command's main in a child process.
func TestExitCodes(t *testing.T) {
	clitest.Child("salr-eval", main)
	for _, c := range []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"-h"}, 0, "usage: salr-eval -task gsm8k|mmlu -model PATH", ""},
		{[]string{"-h"}, 0, "(required)", ""},
		{[]string{"-model", "m"}, 2, "", "salr-eval: -task is required (gsm8k or mmlu)\nrun 'salr-eval -h' for usage\n"},
		{[]string{"-nosuchflag"}, 2, "", "salr-eval: flag provided but not defined: -nosuchflag\nrun 'salr-eval -h' for usage\n"},
		{[]string{"-task", "mmlu", "extra", "-model", "m"}, 2, "", `salr-eval: unexpected argument "extra"`},
		{[]string{"-task", "mmlu", "-model", "/nonexistent/model", "-data", t.TempDir()}, 1, "", "salr-eval: "},
	} {
		code, stdout, stderr := clitest.Exec(t, "TestExitCodes", c.args...)
		if code != c.code || !strings.Contains(stdout, c.stdout) || !strings.Contains(stderr, c.stderr) {
			t.Errorf("salr-eval %q: exit %d, stdout %q, stderr %q; want exit %d, %q and %q", c.args, code, stdout, stderr, c.code, c.stdout, c.stderr)
		}
	}
}
