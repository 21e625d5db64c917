package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/salr-go/salr/cmd/internal/cli/clitest"
)

// TestMainExitCodes runs the command's main in a child process (this test
// binary, built by the same Go toolchain, so start-up panics would show here
// too).
func TestMainExitCodes(t *testing.T) {
	clitest.Child("salr-convert", main)
	missing := filepath.Join(t.TempDir(), "absent.bin")
	for _, c := range []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"-h"}, 0, "usage: salr-convert", ""},
		{[]string{"-out", "d"}, 2, "", "salr-convert: -in is required\nrun 'salr-convert -h' for usage\n"},
		{[]string{"-in", missing, "-out", t.TempDir()}, 1, "", "salr-convert: "},
		{[]string{"-in", missing, "extra", "-out", t.TempDir()}, 2, "", `salr-convert: unexpected argument "extra"`},
		{[]string{"-in", missing, "-out", t.TempDir(), "-force"}, 1, "", "salr-convert: note: -force is deprecated; use -overwrite\n"},
		{[]string{"-in", missing, "-out", t.TempDir(), "-dtype", "f16"}, 1, "", "salr-convert: "},
	} {
		code, stdout, stderr := clitest.Exec(t, "TestMainExitCodes", c.args...)
		if code != c.code || !strings.Contains(stdout, c.stdout) || !strings.Contains(stderr, c.stderr) {
			t.Errorf("salr-convert %q: exit %d, stdout %q, stderr %q; want exit %d, %q and %q", c.args, code, stdout, stderr, c.code, c.stdout, c.stderr)
		}
	}
}
