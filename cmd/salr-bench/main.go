// Command salr-bench measures SALR: one command with subcommands, like
// llama.cpp's llama-bench. Each subcommand lives in its own file and
// registers itself from init():
//
//	salr-bench kernels [-shapes MxKxN,...] [-sparsity 0.5] [-json] [-reps 20]
//	salr-bench train -shape bench-60M -method lora,salr [-json]
//	salr-bench generate -shape llama-2048x16 [-formats dense-bf16,bitmap-bf16] [-in-turns] [-json]
//
// "salr-bench -h" lists the subcommands; "salr-bench NAME -h" their flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
)

// subcommand is one "salr-bench NAME ..." entry.
type subcommand struct {
	name    string
	summary string // one line for the list of subcommands
	// run parses args (the arguments after the name) and runs; it returns
	// flag.ErrHelp when -h was asked for.
	run func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// subcommands is filled by register from each subcommand file's init().
var subcommands = map[string]subcommand{}

// register adds a subcommand; a duplicate name is a programmer error.
func register(c subcommand) {
	if _, dup := subcommands[c.name]; dup {
		panic("salr-bench: duplicate subcommand " + c.name)
	}
	subcommands[c.name] = c
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches to a subcommand and turns its error into the exit code: 0 on
// success or help, 1 when the subcommand fails, 2 on a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return 0
	}
	c, ok := subcommands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "salr-bench: unknown subcommand %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	err := c.run(ctx, args[1:], stdout, stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintf(stderr, "salr-bench %s: %v\n", c.name, err)
	return 1
}

// errUsage is returned by a subcommand whose flags did not parse (the flag
// package has already printed why).
var errUsage = errors.New("usage error")

// parseFlags parses args into fs, mapping flag errors to errUsage and keeping
// flag.ErrHelp; positional arguments are refused.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return errUsage
	}
	return nil
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: salr-bench <subcommand> [flags]")
	fmt.Fprintln(w, "\nsubcommands:")
	names := make([]string, 0, len(subcommands))
	for name := range subcommands {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-10s %s\n", name, subcommands[name].summary)
	}
	fmt.Fprintln(w, "\nRun 'salr-bench <subcommand> -h' for its flags.")
}
