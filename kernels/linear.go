package kernels

import (
	"math/bits"
	"runtime"
	"sync"
	"unsafe"
)

// LinearForward computes y[N,Out] = x[N,In] Wᵀ + b, with W [Out,In] in the
// HuggingFace nn.Linear layout and b [Out] (nil for no bias). y is overwritten.
func LinearForward[T Float](y, x, w, b []T, n, in, out int) {
	checkLen("LinearForward x", x, n*in)
	checkLen("LinearForward w", w, out*in)
	checkLen("LinearForward y", y, n*out)
	beta := T(0)
	if b != nil {
		checkLen("LinearForward b", b, out)
		for r := 0; r < n; r++ {
			copy(y[r*out:(r+1)*out], b[:out])
		}
		beta = 1
	}
	// Outputs go to Gemm trimmed to their extent: at one row gonum's float32
	// GEMV (the purego backend) clears all of y when beta == 0.
	Gemm(false, true, n, out, in, 1, x, in, w, in, beta, y[:n*out], out)
}

// LinearBackward computes the gradients of LinearForward for the upstream
// gradient dy[N,Out]: dx[N,In] = dy W, dw[Out,In] = dyᵀ x and db[Out] = the sum
// of the rows of dy. Outputs are overwritten; any of them may be nil to skip it.
func LinearBackward[T Float](dx, dw, db, dy, x, w []T, n, in, out int) {
	checkLen("LinearBackward dy", dy, n*out)
	if dx != nil {
		checkLen("LinearBackward w", w, out*in)
		checkLen("LinearBackward dx", dx, n*in)
		Gemm(false, false, n, in, out, 1, dy, out, w, in, 0, dx[:n*in], in)
	}
	if dw != nil {
		checkLen("LinearBackward x", x, n*in)
		checkLen("LinearBackward dw", dw, out*in)
		Gemm(true, false, out, in, n, 1, dy, out, x, in, 0, dw[:out*in], in)
	}
	if db != nil {
		checkLen("LinearBackward db", db, out)
		sumRows(db[:out], dy, n, out)
	}
}

// sumRows writes the column sums of m [N,C] into dst [C], accumulating in
// float64.
func sumRows[T Float](dst, m []T, n, c int) {
	sumOverRows(dst, n, c, func(sums []float64, r, lo, hi int) {
		for j, v := range m[r*c+lo : r*c+hi] {
			sums[j] += float64(v)
		}
	})
}

// sumOverRows writes dst[j] = Σ_r term(r, j) for j < c, r < n, in float64 and
// in row order. The columns are split across goroutines; add(sums, r, lo, hi)
// must add term(r, j) to sums[j-lo] for j in [lo, hi).
func sumOverRows[T Float](dst []T, n, c int, add func(sums []float64, r, lo, hi int)) {
	parallelFor(c, n*c, func(lo, hi int) {
		buf := getScratch[float64](hi - lo)
		defer putScratch(buf)
		sums := *buf
		clear(sums)
		for r := 0; r < n; r++ {
			add(sums, r, lo, hi)
		}
		for j, s := range sums {
			dst[lo+j] = T(s)
		}
	})
}

// Shared helpers of the layer kernels: goroutine fan-out and scratch buffers.

// minParallelWork is the amount of work (roughly, element operations) below
// which splitting a loop across goroutines costs more than it saves.
const minParallelWork = 1 << 15

// parallelFor runs fn over [0, n) split into contiguous chunks, one per
// goroutine, using up to GOMAXPROCS goroutines but no more than
// work/minParallelWork (work is the total cost of the loop). The calling
// goroutine runs the first chunk. Chunks depend only on n and the worker
// count, and fn must make each index's result independent of the chunking, so
// results do not depend on scheduling.
func parallelFor(n, work int, fn func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), n, work/minParallelWork)
	if workers <= 1 {
		if n > 0 {
			fn(0, n)
		}
		return
	}
	fanOut(workers, func(w int) { fn(n*w/workers, n*(w+1)/workers) })
}

// scratchPools recycle temporary buffers so that kernels called every training
// step do not allocate in steady state. They are indexed by element size (4 or
// 8 bytes) and by size class: pool [e][c] holds buffers of capacity 2^c, so a
// request never receives a buffer too small for it.
var scratchPools [2][bits.UintSize]sync.Pool

// getScratch returns a buffer of length n with undefined contents; give it
// back with putScratch when done.
func getScratch[T Float](n int) *[]T {
	class := bits.Len(uint(max(n, 1) - 1))
	pool := &scratchPools[sizeIndex[T]()][class]
	if p, ok := pool.Get().(*[]T); ok {
		*p = (*p)[:n]
		return p
	}
	buf := make([]T, n, 1<<class)
	return &buf
}

// putScratch returns a buffer obtained from getScratch to its pool.
func putScratch[T Float](p *[]T) {
	scratchPools[sizeIndex[T]()][bits.Len(uint(cap(*p)))-1].Put(p)
}

// sizeIndex is 0 for 4-byte and 1 for 8-byte element types.
func sizeIndex[T Float]() int {
	if isFloat32[T]() {
		return 0
	}
	return 1
}

// isFloat32 reports whether T is a 4-byte float (float32 or a named float32).
func isFloat32[T Float]() bool {
	var zero T
	return unsafe.Sizeof(zero) == 4
}
