package trainer

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/kernels/bitmap"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/sparsity"
)

// denseFP32Alias is the old spelling of dense-fp32 (configs.BaseDenseF32),
// accepted wherever a base format is named.
const denseFP32Alias = "dense-f32"

// bitmapFormatDType returns the value type of a bitmap-* base format and
// whether format is one.
func bitmapFormatDType(format string) (bitmap.DType, bool) {
	switch format {
	case configs.BaseBitmapBF16:
		return bitmap.BF16, true
	case configs.BaseBitmapFP16:
		return bitmap.F16, true
	case configs.BaseBitmapFP32:
		return bitmap.F32, true
	}
	return 0, false
}

// BaseMatrix stores the pruned weight kept (rows × cols, row-major float32,
// zeros at the pruned positions) as a frozen base in format, a value of
// output.base_format: dense-f32 (also spelled dense-fp32) wraps kept itself,
// dense-bf16 rounds it into a bitmap.DenseBF16, and bitmap-bf16,
// bitmap-fp16 and bitmap-fp32 encode it as a bitmap.Matrix (kept may then be
// dropped).
func BaseMatrix(kept []float32, rows, cols int, format string) (kernels.Matrix[float32], error) {
	if err := checkBaseFormat(format); err != nil {
		return nil, err
	}
	if dt, ok := bitmapFormatDType(format); ok {
		return bitmap.Encode(kept, rows, cols, dt)
	}
	if format == configs.BaseDenseBF16 {
		return bitmap.NewDenseBF16(kept, rows, cols), nil
	}
	return kernels.NewDense(kept, rows, cols), nil
}

// checkBaseFormat reports a format BaseMatrix does not know.
func checkBaseFormat(format string) error {
	switch format {
	case configs.BaseDenseF32, denseFP32Alias, configs.BaseDenseBF16, configs.BaseBitmapBF16, configs.BaseBitmapFP16, configs.BaseBitmapFP32:
		return nil
	}
	return fmt.Errorf("trainer: unknown base format %q (want dense-f32, dense-bf16, bitmap-bf16, bitmap-fp16 or bitmap-fp32)", format)
}

// setPrunedBase makes kept (W0 ⊙ M of lin, whose dense W0 is w0) the frozen
// base of lin, stored in the run's output.base_format. The SVD residual
// adapter, when the method has one, is computed first from the float32
// residual W0 − W0 ⊙ M; then W0 is dropped from the base checkpoint, so that
// only the stored base stays in memory (the dense copies are garbage once a
// bitmap base is encoded).
func (s *Setup) setPrunedBase(lin *model.Linear[float32], w0, kept []float32) error {
	rows, cols := lin.Base.Rows(), lin.Base.Cols()
	if s.Config.HasSVDAdapter() {
		svd, err := s.svdAdapter(lin.Module, w0, kept, rows, cols)
		if err != nil {
			return err
		}
		s.svd[lin.Module] = svd
	}
	base, err := BaseMatrix(kept, rows, cols, s.Config.Output.BaseFormat)
	if err != nil {
		return fmt.Errorf("trainer: storing the base of %s: %w", lin.Module, err)
	}
	lin.Base = base
	delete(s.Loaded.Checkpoint.Tensors, lin.Module+".weight")
	return nil
}

// CompressStats describes what CompressParams did.
type CompressStats struct {
	Projections int
	// Pruned of Weights projection weights are zero after pruning.
	Pruned, Weights int64
	// DenseBF16Bytes is what the projections take in dense bf16 and
	// CompressedBytes in the bitmap form.
	DenseBF16Bytes, CompressedBytes int64
}

// CompressParams prunes every projection of p by weight magnitude at the
// given ratio per matrix (the paper's recipe) and replaces its base by the
// bitmap encoding with values of type dt. The pruning zeroes the dense
// weights in place (the checkpoint behind p is modified); every base must be
// a *kernels.Dense.
func CompressParams(p *model.Params[float32], ratio float64, dt bitmap.DType) (CompressStats, error) {
	spec, err := sparsity.ParseSpec(string(sparsity.Magnitude), configs.PatternMatrix, ratio)
	if err != nil {
		return CompressStats{}, err
	}
	var st CompressStats
	for l := range p.Layers {
		for _, lin := range p.Layers[l].Proj {
			dense, ok := lin.Base.(*kernels.Dense[float32])
			if !ok {
				return st, fmt.Errorf("trainer: %s is stored as %s, not densely; it cannot be pruned again", lin.Module, model.BaseFormatName(lin.Base))
			}
			mask, err := spec.Mask(dense.W, dense.R, dense.C, nil)
			if err != nil {
				return st, fmt.Errorf("trainer: pruning %s: %w", lin.Module, err)
			}
			mask.Apply(dense.W)
			m, err := bitmap.Encode(dense.W, dense.R, dense.C, dt)
			if err != nil {
				return st, fmt.Errorf("trainer: compressing %s: %w", lin.Module, err)
			}
			lin.Base = m
			st.Projections++
			st.Weights += int64(dense.R) * int64(dense.C)
			st.Pruned += int64(dense.R)*int64(dense.C) - int64(m.NNZ())
			st.DenseBF16Bytes += 2 * int64(dense.R) * int64(dense.C)
			st.CompressedBytes += m.Bytes()
		}
	}
	return st, nil
}

// GenerateBench is one "salr-bench generate" result (one JSON object per
// line): greedy generation by a random-weight model whose projections are
// pruned and stored in one format.
type GenerateBench struct {
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
}

// BenchGenerateOptions configures BenchGenerate.
type BenchGenerateOptions struct {
	Shape        string // a model.NamedShape, e.g. "llama-2048x16"
	Vocab        int    // overrides the shape's vocabulary when > 0
	Sparsity     float64
	PromptTokens int
	NewTokens    int
	Formats      []string // base formats (BaseMatrix), e.g. dense-fp32, dense-bf16, bitmap-bf16
	Reps         int      // timed generations per format (the median is reported)
	Seed         uint64
	// InTurns builds every format's model first and times them in turns
	// (repetition by repetition), so that all formats see the same machine
	// load; it holds all models in memory at once.
	InTurns bool
}

// BenchGenerate measures greedy generation speed for each format in turn: it
// builds a random-weight model of the shape (normal weights of standard
// deviation 0.02, the same for every format), prunes each projection by
// magnitude at the given sparsity, stores it in the format, and times a
// prefill of a random prompt and the decoding of NewTokens tokens, Reps
// times after one untimed warm-up. One model is held in memory at a time
// unless InTurns is set; the embedding stays float32 and the head is bf16
// except for fp32 formats.
func BenchGenerate(ctx context.Context, o BenchGenerateOptions, logf func(string, ...any)) ([]GenerateBench, error) {
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
	for _, f := range o.Formats {
		if err := checkBaseFormat(f); err != nil {
			return nil, err
		}
	}
	rng := rand.New(rand.NewPCG(o.Seed, 17))
	prompt := make([]int, o.PromptTokens)
	for i := range prompt {
		prompt[i] = rng.IntN(cfg.Vocab)
	}
	cases := make([]*generateCase, len(o.Formats))
	build := func(i int) error {
		start := time.Now()
		p, err := randomPrunedParams(cfg, o.Sparsity, o.Formats[i], o.Seed)
		if err != nil {
			return err
		}
		c := &generateCase{runner: model.NewRunner(p), res: GenerateBench{Bench: "generate", Shape: o.Shape, Format: o.Formats[i],
			Sparsity: o.Sparsity, PromptTokens: o.PromptTokens, NewTokens: o.NewTokens, Reps: o.Reps,
			Threads: runtime.GOMAXPROCS(0), BuildSeconds: time.Since(start).Seconds()}}
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
	results := make([]GenerateBench, len(cases))
	for i, c := range cases {
		slices.Sort(c.decode)
		slices.Sort(c.prefill)
		c.res.TokensPerSecond, c.res.PrefillTokensPerSecond = median(c.decode), median(c.prefill)
		c.res.MsPerToken = 1000 / c.res.TokensPerSecond
		for c.res.MatchingTokens < len(c.tokens) && c.tokens[c.res.MatchingTokens] == cases[0].tokens[c.res.MatchingTokens] {
			c.res.MatchingTokens++
		}
		results[i] = c.res
	}
	for _, r := range results {
		if r.Format == configs.BaseDenseBF16 {
			for i := range results {
				results[i].SpeedupVsDenseBF16 = results[i].TokensPerSecond / r.TokensPerSecond
			}
		}
	}
	return results, nil
}

// generateCase is one format of BenchGenerate: its model and measurements.
type generateCase struct {
	runner          *model.Runner
	res             GenerateBench
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

// projectionWeights is the number of projection weights of cfg.
func projectionWeights(cfg model.Config) int64 {
	q, kv, c, ff := int64(cfg.QDim()), int64(cfg.KVDim()), int64(cfg.Hidden), int64(cfg.Intermediate)
	return int64(cfg.Layers) * (2*q*c + 2*kv*c + 3*ff*c)
}

// paramsBytes is the storage of all weights of p and of its projections.
func paramsBytes(p *model.Params[float32]) (all, projections int64) {
	for _, L := range p.Layers {
		all += 4 * int64(len(L.AttnNorm)+len(L.MLPNorm))
		for _, lin := range L.Proj {
			projections += model.BaseBytes(lin.Base)
		}
	}
	all += projections + 4*int64(len(p.Embed)+len(p.Norm))
	if !p.Config.TieEmbeddings {
		all += model.BaseBytes(p.Head)
	}
	return all, projections
}

// randomPrunedParams builds a model of cfg with normal weights (standard
// deviation 0.02; each tensor's values depend only on seed and its name),
// norms at 1, every projection pruned by magnitude at ratio and stored in
// format. The head is dense bf16 unless the format keeps fp32 values.
func randomPrunedParams(cfg model.Config, ratio float64, format string, seed uint64) (*model.Params[float32], error) {
	var spec sparsity.Spec
	if ratio > 0 {
		var err error
		if spec, err = sparsity.ParseSpec(string(sparsity.Magnitude), configs.PatternMatrix, ratio); err != nil {
			return nil, err
		}
	}
	c := cfg.Hidden
	p := &model.Params[float32]{Config: cfg, Layers: make([]model.Layer[float32], cfg.Layers)}
	p.Embed = randomWeights(cfg.Vocab*c, seed, model.EmbedTokensName)
	p.Norm = ones(c)
	head := p.Embed
	if !cfg.TieEmbeddings {
		head = randomWeights(cfg.Vocab*c, seed, model.LMHeadName)
	}
	if format == configs.BaseDenseF32 || format == denseFP32Alias || format == configs.BaseBitmapFP32 {
		p.Head = kernels.NewDense(head, cfg.Vocab, c)
	} else {
		p.Head = bitmap.NewDenseBF16(head, cfg.Vocab, c)
	}
	shapes := cfg.TensorShapes()
	for l := range p.Layers {
		L := &p.Layers[l]
		L.AttnNorm, L.MLPNorm = ones(c), ones(c)
		for pj := model.Projection(0); pj < model.NumProjections; pj++ {
			name := model.ModuleName(l, pj)
			shape := shapes[name+".weight"]
			w := randomWeights(shape[0]*shape[1], seed, name+".weight")
			if ratio > 0 {
				mask, err := spec.Mask(w, shape[0], shape[1], nil)
				if err != nil {
					return nil, err
				}
				mask.Apply(w)
			}
			base, err := BaseMatrix(w, shape[0], shape[1], format)
			if err != nil {
				return nil, err
			}
			L.Proj[pj] = &model.Linear[float32]{Module: name, Base: base}
		}
	}
	return p, nil
}

func ones(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = 1
	}
	return v
}

// randomWeights returns n normal values of standard deviation 0.02 that
// depend only on seed and name: blocks of 64K values come from their own
// random streams, filled on all cores.
func randomWeights(n int, seed uint64, name string) []float32 {
	const block = 1 << 16
	h := fnv.New64a()
	h.Write([]byte(name))
	stream := h.Sum64()
	w := make([]float32, n)
	blocks := (n + block - 1) / block
	var next sync.WaitGroup
	work := make(chan int, blocks)
	for b := range blocks {
		work <- b
	}
	close(work)
	for range min(runtime.GOMAXPROCS(0), blocks) {
		next.Go(func() {
			for b := range work {
				rng := rand.New(rand.NewPCG(seed^stream, uint64(b)))
				for i := b * block; i < min(n, (b+1)*block); i++ {
					w[i] = float32(rng.NormFloat64() * 0.02)
				}
			}
		})
	}
	next.Wait()
	return w
}

// ParseBaseFormats splits a comma-separated list of base formats, checking
// each.
func ParseBaseFormats(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if err := checkBaseFormat(f); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}
