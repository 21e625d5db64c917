package model

import (
	"math"

	"github.com/salr-go/salr/kernels"
)

// RouteTopK turns n rows of router logits [n, experts] into each row's k
// chosen experts (idx, [n, k], best first; ties go to the lower index) and
// their weights (w, [n, k]), as transformers' Mixtral and Qwen2-MoE blocks
// do: a softmax over all experts (computed here in float64), the k largest
// probabilities, renormalised to sum 1 when norm is set.
func RouteTopK[T kernels.Float](logits []T, n, experts, k int, norm bool, idx []int, w []T) {
	p := make([]float64, experts)
	for r := 0; r < n; r++ {
		row := logits[r*experts : (r+1)*experts]
		softmax64(p, row)
		ri, rw := idx[r*k:(r+1)*k], w[r*k:(r+1)*k]
		var sum float64
		for j := range ri {
			best := -1
			for e, v := range p {
				if v >= 0 && (best < 0 || v > p[best]) {
					best = e
				}
			}
			ri[j] = best
			sum += p[best]
			rw[j] = T(p[best])
			p[best] = -1 // taken
		}
		if norm {
			// Recompute the chosen probabilities' ratio in float64 before
			// rounding to T.
			softmax64(p, row)
			for j, e := range ri {
				rw[j] = T(p[e] / sum)
			}
		}
	}
}

// softmax64 sets p to the softmax of row, in float64.
func softmax64[T kernels.Float](p []float64, row []T) {
	m := math.Inf(-1)
	for _, v := range row {
		m = max(m, float64(v))
	}
	var z float64
	for e, v := range row {
		p[e] = math.Exp(float64(v) - m)
		z += p[e]
	}
	for e := range p {
		p[e] /= z
	}
}

// expertGroups lists, per expert, the rows routed to it and their routing
// weights, rows in increasing order: the grouping that lets each expert run
// one GEMM over its tokens.
type expertGroups[T kernels.Float] struct {
	rows    [][]int
	weights [][]T
}

func groupByExpert[T kernels.Float](idx []int, w []T, n, experts, k int) expertGroups[T] {
	g := expertGroups[T]{rows: make([][]int, experts), weights: make([][]T, experts)}
	for r := 0; r < n; r++ {
		for j := 0; j < k; j++ {
			e := idx[r*k+j]
			g.rows[e] = append(g.rows[e], r)
			g.weights[e] = append(g.weights[e], w[r*k+j])
		}
	}
	return g
}

// gatherRows copies rows of x [*, cols] into dst [len(rows), cols].
func gatherRows[T kernels.Float](dst, x []T, rows []int, cols int) {
	for i, r := range rows {
		copy(dst[i*cols:(i+1)*cols], x[r*cols:(r+1)*cols])
	}
}

// moeScratch holds the mixture-of-experts buffers of a Runner.
type moeScratch struct {
	logits, w, xe, gate, up, act, ye, sg []float32
	idx                                  []int
}

// moe computes the sparse MLP block m for n rows of h [n, C] into out
// [n, C]: route, then for every expert one GEMM per projection over the
// rows routed to it, scaled and added into their rows; plus the shared
// expert gated by sigmoid(SharedGate h).
func (r *Runner) moe(m *MoE[float32], out, h []float32, n int) {
	c := len(h) / n
	experts := len(m.Experts)
	s := &r.buf.moe
	s.logits = grow(s.logits, n*experts)
	s.w = grow(s.w, n*m.TopK)
	if cap(s.idx) < n*m.TopK {
		s.idx = make([]int, n*m.TopK)
	}
	s.idx = s.idx[:n*m.TopK]
	r.linear(m.Router, s.logits, h, n)
	RouteTopK(s.logits, n, experts, m.TopK, m.NormTopK, s.idx, s.w)
	groups := groupByExpert(s.idx, s.w, n, experts, m.TopK)
	clear(out[:n*c])
	for e, ex := range m.Experts {
		rows := groups.rows[e]
		ne := len(rows)
		if ne == 0 {
			continue
		}
		s.xe = grow(s.xe, ne*c)
		gatherRows(s.xe, h, rows, c)
		ye := r.swiglu(ex, s.xe, ne)
		for i, row := range rows {
			axpy(groups.weights[e][i], ye[i*c:(i+1)*c], out[row*c:(row+1)*c])
		}
	}
	if m.Shared != nil {
		s.sg = grow(s.sg, n)
		r.linear(m.SharedGate, s.sg, h, n)
		ye := r.swiglu(*m.Shared, h, n)
		for i := 0; i < n; i++ {
			g := float32(1 / (1 + math.Exp(-float64(s.sg[i]))))
			axpy(g, ye[i*c:(i+1)*c], out[i*c:(i+1)*c])
		}
	}
}

// swiglu runs the SwiGLU MLP (gate, up, down) on n rows of x and returns its
// output (scratch, valid until the next call).
func (r *Runner) swiglu(p [3]*Linear[float32], x []float32, n int) []float32 {
	s := &r.buf.moe
	ff := p[0].Base.Rows()
	s.gate, s.up, s.act = grow(s.gate, n*ff), grow(s.up, n*ff), grow(s.act, n*ff)
	s.ye = grow(s.ye, n*p[2].Base.Rows())
	r.linear(p[0], s.gate, x, n)
	r.linear(p[1], s.up, x, n)
	kernels.SwiGLUForward(s.act, s.gate, s.up)
	r.linear(p[2], s.ye, s.act, n)
	return s.ye
}

// axpy adds a·x to y.
func axpy[T kernels.Float](a T, x, y []T) {
	for i, v := range x {
		y[i] += a * v
	}
}
