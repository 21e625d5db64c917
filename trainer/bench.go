package trainer

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/datasets"
	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/kernels/bitmap"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/sparsity"
)

// TrainBenchResult is one "salr-bench train" result (one JSON object per
// line).
type TrainBenchResult struct {
	Bench           string  `json:"bench"` // "train"
	Method          string  `json:"method"`
	Shape           string  `json:"shape"`
	Batch           int     `json:"batch"`
	Seq             int     `json:"seq"`
	Steps           int     `json:"steps"`
	MedianMsPerStep float64 `json:"median_ms_per_step"`
	MinMsPerStep    float64 `json:"min_ms_per_step"`
	TokensPerSecond float64 `json:"tokens_per_second"`
	TrainableParams int     `json:"trainable_params"`
	PeakRSSMB       float64 `json:"peak_rss_mb"`
	SetupSeconds    float64 `json:"setup_seconds"`
	// Memory is the run's memory plan beside its peak RSS (as in
	// summary.json).
	Memory Memory `json:"memory"`

	// ActivationMB is the size of the graph's shared activation buffers
	// (model.Graph.Buffers), with or without gradient checkpointing.
	ActivationMB          float64 `json:"activation_mb"`
	GradientCheckpointing bool    `json:"gradient_checkpointing"`
	// Precision is train.precision ("fp32" or "bf16").
	Precision string `json:"precision"`
	bitmap.Paths
}

// TrainBenchOptions configures RunTrainBench.
type TrainBenchOptions struct {
	Shape      string // a model.NamedShape, e.g. "bench-60M"
	Method     string // lora | prune-lora | salr | lora-prune | lora-prune-dynamic
	Batch, Seq int
	Steps      int // timed steps
	Warmup     int // untimed steps first
	Seed       uint64
	// Sets are extra config overrides (e.g. "adapters.lora_rank=16").
	Sets []string
}

// RunTrainBench times full training steps (forward, backward, AdamW) of a
// random-weight model of a named shape with random token data, set up by the
// same code as salr-train (LoRA rank 16, SALR LoRA 16 + SVD 16, adapters on
// all 7 projections).
func RunTrainBench(o TrainBenchOptions, logf func(string, ...any)) (*TrainBenchResult, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	mc, err := model.NamedShape(o.Shape)
	if err != nil {
		return nil, err
	}
	if o.Batch < 1 || o.Seq < 2 || o.Steps < 1 || o.Warmup < 0 {
		return nil, fmt.Errorf("trainer: bench: batch %d, seq %d, steps %d, warmup %d out of range", o.Batch, o.Seq, o.Steps, o.Warmup)
	}
	sets := append([]string{
		"method=" + o.Method,
		"model.path=random:" + o.Shape, "data.train_path=random",
		"adapters.lora_rank=16", "adapters.lora_alpha=32", "adapters.svd_rank=16",
		fmt.Sprintf("train.batch_size=%d", o.Batch), fmt.Sprintf("data.seq_len=%d", o.Seq),
		fmt.Sprintf("train.seed=%d", o.Seed),
	}, o.Sets...)
	cfg, err := configs.Parse("bench", nil, sets)
	if err != nil {
		return nil, err
	}
	if !cfg.Trains() {
		return nil, fmt.Errorf("trainer: bench: method %q does not train", o.Method)
	}
	start := time.Now()
	lazy := func(string) bool { return false }
	if cfg.Prunes() {
		targets, err := sparsity.ParseTargets(cfg.Sparsity.TargetModules)
		if err != nil {
			return nil, err
		}
		lazy = targets.HasModule
	}
	ck, p, err := benchModel(mc, o.Seed, lazy)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(o.Seed, 99))
	seqs := make([]datasets.Sequence, 4*o.Batch)
	for i := range seqs {
		s := datasets.Sequence{Tokens: make([]int, o.Seq+1), Loss: make([]bool, o.Seq+1)}
		for j := range s.Tokens {
			s.Tokens[j], s.Loss[j] = rng.IntN(mc.Vocab), true
		}
		seqs[i] = s
	}
	setup, err := Prepare(cfg, &model.Loaded{Checkpoint: ck, Params: p}, &Data{Train: seqs}, logf)
	if err != nil {
		return nil, err
	}
	defer setup.Close()
	loader, err := datasets.NewLoader(seqs, o.Batch, o.Seq, 0, o.Seed)
	if err != nil {
		return nil, err
	}
	prec, err := kernels.ParsePrecision(cfg.Train.Precision)
	if err != nil {
		return nil, fmt.Errorf("train.precision: %w", err)
	}
	graph, err := model.BuildGraph(setup.Params, model.GraphOptions[float32]{Batch: o.Batch, Seq: o.Seq, Adapter: setup.GraphAdapter, ExpertAdapter: setup.GraphExpertAdapter,
		GradientCheckpointing: cfg.Train.GradientCheckpointing, Precision: prec,
		Trainable: setup.GraphTrainable, RouterAuxLossCoef: cfg.Train.RouterAuxLossCoef})
	if err != nil {
		return nil, err
	}
	defer graph.Close()
	buf := graph.Buffers()
	logf("graph: %d activation buffers for %d nodes, %.0f MiB (%.0f MiB unshared, %d nodes recomputed); peak RSS so far %.0f MiB",
		buf.Buffers, buf.Nodes, mib(buf.Bytes), mib(buf.UnsharedBytes), buf.Recomputed, mib(peakRSS()))
	tc := cfg.Train
	stp := &stepper{setup: setup, graph: graph, accum: 1, clip: tc.GradClip,
		opt: NewAdamW(setup.Trainables, tc.AdamBeta1, tc.AdamBeta2, tc.AdamEps, tc.WeightDecay)}
	mp := NewMemoryPlan(setup, graph, stp.opt)
	limit, source, previous := setMemoryLimit(mp.Heap())
	defer restoreMemoryLimit(previous)
	logf("%s", mp)
	logf("%s", describeLimit(limit, source, "the plan's heap part and a margin"))
	res := &TrainBenchResult{Bench: "train", Method: o.Method, Shape: o.Shape, Batch: o.Batch, Seq: o.Seq, Steps: o.Steps,
		TrainableParams: setup.TrainableCount(), SetupSeconds: time.Since(start).Seconds(),
		Memory:       Memory{Plan: mp, MappedBytes: mp.Mapped, GoMemoryLimitBytes: limit, GoMemoryLimitSource: source},
		ActivationMB: mib(buf.Bytes), GradientCheckpointing: cfg.Train.GradientCheckpointing, Precision: cfg.Train.Precision,
		Paths: bitmap.CurrentPaths()}
	var times []float64
	for i := 0; i < o.Warmup+o.Steps; i++ {
		t0 := time.Now()
		if _, err := stp.step(i, tc.LR, loader.Next, false); err != nil {
			return nil, err
		}
		if i >= o.Warmup {
			times = append(times, float64(time.Since(t0).Microseconds())/1000)
		}
		logf("step %d: %.0f ms, peak RSS %.0f MiB", i+1, float64(time.Since(t0).Microseconds())/1000, mib(peakRSS()))
	}
	slices.Sort(times)
	res.MedianMsPerStep = bitmap.Median(times)
	res.MinMsPerStep = times[0]
	res.TokensPerSecond = float64(o.Batch*o.Seq) / (res.MedianMsPerStep / 1000)
	res.Memory.PeakRSSBytes = peakRSS()
	res.PeakRSSMB = mib(res.Memory.PeakRSSBytes)
	return res, nil
}

// benchModel is the random-weight model of the train bench, with
// model.RandomCheckpoint's weights. The projections whose module name lazy
// accepts (those the method prunes) are not held: their bases are
// randomBases, generated when pruning reads them, so that the bench holds
// one dense projection at a time rather than the whole float32 model.
func benchModel(cfg model.Config, seed uint64, lazy func(module string) bool) (*model.Checkpoint, *model.Params[float32], error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	shapes := cfg.TensorShapes()
	generated := map[string]bool{}
	largest := 0
	for l := range cfg.Layers {
		for _, module := range cfg.LayerModules(l) {
			if name := module + ".weight"; lazy(module) {
				generated[name] = true
				largest = max(largest, shapes[name][0]*shapes[name][1])
			}
		}
	}
	// NewParams wants every weight: the generated ones get a view of one
	// shared zero buffer until their bases are replaced below.
	placeholder := make([]float32, largest)
	ck := &model.Checkpoint{Config: cfg, Tensors: map[string]*model.Tensor{}, Source: fmt.Sprintf("random(seed=%d)", seed)}
	for name, shape := range shapes {
		if generated[name] {
			ck.Tensors[name] = &model.Tensor{Shape: shape, Data: placeholder[:shape[0]*shape[1]]}
		} else {
			ck.Tensors[name] = &model.Tensor{Shape: shape, Data: model.RandomTensor(name, shape, seed)}
		}
	}
	p, err := model.NewParams(ck)
	if err != nil {
		return nil, nil, err
	}
	for _, L := range p.Layers {
		for _, lin := range L.Linears() {
			if name := lin.Module + ".weight"; generated[name] {
				lin.Base = &randomBase{name: name, rows: lin.Base.Rows(), cols: lin.Base.Cols(), seed: seed}
				delete(ck.Tensors, name)
			}
		}
	}
	return ck, p, nil
}

// randomBase is a frozen projection of a random-weight model that is not
// held in memory: its weights, model.RandomTensor's for its tensor name, are
// generated each time they are read (see denseBase).
type randomBase struct {
	name       string
	rows, cols int
	seed       uint64
}

func (r *randomBase) Rows() int { return r.rows }
func (r *randomBase) Cols() int { return r.cols }

// Dense generates the weights.
func (r *randomBase) Dense() *kernels.Dense[float32] {
	return kernels.NewDense(model.RandomTensor(r.name, []int{r.rows, r.cols}, r.seed), r.rows, r.cols)
}

// MulT implements kernels.Matrix (slowly: for Wanda's calibration only).
func (r *randomBase) MulT(y, x []float32, n int) { r.Dense().MulT(y, x, n) }

// Mul implements kernels.Matrix.
func (r *randomBase) Mul(dx, dy []float32, n int) { r.Dense().Mul(dx, dy, n) }
