package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestStringListRepeats(t *testing.T) {
	var sets StringList
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(&sets, "set", "")
	if err := fs.Parse([]string{"-set", "a=1", "-set", "b=2,3"}); err != nil {
		t.Fatal(err)
	}
	if len(sets) != 2 || sets[0] != "a=1" || sets[1] != "b=2,3" {
		t.Fatalf("sets = %q, want [a=1 b=2,3]", sets)
	}
}

func TestIsUsage(t *testing.T) {
	if !IsUsage(fmt.Errorf("parsing: %w", UsageError("-x is required"))) {
		t.Error("a wrapped UsageError is not recognised")
	}
	if IsUsage(errors.New("disk full")) || IsUsage(nil) {
		t.Error("an ordinary error or nil counted as a usage error")
	}
}

func TestExitStatus(t *testing.T) {
	for _, c := range []struct {
		err         error
		interrupted bool
		code        int
		stderr      string
	}{
		{nil, false, 0, ""},
		{flag.ErrHelp, false, 0, ""},
		{UsageError("-x is required"), false, ExitUsage, "salr-x: -x is required\nrun 'salr-x -h' for usage\n"},
		{fmt.Errorf("parsing: %w", UsageError("bad")), false, ExitUsage, "salr-x: parsing: bad\nrun 'salr-x -h' for usage\n"},
		{errors.New("disk full"), false, 1, "salr-x: disk full\n"},
		{errors.New("training interrupted"), true, ExitInterrupted, "salr-x: training interrupted\n"},
		{fmt.Errorf("eval: %w", context.Canceled), false, ExitInterrupted, "salr-x: eval: context canceled\n"},
	} {
		var stderr bytes.Buffer
		if code := exitStatus("salr-x", c.err, c.interrupted, &stderr); code != c.code || stderr.String() != c.stderr {
			t.Errorf("%v (interrupted %v): exit %d, stderr %q; want %d, %q", c.err, c.interrupted, code, stderr.String(), c.code, c.stderr)
		}
	}
}

// TestRunInterrupted sends SIGINT to the test process while a command runs:
// the command's context is cancelled (the signal does not kill the process)
// and the exit status is ExitInterrupted.
func TestRunInterrupted(t *testing.T) {
	cmd := func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.New("stopped")
		case <-time.After(time.Minute):
			return errors.New("the context was not cancelled")
		}
	}
	var stderr bytes.Buffer
	if code := Run("salr-x", cmd, nil, io.Discard, &stderr); code != ExitInterrupted || stderr.String() != "salr-x: stopped\n" {
		t.Errorf("exit %d, stderr %q; want %d", code, stderr.String(), ExitInterrupted)
	}
	ok := func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		if len(args) != 1 || args[0] != "a" || ctx.Err() != nil {
			return fmt.Errorf("args %q, context error %v", args, ctx.Err())
		}
		return nil
	}
	if code := Run("salr-x", ok, []string{"a"}, io.Discard, &stderr); code != 0 {
		t.Errorf("after the signal: exit %d, stderr %q", code, stderr.String())
	}
}

func TestCancellable(t *testing.T) {
	if err := Cancellable(context.Background(), func() error { return errors.New("failed") }); err == nil || err.Error() != "failed" {
		t.Errorf("error %v, want f's", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	release := make(chan struct{})
	defer close(release)
	cancel()
	if err := Cancellable(ctx, func() error { <-release; return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestParse(t *testing.T) {
	newFS := func() (*flag.FlagSet, *string) {
		fs := NewFlagSet("salr-x", "salr-x -in PATH [-n N]\nsalr-x -list", "Do x. -in is required.")
		in := fs.String("in", "", "input `path` (required)")
		fs.Int("n", 1, "count")
		return fs, in
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-in", "a", "extra"}, `unexpected argument "extra"`},
		{[]string{"-in", "a", "extra", "-n", "2"}, `unexpected argument "extra" (flags after it are not read)`},
		{[]string{"-n", "x"}, `invalid value "x" for flag -n: parse error`},
		{[]string{"-bogus"}, "flag provided but not defined: -bogus"},
	} {
		fs, _ := newFS()
		var out bytes.Buffer
		err := Parse(fs, c.args, &out)
		if !IsUsage(err) || err.Error() != c.want || out.Len() != 0 {
			t.Errorf("%q: %v, output %q; want a usage error %q and no output", c.args, err, out.String(), c.want)
		}
	}
	fs, in := newFS()
	if err := Parse(fs, []string{"-in", "a"}, io.Discard); err != nil || *in != "a" {
		t.Errorf("-in a: %v, %q", err, *in)
	}
	fs, _ = newFS()
	var help bytes.Buffer
	if err := Parse(fs, []string{"-h"}, &help); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	want := "usage: salr-x -in PATH [-n N]\n       salr-x -list\n\nDo x. -in is required.\n\nflags:\n  -in path\n    \tinput path (required)\n  -n int\n    \tcount (default 1)\n"
	if help.String() != want {
		t.Errorf("-h printed\n%s\nwant\n%s", help.String(), want)
	}
}

func TestProgress(t *testing.T) {
	if Progress(&bytes.Buffer{}) != nil {
		t.Error("a buffer counted as a terminal")
	}
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if Progress(f) != nil {
		t.Error("a regular file counted as a terminal")
	}
}
