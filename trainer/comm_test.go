package trainer

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/salr-go/salr/adapters"
	"github.com/salr-go/salr/datasets"
)

// fakeWorld is an in-process Comm of n ranks (goroutines): AllreduceSum
// waits for every rank's buffer and hands each the sum, taken in rank order.
type fakeWorld struct {
	n     int
	parts chan fakePart
	outs  []chan []float32
}

type fakePart struct {
	rank int
	buf  []float32
}

type fakeRank struct {
	w    *fakeWorld
	rank int
}

func newFakeWorld(n int) *fakeWorld {
	w := &fakeWorld{n: n, parts: make(chan fakePart), outs: make([]chan []float32, n)}
	for i := range w.outs {
		w.outs[i] = make(chan []float32)
	}
	go func() {
		for {
			bufs := make([][]float32, n)
			for range n {
				p, ok := <-w.parts
				if !ok {
					return
				}
				bufs[p.rank] = p.buf
			}
			sum := make([]float32, len(bufs[0]))
			for _, b := range bufs {
				for i, v := range b {
					sum[i] += v
				}
			}
			for _, o := range w.outs {
				o <- sum
			}
		}
	}()
	return w
}

func (r fakeRank) Rank() int { return r.rank }
func (r fakeRank) Size() int { return r.w.n }
func (r fakeRank) AllreduceSum(buf []float32) error {
	r.w.parts <- fakePart{r.rank, append([]float32(nil), buf...)}
	copy(buf, <-r.w.outs[r.rank])
	return nil
}

// trainRanks runs Train as n ranks of a fakeWorld (rank r with opts[r])
// and returns rank 0's error and summary; the others must return no summary.
func trainRanks(t *testing.T, opts []Options) (*Summary, error) {
	t.Helper()
	w := newFakeWorld(len(opts))
	defer close(w.parts)
	sums := make([]*Summary, len(opts))
	errs := make([]error, len(opts))
	var wg sync.WaitGroup
	for r := range opts {
		opts[r].Comm = fakeRank{w, r}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sums[r], errs[r] = Train(context.Background(), opts[r])
		}()
	}
	wg.Wait()
	for r := 1; r < len(opts); r++ {
		if sums[r] != nil || (errs[r] == nil) != (errs[0] == nil) {
			t.Fatalf("rank %d: summary %v, error %v; rank 0: error %v", r, sums[r], errs[r], errs[0])
		}
	}
	return sums[0], errs[0]
}

// checkSameAdapters fails the test unless the adapters of the runs in
// directories one (one process) and two (2 ranks) are equal up to float32
// summation order: within 1e-4 of the largest value.
func checkSameAdapters(t *testing.T, one, two string) {
	t.Helper()
	a, err := adapters.ReadNative(filepath.Join(one, AdapterDir, adapters.NativeFile))
	if err != nil {
		t.Fatal(err)
	}
	b, err := adapters.ReadNative(filepath.Join(two, AdapterDir, adapters.NativeFile))
	if err != nil {
		t.Fatal(err)
	}
	var maxAbs, maxDiff float64
	for name, fa := range a {
		fb := b[name]
		if fb == nil || len(fa.A) != len(fb.A) || len(fa.B) != len(fb.B) {
			t.Fatalf("%s: missing or of another shape in the 2-rank run", name)
		}
		for _, pair := range [][2][]float32{{fa.A, fb.A}, {fa.B, fb.B}} {
			for i, v := range pair[0] {
				maxAbs = max(maxAbs, math.Abs(float64(v)))
				maxDiff = max(maxDiff, math.Abs(float64(v-pair[1][i])))
			}
		}
	}
	t.Logf("max |difference| %.3g, max |value| %.3g", maxDiff, maxAbs)
	if len(a) == 0 || len(a) != len(b) || maxDiff > 1e-4*maxAbs {
		t.Errorf("1 process vs 2 ranks: %d vs %d adapters, max difference %g (max value %g)", len(a), len(b), maxDiff, maxAbs)
	}
}

// TestRanksTrainLikeOneProcess: 2 ranks, with gradient accumulation and
// dropout, stopped after 3 of 6 steps and resumed as 1 process, end with
// the adapters of one uninterrupted process up to float32 summation order.
func TestRanksTrainLikeOneProcess(t *testing.T) {
	root := t.TempDir()
	sets := []string{"train.max_steps=6", "train.grad_accum=2", "adapters.lora_dropout=0.1", "train.lr=3e-3"}
	ref := filepath.Join(root, "ref")
	if _, err := Train(context.Background(), Options{Config: tinyConfig(t, ref, sets...)}); err != nil {
		t.Fatal(err)
	}
	two := filepath.Join(root, "two")
	opts := []Options{{Config: tinyConfig(t, two, sets...), StopAfter: 3}, {Config: tinyConfig(t, two, sets...), StopAfter: 3}}
	if _, err := trainRanks(t, opts); err != ErrInterrupted {
		t.Fatalf("2 ranks, stopped: %v", err)
	}
	if _, err := Train(context.Background(), Options{Resume: two}); err != nil {
		t.Fatal(err)
	}
	checkSameAdapters(t, ref, two)
}

func TestRanksNeedADivisibleBatch(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	opts := []Options{{Config: tinyConfig(t, dir, "train.batch_size=3")}, {Config: tinyConfig(t, dir, "train.batch_size=3")}}
	_, err := trainRanks(t, opts)
	if err == nil || !strings.Contains(err.Error(), "train.batch_size 3 is not divisible by the 2 ranks") {
		t.Fatalf("error %v", err)
	}
}

func TestShard(t *testing.T) {
	b := datasets.Batch{Inputs: []int{1, 2, 3, 4, 5, 6}, Targets: []int{2, 3, 4, 5, 6, 7},
		Mask: []float32{0, 1, 1, 1, 0, 0}, Positions: []int{0, 1, 0, 1, 0, 1}, LossTokens: 3}
	s := shard(b, 3, 2, 1, 3)
	if !slices.Equal(s.Inputs, []int{3, 4}) || !slices.Equal(s.Targets, []int{4, 5}) || !slices.Equal(s.Positions, []int{0, 1}) || s.LossTokens != 2 {
		t.Fatalf("rank 1 of 3: %+v", s)
	}
	if s := shard(b, 3, 2, 2, 3); s.LossTokens != 0 || !slices.Equal(s.Inputs, []int{5, 6}) {
		t.Fatalf("rank 2 of 3: %+v", s)
	}
}

// countingRank is a Comm of 2 ranks whose other rank holds the same values:
// AllreduceSum doubles buf and records its length.
type countingRank struct{ calls *[]int }

func (countingRank) Rank() int { return 0 }
func (countingRank) Size() int { return 2 }
func (c countingRank) AllreduceSum(buf []float32) error {
	*c.calls = append(*c.calls, len(buf))
	for i := range buf {
		buf[i] *= 2
	}
	return nil
}

// TestReduceGradsBuckets: small gradients share buckets of at most
// bucketFloats values with the extra values first, a larger one is reduced
// in place in pieces, and every value is summed exactly once.
func TestReduceGradsBuckets(t *testing.T) {
	sizes := []int{3, bucketFloats - 10, 20, 2*bucketFloats + 5, 7}
	params := make([]Param, len(sizes))
	for i, n := range sizes {
		params[i].Grad = make([]float32, n)
		for j := range params[i].Grad {
			params[i].Grad[j] = float32(i + 1)
		}
	}
	var calls []int
	s := &stepper{comm: countingRank{&calls}}
	extra := []float32{1.5, 0}
	if err := s.reduceGrads(params, extra); err != nil {
		t.Fatal(err)
	}
	// extra+3+(bucketFloats-10) fit in one bucket; 20 starts the next, which
	// the large gradient flushes; then its three pieces; then 7.
	want := []int{2 + 3 + bucketFloats - 10, 20, bucketFloats, bucketFloats, 5, 7}
	if !slices.Equal(calls, want) {
		t.Errorf("allreduce calls of %v values, want %v", calls, want)
	}
	if extra[0] != 3 || extra[1] != 0 {
		t.Errorf("extra values %v, want [3 0]", extra)
	}
	for i, p := range params {
		for j, g := range p.Grad {
			if g != float32(2*(i+1)) {
				t.Fatalf("gradient %d[%d] = %v, want %v", i, j, g, 2*(i+1))
			}
		}
	}
}
