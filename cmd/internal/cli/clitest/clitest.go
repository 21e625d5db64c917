// Package clitest runs a command's main in a child process of its test
// binary, to test exit statuses and output as a user sees them.
package clitest

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"testing"
)

// argsEnv carries the child's command-line arguments, JSON-encoded.
const argsEnv = "SALR_CLITEST_ARGS"

// Child, called first in a test, runs main as the command name when this
// process is a child started by Exec, then exits; otherwise it returns.
func Child(name string, main func()) {
	a, ok := os.LookupEnv(argsEnv)
	if !ok {
		return
	}
	var args []string
	if err := json.Unmarshal([]byte(a), &args); err != nil {
		panic(err)
	}
	os.Args = append([]string{name}, args...)
	main()
	os.Exit(0)
}

// Command returns the child process that runs the test named test (which
// calls Child) with args, not started, for tests that talk to it while it
// runs (Exec runs it to the end).
func Command(t *testing.T, test string, args ...string) *exec.Cmd {
	t.Helper()
	a, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), argsEnv+"="+string(a))
	return cmd
}

// Exec runs the test named test (which calls Child) in a child process with
// args, and returns its exit status and output.
func Exec(t *testing.T, test string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := Command(t, test, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return code, out.String(), errOut.String()
}
