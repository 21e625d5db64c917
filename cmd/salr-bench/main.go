// Command salr-bench measures SALR: one command with subcommands, like
// llama.cpp's llama-bench. Each subcommand lives in its own file and
// registers itself from init():
//
//	salr-bench kernels [-shapes MxKxN,...] [-sparsity 0.5] [-json] [-reps 20]
//	salr-bench train -shape bench-60M -method lora,salr [-json]
//	salr-bench generate -shape llama-2048x16 [-formats dense-bf16,bitmap-bf16] [-in-turns] [-json]
//	salr-bench checkpoint -shape llama2-7b -out DIR [-dtype bf16] [-max-shard-size 5GB] [-tokenizer PATH]
//	salr-bench serve -run RUN_DIR|-model PATH|-shape NAME -tokenizer PATH [-clients 8] [-formats dense-bf16,bitmap-bf16] [-json]
//	salr-bench theorem2 -dense LORA_RUN -runs SALR_RUN,PRUNE_LORA_RUN,DYNAMIC_RUN,LORA_PRUNE_RUN [-runs ...] [-detail]
//	salr-bench theorem2 -shape llama-2048x16 [-delta X | -dense LORA_RUN]
//
// "salr-bench -h" lists the subcommands; "salr-bench NAME -h" their flags.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/salr-go/salr/cmd/internal/cli"
)

// subcommand is one "salr-bench NAME ..." entry.
type subcommand struct {
	name    string
	summary string // one line for the list of subcommands
	// run parses args (the arguments after the name) and runs; it returns
	// flag.ErrHelp when -h was asked for, a cli.UsageError on bad usage.
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

func main() { cli.Main("salr-bench", run) }

// run dispatches to a subcommand: "salr-bench -h" prints the list of
// subcommands, a missing or unknown subcommand is a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return cli.UsageError("missing subcommand (" + strings.Join(names(), ", ") + ")")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return flag.ErrHelp
	}
	c, ok := subcommands[args[0]]
	if !ok {
		return cli.UsageError(fmt.Sprintf("unknown subcommand %q (want %s)", args[0], strings.Join(names(), ", ")))
	}
	if err := c.run(ctx, args[1:], stdout, stderr); err != nil {
		return fmt.Errorf("%s: %w", c.name, err)
	}
	return nil
}

// newFlagSet returns the flag set of subcommand name, whose help shows
// its summary.
func newFlagSet(name string) *flag.FlagSet {
	summary := subcommands[name].summary
	return cli.NewFlagSet("salr-bench "+name, "salr-bench "+name+" [flags]", strings.ToUpper(summary[:1])+summary[1:]+".")
}

// names lists the subcommands in order.
func names() []string {
	names := make([]string, 0, len(subcommands))
	for name := range subcommands {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: salr-bench %s [flags]\n\n", strings.Join(names(), "|"))
	fmt.Fprintln(w, "Measure SALR: kernels, training steps and generation of random-weight models; write random-weight\ncheckpoints of named shapes.")
	fmt.Fprintln(w, "\nsubcommands:")
	for _, name := range names() {
		fmt.Fprintf(w, "  %-10s %s\n", name, subcommands[name].summary)
	}
	fmt.Fprintln(w, "\nRun 'salr-bench <subcommand> -h' for its flags.")
}

// writeJSONLines writes each result as one JSON line (the -json output).
func writeJSONLines[T any](w io.Writer, results []T) error {
	enc := json.NewEncoder(w)
	for _, r := range results {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}
