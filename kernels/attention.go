package kernels

import (
	"fmt"
	"math"
	"runtime"
)

// Attn is causal grouped-query attention over ONE sequence, with shapes
// Q [Tq, Heads·D], K and V [Tk, KVHeads·D], Out [Tq, Heads·D] (D = HeadDim),
// each row-major with its own row stride (so that Q, K and V can be column
// slices of one packed qkv matrix, or K and V a KV cache).
//
// Query row i (0 <= i < Tq) sits at position Tk-Tq+i and attends to key rows
// 0..Tk-Tq+i; Tq == Tk is a full causal prefill, Tq == 1 one decode step. Query
// head h uses key/value head h/(Heads/KVHeads). Row r of Q starts at
// Q[r*QStride] and head h at +h*HeadDim (likewise K, V and Out). Scores are
// scaled by 1/sqrt(HeadDim):
//
//	P[h] = softmax(Q[h] K[g]ᵀ/√D + causal mask),  Out[h] = P[h] V[g]
//
// Probs is optional scratch of Heads·Tq·Tk ([Heads, Tq, Tk]): Forward stores
// the probabilities there (zero above the causal limit) when it is non-nil,
// and Backward reads them from there instead of recomputing them.
type Attn[T Float] struct {
	Tq, Tk, Heads, KVHeads, HeadDim      int
	Q, K, V, Out                         []T
	QStride, KStride, VStride, OutStride int
	Probs                                []T
	// Precision is the arithmetic of the products (see MatMul): FP32 when
	// left zero; with BF16 the softmax and its gradient stay float32.
	Precision Precision
}

// gemm is gemmAuto in a's precision.
func (a Attn[T]) gemm(transA, transB bool, m, n, k int, alpha T, x []T, lda int, y []T, ldb int, beta T, c []T, ldc int) {
	if a.Precision == BF16 {
		bf16Product(transA, transB, m, n, k, alpha, x, lda, y, ldb, beta, c, ldc, gemmAuto[T])
		return
	}
	gemmAuto(transA, transB, m, n, k, alpha, x, lda, y, ldb, beta, c, ldc)
}

// attnRowBlock is the number of query rows processed at once: it bounds the
// score scratch to attnRowBlock·Tk and lets each block skip the keys above the
// causal limit of its last row.
const attnRowBlock = 64

// Forward writes Out.
func (a Attn[T]) Forward() {
	a.check("Attn.Forward")
	checkRows("Attn.Forward Out", a.Out, a.Tq, a.OutStride, a.Heads*a.HeadDim)
	attnForward(1, func(int) Attn[T] { return a })
}

// Backward writes the gradients dQ, dK and dV of Forward for the upstream
// gradient dOut. Each has the shape and row stride of Q, K, V and Out
// respectively; dQ (rows 0..Tq-1) and dK, dV (rows 0..Tk-1) are overwritten in
// the columns of their heads, and any of them may be nil to skip it. Backward
// uses Probs when it is non-nil (it must then hold what Forward stored) and
// recomputes the probabilities otherwise.
func (a Attn[T]) Backward(dQ, dK, dV, dOut []T) {
	a.check("Attn.Backward")
	a.checkGrads(attnGrads[T]{dQ: dQ, dK: dK, dV: dV, dOut: dOut})
	attnBackward(1, func(int) (Attn[T], attnGrads[T]) {
		return a, attnGrads[T]{dQ: dQ, dK: dK, dV: dV, dOut: dOut}
	})
}

// attnGrads holds the gradient buffers of one Attn.Backward call.
type attnGrads[T Float] struct{ dQ, dK, dV, dOut []T }

// attnForward runs Forward for `seqs` sequences (seq(b) describes sequence b;
// all share the head counts, and Probs is set in all or none), one task per
// (sequence, head), in parallel.
func attnForward[T Float](seqs int, seq func(b int) Attn[T]) {
	a0 := seq(0)
	rows, keys, work := attnExtent(seqs, seq)
	tasks := seqs * a0.Heads
	parallelFor(tasks, work*a0.Heads, func(lo, hi int) {
		var scores []T
		if a0.Probs == nil {
			buf := getScratch[T](rows * keys)
			defer putScratch(buf)
			scores = *buf
		}
		for t := lo; t < hi; t++ {
			seq(t/a0.Heads).forwardHead(t%a0.Heads, scores)
		}
	})
}

// attnBackward runs Backward for `seqs` sequences, one task per (sequence,
// key/value head): the query heads sharing a key/value head accumulate into
// the same dK and dV columns, so they run in the same task.
func attnBackward[T Float](seqs int, seq func(b int) (Attn[T], attnGrads[T])) {
	a0, g0 := seq(0)
	if g0.dQ == nil && g0.dK == nil && g0.dV == nil {
		return
	}
	rows, keys, work := attnExtent(seqs, func(b int) Attn[T] { a, _ := seq(b); return a })
	tasks := seqs * a0.KVHeads
	parallelFor(tasks, 2*work*a0.Heads, func(lo, hi int) {
		n := rows * keys
		scratch := getScratch[T](2 * n)
		defer putScratch(scratch)
		scores, dScores := (*scratch)[:n], (*scratch)[n:]
		for t := lo; t < hi; t++ {
			a, g := seq(t / a0.KVHeads)
			a.backwardGroup(t%a0.KVHeads, g, scores, dScores)
		}
	})
}

// attnExtent returns the largest score block (rows × keys) over `seqs`
// sequences, which sizes the per-task scratch, and the sum of their per-head
// work.
func attnExtent[T Float](seqs int, seq func(b int) Attn[T]) (rows, keys, work int) {
	for b := 0; b < seqs; b++ {
		a := seq(b)
		rows, keys = max(rows, a.blockRows()), max(keys, a.Tk)
		work += a.headWork()
	}
	return rows, keys, work
}

// forwardHead computes Out for query head h, block of rows by block of rows.
// scores is scratch of blockRows·Tk (unused when Probs is set).
func (a Attn[T]) forwardHead(h int, scores []T) {
	d := a.HeadDim
	g := h / (a.Heads / a.KVHeads)
	for i0 := 0; i0 < a.Tq; i0 += attnRowBlock {
		i1 := min(i0+attnRowBlock, a.Tq)
		p := a.probs(h, i0, i1, scores)
		keys := a.Tk - a.Tq + i1 // the keys any row of the block sees
		a.gemm(false, false, i1-i0, d, keys, 1, p, a.Tk, a.V[g*d:], a.VStride, 0, a.Out[i0*a.OutStride+h*d:], a.OutStride)
	}
}

// probs computes the attention probabilities of query head h for rows
// [i0, i1) into Probs (when set) or into scores, as a (i1-i0)×Tk block with
// row stride Tk, and returns the block. Entries above the causal limit are
// zero up to the block's last key (up to Tk in Probs).
func (a Attn[T]) probs(h, i0, i1 int, scores []T) []T {
	d := a.HeadDim
	g := h / (a.Heads / a.KVHeads)
	keys := a.Tk - a.Tq + i1
	width := keys
	p := scores
	if a.Probs != nil {
		p = a.Probs[(h*a.Tq+i0)*a.Tk:]
		width = a.Tk
	}
	scale := T(1 / math.Sqrt(float64(d)))
	a.gemm(false, true, i1-i0, keys, d, scale, a.Q[i0*a.QStride+h*d:], a.QStride, a.K[g*d:], a.KStride, 0, p, a.Tk)
	for i := i0; i < i1; i++ {
		row := p[(i-i0)*a.Tk : (i-i0)*a.Tk+width]
		visible := a.Tk - a.Tq + i + 1
		softmaxRow(row[:visible], row[:visible])
		clear(row[visible:])
	}
	return p
}

// backwardGroup accumulates the gradients of the query heads that share
// key/value head g. scores and dScores are scratch of blockRows·Tk each.
func (a Attn[T]) backwardGroup(g int, grads attnGrads[T], scores, dScores []T) {
	d := a.HeadDim
	if grads.dK != nil {
		clearColumns(grads.dK, a.Tk, a.KStride, g*d, d)
	}
	if grads.dV != nil {
		clearColumns(grads.dV, a.Tk, a.VStride, g*d, d)
	}
	scale := T(1 / math.Sqrt(float64(d)))
	perGroup := a.Heads / a.KVHeads
	for h := g * perGroup; h < (g+1)*perGroup; h++ {
		for i0 := 0; i0 < a.Tq; i0 += attnRowBlock {
			i1 := min(i0+attnRowBlock, a.Tq)
			rows, keys := i1-i0, a.Tk-a.Tq+i1
			var p []T
			if a.Probs != nil {
				p = a.Probs[(h*a.Tq+i0)*a.Tk:]
			} else {
				p = a.probs(h, i0, i1, scores)
			}
			dOut := grads.dOut[i0*a.OutStride+h*d:]
			if grads.dV != nil { // dV[g] += Pᵀ dOut[h]
				a.gemm(true, false, keys, d, rows, 1, p, a.Tk, dOut, a.OutStride, 1, grads.dV[g*d:], a.VStride)
			}
			if grads.dQ == nil && grads.dK == nil {
				continue
			}
			// dP = dOut[h] V[g]ᵀ, then dS = P ⊙ (dP - rowsum(P ⊙ dP)) in place.
			a.gemm(false, true, rows, keys, d, 1, dOut, a.OutStride, a.V[g*d:], a.VStride, 0, dScores, a.Tk)
			for i := 0; i < rows; i++ {
				softmaxBackwardRow(dScores[i*a.Tk:i*a.Tk+keys], p[i*a.Tk:i*a.Tk+keys])
			}
			if grads.dQ != nil { // dQ[h] = dS K[g] / √D
				a.gemm(false, false, rows, d, keys, scale, dScores, a.Tk, a.K[g*d:], a.KStride, 0, grads.dQ[i0*a.QStride+h*d:], a.QStride)
			}
			if grads.dK != nil { // dK[g] += dSᵀ Q[h] / √D
				a.gemm(true, false, keys, d, rows, scale, dScores, a.Tk, a.Q[i0*a.QStride+h*d:], a.QStride, 1, grads.dK[g*d:], a.KStride)
			}
		}
	}
}

// clearColumns zeroes columns [col, col+width) of `rows` rows at row stride
// `stride`.
func clearColumns[T Float](m []T, rows, stride, col, width int) {
	for r := 0; r < rows; r++ {
		clear(m[r*stride+col : r*stride+col+width])
	}
}

// blockRows is the number of rows of the score scratch.
func (a Attn[T]) blockRows() int { return min(a.Tq, attnRowBlock) }

// headWork estimates the multiply-adds of one head's forward pass.
func (a Attn[T]) headWork() int { return 2*a.Tq*a.Tk*a.HeadDim + a.Tq*a.Tk*expCost }

// check panics on inconsistent sizes or inputs too short for them.
func (a Attn[T]) check(fn string) {
	switch {
	case a.Tq < 0 || a.Tq > a.Tk:
		panic(fmt.Sprintf("kernels: %s: need 0 <= Tq <= Tk, got Tq=%d Tk=%d", fn, a.Tq, a.Tk))
	case a.HeadDim <= 0 || a.Heads <= 0 || a.KVHeads <= 0 || a.Heads%a.KVHeads != 0:
		panic(fmt.Sprintf("kernels: %s: need HeadDim > 0 and Heads a positive multiple of KVHeads, got HeadDim=%d Heads=%d KVHeads=%d",
			fn, a.HeadDim, a.Heads, a.KVHeads))
	}
	checkRows(fn+" Q", a.Q, a.Tq, a.QStride, a.Heads*a.HeadDim)
	checkRows(fn+" K", a.K, a.Tk, a.KStride, a.KVHeads*a.HeadDim)
	checkRows(fn+" V", a.V, a.Tk, a.VStride, a.KVHeads*a.HeadDim)
	if a.Probs != nil {
		checkLen(fn+" Probs", a.Probs, a.Heads*a.Tq*a.Tk)
	}
}

// checkGrads panics when a gradient buffer is too short for its shape.
func (a Attn[T]) checkGrads(g attnGrads[T]) {
	checkRows("Attn.Backward dOut", g.dOut, a.Tq, a.OutStride, a.Heads*a.HeadDim)
	if g.dQ != nil {
		checkRows("Attn.Backward dQ", g.dQ, a.Tq, a.QStride, a.Heads*a.HeadDim)
	}
	if g.dK != nil {
		checkRows("Attn.Backward dK", g.dK, a.Tk, a.KStride, a.KVHeads*a.HeadDim)
	}
	if g.dV != nil {
		checkRows("Attn.Backward dV", g.dV, a.Tk, a.VStride, a.KVHeads*a.HeadDim)
	}
}

// checkRows panics unless s holds `rows` rows of `width` elements at row
// stride `stride` (stride >= width).
func checkRows[T any](what string, s []T, rows, stride, width int) {
	if stride < width {
		panic(fmt.Sprintf("kernels: %s: row stride %d < row width %d", what, stride, width))
	}
	if rows > 0 {
		checkLen(what, s, (rows-1)*stride+width)
	}
}

// SelfAttention describes the training-time attention layer over Batch
// sequences of Seq tokens each (N = Batch·Seq rows), with Heads query heads,
// KVHeads key/value heads of size HeadDim (D) and the RoPE inverse frequencies
// InvFreq (D/2 entries, see RopeInvFreq). The forward and backward functions
// keep their scratch (the rotated copy of qkv, the score blocks) in internal
// pools, so steady-state calls allocate no buffers; the backward pass recomputes
// the probabilities rather than keeping [B, H, T, T] of them between calls.
type SelfAttention struct {
	Batch, Seq, Heads, KVHeads, HeadDim int
	InvFreq                             []float64
	// Positions, when set, packs several examples into each sequence: it
	// holds the RoPE position of each of the N rows, which is 0 where an
	// example starts and one more than the previous row's elsewhere, and 0 at
	// the start of every sequence (see CheckPositions). An example's rows
	// attend only to the rows of the same example (a block-diagonal causal
	// mask); the blocks outside it are skipped, not masked. Nil: one example
	// per sequence, positions 0..Seq-1. The slice is read at every call, so
	// its contents may change between calls.
	Positions []int
	// Precision is the arithmetic of the attention products (see Attn).
	Precision Precision
}

// SelfAttentionForward computes out [N, H·D] from qkv [N, (H+2·KV)·D], whose
// rows are packed as [q heads | k heads | v heads]: it applies RoPE to q and k
// (on a private copy; qkv is not modified) and causal attention to each
// sequence, or each packed example (see Attn).
func SelfAttentionForward[T Float](s SelfAttention, out, qkv []T) {
	s.check("SelfAttentionForward")
	checkLen("SelfAttentionForward qkv", qkv, s.Batch*s.Seq*s.width())
	checkLen("SelfAttentionForward out", out, s.Batch*s.Seq*s.Heads*s.HeadDim)
	if s.Batch*s.Seq == 0 {
		return
	}
	roped := ropedQKV(s, qkv)
	defer putScratch(roped)
	segs := s.segments()
	attnForward(len(segs), func(i int) Attn[T] { return segmentAttn(s, segs[i], *roped, out) })
}

// SelfAttentionBackward writes dqkv [N, (H+2·KV)·D] (overwritten), the
// gradient of SelfAttentionForward with respect to qkv for the upstream
// gradient dout [N, H·D], with the inverse RoPE rotation applied to its q and
// k parts. It recomputes the rotated q, k and the attention probabilities.
func SelfAttentionBackward[T Float](s SelfAttention, dqkv, dout, qkv []T) {
	s.check("SelfAttentionBackward")
	n, w, hd := s.Batch*s.Seq, s.width(), s.Heads*s.HeadDim
	checkLen("SelfAttentionBackward qkv", qkv, n*w)
	checkLen("SelfAttentionBackward dqkv", dqkv, n*w)
	checkLen("SelfAttentionBackward dout", dout, n*hd)
	if n == 0 {
		return
	}
	roped := ropedQKV(s, qkv)
	defer putScratch(roped)
	segs := s.segments()
	attnBackward(len(segs), func(i int) (Attn[T], attnGrads[T]) {
		// dqkv and dout are laid out exactly like qkv and out.
		d := segmentAttn(s, segs[i], dqkv, dout)
		return segmentAttn(s, segs[i], *roped, nil), attnGrads[T]{dQ: d.Q, dK: d.K, dV: d.V, dOut: d.Out}
	})
	ropeRotate(dqkv, n, w, 0, s.Heads+s.KVHeads, s.HeadDim, s.position, s.InvFreq, true)
}

// CheckPositions reports whether pos is a valid SelfAttention.Positions for
// batch sequences of seq rows: batch·seq entries, 0 at the start of every
// sequence, and each other entry either 0 (an example starts) or one more
// than the entry before it.
func CheckPositions(pos []int, batch, seq int) error {
	if batch < 0 || seq <= 0 {
		return fmt.Errorf("invalid shape: %d sequences of %d", batch, seq)
	}
	if len(pos) != batch*seq {
		return fmt.Errorf("%d positions for %d sequences of %d", len(pos), batch, seq)
	}
	for r, p := range pos {
		switch {
		case r%seq == 0 && p != 0:
			return fmt.Errorf("position %d at the start of sequence %d, want 0", p, r/seq)
		case p != 0 && p != pos[r-1]+1:
			return fmt.Errorf("position %d at row %d of sequence %d follows %d; want 0 or %d", p, r%seq, r/seq, pos[r-1], pos[r-1]+1)
		}
	}
	return nil
}

// segment is a run of rows [start, start+n) of qkv that attend among
// themselves.
type segment struct{ start, n int }

// segments lists the examples of s: one per sequence without Positions, else
// one per run of rows that starts at position 0.
func (s SelfAttention) segments() []segment {
	if s.Positions == nil {
		segs := make([]segment, s.Batch)
		for b := range segs {
			segs[b] = segment{b * s.Seq, s.Seq}
		}
		return segs
	}
	var segs []segment
	for r, p := range s.Positions[:s.Batch*s.Seq] {
		if p == 0 {
			segs = append(segs, segment{r, 0})
		}
		segs[len(segs)-1].n++
	}
	return segs
}

// width is the row width (H+2·KV)·D of qkv.
func (s SelfAttention) width() int { return (s.Heads + 2*s.KVHeads) * s.HeadDim }

// position is the RoPE position of row r of qkv.
func (s SelfAttention) position(r int) int {
	if s.Positions != nil {
		return s.Positions[r]
	}
	return r % s.Seq
}

// ropedQKV returns a pooled copy of qkv with RoPE applied to its q and k heads
// (adjacent in each row, so one rotation covers both).
func ropedQKV[T Float](s SelfAttention, qkv []T) *[]T {
	n, w := s.Batch*s.Seq, s.width()
	buf := getScratch[T](n * w)
	copy(*buf, qkv[:n*w])
	ropeRotate(*buf, n, w, 0, s.Heads+s.KVHeads, s.HeadDim, s.position, s.InvFreq, false)
	return buf
}

// segmentAttn describes segment g of the packed qkv and of out (out may be
// nil) as one causal sequence.
func segmentAttn[T Float](s SelfAttention, g segment, qkv, out []T) Attn[T] {
	w, hd, kvd := s.width(), s.Heads*s.HeadDim, s.KVHeads*s.HeadDim
	row := g.start * w
	a := Attn[T]{
		Tq: g.n, Tk: g.n, Heads: s.Heads, KVHeads: s.KVHeads, HeadDim: s.HeadDim,
		Q: qkv[row:], K: qkv[row+hd:], V: qkv[row+hd+kvd:],
		QStride: w, KStride: w, VStride: w, OutStride: hd, Precision: s.Precision,
	}
	if out != nil {
		a.Out = out[g.start*hd:]
	}
	return a
}

// check panics on inconsistent sizes.
func (s SelfAttention) check(fn string) {
	if s.Batch < 0 || s.Seq <= 0 || s.HeadDim <= 0 || s.Heads <= 0 || s.KVHeads <= 0 || s.Heads%s.KVHeads != 0 {
		panic(fmt.Sprintf("kernels: %s: invalid shape Batch=%d Seq=%d Heads=%d KVHeads=%d HeadDim=%d",
			fn, s.Batch, s.Seq, s.Heads, s.KVHeads, s.HeadDim))
	}
	if len(s.InvFreq) != s.HeadDim/2 {
		panic(fmt.Sprintf("kernels: %s: %d inverse frequencies for head size %d", fn, len(s.InvFreq), s.HeadDim))
	}
	if s.Positions != nil {
		if err := CheckPositions(s.Positions, s.Batch, s.Seq); err != nil {
			panic(fmt.Sprintf("kernels: %s: %v", fn, err))
		}
	}
}

// gemmAuto is Gemm for the many small products inside kernels that already
// run in parallel goroutines: products below smallGemmWork (m·n·k) run as plain
// loops, larger ones as one single-threaded BLAS call on the calling goroutine
// (no split across goroutines: the caller's goroutines already use the cores).
func gemmAuto[T Float](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	switch {
	case m*n*k < smallGemmWork:
		gemmLoops(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	case m == 0 || n == 0 || k == 0:
		Gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	default:
		// C trimmed to its extent: gonum's float32 GEMV (the purego backend at
		// m == 1) clears all of y when beta == 0, not just its n elements.
		gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c[:(m-1)*ldc+n], ldc)
	}
}

// smallGemmWork is the product size m·n·k below which gemmAuto uses loops (a
// variable so that tests can force either path).
var smallGemmWork = 4096

// gemmLoops is the loop reference of Gemm (with BLAS semantics: beta == 0
// ignores the previous contents of C), used for tiny products.
func gemmLoops[T Float](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	aStrideI, aStrideP := lda, 1
	if transA {
		aStrideI, aStrideP = 1, lda
	}
	bStrideP, bStrideJ := ldb, 1
	if transB {
		bStrideP, bStrideJ = 1, ldb
	}
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var sum T
			for p := 0; p < k; p++ {
				sum += a[i*aStrideI+p*aStrideP] * b[p*bStrideP+j*bStrideJ]
			}
			if beta == 0 {
				c[i*ldc+j] = alpha * sum
			} else {
				c[i*ldc+j] = alpha*sum + beta*c[i*ldc+j]
			}
		}
	}
}

// ScratchBytes bounds the pooled scratch, in bytes, of one forward or
// backward pass of s with elements of elemSize bytes: the rotated copy of
// qkv and, per worker, the score and score-gradient blocks.
func (s SelfAttention) ScratchBytes(elemSize int) int64 {
	n := s.Batch * s.Seq
	workers := int64(min(runtime.GOMAXPROCS(0), max(1, s.Batch*s.Heads)))
	rows := min(attnRowBlock, s.Seq)
	return int64(elemSize) * (pooledElems(n*s.width()) + workers*pooledElems(2*rows*s.Seq))
}
