// Package cli holds what the salr-* commands share on their command line:
// Main (signal context, exit status and the OpenBLAS core), the flag set with its help text,
// the repeatable string flag and the usage error.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/term"
)

// Exit statuses of the salr-* commands besides 0 (success) and 1 (failure).
const (
	// ExitUsage is the status of bad command-line usage (as package flag uses).
	ExitUsage = 2
	// ExitInterrupted is the status of a run stopped by SIGINT or SIGTERM
	// (128 + SIGINT, as shells report).
	ExitInterrupted = 130
)

// Command is what a salr-* command does with its arguments (those after the
// command name). It returns flag.ErrHelp after printing its help, a
// UsageError for bad usage.
type Command func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// Main runs cmd with the process's arguments and exits with Run's status.
// First, on a CPU with AVX2 or AVX-512 where OpenBLAS chose a generic core,
// it runs the process again on a better one (see fixBLASCore).
func Main(name string, cmd Command) {
	fixBLASCore(name, os.Stderr)
	os.Exit(Run(name, cmd, os.Args[1:], os.Stdout, os.Stderr))
}

// Run runs cmd with a context cancelled on SIGINT or SIGTERM, restores the
// default signal handling once it returns, prints its error to stderr as
// "name: error" and returns the exit status: 0 on success or help,
// ExitUsage on a usage error (with a hint to run "name -h"),
// ExitInterrupted when a signal stopped it, 1 on any other error.
func Run(name string, cmd Command, args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cmd(ctx, args, stdout, stderr)
	interrupted := ctx.Err() != nil
	stop()
	return exitStatus(name, err, interrupted, stderr)
}

// exitStatus reports err on stderr and returns the exit status for it;
// interrupted says whether a signal cancelled the command's context.
func exitStatus(name string, err error, interrupted bool, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case IsUsage(err):
		fmt.Fprintf(stderr, "%s: %v\nrun '%s -h' for usage\n", name, err, name)
		return ExitUsage
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	if interrupted || errors.Is(err, context.Canceled) {
		return ExitInterrupted
	}
	return 1
}

// Cancellable runs f, which does not watch ctx, and returns its error, or
// ctx's error as soon as ctx is cancelled: f is then left running until the
// process exits, as if the signal had ended the process.
func Cancellable(ctx context.Context, f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// NewFlagSet returns an empty flag set for a command whose help (-h, see
// Parse) prints "usage: " with the synopsis (one line per form of the
// command; required flags are those outside brackets), the description and
// the flags.
func NewFlagSet(name, synopsis, description string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: %s\n\n%s\n\nflags:\n", strings.ReplaceAll(synopsis, "\n", "\n       "), description)
		fs.PrintDefaults()
	}
	return fs
}

// Parse parses args into fs. -h prints the help to stdout and returns
// flag.ErrHelp; a bad flag, or any argument that is not a flag, is a
// UsageError (the commands take flags only).
func Parse(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	fs.SetOutput(io.Discard) // errors are reported by Run, not by package flag
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(stdout)
		fs.Usage()
		return err
	}
	if err != nil {
		return UsageError(err.Error())
	}
	if fs.NArg() > 0 {
		msg := fmt.Sprintf("unexpected argument %q", fs.Arg(0))
		if fs.NArg() > 1 {
			msg += " (flags after it are not read)"
		}
		return UsageError(msg)
	}
	return nil
}

// Progress returns w when it is a terminal (where a progress bar belongs),
// else nil.
func Progress(w io.Writer) io.Writer {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return w
	}
	return nil
}

// StringList is a repeatable string flag (for example -set KEY=VALUE).
type StringList []string

// String joins the values with commas.
func (l *StringList) String() string { return strings.Join(*l, ",") }

// Set appends one value.
func (l *StringList) Set(v string) error { *l = append(*l, v); return nil }

// UsageError is bad command-line usage; Run exits with ExitUsage on it.
type UsageError string

func (e UsageError) Error() string { return string(e) }

// IsUsage reports whether err is, or wraps, a UsageError.
func IsUsage(err error) bool {
	var ue UsageError
	return errors.As(err, &ue)
}
