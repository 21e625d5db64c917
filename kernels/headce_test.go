package kernels

import (
	"fmt"
	"math"
	"testing"
)

// unfusedHeadCrossEntropy is the reference: the logits by LinearForward, then
// CrossEntropyForward/Backward and LinearBackward's dx.
func unfusedHeadCrossEntropy[T Float](w, x []T, n, c, v int, targets []int, mask []T, dloss T) (T, []T) {
	logits := make([]T, n*v)
	LinearForward(logits, x, w, nil, n, c, v)
	loss := CrossEntropyForward(logits, n, v, targets, mask)
	CrossEntropyBackward(logits, logits, n, v, targets, mask, dloss)
	dx := make([]T, n*c)
	LinearBackward(dx, nil, nil, logits, x, w, n, c, v)
	return loss, dx
}

// opaqueMatrix hides a Dense matrix's type, so that the head kernels take
// their path for any Matrix.
type opaqueMatrix[T Float] struct{ Matrix[T] }

// headChunking is a way of cutting the head's work: blocks of at most
// rowBlock rows against chunks of `chunk` vocabulary entries (dense path), or
// chunks of `chunk` rows against the whole vocabulary (Matrix path).
type headChunking struct {
	dense           bool
	rowBlock, chunk int
}

func (h headChunking) String() string {
	if h.dense {
		return fmt.Sprintf("dense, %d-row blocks, %d-token chunks", h.rowBlock, h.chunk)
	}
	return fmt.Sprintf("Matrix, %d-row chunks", h.chunk)
}

// headChunkings covers one block and one chunk, several of either, and
// single rows or tokens, for a vocabulary of v.
func headChunkings(n, v int) []headChunking {
	return []headChunking{
		{true, n, v}, {true, n, 4}, {true, 5, 7}, {true, 1, 3}, {true, 2, v},
		{false, 0, n}, {false, 0, 3}, {false, 0, 1},
	}
}

// with returns the head matrix to use and runs fn with the chunk sizes set.
func (h headChunking) with(w []float64, v, c int, fn func(head func() Matrix[float64], head32 func() Matrix[float32])) {
	savedElems, savedBlock, savedMin := headChunkElems, headRowBlock, headMinVocabChunk
	defer func() { headChunkElems, headRowBlock, headMinVocabChunk = savedElems, savedBlock, savedMin }()
	w32 := to32(w)
	if h.dense {
		headRowBlock, headMinVocabChunk = h.rowBlock, 1
		headChunkElems = h.rowBlock * h.chunk
		fn(func() Matrix[float64] { return NewDense(w, v, c) }, func() Matrix[float32] { return NewDense(w32, v, c) })
		return
	}
	headChunkElems = h.chunk * v
	fn(func() Matrix[float64] { return opaqueMatrix[float64]{NewDense(w, v, c)} },
		func() Matrix[float32] { return opaqueMatrix[float32]{NewDense(w32, v, c)} })
}

func TestHeadCrossEntropyMatchesUnfused(t *testing.T) {
	rng := testRand(120)
	const n, c, v = 13, 6, 29
	x, w := randNormal(rng, n*c, 1), randNormal(rng, v*c, 1)
	targets := make([]int, n)
	for r := range targets {
		targets[r] = (r * 11) % v
	}
	masks := map[string][]float64{
		"nil":       nil,
		"ones":      {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
		"scattered": {1, 0, 1, 1, 0, 0, 1, 0.5, 1, 1, 1, 0, 1}, // gathered chunks
		"prefix":    {0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1},   // contiguous, offset
	}
	const dloss = 1.3
	for name, mask := range masks {
		tgt := append([]int(nil), targets...)
		for r, m := range mask {
			if m == 0 {
				tgt[r] = -100 // never read
			}
		}
		wantLoss, wantDX := unfusedHeadCrossEntropy(w, x, n, c, v, tgt, mask, dloss)
		_, wantDX1 := unfusedHeadCrossEntropy(w, x, n, c, v, tgt, mask, 1)
		for _, chunking := range headChunkings(n, v) {
			label := fmt.Sprintf("mask %s, %v", name, chunking)
			chunking.with(w, v, c, func(head func() Matrix[float64], head32 func() Matrix[float32]) {
				if got := HeadCrossEntropyForward(head(), x, n, tgt, mask); math.Abs(got-wantLoss) > 1e-12 {
					t.Fatalf("%s: loss %v, want %v", label, got, wantLoss)
				}
				dx := randNormal(rng, n*c, 1) // overwritten, including the rows of weight 0
				HeadCrossEntropyBackward(dx, head(), x, n, tgt, mask, dloss)
				assertClose(t, label+": dx", dx, wantDX, 1e-12)
				dx = randNormal(rng, n*c, 1)
				if got := HeadCrossEntropyForwardBackward(dx, head(), x, n, tgt, mask); math.Abs(got-wantLoss) > 1e-12 {
					t.Fatalf("%s: ForwardBackward loss %v, want %v", label, got, wantLoss)
				}
				assertClose(t, label+": ForwardBackward dx", dx, wantDX1, 1e-12)

				x32, m32 := to32(x), to32(mask)
				if mask == nil {
					m32 = nil
				}
				if got := HeadCrossEntropyForward(head32(), x32, n, tgt, m32); math.Abs(float64(got)-wantLoss) > 1e-5 {
					t.Fatalf("%s: f32 loss %v, want %v", label, got, wantLoss)
				}
				dx32 := make([]float32, n*c)
				HeadCrossEntropyBackward(dx32, head32(), x32, n, tgt, m32, dloss)
				assertClose(t, label+": f32 dx", dx32, wantDX, 1e-5)
			})
		}
	}
}

func TestHeadCrossEntropyGradient(t *testing.T) {
	rng := testRand(121)
	const n, c, v = 7, 5, 11
	x, w := randNormal(rng, n*c, 1.5), randNormal(rng, v*c, 1)
	targets := []int{3, 10, -1, 0, 7, 7, 2}
	mask := []float64{1, 0.5, 0, 1, 1, 1, 1}
	const dloss = 0.8
	for _, chunking := range []headChunking{{true, 3, 4}, {false, 0, 2}} {
		chunking.with(w, v, c, func(head func() Matrix[float64], _ func() Matrix[float32]) {
			dx := make([]float64, n*c)
			HeadCrossEntropyBackward(dx, head(), x, n, targets, mask, dloss)
			gradCheck(t, fmt.Sprintf("HeadCrossEntropy dx, %v", chunking), x, dx, func() float64 {
				return dloss * HeadCrossEntropyForward(head(), x, n, targets, mask)
			}, gradTol)
		})
	}
}

func TestHeadCrossEntropyEdges(t *testing.T) {
	rng := testRand(122)
	const n, c, v = 4, 3, 5
	x, w := randNormal(rng, n*c, 1), NewDense(randNormal(rng, v*c, 1), v, c)
	zeros := make([]float64, n)
	if got := HeadCrossEntropyForward(w, x, n, []int{-1, -1, -1, -1}, zeros); got != 0 {
		t.Fatalf("all-zero mask: loss %v, want 0", got)
	}
	dx := randNormal(rng, n*c, 1)
	HeadCrossEntropyBackward(dx, w, x, n, []int{-1, -1, -1, -1}, zeros, 1)
	assertClose(t, "all-zero mask dx", dx, make([]float64, n*c), 0)
	dx = randNormal(rng, n*c, 1)
	if got := HeadCrossEntropyForwardBackward(dx, w, x, n, []int{-1, -1, -1, -1}, zeros); got != 0 {
		t.Fatalf("all-zero mask: ForwardBackward loss %v, want 0", got)
	}
	assertClose(t, "all-zero mask ForwardBackward dx", dx, make([]float64, n*c), 0)
	if got := HeadCrossEntropyForward(w, x, 0, nil, []float64(nil)); got != 0 {
		t.Fatalf("no rows: loss %v, want 0", got)
	}
	expectPanic(t, "target out of range", func() { HeadCrossEntropyForward(w, x, n, []int{0, 5, 0, 0}, nil) })
	expectPanic(t, "short x", func() { HeadCrossEntropyForward(w, x[:n*c-1], n, []int{0, 0, 0, 0}, nil) })
	expectPanic(t, "short dx", func() { HeadCrossEntropyBackward(dx[:1], w, x, n, []int{0, 0, 0, 0}, nil, 1) })
	expectPanic(t, "ForwardBackward target out of range", func() {
		HeadCrossEntropyForwardBackward(dx, w, x, n, []int{0, 0, -3, 0}, nil)
	})
}

// BenchmarkHeadCrossEntropy is one training step's LM head and loss at the
// bench-60M shape (x [1024, 512], W [32000, 512]): forward and backward (dx),
// fused (three products by W), in one pass (two products) and unfused
// (LinearForward + CrossEntropy + LinearBackward, two products and the full
// logits).
func BenchmarkHeadCrossEntropy(b *testing.B) {
	n, c, v := bench60MRows, bench60MHidden, bench60MVocab
	x, w := randomFloat32(1, n*c, 1), randomFloat32(2, v*c, 0.05)
	dx := make([]float32, n*c)
	targets, mask := make([]int, n), make([]float32, n)
	for r := range targets {
		targets[r], mask[r] = (r*7919)%v, 1
	}
	head := NewDense(w, v, c)
	b.Run("fused", func(b *testing.B) {
		for b.Loop() {
			HeadCrossEntropyForward(head, x, n, targets, mask)
			HeadCrossEntropyBackward(dx, head, x, n, targets, mask, 1)
		}
	})
	b.Run("one-pass", func(b *testing.B) {
		for b.Loop() {
			HeadCrossEntropyForwardBackward(dx, head, x, n, targets, mask)
		}
	})
	b.Run("unfused", func(b *testing.B) {
		logits := make([]float32, n*v)
		for b.Loop() {
			LinearForward(logits, x, w, nil, n, c, v)
			CrossEntropyForward(logits, n, v, targets, mask)
			CrossEntropyBackward(logits, logits, n, v, targets, mask, 1)
			LinearBackward(dx, nil, nil, logits, x, w, n, c, v)
		}
	})
}
