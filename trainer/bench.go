package trainer

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/datasets"
	"github.com/salr-go/salr/kernels/bitmap"
	"github.com/salr-go/salr/model"
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

	// ActivationMB is the size of the graph's shared activation buffers
	// (model.Graph.Buffers), with or without gradient checkpointing.
	ActivationMB          float64 `json:"activation_mb"`
	GradientCheckpointing bool    `json:"gradient_checkpointing"`
}

// TrainBenchOptions configures RunTrainBench.
type TrainBenchOptions struct {
	Shape      string // a model.NamedShape, e.g. "bench-60M"
	Method     string // lora | prune-lora | salr
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
	ck, err := model.RandomCheckpoint(mc, o.Seed)
	if err != nil {
		return nil, err
	}
	p, err := model.NewParams(ck)
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
	graph, err := model.BuildGraph(setup.Params, model.GraphOptions[float32]{Batch: o.Batch, Seq: o.Seq, Adapter: setup.GraphAdapter,
		GradientCheckpointing: cfg.Train.GradientCheckpointing})
	if err != nil {
		return nil, err
	}
	defer graph.Close()
	buf := graph.Buffers()
	logf("graph: %d activation buffers for %d nodes, %.0f MiB (%.0f MiB unshared, %d nodes recomputed); peak RSS so far %.0f MiB",
		buf.Buffers, buf.Nodes, float64(buf.Bytes)/(1<<20), float64(buf.UnsharedBytes)/(1<<20), buf.Recomputed, peakRSSMB())
	tc := cfg.Train
	stp := &stepper{setup: setup, graph: graph, accum: 1, clip: tc.GradClip,
		opt: NewAdamW(setup.Trainables, tc.AdamBeta1, tc.AdamBeta2, tc.AdamEps, tc.WeightDecay)}
	res := &TrainBenchResult{Bench: "train", Method: o.Method, Shape: o.Shape, Batch: o.Batch, Seq: o.Seq, Steps: o.Steps,
		TrainableParams: setup.TrainableCount(), SetupSeconds: time.Since(start).Seconds(),
		ActivationMB: float64(buf.Bytes) / (1 << 20), GradientCheckpointing: cfg.Train.GradientCheckpointing}
	var times []float64
	for i := 0; i < o.Warmup+o.Steps; i++ {
		t0 := time.Now()
		if _, err := stp.step(i, tc.LR, loader.Next); err != nil {
			return nil, err
		}
		if i >= o.Warmup {
			times = append(times, float64(time.Since(t0).Microseconds())/1000)
		}
		logf("step %d: %.0f ms, peak RSS %.0f MiB", i+1, float64(time.Since(t0).Microseconds())/1000, peakRSSMB())
	}
	slices.Sort(times)
	res.MedianMsPerStep = bitmap.Median(times)
	res.MinMsPerStep = times[0]
	res.TokensPerSecond = float64(o.Batch*o.Seq) / (res.MedianMsPerStep / 1000)
	res.PeakRSSMB = peakRSSMB()
	return res, nil
}

// peakRSSMB is the process's peak resident set size (VmHWM) in MiB, or 0
// where /proc is not available.
func peakRSSMB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err == nil {
				return kb / 1024
			}
		}
	}
	return 0
}
