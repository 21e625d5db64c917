// Command salr-export writes a salr-train run directory in a form other
// tools load: its pruned base and trained adapters merged into a dense HF
// model directory (-format hf) or a llama GGUF file (-format gguf), or its
// adapters alone as a llama.cpp LoRA adapter GGUF (-format gguf-lora).
//
//	salr-export -run runs/quickstart -format hf -out /tmp/merged
//	salr-export -run runs/quickstart -format gguf -dtype q8_0 -out /tmp/merged.gguf
//
// Exit status: 0 on success, 1 when the export fails, 2 for bad usage, 130
// when interrupted.
package main

import (
	"context"
	"fmt"
	"io"

	"github.com/salr-go/salr/cmd/internal/cli"
	"github.com/salr-go/salr/trainer/export"
)

type options struct {
	run, out string
	export   export.Options
}

func main() { cli.Main("salr-export", command) }

// command parses args and runs.
func command(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseArgs(args, stdout)
	if err != nil {
		return err
	}
	// The export does not watch ctx: a signal ends the command at once, and
	// the atomic writes leave no partial output file.
	return cli.Cancellable(ctx, func() error { return run(o, stdout) })
}

// parseArgs reads the command line; -h prints the help to stdout.
func parseArgs(args []string, stdout io.Writer) (options, error) {
	var o options
	fs := cli.NewFlagSet("salr-export",
		"salr-export -run RUN_DIR -format hf|gguf|gguf-lora [-dtype f32|f16|bf16|q8_0] -out PATH [-overwrite]",
		"Export a salr-train run: hf and gguf merge the pruned base and the trained adapters into dense\n"+
			"weights (an HF model directory, a llama GGUF file for llama.cpp); gguf-lora writes the adapters\n"+
			"as a llama.cpp LoRA adapter for the pruned base (exported with -format gguf from a prune run).")
	fs.StringVar(&o.run, "run", "", "salr-train run directory (required)")
	fs.StringVar(&o.export.Format, "format", "", "hf, gguf or gguf-lora (required)")
	fs.StringVar(&o.export.DType, "dtype", export.DTypeF32, "weight type: f32, f16, bf16, or q8_0 (GGUF only; norms stay f32, matrices whose rows are not whole blocks of 32 are f16)")
	fs.StringVar(&o.out, "out", "", "output: a directory for hf, a file for gguf and gguf-lora (required)")
	fs.BoolVar(&o.export.Overwrite, "overwrite", false, "replace an existing output")
	if err := cli.Parse(fs, args, stdout); err != nil {
		return o, err
	}
	switch {
	case o.run == "":
		return o, cli.UsageError("-run is required")
	case o.export.Format == "":
		return o, cli.UsageError("-format is required (hf, gguf or gguf-lora)")
	case o.out == "":
		return o, cli.UsageError("-out is required")
	}
	if err := o.export.Check(); err != nil {
		return o, cli.UsageError("-" + err.Error())
	}
	return o, nil
}

// run exports and names the output on stdout.
func run(o options, stdout io.Writer) error {
	if err := export.Run(o.run, o.out, o.export); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", o.out)
	return nil
}
