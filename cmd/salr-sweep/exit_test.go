package main

import (
	"strings"
	"testing"

	"github.com/salr-go/salr/cmd/internal/cli/clitest"
)

// TestExitCodes runs the command's main in a child process.
func TestExitCodes(t *testing.T) {
	clitest.Child("salr-sweep", main)
	for _, c := range []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"-h"}, 0, "usage: salr-sweep -config SWEEP", ""},
		{[]string{"-h"}, 0, "(required unless -collect)", ""},
		{nil, 2, "", "salr-sweep: give exactly one of -config, -collect and -curves\nrun 'salr-sweep -h' for usage\n"},
		{[]string{"-nosuchflag"}, 2, "", "salr-sweep: flag provided but not defined: -nosuchflag\nrun 'salr-sweep -h' for usage\n"},
		{[]string{"-config", "a.toml", "extra", "-dry-run"}, 2, "", `salr-sweep: unexpected argument "extra"`},
		{[]string{"-config", "/nonexistent/sweep.toml", "-dry-run"}, 1, "", "salr-sweep: "},
	} {
		code, stdout, stderr := clitest.Exec(t, "TestExitCodes", c.args...)
		if code != c.code || !strings.Contains(stdout, c.stdout) || !strings.Contains(stderr, c.stderr) {
			t.Errorf("salr-sweep %q: exit %d, stdout %q, stderr %q; want exit %d, %q and %q", c.args, code, stdout, stderr, c.code, c.stdout, c.stderr)
		}
	}
}
