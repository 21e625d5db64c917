package bitmap

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/salr-go/salr/kernels"
)

// KernelShape is one kernel benchmark shape: activations M×K times a weight
// K×N, i.e. MulT with n = M on a Matrix with Cols = K and Rows = N.
type KernelShape struct{ M, K, N int }

// String formats the shape as MxKxN.
func (s KernelShape) String() string { return fmt.Sprintf("%dx%dx%d", s.M, s.K, s.N) }

// DefaultKernelShapes are the benchmark's kernel shapes: 1, 16 and 512
// tokens times weights of 4096 or 14336 inputs and 4096 outputs.
var DefaultKernelShapes = []KernelShape{
	{1, 4096, 4096}, {1, 14336, 4096}, {16, 4096, 4096}, {512, 4096, 4096}, {512, 14336, 4096},
}

// ParseKernelShapes parses a comma-separated list of MxKxN shapes.
func ParseKernelShapes(s string) ([]KernelShape, error) {
	var shapes []KernelShape
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		parts := strings.Split(f, "x")
		if len(parts) != 3 {
			return nil, fmt.Errorf("bitmap: shape %q: want MxKxN, e.g. 1x4096x4096", f)
		}
		var dims [3]int
		for i, p := range parts {
			v, err := strconv.Atoi(p)
			if err != nil || v <= 0 {
				return nil, fmt.Errorf("bitmap: shape %q: %q is not a positive integer", f, p)
			}
			dims[i] = v
		}
		shapes = append(shapes, KernelShape{dims[0], dims[1], dims[2]})
	}
	return shapes, nil
}

// KernelCase is one engine of the benchmark: a storage format ("dense" or
// "bitmap") with a value dtype. Dense fp32 is the BLAS backend
// (kernels.Dense), dense bf16 is DenseBF16.
type KernelCase struct {
	Format string
	DType  DType
}

// String formats the case as format-dtype, e.g. bitmap-bf16.
func (c KernelCase) String() string { return c.Format + "-" + c.DType.String() }

// DefaultKernelCases are dense bf16 (ours, the reference of the speedups),
// dense fp32 BLAS, bitmap bf16 and bitmap fp32.
var DefaultKernelCases = []KernelCase{{"dense", BF16}, {"dense", F32}, {"bitmap", BF16}, {"bitmap", F32}}

// ParseKernelCases parses a comma-separated list of cases such as
// "dense-bf16,bitmap-fp16". Valid: dense-fp32, dense-bf16, bitmap-bf16,
// bitmap-fp16, bitmap-fp32, bitmap-nf4, dense-nf4 (the NF4 cases with
// double-quantized scales).
func ParseKernelCases(s string) ([]KernelCase, error) {
	var cases []KernelCase
	for _, f := range strings.Split(s, ",") {
		format, dt, ok := strings.Cut(strings.TrimSpace(f), "-")
		d, err := ParseDType(dt)
		if strings.EqualFold(dt, "nf4") {
			d, err = DTypeNF4, nil
		}
		if !ok || err != nil || (format != "dense" && format != "bitmap") || (format == "dense" && d == F16) {
			return nil, fmt.Errorf("bitmap: case %q: want one of dense-fp32, dense-bf16, bitmap-bf16, bitmap-fp16, bitmap-fp32, bitmap-nf4, dense-nf4", f)
		}
		cases = append(cases, KernelCase{format, d})
	}
	return cases, nil
}

// KernelBenchConfig configures RunKernelBench.
type KernelBenchConfig struct {
	Shapes   []KernelShape // default DefaultKernelShapes
	Cases    []KernelCase  // default DefaultKernelCases
	Sparsity float64       // fraction of zero weights (unstructured, Bernoulli)
	Reps     int           // timed calls per case, median reported (default 20)
	// ColdBytes: the copies of the weight cycled through together exceed it
	// (default ColdBytesFor(LastLevelCache())), so every call streams its
	// weight from DRAM.
	ColdBytes int64
	// MaxBytes bounds the memory of one case's copies (default 1 GB); a case
	// that cannot be cold within it is reported with fewer copies.
	MaxBytes int64
	Seed     uint64
	// Transposed times Mul (dX = dY W, the backward) instead of MulT.
	Transposed bool
	// Sequential times the cases one after the other (each with only its own
	// copies in memory) instead of in turns.
	Sequential bool
}

// KernelResult is one measured case, also the JSON object of salr-bench
// kernels -json (one per line).
type KernelResult struct {
	Bench      string  `json:"bench"` // "kernel"
	Case       string  `json:"case"`  // format-dtype, e.g. "bitmap-bf16", or "bandwidth"
	Op         string  `json:"op"`    // "mult" (y = x Wᵀ), "mul" (dx = dy W) or "read" (bandwidth)
	M          int     `json:"m"`
	K          int     `json:"k"`
	N          int     `json:"n"`
	DType      string  `json:"dtype"`
	Format     string  `json:"format"`
	Sparsity   float64 `json:"sparsity"`
	MedianMS   float64 `json:"median_ms"`
	MinMS      float64 `json:"min_ms"`
	MaxMS      float64 `json:"max_ms"`
	GBPerS     float64 `json:"gb_per_s"`    // weight bytes streamed / median time
	GBPS       float64 `json:"gbps"`        // bytes read (weights as stored + activations) / median time
	GFLOPPerS  float64 `json:"gflop_per_s"` // 2·M·K·N / median time (dense-equivalent)
	Bytes      int64   `json:"weight_bytes"`
	BytesRatio float64 `json:"bytes_vs_dense_bf16"` // weight bytes / dense bf16 bytes
	Speedup    float64 `json:"speedup_vs_dense_bf16,omitempty"`
	Copies     int     `json:"copies"`
	Reps       int     `json:"reps"`
	Kernels    string  `json:"kernels"` // "go", "avx2", "avx512" or "avx512bf16" (this package), BLAS backend for dense fp32
	Threads    int     `json:"threads"`
	LLCBytes   int64   `json:"llc_bytes,omitempty"` // bandwidth row: the last-level cache size assumed
	Paths
}

func (c *KernelBenchConfig) defaults() {
	if len(c.Shapes) == 0 {
		c.Shapes = DefaultKernelShapes
	}
	if len(c.Cases) == 0 {
		c.Cases = DefaultKernelCases
	}
	if c.Reps <= 0 {
		c.Reps = 20
	}
	if c.ColdBytes <= 0 {
		llc, _ := LastLevelCache()
		c.ColdBytes = ColdBytesFor(llc)
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 1 << 30
	}
}

// Implementation names the kernels this package runs on this machine:
// "go", "avx2", "avx512" or "avx512bf16".
func Implementation() string { return defaultKernels.name }

// RunKernelBench times every case on every shape with a cold cache: each
// timed call uses the next of enough copies of the weight to
// exceed ColdBytes, after one warm-up pass over the copies. Unless
// cfg.Sequential, the cases of a shape are timed in turns (one call of each
// per round, starting with a different case each round) so that all of them
// see the same machine load; their copies then share memory. Results are
// passed to report in case order, dense bf16 first when present (the others
// report their speedup over it). Cancelling ctx stops the run between rounds.
func RunKernelBench(ctx context.Context, cfg KernelBenchConfig, report func(KernelResult)) error {
	cfg.defaults()
	if cfg.Sparsity < 0 || cfg.Sparsity > 1 {
		return fmt.Errorf("bitmap: sparsity %v outside [0, 1]", cfg.Sparsity)
	}
	cases := slices.Clone(cfg.Cases)
	slices.SortStableFunc(cases, func(a, b KernelCase) int {
		return boolRank(b == KernelCase{"dense", BF16}) - boolRank(a == KernelCase{"dense", BF16})
	})
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5a17))
	for _, s := range cfg.Shapes {
		w := make([]float32, s.K*s.N)
		for i := range w {
			if rng.Float64() >= cfg.Sparsity {
				w[i] = float32(rng.NormFloat64()) * 0.02
			}
		}
		io := benchIO{in: make([]float32, s.M*max(s.K, s.N)), out: make([]float32, s.M*max(s.K, s.N))}
		for i := range io.in {
			io.in[i] = float32(rng.NormFloat64())
		}
		var denseBF16MS float64
		emit := func(r *caseRun) {
			res := r.result(cfg)
			if r.c == (KernelCase{"dense", BF16}) {
				denseBF16MS = res.MedianMS
			}
			if denseBF16MS > 0 {
				res.Speedup = denseBF16MS / res.MedianMS
			}
			report(res)
		}
		// Sequential: one group per case; in turns: one group of all cases.
		groups := [][]KernelCase{cases}
		if cfg.Sequential {
			groups = nil
			for _, c := range cases {
				groups = append(groups, []KernelCase{c})
			}
		}
		for _, group := range groups {
			runs := make([]*caseRun, len(group))
			for i, c := range group {
				r, err := newCaseRun(cfg, s, c, w, io)
				if err != nil {
					return err
				}
				runs[i] = r
			}
			runtime.GC()
			for rep := range cfg.Reps {
				if err := ctx.Err(); err != nil {
					return err
				}
				for i := range runs {
					runs[(rep+i)%len(runs)].timedCall()
				}
			}
			for _, r := range runs {
				emit(r)
			}
			runs = nil
			debug.FreeOSMemory()
		}
	}
	return nil
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// benchIO are the activations and the output of one shape.
type benchIO struct{ in, out []float32 }

// caseRun is one case of one shape: its weight copies and its timings.
type caseRun struct {
	c      KernelCase
	s      KernelShape
	io     benchIO
	back   bool
	mats   []kernels.Matrix[float32]
	bytes  int64
	copies int
	next   int
	times  []float64
}

// newCaseRun builds the copies of the weight for case c (enough to exceed
// cfg.ColdBytes, within cfg.MaxBytes) and calls each once (warm-up: page
// faults, pools, BLAS threads).
func newCaseRun(cfg KernelBenchConfig, s KernelShape, c KernelCase, w []float32, io benchIO) (*caseRun, error) {
	build, err := weightBuilder(c, w, s)
	if err != nil {
		return nil, err
	}
	first, bytes, err := build()
	if err != nil {
		return nil, err
	}
	copies := int(max(2, cfg.ColdBytes/bytes+1))
	if limit := int(cfg.MaxBytes / bytes); copies > limit {
		copies = max(1, limit)
	}
	r := &caseRun{c: c, s: s, io: io, back: cfg.Transposed, mats: []kernels.Matrix[float32]{first}, bytes: bytes, copies: copies}
	for len(r.mats) < copies {
		m, _, err := build()
		if err != nil {
			return nil, err
		}
		r.mats = append(r.mats, m)
	}
	for range r.mats {
		r.call()
	}
	return r, nil
}

// call runs the product once on the next copy.
func (r *caseRun) call() {
	m := r.mats[r.next%len(r.mats)]
	r.next++
	if r.back {
		m.Mul(r.io.out[:r.s.M*r.s.K], r.io.in[:r.s.M*r.s.N], r.s.M)
	} else {
		m.MulT(r.io.out[:r.s.M*r.s.N], r.io.in[:r.s.M*r.s.K], r.s.M)
	}
}

// timedCall runs call and records its wall time in milliseconds.
func (r *caseRun) timedCall() {
	t0 := time.Now()
	r.call()
	r.times = append(r.times, float64(time.Since(t0).Nanoseconds())/1e6)
}

// result summarises the timings (speedup left to the caller).
func (r *caseRun) result(cfg KernelBenchConfig) KernelResult {
	s := r.s
	times := slices.Sorted(slices.Values(r.times))
	med := Median(times)
	impl := Implementation()
	if r.c == (KernelCase{"dense", F32}) {
		impl = kernels.BackendName()
	}
	op := "mult"
	if r.back {
		op = "mul"
	}
	act := int64(s.M) * int64(s.K) * 4 // x read by MulT
	if r.back {
		act = int64(s.M) * int64(s.N) * 4 // dy read by Mul
	}
	return KernelResult{
		Bench: "kernel", Case: r.c.String(), Op: op, M: s.M, K: s.K, N: s.N,
		DType: r.c.DType.String(), Format: r.c.Format, Sparsity: cfg.Sparsity,
		MedianMS: med, MinMS: times[0], MaxMS: times[len(times)-1],
		GBPerS:    float64(r.bytes) / med / 1e6,
		GBPS:      float64(r.bytes+act) / med / 1e6,
		GFLOPPerS: 2 * float64(s.M) * float64(s.K) * float64(s.N) / med / 1e6,
		Bytes:     r.bytes, BytesRatio: float64(r.bytes) / (float64(s.K) * float64(s.N) * 2),
		Copies: r.copies, Reps: len(times), Kernels: impl, Threads: runtime.GOMAXPROCS(0),
		Paths: CurrentPaths(),
	}
}

// weightBuilder makes one copy of the benchmark weight and its storage size.
func weightBuilder(c KernelCase, w []float32, s KernelShape) (func() (kernels.Matrix[float32], int64, error), error) {
	switch c {
	case KernelCase{"dense", F32}:
		return func() (kernels.Matrix[float32], int64, error) {
			return kernels.NewDense(slices.Clone(w), s.N, s.K), int64(len(w)) * 4, nil
		}, nil
	case KernelCase{"dense", BF16}:
		return func() (kernels.Matrix[float32], int64, error) {
			d := NewDenseBF16(w, s.N, s.K)
			return d, d.Bytes(), nil
		}, nil
	}
	if c.DType == DTypeNF4 {
		return func() (kernels.Matrix[float32], int64, error) {
			m, err := EncodeNF4(w, s.N, s.K, c.Format == "dense", true)
			if err != nil {
				return nil, 0, err
			}
			return m, m.Bytes(), nil
		}, nil
	}
	if c.Format != "bitmap" || c.DType.Size() == 0 {
		return nil, fmt.Errorf("bitmap: unknown benchmark case %v", c)
	}
	return func() (kernels.Matrix[float32], int64, error) {
		m, err := Encode(w, s.N, s.K, c.DType)
		if err != nil {
			return nil, 0, err
		}
		return m, m.Bytes(), nil
	}, nil
}

// Median is the median of sorted values (0 for none); the benchmarks of
// package trainer use it too.
func Median(sorted []float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}
