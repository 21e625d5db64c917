package kernels

import (
	"math"
	"math/bits"
	"unsafe"
)

// The language-model head fused with the cross-entropy loss. The logits of a
// training batch are N×V (1024×32000 floats, 131 MB, at the bench-60M shape,
// and as much again for their gradient); these kernels keep one chunk of them
// alive instead, and skip the rows the mask ignores.
//
// A dense head is processed a block of rows against a chunk of the
// vocabulary at a time, with a running (online) softmax per row: when a chunk
// raises a row's maximum m, the row's running sum s = Σ exp(logit - m) and its
// gradient accumulator A = Σ exp(logit - m)·W[v] are rescaled by exp(m_old -
// m_new). At the end, loss = m + log s - logit[target] and
// dx = g·(A/s - W[target]). Both products by W then have all the rows of the
// block (efficient GEMMs) and each part of W is read once per pass. Any other
// Matrix is processed by chunks of rows against the whole vocabulary.

// HeadCrossEntropyForward returns the masked mean next-token loss of the
// logits x Wᵀ, for x [N,C] and the head W [V,C] (W.Rows() = V, W.Cols() = C):
//
//	Σ_r mask[r]·(logsumexp(x[r] Wᵀ) - x[r]·W[targets[r]]) / Σ_r mask[r]
//
// the value of CrossEntropyForward on LinearForward's logits (per-row losses
// in float64, summed in row order), and 0 when Σ mask = 0, computed without
// the N×V logits (see headChunkElems). Rows of weight 0 are skipped (not read,
// their targets may be anything). A nil mask weighs every row 1; a target
// outside [0, V) on a weighted row panics.
func HeadCrossEntropyForward[T Float](w Matrix[T], x []T, n int, targets []int, mask []T) T {
	h := newHeadPass("HeadCrossEntropyForward", w, x, n, targets, mask)
	if h.total == 0 {
		return 0
	}
	losses := getScratch[float64](n)
	defer putScratch(losses)
	h.losses = *losses
	h.run()
	return T(weightedMean(h.losses, mask, h.total))
}

// HeadCrossEntropyBackward writes dx [N,C] (overwritten; rows of weight 0
// become zero), the gradient of HeadCrossEntropyForward with respect to x
// scaled by the upstream gradient dloss:
//
//	dx = dlogits W,  dlogits[r] = dloss · mask[r]/Σmask · (softmax(x[r] Wᵀ) - onehot(targets[r]))
//
// It recomputes the logits chunk by chunk, as the forward pass does. dx must
// not overlap x. W is frozen: there is no gradient for it.
func HeadCrossEntropyBackward[T Float](dx []T, w Matrix[T], x []T, n int, targets []int, mask []T, dloss T) {
	h := newHeadPass("HeadCrossEntropyBackward", w, x, n, targets, mask)
	h.dx, h.dloss = dx, float64(dloss)
	h.run()
}

// HeadCrossEntropyForwardBackward returns the loss of HeadCrossEntropyForward
// and writes dx, the gradient HeadCrossEntropyBackward gives for dloss = 1,
// computing each chunk's logits once: two products by W instead of the three
// of a forward and a backward call.
func HeadCrossEntropyForwardBackward[T Float](dx []T, w Matrix[T], x []T, n int, targets []int, mask []T) T {
	h := newHeadPass("HeadCrossEntropyForwardBackward", w, x, n, targets, mask)
	losses := getScratch[float64](n)
	defer putScratch(losses)
	h.losses, h.dx, h.dloss = *losses, dx, 1
	h.run()
	if h.total == 0 {
		return 0
	}
	return T(weightedMean(h.losses, mask, h.total))
}

// Chunk sizes (variables so that tests can force small ones).
var (
	// headChunkElems bounds the logits computed at once: 2²³ elements
	// (32 MB of float32), e.g. 1024 rows × 8192 tokens. Smaller chunks make
	// less efficient GEMMs (at the bench-60M shape, forward and backward in
	// one pass take about 1.2 times as long with 2²² as with 2²⁴).
	headChunkElems = 1 << 23
	// headRowBlock bounds the rows processed together against a dense head.
	headRowBlock = 2048
	// headMinVocabChunk is the narrowest vocabulary chunk of a dense head
	// (narrower ones make inefficient GEMMs).
	headMinVocabChunk = 256
)

// headPass is one pass of the fused head over the weighted rows of x. It
// stores the per-row losses in losses (when non-nil) and writes dx (when
// non-nil), the gradient for the upstream gradient dloss.
type headPass[T Float] struct {
	w       Matrix[T]
	x       []T
	n       int
	targets []int
	mask    []T
	total   float64 // Σ mask

	losses []float64
	dx     []T
	dloss  float64
}

// newHeadPass validates the shapes and the targets of weighted rows.
func newHeadPass[T Float](fn string, w Matrix[T], x []T, n int, targets []int, mask []T) *headPass[T] {
	checkLen(fn+" x", x, n*w.Cols())
	total := checkTargets(fn, n, w.Rows(), targets, mask)
	return &headPass[T]{w: w, x: x, n: n, targets: targets, mask: mask, total: total}
}

// rowGrad is the factor g = dloss·mask[r]/Σmask of row r's gradient.
func (h *headPass[T]) rowGrad(r int) float64 { return h.dloss * rowWeight(h.mask, r) / h.total }

// run computes the losses and the gradient block by block.
func (h *headPass[T]) run() {
	c, v := h.w.Cols(), h.w.Rows()
	if h.dx != nil {
		checkLen("HeadCrossEntropy dx", h.dx, h.n*c)
		for r := 0; r < h.n; r++ {
			if rowWeight(h.mask, r) == 0 || h.total == 0 {
				clear(h.dx[r*c : (r+1)*c])
			}
		}
	}
	if h.total == 0 {
		return
	}
	dense, isDense := h.w.(*Dense[T])
	blockRows := headRowBlock
	if !isDense {
		blockRows = headChunkElems / max(v, 1)
	}
	blockRows = max(1, min(h.n, blockRows))
	xBuf := getScratch[T](blockRows * c)
	defer putScratch(xBuf)
	var gradBuf *[]T
	if h.dx != nil {
		gradBuf = getScratch[T](blockRows * c)
		defer putScratch(gradBuf)
	}

	rows := make([]int, 0, blockRows)
	flush := func() {
		k := len(rows)
		// The block's rows of x and of dx: slices of x and dx when the rows
		// are contiguous, else gathered into (and scattered from) scratch.
		together := contiguous(rows)
		var xb, grad []T
		if together {
			xb = h.x[rows[0]*c : (rows[0]+k)*c]
			if h.dx != nil {
				grad = h.dx[rows[0]*c : (rows[0]+k)*c]
			}
		} else {
			xb = (*xBuf)[:k*c]
			for i, r := range rows {
				copy(xb[i*c:(i+1)*c], h.x[r*c:(r+1)*c])
			}
			if h.dx != nil {
				grad = (*gradBuf)[:k*c]
			}
		}
		if isDense {
			h.denseBlock(dense, rows, xb, grad)
		} else {
			h.matrixBlock(rows, xb, grad)
		}
		if grad != nil && !together {
			for i, r := range rows {
				copy(h.dx[r*c:(r+1)*c], grad[i*c:(i+1)*c])
			}
		}
		rows = rows[:0]
	}
	for r := 0; r < h.n; r++ {
		if rowWeight(h.mask, r) == 0 {
			continue
		}
		rows = append(rows, r)
		if len(rows) == blockRows {
			flush()
		}
	}
	if len(rows) > 0 {
		flush()
	}
}

// contiguous reports whether the sorted row indices are consecutive.
func contiguous(rows []int) bool { return rows[len(rows)-1]-rows[0] == len(rows)-1 }

// matrixBlock processes a block of rows against any Matrix: the block's
// logits xb Wᵀ at once, then the per-row losses and gradients, then
// grad = dlogits W.
func (h *headPass[T]) matrixBlock(rows []int, xb, grad []T) {
	k, v := len(rows), h.w.Rows()
	buf := getScratch[T](k * v)
	defer putScratch(buf)
	logits := *buf
	h.w.MulT(logits, xb, k)
	parallelFor(k, k*v*expCost, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			r, row := rows[i], logits[i*v:(i+1)*v]
			switch {
			case grad == nil:
				h.losses[r] = rowLoss(row, row, h.targets[r])
			case h.losses == nil:
				rowGradient(row, row, h.targets[r], h.rowGrad(r))
			default:
				h.losses[r] = rowLossGradient(row, h.targets[r], h.rowGrad(r))
			}
		}
	})
	if grad != nil {
		h.w.Mul(grad, logits, k)
	}
}

// denseBlock processes a block of rows against a dense head, a chunk of the
// vocabulary at a time with an online softmax (see the top of this file).
// grad, when non-nil, receives the block's rows of dx.
func (h *headPass[T]) denseBlock(w *Dense[T], rows []int, xb, grad []T) {
	k, c, v := len(rows), w.C, w.R
	chunk := min(v, max(headMinVocabChunk, headChunkElems/k))
	buf := getScratch[T](k * chunk)
	defer putScratch(buf)
	state := getScratch[float64](3 * k)
	defer putScratch(state)
	// Per row: the running maximum m, the running sum s = Σ exp(logit - m)
	// and the target's logit.
	m, s, target := (*state)[:k], (*state)[k:2*k], (*state)[2*k:]
	for i := range k {
		m[i], s[i] = math.Inf(-1), 0
	}
	if grad != nil {
		clear(grad)
	}
	for v0 := 0; v0 < v; v0 += chunk {
		width := min(chunk, v-v0)
		wc := w.W[v0*c : (v0+width)*c]
		e := (*buf)[:k*width]
		Gemm(false, true, k, width, c, 1, xb, c, wc, c, 0, e, width)
		parallelFor(k, k*width*expCost, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				row := e[i*width : (i+1)*width]
				if t := h.targets[rows[i]] - v0; t >= 0 && t < width {
					target[i] = float64(row[t])
				}
				if top := float64(maxOf(row)); top > m[i] {
					rescale := math.Exp(m[i] - top) // 0 on the first chunk
					s[i] *= rescale
					if grad != nil {
						scaleRow(grad[i*c:(i+1)*c], T(rescale))
					}
					m[i] = top
				}
				s[i] += expShifted(row, row, T(m[i]))
			}
		})
		if grad != nil { // A += exp(logits - m) W[v0:v0+width]
			Gemm(false, false, k, c, width, 1, e, width, wc, c, 1, grad, c)
		}
	}
	parallelFor(k, k*c, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			r := rows[i]
			if h.losses != nil {
				h.losses[r] = m[i] + math.Log(s[i]) - target[i]
			}
			if grad != nil { // dx = g·(A/s - W[target])
				g, a := h.rowGrad(r), grad[i*c:(i+1)*c]
				scaleRow(a, T(g/s[i]))
				wt, gt := w.W[h.targets[r]*c:(h.targets[r]+1)*c], T(g)
				for j := range a {
					a[j] -= gt * wt[j]
				}
			}
		}
	})
}

// HeadScratchBytes bounds the pooled scratch, in bytes, of one fused head
// pass (HeadCrossEntropy) over n rows against w, with the input gradient when
// grad is set: the gathered rows of x and dx, the block's logits (a
// vocabulary chunk of a dense head, all of them otherwise) and the per-row
// state, each rounded up to its pool's power-of-two size class.
func HeadScratchBytes[T Float](w Matrix[T], n int, grad bool) int64 {
	c, v := w.Cols(), w.Rows()
	_, dense := w.(*Dense[T])
	blockRows := headRowBlock
	if !dense {
		blockRows = headChunkElems / max(v, 1)
	}
	blockRows = max(1, min(n, blockRows))
	elem := int64(unsafe.Sizeof(T(0)))
	rows := pooledElems(blockRows * c)
	if grad {
		rows *= 2
	}
	logits := pooledElems(blockRows * v)
	if dense {
		logits = pooledElems(blockRows * min(v, max(headMinVocabChunk, headChunkElems/blockRows)))
	}
	if _, cast := w.(autocastBF16[T]); cast {
		// AutocastBF16 rounds a copy of the block's rows and, for dx, of
		// its logits' gradient.
		rows += pooledElems(blockRows * c)
		if grad {
			logits += pooledElems(blockRows * v)
		}
	}
	return elem*(rows+logits) + 8*(pooledElems(n)+pooledElems(3*blockRows))
}

// pooledElems is the capacity getScratch gives a request for n elements.
func pooledElems(n int) int64 { return int64(1) << bits.Len(uint(max(n, 1)-1)) }
