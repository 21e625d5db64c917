package trainer

import (
	"fmt"
	"io"
	"runtime/debug"
	"sync"
	"time"

	"github.com/salr-go/salr/adapters"
	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/internal/parallel"
	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/kernels/bitmap"
	"github.com/salr-go/salr/kernels/gop"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/model/tokenizer"
	"github.com/salr-go/salr/sparsity"
	G "gorgonia.org/gorgonia"
)

// Setup is a model prepared for one method: the base checkpoint with its
// target projections pruned (W0 ⊙ M, frozen), the adapters of every adapted
// projection (LoRA and/or the SVD residual adapter, concatenated), the
// tokenised data, and the tensors the optimizer trains.
type Setup struct {
	Config    *configs.Config
	Loaded    *model.Loaded
	Tokenizer tokenizer.Tokenizer
	// Params is the model as trained and evaluated: pruned bases, adapters
	// attached (their A and B share memory with Adapters).
	Params *model.Params[float32]
	Data   *Data
	// Adapters maps HF module names to their concatenated adapters.
	Adapters map[string]*adapters.Fused
	// Pruned maps HF module names of pruned projections to their statistics.
	Pruned map[string]sparsity.SplitStats
	// Sparsity is the achieved fraction of zeros over the pruned projections
	// (0 when nothing is pruned).
	Sparsity float64
	// Trainables are the optimizer's tensors, in graph order.
	Trainables []Param

	modules []string             // adapted modules in layer order
	svd     map[string]svdResult // SVD residual adapters of pruned projections
	kernels map[string]*adapters.FusedKernel[float32]
	nodes   map[string][2]*G.Node // learnable A and B nodes per module
	mu      sync.Mutex            // guards the maps while projections are pruned in parallel
	// pruneLimit is the Go memory limit while pruning, raised as bases are stored.
	pruneLimit *pruningLimit
	// progress receives the bar of pruning and the SVD (see stageProgress).
	progress io.Writer
	// dynamic holds the projections lora-prune-dynamic trains through the
	// mask of their merged weight; maskSteps the steps before which the
	// masks were recomputed.
	dynamic   map[string]*dynamicMask
	maskSteps []int
	// saved maps the weight names of the modules adapters.modules_to_save
	// trains in full to their projections.
	saved map[string]*model.Linear[float32]
}

// Build loads the model and data of cfg and prepares them for cfg.Method:
//
//	lora        dense base, LoRA on adapters.target_modules
//	prune-lora  base pruned on sparsity.target_modules, LoRA
//	salr        pruned base, LoRA + the SVD residual adapter of each pruned projection
//	prune       pruned base only (no training)
//	prune-svd   pruned base + SVD residual adapters (no training)
//	lora-prune  dense base, LoRA; the merged weight is pruned at the end (PruneMerged)
//	lora-prune-dynamic  dense base, LoRA through the mask of W0 + s·BA on sparsity.target_modules
//
// Masks are computed once from the frozen W0 before any training (from the
// merged weight for lora-prune and lora-prune-dynamic). Every
// random choice (LoRA init, SVD sketch, dropout) derives from train.seed and
// the module name. A prepared base (salr-prepare) as model.path supplies the
// pruned bases and SVD factors, made with its own seed.
func Build(cfg *configs.Config, logf func(string, ...any)) (*Setup, error) {
	return build(cfg, logf, nil)
}

// build is Build with a progress bar of pruning and the SVD on progress.
func build(cfg *configs.Config, logf func(string, ...any), progress io.Writer) (*Setup, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	// A prepared base that does not fit cfg is an error before its weights
	// are read (wanda's calibration data is compared once it is loaded).
	if settings, err := model.ReadPreparedSettings(cfg.Model.Path); err != nil {
		return nil, err
	} else if settings != nil {
		if err := checkPrepared(cfg, &model.Prepared{Settings: settings}, nil); err != nil {
			return nil, err
		}
	}
	loaded, err := model.Open(cfg.Model.Path, cfg.Model.Tokenizer)
	if err != nil {
		return nil, err
	}
	mc := loaded.Params.Config
	logf("model: %s, %d layers, hidden %d, vocab %d (%s)", mc.ModelType, mc.Layers, mc.Hidden, mc.Vocab, cfg.Model.Path)
	if mc.MaxPositions > 0 && cfg.Data.SeqLen > mc.MaxPositions {
		loaded.Close()
		return nil, fmt.Errorf("trainer: data.seq_len = %d exceeds the model's context, max_position_embeddings = %d (%s)", cfg.Data.SeqLen, mc.MaxPositions, cfg.Model.Path)
	}
	data, err := LoadData(cfg, loaded.Tokenizer)
	if err != nil {
		loaded.Close()
		return nil, err
	}
	logf("data: first training example, prompt %q, response %q", elide(data.First.Prompt, 400), elide(data.First.Response, 200))
	s, err := prepare(cfg, loaded, data, logf, progress)
	if err != nil {
		loaded.Close()
		return nil, err
	}
	return s, nil
}

// Prepare applies cfg.Method to an opened model (pruning, adapters) with its
// tokenised data; Build is Open + LoadData + Prepare. The Setup takes
// ownership of loaded. When loaded is a prepared base (salr-prepare), its
// settings are checked against cfg first, and its pruned bases and SVD
// factors are used instead of pruning.
func Prepare(cfg *configs.Config, loaded *model.Loaded, data *Data, logf func(string, ...any)) (*Setup, error) {
	return prepare(cfg, loaded, data, logf, nil)
}

// prepare is Prepare with a progress bar of pruning and the SVD on progress.
func prepare(cfg *configs.Config, loaded *model.Loaded, data *Data, logf func(string, ...any), progress io.Writer) (*Setup, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if loaded.Checkpoint != nil && loaded.Checkpoint.Prepared != nil {
		if err := checkPrepared(cfg, loaded.Checkpoint.Prepared, data); err != nil {
			return nil, err
		}
	}
	s := &Setup{Config: cfg, Loaded: loaded, Tokenizer: loaded.Tokenizer, Params: loaded.Params, Data: data,
		Adapters: map[string]*adapters.Fused{}, Pruned: map[string]sparsity.SplitStats{}, svd: map[string]svdResult{},
		kernels: map[string]*adapters.FusedKernel[float32]{}, nodes: map[string][2]*G.Node{}, progress: progress}
	if cfg.Prunes() {
		if err := s.prune(logf); err != nil {
			return nil, err
		}
	}
	if cfg.Method == configs.MethodQLoRA {
		if err := s.quantizeBase(logf); err != nil {
			return nil, err
		}
	}
	if err := s.attachAdapters(logf); err != nil {
		return nil, err
	}
	if err := s.attachSavedModules(logf); err != nil {
		return nil, err
	}
	if cfg.Method == configs.MethodLoRAPruneDynamic {
		if err := s.initDynamic(logf); err != nil {
			return nil, err
		}
	}
	// Pruning and the SVD leave hundreds of MB of temporaries (residuals,
	// sketches, dense copies) behind; return their pages to the OS now
	// rather than carry them into training's peak memory.
	debug.FreeOSMemory()
	return s, nil
}

// Close releases the base checkpoint.
func (s *Setup) Close() error { return s.Loaded.Close() }

// prune replaces every targeted projection's base by W0 ⊙ M, stored in
// output.base_format (see setPrunedBase), and keeps the residual statistics.
func (s *Setup) prune(logf func(string, ...any)) error {
	if s.Loaded.Checkpoint != nil && s.Loaded.Checkpoint.Prepared != nil {
		return s.usePrepared(logf)
	}
	s.pruneLimit = limitPruning(s.Params, logf)
	defer s.pruneLimit.restore()
	cfg := s.Config
	spec, err := sparsity.ParseSpec(cfg.Sparsity.Score, cfg.Sparsity.Pattern, cfg.Sparsity.Ratio)
	if err != nil {
		return err
	}
	if _, err := model.ParseBaseFormat(cfg.Output.BaseFormat); err != nil {
		return fmt.Errorf("trainer: output.base_format: %w", err)
	}
	targets, err := sparsity.ParseTargets(cfg.Sparsity.TargetModules)
	if err != nil {
		return err
	}
	// An N:M pattern needs every targeted width to be a multiple of M:
	// check them all before calibrating or pruning anything.
	var targeted int
	for l := range s.Params.Layers {
		for _, lin := range s.Params.Layers[l].Linears() {
			if targets.HasModule(lin.Module) {
				targeted++
				if err := spec.Pattern.CheckCols(lin.Base.Cols()); err != nil {
					return fmt.Errorf("trainer: cannot prune %s (%d×%d): %w", lin.Module, lin.Base.Rows(), lin.Base.Cols(), err)
				}
			}
		}
	}
	var norms map[string][]float32
	if spec.Method == sparsity.Wanda {
		if norms, err = s.calibrate(logf); err != nil {
			return err
		}
	}
	start := time.Now()
	what := "pruning"
	if cfg.HasSVDAdapter() {
		what = "pruning+SVD"
	}
	progress := newStageProgress(s.progress, logf, what, "projections", targeted)
	err = pruneProjections(s.Params, spec, targets, norms, func(int, int) { progress.add() },
		func(lin *model.Linear[float32], dense *kernels.Dense[float32], mask *sparsity.Mask) error {
			kept, residual, stats := sparsity.Split(dense.W, mask)
			return s.setPrunedBase(lin, kept, residual, stats)
		})
	progress.finish(err == nil)
	if err != nil {
		return err
	}
	s.Sparsity = s.prunedSparsity()
	var pruned, total int
	for _, stats := range s.Pruned {
		pruned += stats.Pruned
		total += stats.Rows * stats.Cols
	}
	logf("pruned %d projections (%s): sparsity %.4f (%d of %d weights), bases stored as %s, in %.1fs", len(s.Pruned), spec, s.Sparsity, pruned, total, cfg.Output.BaseFormat, time.Since(start).Seconds())
	return nil
}

// quantizeBase stores every projection's frozen base in the format of the
// method (cfg.BaseFormat(): dense-nf4 for qlora), one projection at a time,
// for QLoRA's 4-bit base under LoRA; each W0 is dropped from the checkpoint
// once quantized.
func (s *Setup) quantizeBase(logf func(string, ...any)) error {
	format, err := model.ParseBaseFormat(s.Config.BaseFormat())
	if err != nil {
		return fmt.Errorf("trainer: %w", err)
	}
	start := time.Now()
	var lins []*model.Linear[float32]
	for l := range s.Params.Layers {
		lins = append(lins, s.Params.Layers[l].Linears()...)
	}
	// A few projections at a time, each holding one float32 copy of W0.
	var (
		mu            sync.Mutex
		before, after int64
		firstErr      error
	)
	parallel.ForEach(len(lins), 0, func(i int) {
		lin := lins[i]
		base, err := model.NewBaseMatrix(model.DecodeBase(lin.Base), lin.Base.Rows(), lin.Base.Cols(), format)
		mu.Lock()
		defer mu.Unlock()
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("trainer: storing %s as %s: %w", lin.Module, format, err)
		}
		if err == nil {
			before += model.BaseBytes(lin.Base)
			after += model.BaseBytes(base)
			lin.Base = base
			if ck := s.Loaded.Checkpoint; ck != nil {
				// Release W0 (a bf16 checkpoint's mapped pages leave
				// resident memory), as pruning does.
				ck.Drop(lin.Module + ".weight")
			}
		}
	})
	if firstErr != nil {
		return firstErr
	}
	logf("quantized every projection's base to %s: %.1f MB -> %.1f MB (%.3fx), in %.1fs",
		format, float64(before)/1e6, float64(after)/1e6, float64(after)/float64(max(before, 1)), time.Since(start).Seconds())
	return nil
}

// calibrate runs the dense model over the calibration sequences
// (calibrationSeqs) and returns, per projection, the L2 norms of its input
// features (Wanda's ||X_j||). An expert of a mixture-of-experts model that
// no calibration token was routed to gets norms of 1: Wanda's score is
// then the magnitude.
func (s *Setup) calibrate(logf func(string, ...any)) (map[string][]float32, error) {
	cal := map[string]*sparsity.Calibration{}
	r := model.NewRunner(s.Params)
	r.Observe = func(lin *model.Linear[float32], x []float32, n int) {
		c := cal[lin.Module]
		if c == nil {
			c = sparsity.NewCalibration(lin.Base.Cols())
			cal[lin.Module] = c
		}
		c.AddActivations(x, n)
	}
	for _, seq := range calibrationSeqs(s.Config, s.Data) {
		if _, err := r.Forward([][]int{seq}, []*model.Cache{r.NewCache(len(seq))}, false); err != nil {
			return nil, fmt.Errorf("trainer: wanda calibration: %w", err)
		}
	}
	norms := map[string][]float32{}
	for m, c := range cal {
		norms[m] = c.Norms()
	}
	var unseen []string
	for l := range s.Params.Layers {
		for _, lin := range s.Params.Layers[l].Linears() {
			if _, ok := norms[lin.Module]; !ok {
				ones := make([]float32, lin.Base.Cols())
				for i := range ones {
					ones[i] = 1
				}
				norms[lin.Module] = ones
				unseen = append(unseen, lin.Module)
			}
		}
	}
	if len(unseen) > 0 {
		logf("wanda: no calibration token reached %d expert projections (%s, ...): they are pruned by magnitude", len(unseen), unseen[0])
	}
	return norms, nil
}

// calibrationSeqs are the token ids of the training sequences wanda's
// calibration runs: the first sparsity.calibration_batches batches.
func calibrationSeqs(cfg *configs.Config, data *Data) [][]int {
	n := min(max(cfg.Sparsity.CalibrationBatches, 1)*cfg.Train.BatchSize, len(data.Train))
	out := make([][]int, n)
	for i := range out {
		out[i] = data.Train[i].Tokens
	}
	return out
}

// attachAdapters builds the LoRA and SVD residual adapters of each projection
// the method adapts and attaches them to the parameters.
func (s *Setup) attachAdapters(logf func(string, ...any)) error {
	cfg := s.Config
	ac := cfg.Adapters
	var loraTargets sparsity.Targets
	if cfg.HasLoRA() {
		var err error
		if loraTargets, err = sparsity.ParseTargets(ac.TargetModules); err != nil {
			return err
		}
	}
	seed := uint64(cfg.Train.Seed)
	start := time.Now()
	var energy, residual float64
	for l := range s.Params.Layers {
		for _, lin := range s.Params.Layers[l].Linears() {
			out, in := lin.Base.Rows(), lin.Base.Cols()
			var parts []*adapters.LowRank
			if cfg.HasLoRA() && loraTargets.HasModule(lin.Module) {
				lora, err := adapters.NewLoRA(out, in, adapters.LoRAConfig{Rank: ac.LoRARank, Alpha: ac.LoRAAlpha,
					Dropout: ac.LoRADropout, Init: adapters.Init(ac.LoRAInit), RSLoRA: ac.RSLoRA},
					adapters.SeedFor(seed, lin.Module+".lora"))
				if err != nil {
					return fmt.Errorf("trainer: %s: %w", lin.Module, err)
				}
				parts = append(parts, lora)
			}
			if svd, ok := s.svd[lin.Module]; ok {
				energy += svd.Energy
				residual += svd.Residual
				parts = append(parts, svd.Adapter)
				// Concat copies the factors: keep only the figures, so that the
				// factors are not held twice.
				s.svd[lin.Module] = svdResult{Energy: svd.Energy, Residual: svd.Residual}
			}
			if len(parts) == 0 {
				continue
			}
			f, err := adapters.Concat(parts...)
			if err != nil {
				return fmt.Errorf("trainer: %s: %w", lin.Module, err)
			}
			s.Adapters[lin.Module] = f
			s.modules = append(s.modules, lin.Module)
			lin.Adapter = &model.LowRank[float32]{A: f.A, B: f.B, Scale: f.Scale, R: f.Rank}
			if anyTrue(f.TrainableRanks()) && cfg.Trains() {
				// Grad stays nil until ReadGrads points it at the graph's
				// accumulated gradient: no copy of its own is held.
				s.Trainables = append(s.Trainables,
					Param{Name: lin.Module + ".A", Data: f.A, Trainable: maskOrNil(f.TrainableA())},
					Param{Name: lin.Module + ".B", Data: f.B, Trainable: maskOrNil(f.TrainableB())})
			}
		}
	}
	if residual > 0 {
		logf("SVD residual adapters (rank %d): capture %.1f%% of the pruning residual's energy (%.1fs)", ac.SVDRank, 100*energy/residual, time.Since(start).Seconds())
	}
	logf("adapters on %d projections, %d trainable parameters", len(s.modules), s.TrainableCount())
	return nil
}

// svdResult is one projection's SVD residual adapter and how much of the
// residual's squared Frobenius norm it captures.
type svdResult struct {
	Adapter          *adapters.LowRank
	Energy, Residual float64
}

// svdAdapter builds the rank-r SVD residual adapter of the pruned projection
// module (out × in) from its residual E = W0 - W0 ⊙ M (sparsity.Split's).
func (s *Setup) svdAdapter(module string, e []float32, out, in int) (svdResult, error) {
	ac := s.Config.Adapters
	var norm float64
	for _, v := range e {
		norm += float64(v) * float64(v)
	}
	rank := min(ac.SVDRank, out, in)
	sc := adapters.SVDConfig{Rank: rank, Method: adapters.SVDMethod(ac.SVDMethod), Oversample: ac.SVDOversample,
		PowerIters: ac.SVDPowerIters, Seed: adapters.SeedFor(uint64(s.Config.Train.Seed), module+".svd")}
	t, err := adapters.SVD(e, out, in, sc)
	if err != nil {
		return svdResult{}, fmt.Errorf("trainer: SVD of %s's residual: %w", module, err)
	}
	return svdResult{Adapter: adapters.NewSVDAdapter(t, ac.SVDTrainable), Energy: t.Energy(), Residual: norm}, nil
}

func anyTrue(b []bool) bool {
	for _, v := range b {
		if v {
			return true
		}
	}
	return false
}

// maskOrNil returns m, or nil when every entry is true (no mask needed).
func maskOrNil(m []bool) []bool {
	for _, v := range m {
		if !v {
			return m
		}
	}
	return nil
}

// TrainableCount is the number of trainable parameters (masked entries
// excluded).
func (s *Setup) TrainableCount() int {
	n := 0
	for _, p := range s.Trainables {
		if p.Trainable == nil {
			n += len(p.Data)
			continue
		}
		for _, t := range p.Trainable {
			if t {
				n++
			}
		}
	}
	return n
}

// GraphAdapter is the model.GraphOptions.Adapter hook: it adds the fused
// adapter op of a projection, with A and B as learnables when they train.
func (s *Setup) GraphAdapter(b *model.Builder[float32], lin *model.Linear[float32], x *G.Node) (*G.Node, error) {
	k, a, bb := s.adapterNodes(b, lin)
	if k == nil {
		return nil, nil
	}
	if d := s.dynamic[lin.Module]; d != nil {
		m, err := adapters.NewMaskedKernel(s.Adapters[lin.Module], k, d.keep)
		if err != nil {
			return nil, fmt.Errorf("trainer: %s: %w", lin.Module, err)
		}
		return m.Apply(x, a, bb)
	}
	return k.Apply(x, a, bb)
}

// GraphExpertAdapter is the model.GraphOptions.ExpertAdapter hook: the fused
// adapter kernel of a projection (nil when it has none) and its A and B
// nodes, learnables when they train. GraphAdapter adds the same kernel as
// nodes of its own.
func (s *Setup) GraphExpertAdapter(b *model.Builder[float32], lin *model.Linear[float32]) (gop.Kernel[float32], *G.Node, *G.Node, error) {
	if s.dynamic[lin.Module] != nil {
		return nil, nil, nil, fmt.Errorf("trainer: %s: method %s does not support the experts of a mixture-of-experts layer (their masked merged weights are not implemented)", lin.Module, s.Config.Method)
	}
	k, a, bb := s.adapterNodes(b, lin)
	if k == nil {
		return nil, nil, nil, nil
	}
	return k, a, bb, nil
}

// adapterNodes is the fused adapter kernel of a projection (nil when it has
// none) and its A and B nodes, learnables when they train.
func (s *Setup) adapterNodes(b *model.Builder[float32], lin *model.Linear[float32]) (*adapters.FusedKernel[float32], *G.Node, *G.Node) {
	f := s.Adapters[lin.Module]
	if f == nil {
		return nil, nil, nil
	}
	k := s.kernels[lin.Module]
	if k == nil {
		k = adapters.NewFusedKernel[float32](f, lin.Module, adapters.SeedFor(uint64(s.Config.Train.Seed), lin.Module+".dropout"))
		s.kernels[lin.Module] = k
	}
	k.SetPrecision(b.Precision())
	input := b.Input
	if anyTrue(f.TrainableRanks()) && s.Config.Trains() {
		input = b.Learnable
	}
	a := input(lin.Module+".A", f.A, f.Rank, f.In)
	bb := input(lin.Module+".B", f.B, f.Out, f.Rank)
	s.nodes[lin.Module] = [2]*G.Node{a, bb}
	return k, a, bb
}

// SetDropoutStep selects the dropout masks of a (micro-)step in every
// adapter op.
func (s *Setup) SetDropoutStep(step int) {
	for _, k := range s.kernels {
		k.SetStep(uint64(step))
	}
}

// SetDropoutRows makes every adapter op draw the dropout masks of rows
// [first, first+n) of a batch of total rows (n: the op's rows), so that a
// rank of a data-parallel run drops what a single process would drop on the
// same rows of the global batch.
func (s *Setup) SetDropoutRows(first, total int) {
	for _, k := range s.kernels {
		k.SetRows(first, total)
	}
}

// ReadGrads points every trainable's Grad at its accumulated gradient in the
// graph (read after the step's micro-batches).
func (s *Setup) ReadGrads(g *model.Graph[float32]) error {
	for i := range s.Trainables {
		p := &s.Trainables[i]
		if s.saved[p.Name] != nil {
			if err := readLearnableGrad(g, p); err != nil {
				return err
			}
			continue
		}
		module, which := p.Name[:len(p.Name)-2], p.Name[len(p.Name)-1]
		nodes, ok := s.nodes[module]
		if !ok {
			return fmt.Errorf("trainer: %s is not in the graph", p.Name)
		}
		node := nodes[0]
		if which == 'B' {
			node = nodes[1]
		}
		v, err := node.Grad()
		if err != nil || v == nil {
			return fmt.Errorf("trainer: gradient of %s: %v", p.Name, err)
		}
		p.Grad = v.Data().([]float32)
	}
	return nil
}

// readLearnableGrad points p.Grad at the gradient of the graph's learnable
// named p.Name (a module trained in full).
func readLearnableGrad(g *model.Graph[float32], p *Param) error {
	for i, n := range g.Learnables {
		if n.Name() != p.Name {
			continue
		}
		grad, err := g.Grad(i)
		if err != nil || grad == nil {
			return fmt.Errorf("trainer: gradient of %s: %v", p.Name, err)
		}
		p.Grad = grad
		return nil
	}
	return fmt.Errorf("trainer: %s is not in the graph", p.Name)
}

// precisionPhrase describes train.precision for the run header: "fp32", or
// "bf16" with the bf16 product in use (kernels.BF16GemmPath) and, where the
// CPU has them, the kernels the bf16 frozen bases run.
func precisionPhrase(precision string) string {
	if precision != configs.PrecisionBF16 {
		return precision
	}
	if path := bitmap.BF16ActivationPath(); path != "" {
		return fmt.Sprintf("%s (bf16 products: %s; bf16 bases: %s kernels)", precision, kernels.BF16GemmPath(), path)
	}
	return fmt.Sprintf("%s (bf16 products: %s)", precision, kernels.BF16GemmPath())
}
