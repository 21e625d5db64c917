package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/salr-go/salr/cmd/internal/cli/clitest"
)

// TestExitCodes runs the command's main in a child process.
func TestExitCodes(t *testing.T) {
	clitest.Child("salr-train", main)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[train]\nlr = -1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	noRun := filepath.Join(dir, "no-run")
	for _, c := range []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"-config", bad}, 1, "", "train.lr"},
		{[]string{"-nosuchflag"}, 2, "", "salr-train: flag provided but not defined: -nosuchflag\nrun 'salr-train -h' for usage\n"},
		{nil, 2, "", "exactly one of -config and -resume"},
		{[]string{"-config", "quickstart.toml", "-resume", "x"}, 2, "", "exactly one of -config and -resume"},
		{[]string{"-h"}, 0, "usage: salr-train -config NAME|FILE", ""},
		// A stray argument is refused, not a reason to drop the flags after it.
		{[]string{"-config", bad, "extra", "-set", "output.dir=" + noRun}, 2, "", `salr-train: unexpected argument "extra"`},
		// A resumed run keeps its config.
		{[]string{"-resume", noRun, "-set", "train.lr=0.5"}, 2, "", "cannot be used with -resume"},
		{[]string{"-resume", noRun, "-overwrite"}, 2, "", "cannot be used with -resume"},
	} {
		code, stdout, stderr := clitest.Exec(t, "TestExitCodes", c.args...)
		if code != c.code || !strings.Contains(stdout, c.stdout) || !strings.Contains(stderr, c.stderr) {
			t.Errorf("salr-train %q: exit %d, stdout %q, stderr %q; want exit %d, %q and %q", c.args, code, stdout, stderr, c.code, c.stdout, c.stderr)
		}
	}
	if _, err := os.Stat(noRun); err == nil {
		t.Error("a refused command created " + noRun)
	}
}
