package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"runtime"

	"github.com/salr-go/salr/cmd/internal/cli"
	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/kernels/bitmap"
)

func init() {
	register(subcommand{
		name:    "kernels",
		summary: "time dense and bitmap-compressed GEMV/GEMM kernels, cold cache",
		run:     runKernels,
	})
}

// kernelsOptions are the flags of "salr-bench kernels".
type kernelsOptions struct {
	shapes     string
	cases      string
	sparsity   float64
	reps       int
	coldMB     int64
	seed       uint64
	jsonOut    bool
	transposed bool
	panelElems int
	depth      int
	sequential bool
}

func (o *kernelsOptions) addFlags(fs *flag.FlagSet) {
	def := ""
	for i, s := range bitmap.DefaultKernelShapes {
		if i > 0 {
			def += ","
		}
		def += s.String()
	}
	fs.StringVar(&o.shapes, "shapes", def, "comma-separated `MxKxN` shapes: activations M×K times weight K×N")
	fs.StringVar(&o.cases, "cases", "dense-bf16,dense-fp32,bitmap-bf16,bitmap-fp32",
		"comma-separated `cases` among dense-fp32 (BLAS), dense-bf16, bitmap-bf16, bitmap-fp16, bitmap-fp32, bitmap-nf4, dense-nf4")
	fs.Float64Var(&o.sparsity, "sparsity", 0.5, "fraction of zero weights (unstructured)")
	fs.IntVar(&o.reps, "reps", 20, "timed calls per case (the median is reported)")
	fs.Int64Var(&o.coldMB, "cold-mb", 0, "the weight copies cycled through, and the bandwidth row's buffer, exceed this many `MB` (0: 4× the last-level cache read from sysfs, 32 MB if unknown)")
	fs.Uint64Var(&o.seed, "seed", 1, "random seed of weights and activations")
	fs.BoolVar(&o.jsonOut, "json", false, "print one JSON object per line instead of a table")
	fs.BoolVar(&o.transposed, "backward", false, "time Mul (dX = dY·W, the frozen base's backward) instead of MulT")
	fs.BoolVar(&o.sequential, "sequential", false, "time the cases one after the other instead of in turns (turns give all cases the same machine load)")
	fs.IntVar(&o.panelElems, "panel-elems", bitmap.PanelElems, "batched pipeline: fp32 `values` per decoded panel")
	fs.IntVar(&o.depth, "pipeline-depth", bitmap.PipelineDepth, "batched pipeline: panel buffers in the ring (0: decode then multiply, no overlap)")
}

func runKernels(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o kernelsOptions
	fs := newFlagSet("kernels")
	o.addFlags(fs)
	if err := cli.Parse(fs, args, stdout); err != nil {
		return err
	}
	shapes, err := bitmap.ParseKernelShapes(o.shapes)
	if err != nil {
		return err
	}
	cases, err := bitmap.ParseKernelCases(o.cases)
	if err != nil {
		return err
	}
	if o.reps < 1 {
		return fmt.Errorf("-reps %d: want at least 1 (the protocol asks for 20)", o.reps)
	}
	if o.panelElems < 1 || o.depth < 0 {
		return fmt.Errorf("-panel-elems %d, -pipeline-depth %d: want >= 1 and >= 0", o.panelElems, o.depth)
	}
	if o.coldMB < 0 {
		return fmt.Errorf("-cold-mb %d: want >= 0 (0: 4× the last-level cache)", o.coldMB)
	}
	bitmap.PanelElems, bitmap.PipelineDepth = o.panelElems, o.depth
	llc, llcKnown := bitmap.LastLevelCache()
	llcNote := fmt.Sprintf("LLC %d MB (sysfs)", llc>>20)
	if !llcKnown {
		llcNote = fmt.Sprintf("LLC unknown, assumed %d MB", llc>>20)
	}
	coldBytes := o.coldMB << 20
	if coldBytes == 0 {
		coldBytes = bitmap.ColdBytesFor(llc)
	}
	cfg := bitmap.KernelBenchConfig{
		Shapes: shapes, Cases: cases, Sparsity: o.sparsity, Reps: o.reps,
		ColdBytes: coldBytes, Seed: o.seed, Transposed: o.transposed, Sequential: o.sequential,
	}
	enc := json.NewEncoder(stdout)
	report := func(r bitmap.KernelResult) {
		if o.jsonOut {
			_ = enc.Encode(r)
			return
		}
		if r.Case == "bandwidth" {
			fmt.Fprintf(stdout, "%-16s %-12s %10.3f %10.3f %8.1f %9s %7s %9s %7d\n",
				fmt.Sprintf("%d MB %s", r.Bytes>>20, r.Kernels), r.Case, r.MedianMS, r.MinMS, r.GBPS, "-", "-", "-", r.Copies)
			return
		}
		speedup := "-"
		if r.Speedup > 0 {
			speedup = fmt.Sprintf("%.2fx", r.Speedup)
		}
		fmt.Fprintf(stdout, "%-16s %-12s %10.3f %10.3f %8.1f %9.1f %7.3f %9s %7d\n",
			fmt.Sprintf("%dx%dx%d", r.M, r.K, r.N), r.Format+"-"+r.DType,
			r.MedianMS, r.MinMS, r.GBPS, r.GFLOPPerS, r.BytesRatio, speedup, r.Copies)
	}
	if !o.jsonOut {
		op := "MulT (y = x·Wᵀ)"
		if o.transposed {
			op = "Mul (dx = dy·W)"
		}
		order := "cases in turns"
		if o.sequential {
			order = "cases one after the other"
		}
		fmt.Fprintf(stdout, "# %s, sparsity %.2f, cold cache (> %d MB of copies; %s), median of %d, %s; %s, BLAS %s, %d threads; batches: %d-value panels, ring of %d\n",
			op, o.sparsity, coldBytes>>20, llcNote, o.reps, order, bitmap.CurrentPaths(), kernels.BackendName(), runtime.GOMAXPROCS(0), o.panelElems, o.depth)
		fmt.Fprintln(stdout, "# GB/s: bytes read (weights as stored + activations) / median time; bandwidth: the faster of a Go loop and a BLAS GEMV streaming that many MB on all threads, the bound")
		fmt.Fprintf(stdout, "%-16s %-12s %10s %10s %8s %9s %7s %9s %7s\n",
			"shape MxKxN", "case", "median ms", "min ms", "GB/s", "GFLOP/s", "bytes", "vs bf16", "copies")
	}
	bw, err := bitmap.StreamBandwidth(ctx, coldBytes, o.reps)
	if err != nil {
		return err
	}
	bw.LLCBytes = llc
	report(bw)
	return bitmap.RunKernelBench(ctx, cfg, report)
}
