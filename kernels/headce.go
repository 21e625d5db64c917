package kernels

// The language-model head fused with the cross-entropy loss. The logits of a
// training batch are N×V (1024×32000 floats, 131 MB, at the bench-60M shape,
// and as much again for their gradient); computing them a chunk of rows at a
// time keeps one chunk alive instead, and skips the rows the mask ignores.

// HeadCrossEntropyForward returns the masked mean next-token loss of the
// logits x Wᵀ, for x [N,C] and the head W [V,C] (W.Rows() = V, W.Cols() = C):
//
//	Σ_r mask[r]·(logsumexp(x[r] Wᵀ) - x[r]·W[targets[r]]) / Σ_r mask[r]
//
// the same value and numerics as CrossEntropyForward on LinearForward's
// logits (per-row losses in float64, summed in row order), and 0 when
// Σ mask = 0. The logits are computed a chunk of rows at a time (see
// headChunkElems); rows of weight 0 are skipped (not read, their targets may
// be anything). A nil mask weighs every row 1; a target outside [0, V) on a
// weighted row panics.
func HeadCrossEntropyForward[T Float](w Matrix[T], x []T, n int, targets []int, mask []T) T {
	total := checkHeadCrossEntropy("HeadCrossEntropyForward", w, x, n, targets, mask)
	if total == 0 {
		return 0
	}
	losses := getScratch[float64](n)
	defer putScratch(losses)
	clear(*losses)
	forHeadChunks(w, x, n, mask, func(rows []int, logits, _ []T) {
		forChunkRows(rows, logits, w.Rows(), func(r int, row []T) {
			(*losses)[r] = rowLoss(row, row, targets[r])
		})
	})
	return T(weightedMean(*losses, mask, total))
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
	total := checkHeadCrossEntropy("HeadCrossEntropyBackward", w, x, n, targets, mask)
	headGradient(dx, w, x, n, mask, total, func(r int, row []T) {
		rowGradient(row, row, targets[r], float64(dloss)*rowWeight(mask, r)/total)
	})
}

// HeadCrossEntropyForwardBackward returns the loss of HeadCrossEntropyForward
// and writes dx, the gradient HeadCrossEntropyBackward gives for dloss = 1,
// computing each chunk's logits once: two products by W instead of the three
// of a forward and a backward call.
func HeadCrossEntropyForwardBackward[T Float](dx []T, w Matrix[T], x []T, n int, targets []int, mask []T) T {
	total := checkHeadCrossEntropy("HeadCrossEntropyForwardBackward", w, x, n, targets, mask)
	losses := getScratch[float64](n)
	defer putScratch(losses)
	clear(*losses)
	headGradient(dx, w, x, n, mask, total, func(r int, row []T) {
		(*losses)[r] = rowLossGradient(row, targets[r], rowWeight(mask, r)/total)
	})
	if total == 0 {
		return 0
	}
	return T(weightedMean(*losses, mask, total))
}

// headGradient writes dx = dlogits W for the weighted rows and zero for the
// others, where toGradient(r, row) turns the logits of row r into its row of
// dlogits in place. total is Σ mask; when it is 0, dx is all zero.
func headGradient[T Float](dx []T, w Matrix[T], x []T, n int, mask []T, total float64, toGradient func(r int, row []T)) {
	c := w.Cols()
	checkLen("HeadCrossEntropy dx", dx, n*c)
	for r := 0; r < n; r++ {
		if rowWeight(mask, r) == 0 || total == 0 {
			clear(dx[r*c : (r+1)*c])
		}
	}
	if total == 0 {
		return
	}
	forHeadChunks(w, x, n, mask, func(rows []int, logits []T, xScratch []T) {
		forChunkRows(rows, logits, w.Rows(), toGradient)
		if contiguous(rows) {
			w.Mul(dx[rows[0]*c:(rows[0]+len(rows))*c], logits, len(rows))
			return
		}
		// The chunk's x rows were gathered into xScratch, which is free now.
		w.Mul(xScratch, logits, len(rows))
		for i, r := range rows {
			copy(dx[r*c:(r+1)*c], xScratch[i*c:(i+1)*c])
		}
	})
}

// forChunkRows calls fn(rows[i], logits row i) for each row of a chunk of
// logits [len(rows), V], in parallel goroutines.
func forChunkRows[T Float](rows []int, logits []T, v int, fn func(r int, row []T)) {
	parallelFor(len(rows), len(rows)*v*expCost, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			fn(rows[i], logits[i*v:(i+1)*v])
		}
	})
}

// headChunkElems bounds the logits computed at once (elements; rows of V):
// 2²³ float32 are 32 MB, 262 rows of a 32000-token vocabulary. Larger chunks
// read the head weight fewer times (once per chunk) but leave the caches. A
// variable so that tests can force small chunks.
var headChunkElems = 1 << 23

// forHeadChunks calls fn for consecutive chunks of the weighted rows of x
// (mask[r] != 0, or all rows for a nil mask), in row order: rows holds their
// indices and logits [len(rows), V] their logits x[rows] Wᵀ. When the rows are
// not contiguous in x they are gathered into xScratch [len(rows), C] first;
// fn may overwrite logits and xScratch.
func forHeadChunks[T Float](w Matrix[T], x []T, n int, mask []T, fn func(rows []int, logits, xScratch []T)) {
	c, v := w.Cols(), w.Rows()
	chunk := max(1, min(n, headChunkElems/max(v, 1)))
	logitsBuf := getScratch[T](chunk * v)
	defer putScratch(logitsBuf)
	xBuf := getScratch[T](chunk * c)
	defer putScratch(xBuf)
	rows := make([]int, 0, chunk)
	flush := func() {
		k := len(rows)
		logits, xScratch := (*logitsBuf)[:k*v], (*xBuf)[:k*c]
		var xc []T
		if contiguous(rows) {
			xc = x[rows[0]*c : (rows[0]+k)*c]
		} else {
			for i, r := range rows {
				copy(xScratch[i*c:(i+1)*c], x[r*c:(r+1)*c])
			}
			xc = xScratch
		}
		w.MulT(logits, xc, k)
		fn(rows, logits, xScratch)
		rows = rows[:0]
	}
	for r := 0; r < n; r++ {
		if rowWeight(mask, r) == 0 {
			continue
		}
		rows = append(rows, r)
		if len(rows) == chunk {
			flush()
		}
	}
	if len(rows) > 0 {
		flush()
	}
}

// contiguous reports whether the sorted row indices are consecutive.
func contiguous(rows []int) bool { return rows[len(rows)-1]-rows[0] == len(rows)-1 }

// checkHeadCrossEntropy validates the shapes and the targets of weighted rows
// and returns Σ mask (n when mask is nil).
func checkHeadCrossEntropy[T Float](fn string, w Matrix[T], x []T, n int, targets []int, mask []T) float64 {
	checkLen(fn+" x", x, n*w.Cols())
	return checkTargets(fn, n, w.Rows(), targets, mask)
}
