package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/salr-go/salr/cmd/internal/cli"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/trainer/theorem2"
)

func init() {
	register(subcommand{
		name:    "theorem2",
		summary: "pruning before, during and after LoRA training against the dense fine-tuned weights (the SALR paper's Theorem 2), as Markdown",
		run:     runTheorem2,
	})
}

// groups is a repeatable flag of comma-separated lists.
type groups [][]string

func (g *groups) String() string { return fmt.Sprint(*g) }

func (g *groups) Set(s string) error {
	*g = append(*g, strings.Split(s, ","))
	return nil
}

func runTheorem2(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var runs groups
	var dense, shape, ratios string
	var detail bool
	o := theorem2.ShapeOptions{}
	fs := newFlagSet("theorem2")
	fs.StringVar(&dense, "dense", "", "`run` directory of the lora run the strategies are compared with (the dense fine-tuned weights; with -shape: where the update size comes from unless -delta is set)")
	fs.Var(&runs, "runs", "comma-separated run `directories` of salr, prune-lora, lora-prune-dynamic and lora-prune at one sparsity ratio (any subset); repeat for more ratios. All dense-fp32 bases, same steps, seed and data as -dense")
	fs.BoolVar(&detail, "detail", false, "also print every matrix's errors")
	fs.StringVar(&shape, "shape", "", "weight-space mode on random weights of this model `shape` ("+model.ShapeNames+"), no training")
	fs.IntVar(&o.Layer, "layer", 0, "with -shape: the decoder layer measured")
	fs.StringVar(&ratios, "ratios", "0.5,0.3,0.7", "with -shape: sparsity `ratios`")
	fs.Float64Var(&o.Delta, "delta", 0, "with -shape: ||s·BA||/||W0|| of the random LoRA update; 0: the median of the -dense run's projections")
	fs.IntVar(&o.Rank, "rank", 8, "with -shape: rank of the random LoRA update")
	fs.IntVar(&o.SVDRank, "svd-rank", 8, "with -shape: rank of salr's SVD residual adapter")
	fs.IntVar(&o.Steps, "steps", 300, "with -shape: training steps the last mask of pruning during training is placed in")
	fs.IntVar(&o.Every, "every", 10, "with -shape: sparsity.every of pruning during training")
	fs.Uint64Var(&o.Seed, "seed", 1, "with -shape: seed of the random weights and update")
	if err := cli.Parse(fs, args, stdout); err != nil {
		return err
	}
	if shape != "" {
		o.Shape = shape
		for _, r := range strings.Split(ratios, ",") {
			x, err := strconv.ParseFloat(strings.TrimSpace(r), 64)
			if err != nil || !(x > 0 && x < 1) {
				return cli.UsageError(fmt.Sprintf("-ratios: %q is not a ratio in (0, 1)", r))
			}
			o.Ratios = append(o.Ratios, x)
		}
		if o.Delta == 0 {
			if dense == "" {
				return cli.UsageError("-shape needs -delta or a -dense lora run to take the update size from")
			}
			var err error
			if o.Delta, err = theorem2.TrainedDelta(dense); err != nil {
				return err
			}
		}
		tables, err := theorem2.Shape(o)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Weight space, %s layer %d (random W0, std 0.02), random rank-%d update with ||s·BA||/||W0|| = %.4f, SVD rank %d, last training mask at step %d of %d:\n\n",
			o.Shape, o.Layer, o.Rank, o.Delta, o.SVDRank, o.Every*((o.Steps-1)/o.Every), o.Steps)
		return printTables(stdout, tables, math.NaN(), detail)
	}
	if dense == "" || len(runs) == 0 {
		return cli.UsageError("need -dense and at least one -runs (or -shape)")
	}
	var tables []*theorem2.Table
	for _, g := range runs {
		t, err := theorem2.FromRuns(dense, g)
		if err != nil {
			return err
		}
		tables = append(tables, t)
	}
	return printTables(stdout, tables, tables[0].DenseNLL, detail)
}

func printTables(w io.Writer, tables []*theorem2.Table, denseNLL float64, detail bool) error {
	theorem2.Header(w, denseNLL)
	for _, t := range tables {
		t.Markdown(w)
	}
	fmt.Fprintln(w)
	for _, t := range tables {
		t.OrderLines(w)
	}
	if detail {
		for _, t := range tables {
			fmt.Fprintln(w)
			t.Detail(w)
		}
	}
	return nil
}
