package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"

	"github.com/salr-go/salr/cmd/internal/cli"
	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/kernels/bitmap"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/model/tokenizer"
	"github.com/salr-go/salr/serve"
	"github.com/salr-go/salr/trainer"
)

func init() {
	register(subcommand{
		name:    "serve",
		summary: "salr-serve under load (tokens/s, time to first token), its projections dense vs bitmap-compressed",
		run:     runServe,
	})
}

// serveResult is one format's measurement: the median repetition (by the
// tokens/s of the many-client load).
type serveResult struct {
	Bench              string           `json:"bench"`
	Model              string           `json:"model"`
	Format             string           `json:"format"`
	One                serve.LoadResult `json:"one_client"`
	Many               serve.LoadResult `json:"many_clients"`
	SpeedupVsDenseBF16 float64          `json:"speedup_vs_dense_bf16,omitempty"`
	ProjectionBytes    int64            `json:"projection_bytes"`
	bitmap.Paths
	reps []serveRepetition `json:"-"`
}

type serveRepetition struct{ one, many serve.LoadResult }

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		modelPath, runDir, tokPath, shape, formats string
		sparsity                                   float64
		seed                                       uint64
		reps, maxBatch                             int
		jsonOut                                    bool
		o                                          serve.LoadOptions
	)
	fs := newFlagSet("serve")
	fs.StringVar(&modelPath, "model", "", "HF model directory, .gguf file or llama2.c .bin file to serve")
	fs.StringVar(&runDir, "run", "", "salr-train run directory to serve (its compressed model)")
	fs.StringVar(&shape, "shape", "", "random-weight model `shape` instead ("+model.ShapeNames+"), pruned by magnitude at -sparsity; needs -tokenizer")
	fs.StringVar(&tokPath, "tokenizer", "", "tokenizer file or directory (with -shape: its size sets the vocabulary)")
	fs.Float64Var(&sparsity, "sparsity", 0.5, "with -shape: fraction of each projection pruned")
	fs.Uint64Var(&seed, "seed", 1, "with -shape: random seed of the weights")
	fs.StringVar(&formats, "formats", "dense-bf16,bitmap-bf16", "comma-separated projection `formats` served in turns")
	fs.IntVar(&o.Clients, "clients", 8, "concurrent streaming clients of the loaded measurement")
	fs.IntVar(&o.Requests, "requests", 4, "requests each client sends, one after the other")
	fs.IntVar(&o.MaxTokens, "max-tokens", 64, "max_tokens of every request")
	fs.StringVar(&o.Prompt, "prompt", "Once upon a time", "prompt of every request")
	fs.Float64Var(&o.Temperature, "temperature", 0, "temperature of the requests (0: greedy, the same tokens for every format)")
	fs.IntVar(&maxBatch, "max-batch", 16, "most requests the server decodes together")
	fs.IntVar(&reps, "reps", 3, "repetitions, every format in turns in each (the median is reported)")
	fs.BoolVar(&jsonOut, "json", false, "print one JSON object per line")
	if err := cli.Parse(fs, args, stdout); err != nil {
		return err
	}
	sources := 0
	for _, s := range []string{modelPath, runDir, shape} {
		if s != "" {
			sources++
		}
	}
	switch {
	case sources != 1:
		return cli.UsageError("give exactly one of -model, -run and -shape")
	case shape != "" && tokPath == "":
		return cli.UsageError("-shape needs -tokenizer")
	case runDir != "" && tokPath != "":
		return cli.UsageError("-tokenizer applies to -model and -shape only")
	case reps < 1 || o.Clients < 1 || o.Requests < 1 || o.MaxTokens < 1 || maxBatch < 1:
		return cli.UsageError("-reps, -clients, -requests, -max-tokens and -max-batch must be positive")
	}
	fmts, err := model.ParseBaseFormats(formats)
	if err != nil {
		return cli.UsageError(err.Error())
	}
	// The model as stored, and its tokenizer.
	var base *model.Params[float32]
	var tok tokenizer.Tokenizer
	name := modelPath + runDir
	switch {
	case shape != "":
		cfg, err := model.NamedShape(shape)
		if err != nil {
			return cli.UsageError(err.Error())
		}
		if tok, err = tokenizer.Load(tokPath); err != nil {
			return err
		}
		cfg.Vocab = tok.VocabSize()
		if base, err = trainer.RandomPrunedParams(cfg, sparsity, fmts[0], seed); err != nil {
			return err
		}
		name = fmt.Sprintf("%s (random, sparsity %.2f, vocab %d)", shape, sparsity, cfg.Vocab)
	default:
		m, err := trainer.OpenModelOrRun(modelPath, tokPath, runDir)
		if err != nil {
			return err
		}
		defer m.Close()
		base, tok = m.Params, m.Tokenizer
	}
	results := make([]*serveResult, len(fmts))
	params := make([]*model.Params[float32], len(fmts))
	for i, f := range fmts {
		if params[i], err = model.WithBaseFormat(base, f); err != nil {
			return err
		}
		results[i] = &serveResult{Bench: "serve", Model: name, Format: string(f), Paths: bitmap.CurrentPaths()}
		for _, L := range params[i].Layers {
			for _, lin := range L.Linears() {
				results[i].ProjectionBytes += model.BaseBytes(lin.Base)
			}
		}
	}
	base = nil
	for rep := range reps {
		// In turns, the order reversed every other repetition.
		for k := range fmts {
			i := k
			if rep%2 == 1 {
				i = len(fmts) - 1 - k
			}
			one, many, err := serve.Bench(ctx, params[i], tok, o, maxBatch)
			if err != nil {
				return fmt.Errorf("%s: %w", fmts[i], err)
			}
			results[i].reps = append(results[i].reps, serveRepetition{one, many})
		}
	}
	dense := -1.0
	for i, r := range results {
		slices.SortFunc(r.reps, func(a, b serveRepetition) int {
			return cmp.Compare(a.many.TokensPerSecond, b.many.TokensPerSecond)
		})
		med := r.reps[len(r.reps)/2]
		r.One, r.Many = med.one, med.many
		if fmts[i] == model.BaseDenseBF16 {
			dense = r.Many.TokensPerSecond
		}
	}
	for _, r := range results {
		if dense > 0 {
			r.SpeedupVsDenseBF16 = r.Many.TokensPerSecond / dense
		}
	}
	if jsonOut {
		return writeJSONLines(stdout, results)
	}
	fmt.Fprintf(stdout, "# %s: %d clients x %d streaming requests of %d tokens, max batch %d, median of %d, formats in turns (order reversed every other repetition); %s, BLAS %s, %d threads\n",
		name, o.Clients, o.Requests, o.MaxTokens, maxBatch, reps, bitmap.CurrentPaths(), kernels.BackendName(), runtime.GOMAXPROCS(0))
	fmt.Fprintf(stdout, "%-12s %12s %12s %9s %12s %12s %10s\n", "format", "1 client t/s", fmt.Sprintf("%d clients t/s", o.Clients), "vs bf16", "TTFT p50 ms", "TTFT p99 ms", "proj MB")
	for _, r := range results {
		speedup := "-"
		if r.SpeedupVsDenseBF16 > 0 {
			speedup = fmt.Sprintf("%.2fx", r.SpeedupVsDenseBF16)
		}
		fmt.Fprintf(stdout, "%-12s %12.1f %12.1f %9s %12.1f %12.1f %10.2f\n", r.Format, r.One.TokensPerSecond, r.Many.TokensPerSecond, speedup,
			r.Many.TTFTP50Ms, r.Many.TTFTP99Ms, float64(r.ProjectionBytes)/(1<<20))
	}
	return nil
}
