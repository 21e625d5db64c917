package bitmap

import (
	"runtime"
	"sync"
	"unsafe"

	"github.com/salr-go/salr/kernels"
)

// rowOps is what the drivers below need from a matrix format: its shape and
// the three row-range kernels of its kernelSet.
type rowOps interface {
	dims() (rows, cols int)
	// dot sets y[i] = W[r0+i, :] · x.
	dot(y, x []float32, r0, r1 int)
	// axpy adds Σ_i dy[i] W[r0+i, :] to dx.
	axpy(dx, dy []float32, r0, r1 int)
	// decode writes rows [r0, r1) as dense fp32 into dst.
	decode(dst []float32, r0, r1 int)
}

// minParallelWeights is the matrix size below which a product runs on the
// calling goroutine alone (splitting costs a few microseconds).
const minParallelWeights = 1 << 16

// PanelElems is the target number of fp32 values in one decoded panel of the
// batched pipeline (PanelRows = PanelElems/Cols rounded to a multiple of 16).
var PanelElems = 1 << 21

// PipelineDepth is the number of panel buffers in the batched pipeline's
// ring. 0 turns the overlap off: each panel is decoded on all cores, then
// multiplied (kept for comparison in benchmarks).
var PipelineDepth = 2

// mulT is y (n×Rows) = x (n×Cols) Wᵀ: row-split GEMV at n == 1, the panel
// pipeline into kernels.Gemm otherwise.
func mulT(op rowOps, what string, y, x []float32, n int) {
	rows, cols := op.dims()
	checkLen(what, "x", x, n, cols)
	checkLen(what, "y", y, n, rows)
	switch {
	case n == 0:
	case n == 1:
		// Every row reads all of x, one 64-byte vector per chunk: keep it
		// cache-line aligned so that no load is split.
		xa, buf := aligned(cols)
		copy(xa, x)
		runSplit(workersFor(rows, cols), rows, func(_, r0, r1 int) { op.dot(y[r0:r1], xa, r0, r1) })
		putBuffer(&vectors, buf)
	default:
		pipeline(op, func(panel []float32, r0, r1 int) {
			// y[:, r0:r1] = x · panelᵀ
			kernels.Gemm(false, true, n, r1-r0, cols, 1, x, cols, panel, cols, 0, y[r0:], rows)
		})
	}
}

// mul is dx (n×Cols) = dy (n×Rows) W: row-split axpy with one partial sum per
// worker at n == 1, the panel pipeline accumulating into dx otherwise.
func mul(op rowOps, what string, dx, dy []float32, n int) {
	rows, cols := op.dims()
	checkLen(what, "dy", dy, n, rows)
	checkLen(what, "dx", dx, n, cols)
	switch {
	case n == 0:
	case n == 1:
		// One aligned partial sum per worker, added into dx at the end.
		workers := workersFor(rows, cols)
		partials := make([][]float32, workers)
		bufs := make([][]float32, workers)
		runSplit(workers, rows, func(w, r0, r1 int) {
			partials[w], bufs[w] = aligned(cols)
			clear(partials[w])
			op.axpy(partials[w], dy[r0:r1], r0, r1)
		})
		copy(dx, partials[0])
		for _, p := range partials[1:] {
			for j, v := range p {
				dx[j] += v
			}
		}
		for _, b := range bufs {
			putBuffer(&vectors, b)
		}
	default:
		var beta float32
		pipeline(op, func(panel []float32, r0, r1 int) {
			// dx += dy[:, r0:r1] · panel (overwrite on the first panel)
			kernels.Gemm(false, false, n, cols, r1-r0, 1, dy[r0:], rows, panel, cols, beta, dx, cols)
			beta = 1
		})
	}
}

// decodeAll writes the whole matrix densely into dst, rows split across cores.
func decodeAll(op rowOps, dst []float32) {
	rows, _ := op.dims()
	decodeRange(op, dst, 0, rows)
}

// decodeRange writes rows [r0, r1) densely into dst, split across cores.
func decodeRange(op rowOps, dst []float32, r0, r1 int) {
	_, cols := op.dims()
	runSplit(workersFor(r1-r0, cols), r1-r0, func(_, a, b int) {
		op.decode(dst[a*cols:b*cols], r0+a, r0+b)
	})
}

// checkLen panics when s holds fewer than n rows of width values.
func checkLen(what, name string, s []float32, n, width int) {
	if n < 0 {
		panic("bitmap: " + what + ": negative n")
	}
	if len(s) < n*width {
		panic("bitmap: " + what + ": " + name + " shorter than n rows")
	}
}

// workersFor is the number of goroutines a rows × cols product is split over.
func workersFor(rows, cols int) int {
	return max(1, min(runtime.GOMAXPROCS(0), rows, rows*cols/minParallelWeights))
}

// runSplit cuts [0, rows) into workers contiguous ranges and runs work(w, r0,
// r1) on each, range 0 on the calling goroutine.
func runSplit(workers, rows int, work func(w, r0, r1 int)) {
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		wg.Go(func() { work(w, rows*w/workers, rows*(w+1)/workers) })
	}
	work(0, 0, rows/workers)
	wg.Wait()
}

// panelRows is the number of rows per decoded panel for a rows × cols matrix.
func panelRows(rows, cols int) int {
	p := PanelElems / cols / ChunkCols * ChunkCols
	return max(ChunkCols, min(p, rows))
}

// pipeline decodes W panel by panel into fp32 buffers and calls consume on
// each panel in row order on the calling goroutine. A producer goroutine
// decodes panel k+1 into the ring of PipelineDepth buffers while consume runs
// on panel k.
func pipeline(op rowOps, consume func(panel []float32, r0, r1 int)) {
	rows, cols := op.dims()
	pr := panelRows(rows, cols)
	if pr >= rows || PipelineDepth <= 0 {
		buf := getBuffer(&panels, min(pr, rows)*cols)
		for r0 := 0; r0 < rows; r0 += pr {
			r1 := min(r0+pr, rows)
			decodeRange(op, buf[:(r1-r0)*cols], r0, r1)
			consume(buf[:(r1-r0)*cols], r0, r1)
		}
		putBuffer(&panels, buf)
		return
	}
	type panel struct {
		buf    []float32
		r0, r1 int
	}
	depth := max(1, PipelineDepth)
	free := make(chan []float32, depth)
	ready := make(chan panel, depth)
	for range depth {
		free <- getBuffer(&panels, pr*cols)
	}
	go func() {
		for r0 := 0; r0 < rows; r0 += pr {
			r1 := min(r0+pr, rows)
			buf := (<-free)[:(r1-r0)*cols]
			op.decode(buf, r0, r1)
			ready <- panel{buf, r0, r1}
		}
		close(ready)
	}()
	for p := range ready {
		consume(p.buf, p.r0, p.r1)
		free <- p.buf
	}
	for range depth {
		putBuffer(&panels, <-free)
	}
}

// panels and vectors recycle scratch buffers (*[]float32) between products:
// decoded panels (megabytes) and aligned vectors (one row of x or dx).
var panels, vectors sync.Pool

func getBuffer(pool *sync.Pool, n int) []float32 {
	if b, ok := pool.Get().(*[]float32); ok && cap(*b) >= n {
		return (*b)[:n]
	}
	return make([]float32, n)
}

func putBuffer(pool *sync.Pool, b []float32) { pool.Put(&b) }

// aligned returns n float32s starting on a 64-byte boundary, inside a buffer
// of the vectors pool to hand back with putBuffer(&vectors, buf).
func aligned(n int) (s, buf []float32) {
	const lanes = 64 / 4
	buf = getBuffer(&vectors, n+lanes)
	skip := int(-uintptr(unsafe.Pointer(unsafe.SliceData(buf))) % 64 / 4)
	return buf[skip : skip+n], buf
}
