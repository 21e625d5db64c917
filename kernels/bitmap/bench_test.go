package bitmap

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// threadCPU is the CPU time of the calling OS thread: unlike wall time it
// does not count the time other processes on this shared 2-core machine take
// from the benchmark.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// BenchmarkRowKernels times each inner loop of each implementation on one
// goroutine with the weight hot in L2 (64 × 4096, 50% sparse): the compute
// throughput, without DRAM. cpu-ns/chunk uses the thread's CPU time.
func BenchmarkRowKernels(b *testing.B) {
	rows, cols := 64, 4096
	rng := rand.New(rand.NewPCG(1, 1))
	w := randomSparse(rng, rows, cols, 0.5)
	x := make([]float32, max(rows, cols)) // 64-byte aligned, as the products pass it
	copy(x, randomInput(rng, 1, len(x)))
	y := make([]float32, rows*cols)
	for _, ks := range kernelSets {
		for _, tm := range formatsUnder(b, ks, w, rows, cols) {
			op := tm.mat.(rowOps)
			for _, k := range []struct {
				name string
				run  func()
			}{
				{"dot", func() { op.dot(y, x, 0, rows) }},
				{"axpy", func() { op.axpy(y, x, 0, rows) }},
				{"decode", func() { op.decode(y, 0, rows) }},
			} {
				b.Run(fmt.Sprintf("%s/%s/%s", ks.name, tm.name, k.name), func(b *testing.B) {
					runtime.LockOSThread()
					defer runtime.UnlockOSThread()
					k.run()
					c0 := threadCPU()
					for b.Loop() {
						k.run()
					}
					cpu := threadCPU() - c0
					chunks := float64(b.N) * float64(rows*ChunksPerRow(cols))
					b.ReportMetric(float64(cpu.Nanoseconds())/chunks, "cpu-ns/chunk")
					b.ReportMetric(float64(b.N)*float64(rows*cols)/b.Elapsed().Seconds()/1e9, "Gweights/s")
				})
			}
		}
	}
}

// BenchmarkRowKernelsCold times the batch-1 dot of each implementation on
// one goroutine streaming 14336 × 4096 weights from DRAM (copies cycled
// through exceed 128 MB): one core's share of a cold GEMV, which is what the
// prefetch distance and the streams in flight decide. cpu-GB/s divides the
// weight bytes by the thread's CPU time, so other processes on a shared
// machine do not count.
func BenchmarkRowKernelsCold(b *testing.B) {
	if testing.Short() {
		b.Skip("large shapes")
	}
	rows, cols := 14336, 4096
	rng := rand.New(rand.NewPCG(3, 3))
	w := randomSparse(rng, rows, cols, 0.5)
	x := make([]float32, cols)
	copy(x, randomInput(rng, 1, cols))
	y := make([]float32, rows)
	for _, ks := range kernelSets {
		if ks == goKernels {
			continue
		}
		for _, f := range []struct {
			name  string
			build func() (rowOps, int64)
		}{
			{"bitmap-bf16", func() (rowOps, int64) {
				m, err := Encode(w, rows, cols, BF16)
				if err != nil {
					b.Fatal(err)
				}
				m.kern = ks
				return m, m.Bytes()
			}},
			{"dense-bf16", func() (rowOps, int64) {
				d := NewDenseBF16(w, rows, cols)
				d.kern = ks
				return d, d.Bytes()
			}},
		} {
			b.Run(ks.name+"/"+f.name, func(b *testing.B) {
				var copies []rowOps
				var bytes, total int64
				for total < 128<<20 {
					op, n := f.build()
					copies, bytes, total = append(copies, op), n, total+n
				}
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				i := 0
				c0 := threadCPU()
				for b.Loop() {
					copies[i%len(copies)].dot(y, x, 0, rows)
					i++
				}
				cpu := threadCPU() - c0
				b.ReportMetric(float64(bytes)*float64(b.N)/float64(cpu.Nanoseconds()), "cpu-GB/s")
			})
		}
	}
}

// BenchmarkMulT runs the public products at the protocol's 4096 × 4096 shape
// with batch 1, 16 and 512, weight hot (one copy; the cold-cache figures come
// from salr-bench kernels).
func BenchmarkMulT(b *testing.B) {
	if testing.Short() {
		b.Skip("large shapes")
	}
	rows, cols := 4096, 4096
	rng := rand.New(rand.NewPCG(2, 2))
	w := randomSparse(rng, rows, cols, 0.5)
	for _, n := range []int{1, 16, 512} {
		x := randomInput(rng, n, cols)
		y := make([]float32, n*rows)
		for _, tm := range formatsUnder(b, defaultKernels, w, rows, cols) {
			b.Run(fmt.Sprintf("n=%d/%s", n, tm.name), func(b *testing.B) {
				for b.Loop() {
					tm.mat.MulT(y, x, n)
				}
				b.ReportMetric(2*float64(n*rows*cols)/b.Elapsed().Seconds()*float64(b.N)/1e9, "GFLOP/s")
			})
		}
	}
}

// TestKernelBenchHarness runs the cold-cache harness on a tiny shape: every
// case reports sane numbers and dense bf16 is the speedup reference.
func TestKernelBenchHarness(t *testing.T) {
	var got []KernelResult
	cfg := KernelBenchConfig{
		Shapes:   []KernelShape{{1, 64, 48}, {3, 40, 32}},
		Cases:    []KernelCase{{"bitmap", BF16}, {"dense", F32}, {"dense", BF16}, {"bitmap", F16}},
		Sparsity: 0.5, Reps: 3, ColdBytes: 1 << 16,
	}
	for _, mode := range []struct{ backward, sequential bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		cfg.Transposed, cfg.Sequential = mode.backward, mode.sequential
		if err := RunKernelBench(context.Background(), cfg, func(r KernelResult) { got = append(got, r) }); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 32 {
		t.Fatalf("%d results, want 32", len(got))
	}
	for i, r := range got {
		if i%4 == 0 && (r.Format != "dense" || r.DType != "bf16" || r.Speedup != 1) {
			t.Errorf("result %d: %+v, want dense bf16 first with speedup 1", i, r)
		}
		if r.Bench != "kernel" || r.MedianMS <= 0 || r.GBPerS <= 0 || r.GFLOPPerS <= 0 || r.Copies < 2 || r.Speedup <= 0 || r.Reps != 3 {
			t.Errorf("result %d: %+v", i, r)
		}
		if r.Format == "bitmap" && r.DType == "bf16" && (r.BytesRatio < 0.5 || r.BytesRatio > 0.7) {
			t.Errorf("bitmap bf16 at 50%%: %.3f of dense bf16 bytes", r.BytesRatio)
		}
	}
}

func TestParseKernelShapesAndCases(t *testing.T) {
	s, err := ParseKernelShapes("1x4096x4096, 16x2x3")
	if err != nil || len(s) != 2 || s[1] != (KernelShape{16, 2, 3}) || s[0].String() != "1x4096x4096" {
		t.Fatalf("ParseKernelShapes: %v %v", s, err)
	}
	for _, bad := range []string{"1x2", "1x0x3", "ax2x3", ""} {
		if _, err := ParseKernelShapes(bad); err == nil {
			t.Errorf("ParseKernelShapes(%q) succeeded", bad)
		}
	}
	c, err := ParseKernelCases("dense-fp32,bitmap-fp16")
	if err != nil || len(c) != 2 || c[0] != (KernelCase{"dense", F32}) || c[1].String() != "bitmap-fp16" {
		t.Fatalf("ParseKernelCases: %v %v", c, err)
	}
	if c, err := ParseKernelCases("bitmap-nf4, dense-NF4"); err != nil || len(c) != 2 || c[0].String() != "bitmap-nf4" || c[1] != (KernelCase{"dense", DTypeNF4}) {
		t.Fatalf("ParseKernelCases(nf4): %v %v", c, err)
	}
	for _, bad := range []string{"dense-fp16", "csr-bf16", "bitmap", "bitmap-int8"} {
		if _, err := ParseKernelCases(bad); err == nil {
			t.Errorf("ParseKernelCases(%q) succeeded", bad)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		sorted []float64
		want   float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{1, 2, 10}, 2}, {[]float64{1, 2, 4, 10}, 3}} {
		if got := Median(c.sorted); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.sorted, got, c.want)
		}
	}
}

// BenchmarkNF4Dot times the batch-1 dot of dense-nf4 (64 × 4096, hot in L2,
// double-quantized scales) on each implementation with a fused nf4Dot, fused
// and through the decode path (the same set without nf4Dot), alternating.
func BenchmarkNF4Dot(b *testing.B) {
	rows, cols := 64, 4096
	rng := rand.New(rand.NewPCG(1, 1))
	w := randomSparse(rng, rows, cols, 0)
	x := make([]float32, cols)
	copy(x, randomInput(rng, 1, cols))
	y := make([]float32, rows)
	for _, ks := range kernelSets {
		if ks.nf4Dot == nil {
			continue
		}
		decoded := *ks
		decoded.nf4Dot = nil
		m, err := EncodeNF4(w, rows, cols, true, true)
		if err != nil {
			b.Fatal(err)
		}
		for _, set := range []*kernelSet{ks, &decoded, ks, &decoded} {
			mm := *m
			mm.kern = set
			path := map[bool]string{true: "fused", false: "decoded"}[set.nf4Dot != nil]
			b.Run(fmt.Sprintf("%s/dense-nf4/%s", ks.name, path), func(b *testing.B) {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				c0 := threadCPU()
				for b.Loop() {
					mm.dot(y, x, 0, rows)
				}
				chunks := float64(b.N) * float64(rows*ChunksPerRow(cols))
				b.ReportMetric(float64((threadCPU()-c0).Nanoseconds())/chunks, "cpu-ns/chunk")
			})
		}
	}
}
