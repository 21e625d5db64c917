package bitmap

import (
	"runtime"
	"sync"
	"sync/atomic"
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
	// dotBatch sets yT[i*nb+b] = W[r0+i, :] · x_b for the nb rows of x in
	// the chunk-major layout of packBatch.
	dotBatch(yT, xT []float32, nb, r0, r1 int)
	// mulTBatch computes y = x Wᵀ for n > maxBatch with the kernel set's own
	// batched product, if it has one for this matrix, and reports whether it did.
	mulTBatch(y, x []float32, n int) bool
	// mulBatch is the same for dx = dy W.
	mulBatch(dx, dy []float32, n int) bool
}

// maxBatch is the largest n that MulT serves with the small-batch kernels
// (each chunk of W decoded once for all rows of x); larger batches go through
// the panel pipeline and the BLAS.
const maxBatch = 16

// batchSize is the small-batch kernel size n is padded up to: 4, 8, 12 or 16.
func batchSize(n int) int { return (n + 3) / 4 * 4 }

// packBatch lays out the n × cols rows of x chunk-major for the small-batch
// kernels: for chunk c, the 16 columns of row 0, then of row 1, ... up to row
// nb-1, zero past the last column and for the padding rows n..nb-1.
func packBatch(xT, x []float32, n, nb, cols int) {
	clear(xT)
	for b := 0; b < n; b++ {
		row := x[b*cols : (b+1)*cols]
		for c := 0; c*ChunkCols < cols; c++ {
			copy(xT[(c*nb+b)*ChunkCols:(c*nb+b+1)*ChunkCols], row[c*ChunkCols:min(cols, (c+1)*ChunkCols)])
		}
	}
}

// minParallelWeights is the matrix size below which a product runs on the
// calling goroutine alone (splitting costs a few microseconds).
const minParallelWeights = 1 << 16

// PanelElems is the target number of fp32 values in one decoded panel of the
// batched pipeline (panel rows = PanelElems/Cols rounded down to a multiple
// of 16, at least 16): 32 MB, so 2048 rows at 4096 columns and 576 at 14336.
// Each panel is one BLAS call that repacks all of x, so panels must not be
// thin. Like PipelineDepth it is a tuning knob for benchmarks: set it before
// products run, never while they do.
var PanelElems = 1 << 23

// PipelineDepth is the number of panel buffers in the batched pipeline's
// ring. 0 turns the overlap off: each panel is decoded on all cores, then
// multiplied (kept for comparison in benchmarks).
var PipelineDepth = 2

// BF16Batches lets a kernel set with its own batched products of bf16
// weights (avx512bf16) run MulT and Mul above maxBatch rows with x or dY
// rounded to bf16, which adds up to 2⁻⁸ Σ|w||x| to their error; false keeps
// them on the panel pipeline, in fp32 up to the weights' own rounding (e.g.
// for training in fp32 precision). Like PanelElems, set it before products
// run, never while they do.
var BF16Batches = true

// pipelinePanels counts the panels consumed by pipeline, [0] decoded then
// multiplied (no overlap), [1] through the producer ring, so that tests can
// check which path a product took.
var pipelinePanels [2]atomic.Int64

// mulT is y (n×Rows) = x (n×Cols) Wᵀ: row-split GEMV at n == 1, the
// small-batch kernels up to maxBatch, beyond that the kernel set's batched
// product where it has one, else the panel pipeline into kernels.Gemm.
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
		workers, grain := blocking(rows, cols)
		runBlocks(workers, rows, grain, func(_, r0, r1 int) { op.dot(y[r0:r1], xa, r0, r1) })
		putBuffer(&vectors, buf)
	case n <= maxBatch:
		// Each chunk of W decoded once for the whole batch.
		nb := batchSize(n)
		xT, xbuf := aligned(ChunksPerRow(cols) * nb * ChunkCols)
		packBatch(xT, x, n, nb, cols)
		yT, ybuf := aligned(rows * nb)
		workers, grain := blocking(rows, cols*nb)
		runBlocks(workers, rows, grain, func(_, r0, r1 int) { op.dotBatch(yT[r0*nb:r1*nb], xT, nb, r0, r1) })
		for b := 0; b < n; b++ {
			for r := range rows {
				y[b*rows+r] = yT[r*nb+b]
			}
		}
		putBuffer(&vectors, xbuf)
		putBuffer(&vectors, ybuf)
	case BF16Batches && op.mulTBatch(y, x, n): // the kernel set's own batched product, if any
	default:
		pipeline(op, func(panel []float32, r0, r1 int) {
			// y[:, r0:r1] = x · panelᵀ
			kernels.Gemm(false, true, n, r1-r0, cols, 1, x, cols, panel, cols, 0, y[r0:], rows)
		})
	}
}

// mul is dx (n×Cols) = dy (n×Rows) W: row-split axpy with one partial sum per
// block of rows at n == 1, above maxBatch the kernel set's batched product
// where it has one, the panel pipeline accumulating into dx otherwise.
func mul(op rowOps, what string, dx, dy []float32, n int) {
	rows, cols := op.dims()
	checkLen(what, "dy", dy, n, rows)
	checkLen(what, "dx", dx, n, cols)
	switch {
	case n == 0:
	case n == 1:
		// One aligned partial sum per block of rows, added into dx in block
		// order at the end (so the result does not depend on scheduling).
		workers, grain := blocking(rows, cols)
		blocks := (rows + grain - 1) / grain
		partials := make([][]float32, blocks)
		bufs := make([][]float32, blocks)
		runBlocks(workers, rows, grain, func(b, r0, r1 int) {
			partials[b], bufs[b] = aligned(cols)
			clear(partials[b])
			op.axpy(partials[b], dy[r0:r1], r0, r1)
		})
		copy(dx, partials[0])
		for b, p := range partials[1:] {
			for j, v := range p {
				dx[j] += v
			}
			putBuffer(&vectors, bufs[b+1])
		}
		putBuffer(&vectors, bufs[0])
	case n > maxBatch && BF16Batches && op.mulBatch(dx, dy, n): // the kernel set's own batched product, if any
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
	workers, grain := blocking(r1-r0, cols)
	runBlocks(workers, r1-r0, grain, func(_, a, b int) {
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

// blocksPerWorker is how many blocks of rows each worker gets on average:
// with blocks handed out on demand, a core that other processes slow down
// takes fewer of them instead of holding up the whole product.
const blocksPerWorker = 8

// blocking returns the number of goroutines a rows × cols product runs on and
// the rows per block (all rows in one block when it runs on one goroutine).
func blocking(rows, cols int) (workers, grain int) {
	workers = max(1, min(runtime.GOMAXPROCS(0), rows, rows*cols/minParallelWeights))
	if workers == 1 {
		return 1, max(rows, 1)
	}
	return workers, max(1, (rows+workers*blocksPerWorker-1)/(workers*blocksPerWorker))
}

// runBlocks runs work(b, r0, r1) on every block b of grain rows of [0, rows),
// on `workers` goroutines (one of them the caller) that take the next block
// from a shared counter until none is left.
func runBlocks(workers, rows, grain int, work func(b, r0, r1 int)) {
	var next atomic.Int64
	loop := func() {
		for {
			b := int(next.Add(1)) - 1
			r0 := b * grain
			if r0 >= rows {
				return
			}
			work(b, r0, min(r0+grain, rows))
		}
	}
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		wg.Go(loop)
	}
	loop()
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
			pipelinePanels[0].Add(1)
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
		pipelinePanels[1].Add(1)
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
