package trainer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/kernels/bitmap"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/sparsity"
)

// GenerateBenchResult is one "salr-bench generate" result (one JSON object
// per line): greedy generation by a random-weight model whose projections
// are pruned and stored in one format.
type GenerateBenchResult struct {
	Bench        string  `json:"bench"` // "generate"
	Shape        string  `json:"shape"`
	Format       string  `json:"format"`
	Sparsity     float64 `json:"sparsity"`
	PromptTokens int     `json:"prompt_tokens"`
	NewTokens    int     `json:"new_tokens"`
	Reps         int     `json:"reps"`
	Threads      int     `json:"threads"`
	// TokensPerSecond is the decode speed (one token per step after the
	// prompt), the median over the repetitions; MsPerToken its inverse.
	TokensPerSecond float64 `json:"tokens_per_second"`
	MsPerToken      float64 `json:"ms_per_token"`
	// PrefillTokensPerSecond is the prompt's processing speed (median).
	PrefillTokensPerSecond float64 `json:"prefill_tokens_per_second"`
	// SpeedupVsDenseBF16 is TokensPerSecond over dense-bf16's (0 when
	// dense-bf16 was not measured).
	SpeedupVsDenseBF16 float64 `json:"speedup_vs_dense_bf16,omitempty"`
	// ModelBytes is the storage of every weight as held in memory (the
	// embedding in float32, the head in bf16 or fp32); ProjectionBytes that
	// of the projections alone, and ProjectionBytesRatio that over dense bf16.
	ModelBytes           int64   `json:"model_bytes"`
	ProjectionBytes      int64   `json:"projection_bytes"`
	ProjectionBytesRatio float64 `json:"projection_bytes_vs_dense_bf16"`
	// MatchingTokens is how many of the first repetition's generated tokens
	// equal, from the start, those of the first format benchmarked.
	MatchingTokens int     `json:"matching_tokens_vs_first_format"`
	BuildSeconds   float64 `json:"build_seconds"`
	bitmap.Paths
}

// GenerateBenchOptions configures RunGenerateBench.
type GenerateBenchOptions struct {
	Shape        string // a model.NamedShape, e.g. "llama-2048x16"
	Vocab        int    // overrides the shape's vocabulary when > 0
	Sparsity     float64
	PromptTokens int
	NewTokens    int
	Formats      []model.BaseFormat // e.g. dense-fp32, dense-bf16, bitmap-bf16 (aliases accepted)
	Reps         int                // timed generations per format (the median is reported)
	Seed         uint64
	// InTurns builds every format's model first and times them in turns
	// (repetition by repetition), so that all formats see the same machine
	// load; it holds all models in memory at once.
	InTurns bool
}

// RunGenerateBench measures greedy generation speed for each format in turn:
// it builds a random-weight model of the shape (model.RandomTensor's
// weights, the same for every format), prunes each projection by magnitude
// at the given sparsity, stores it in the format, and times a prefill of a
// random prompt and the decoding of NewTokens tokens, Reps times after one
// untimed warm-up. One model is held in memory at a time unless InTurns is
// set; the embedding stays float32 and the head is bf16 except for fp32
// formats. Results name the formats in their canonical spelling.
func RunGenerateBench(ctx context.Context, o GenerateBenchOptions, logf func(string, ...any)) ([]GenerateBenchResult, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	cfg, err := model.NamedShape(o.Shape)
	if err != nil {
		return nil, err
	}
	if o.Vocab > 0 {
		cfg.Vocab = o.Vocab
	}
	switch {
	case o.PromptTokens < 1 || o.NewTokens < 1 || o.Reps < 1:
		return nil, fmt.Errorf("trainer: generate bench: prompt %d, new tokens %d, reps %d: all must be positive", o.PromptTokens, o.NewTokens, o.Reps)
	case o.PromptTokens+o.NewTokens > cfg.MaxPositions:
		return nil, fmt.Errorf("trainer: generate bench: %d prompt + %d new tokens exceed the context of %d", o.PromptTokens, o.NewTokens, cfg.MaxPositions)
	case !(o.Sparsity >= 0 && o.Sparsity < 1):
		return nil, fmt.Errorf("trainer: generate bench: sparsity %v must be in [0, 1)", o.Sparsity)
	case len(o.Formats) == 0:
		return nil, fmt.Errorf("trainer: generate bench: no formats")
	}
	formats := make([]model.BaseFormat, len(o.Formats))
	for i, f := range o.Formats {
		if formats[i], err = model.ParseBaseFormat(string(f)); err != nil {
			return nil, fmt.Errorf("trainer: generate bench: %w", err)
		}
	}
	rng := rand.New(rand.NewPCG(o.Seed, 17))
	prompt := make([]int, o.PromptTokens)
	for i := range prompt {
		prompt[i] = rng.IntN(cfg.Vocab)
	}
	cases := make([]*generateCase, len(formats))
	build := func(i int) error {
		start := time.Now()
		p, err := randomPrunedParams(cfg, o.Sparsity, formats[i], o.Seed)
		if err != nil {
			return err
		}
		c := &generateCase{runner: model.NewRunner(p), res: GenerateBenchResult{Bench: "generate", Shape: o.Shape, Format: string(formats[i]),
			Sparsity: o.Sparsity, PromptTokens: o.PromptTokens, NewTokens: o.NewTokens, Reps: o.Reps,
			Threads: runtime.GOMAXPROCS(0), BuildSeconds: time.Since(start).Seconds(),
			Paths: bitmap.CurrentPaths()}}
		c.res.ModelBytes, c.res.ProjectionBytes = paramsBytes(p)
		c.res.ProjectionBytesRatio = float64(c.res.ProjectionBytes) / float64(projectionWeights(cfg)*2)
		logf("%s: built in %.1fs, %.0f MB of weights", c.res.Format, c.res.BuildSeconds, float64(c.res.ModelBytes)/(1<<20))
		cases[i] = c
		// Warm-up: buffers, pools and page faults of the first products.
		_, err = c.generate(prompt, min(o.NewTokens, 2), false)
		return err
	}
	// release drops a case's model so that the next starts from a small heap.
	release := func(c *generateCase) {
		c.runner = nil
		runtime.GC()
		debug.FreeOSMemory()
	}
	timed := func(c *generateCase) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		rep, err := c.generate(prompt, o.NewTokens, true)
		if err != nil {
			return err
		}
		logf("%s: rep %d: prefill %.1f tokens/s, decode %.2f tokens/s", c.res.Format, len(c.decode), c.prefill[len(c.prefill)-1], c.decode[len(c.decode)-1])
		if c.tokens == nil {
			c.tokens = rep
		}
		return nil
	}
	if o.InTurns {
		for i := range cases {
			if err := build(i); err != nil {
				return nil, err
			}
		}
		for range o.Reps {
			for _, c := range cases {
				if err := timed(c); err != nil {
					return nil, err
				}
			}
		}
	} else {
		for i := range cases {
			if err := build(i); err != nil {
				return nil, err
			}
			for range o.Reps {
				if err := timed(cases[i]); err != nil {
					return nil, err
				}
			}
			release(cases[i])
		}
	}
	results := make([]GenerateBenchResult, len(cases))
	for i, c := range cases {
		slices.Sort(c.decode)
		slices.Sort(c.prefill)
		c.res.TokensPerSecond, c.res.PrefillTokensPerSecond = bitmap.Median(c.decode), bitmap.Median(c.prefill)
		c.res.MsPerToken = 1000 / c.res.TokensPerSecond
		for c.res.MatchingTokens < len(c.tokens) && c.tokens[c.res.MatchingTokens] == cases[0].tokens[c.res.MatchingTokens] {
			c.res.MatchingTokens++
		}
		results[i] = c.res
	}
	for _, r := range results {
		if r.Format == string(model.BaseDenseBF16) {
			for i := range results {
				results[i].SpeedupVsDenseBF16 = results[i].TokensPerSecond / r.TokensPerSecond
			}
		}
	}
	return results, nil
}

// generateCase is one format of RunGenerateBench: its model and
// measurements.
type generateCase struct {
	runner          *model.Runner
	res             GenerateBenchResult
	decode, prefill []float64 // tokens/s of each timed generation
	tokens          []int     // the first timed generation's tokens
}

// generate prefills prompt and decodes steps tokens greedily, recording the
// speeds when record is set; it returns the tokens.
func (c *generateCase) generate(prompt []int, steps int, record bool) ([]int, error) {
	r := c.runner
	cache := r.NewCache(len(prompt) + steps)
	t0 := time.Now()
	logits, err := r.Forward([][]int{prompt}, []*model.Cache{cache}, false)
	if err != nil {
		return nil, err
	}
	t1 := time.Now()
	tokens := make([]int, 0, steps)
	for range steps {
		tok := model.Argmax(logits[0])
		tokens = append(tokens, tok)
		if logits, err = r.Forward([][]int{{tok}}, []*model.Cache{cache}, false); err != nil {
			return nil, err
		}
	}
	if record {
		c.decode = append(c.decode, float64(steps)/time.Since(t1).Seconds())
		c.prefill = append(c.prefill, float64(len(prompt))/t1.Sub(t0).Seconds())
	}
	return tokens, nil
}

// projectionWeights is the number of projection weights of cfg (every
// expert's included; routers are not projections).
func projectionWeights(cfg model.Config) int64 {
	shapes := cfg.TensorShapes()
	var n int64
	for l := range cfg.Layers {
		for _, m := range cfg.LayerModules(l) {
			s := shapes[m+".weight"]
			n += int64(s[0]) * int64(s[1])
		}
	}
	return n
}

// paramsBytes is the storage of all weights of p and of its projections.
func paramsBytes(p *model.Params[float32]) (all, projections int64) {
	for _, L := range p.Layers {
		all += 4 * int64(len(L.AttnNorm)+len(L.MLPNorm))
		for _, lin := range L.Linears() {
			projections += model.BaseBytes(lin.Base)
		}
	}
	all += projections + model.BaseBytes(p.Embed) + 4*int64(len(p.Norm))
	if !p.Config.TieEmbeddings {
		all += model.BaseBytes(p.Head)
	}
	return all, projections
}

// randomPrunedParams builds a model of cfg with model.RandomTensor's weights
// for seed (normal of standard deviation 0.02, norms at 1), every projection
// pruned by magnitude at ratio and stored in format, the projections built
// on all cores. The head is dense bf16 unless the format keeps fp32 values.
func randomPrunedParams(cfg model.Config, ratio float64, format model.BaseFormat, seed uint64) (*model.Params[float32], error) {
	var spec sparsity.Spec
	if ratio > 0 {
		var err error
		if spec, err = sparsity.ParseSpec(string(sparsity.Magnitude), configs.PatternMatrix, ratio); err != nil {
			return nil, err
		}
	}
	format, err := model.ParseBaseFormat(string(format))
	if err != nil {
		return nil, err
	}
	c := cfg.Hidden
	shapes := cfg.TensorShapes()
	tensor := func(name string) []float32 { return model.RandomTensor(name, shapes[name], seed) }
	p := &model.Params[float32]{Config: cfg, Layers: make([]model.Layer[float32], cfg.Layers)}
	embed := tensor(model.EmbedTokensName)
	p.Embed = kernels.NewDense(embed, cfg.Vocab, c)
	p.Norm = tensor(model.FinalNormName)
	head := embed
	if !cfg.TieEmbeddings {
		head = tensor(model.LMHeadName)
	}
	if format == model.BaseDenseFP32 || format == model.BaseBitmapFP32 {
		p.Head = kernels.NewDense(head, cfg.Vocab, c)
	} else {
		p.Head = bitmap.NewDenseBF16(head, cfg.Vocab, c)
	}
	// Projections are built by one worker per core, each holding one dense
	// weight at a time.
	type job struct {
		name string
		dst  **model.Linear[float32]
	}
	var all []job
	for l := range p.Layers {
		L := &p.Layers[l]
		L.AttnNorm = tensor(model.LayerTensorName(l, "input_layernorm.weight"))
		L.MLPNorm = tensor(model.LayerTensorName(l, "post_attention_layernorm.weight"))
		// The slots of the projections, in cfg.LayerModules order.
		var slots []**model.Linear[float32]
		for pj := model.QProj; pj <= model.OProj; pj++ {
			slots = append(slots, &L.Proj[pj])
		}
		if !cfg.SparseLayer(l) {
			slots = append(slots, &L.Proj[model.GateProj], &L.Proj[model.UpProj], &L.Proj[model.DownProj])
		} else {
			// Routers and the shared expert gate stay dense float32.
			dense := func(name string) *model.Linear[float32] {
				s := shapes[name+".weight"]
				return &model.Linear[float32]{Module: name, Base: kernels.NewDense(tensor(name+".weight"), s[0], s[1])}
			}
			m := &model.MoE[float32]{Router: dense(cfg.RouterModuleName(l)), TopK: cfg.ExpertsPerToken, NormTopK: cfg.NormTopKProb,
				Experts: make([][3]*model.Linear[float32], cfg.Experts)}
			for e := range m.Experts {
				for i := range m.Experts[e] {
					slots = append(slots, &m.Experts[e][i])
				}
			}
			if cfg.SharedIntermediate > 0 {
				m.Shared = new([3]*model.Linear[float32])
				for i := range m.Shared {
					slots = append(slots, &m.Shared[i])
				}
				m.SharedGate = dense(cfg.SharedExpertGateName(l))
			}
			L.MoE = m
		}
		for i, name := range cfg.LayerModules(l) {
			all = append(all, job{name, slots[i]})
		}
	}
	jobs := make(chan job, len(all))
	for _, j := range all {
		jobs <- j
	}
	close(jobs)
	errs := make([]error, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for w := range errs {
		wg.Go(func() {
			for j := range jobs {
				name := j.name
				shape := shapes[name+".weight"]
				w0 := tensor(name + ".weight")
				if ratio > 0 {
					mask, err := spec.Mask(w0, shape[0], shape[1], nil)
					if err != nil {
						errs[w] = fmt.Errorf("trainer: pruning %s: %w", name, err)
						return
					}
					mask.Apply(w0)
				}
				base, err := model.NewBaseMatrix(w0, shape[0], shape[1], format)
				if err != nil {
					errs[w] = err
					return
				}
				*j.dst = &model.Linear[float32]{Module: name, Base: base}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return p, nil
}

// RandomPrunedParams builds a random-weight model of cfg with its
// projections pruned by magnitude at ratio and stored in format (as the
// generate bench does), for other benches.
func RandomPrunedParams(cfg model.Config, ratio float64, format model.BaseFormat, seed uint64) (*model.Params[float32], error) {
	return randomPrunedParams(cfg, ratio, format, seed)
}
