package model

import (
	"fmt"

	"github.com/salr-go/salr/kernels"
)

// Runner runs a decoder forward without autodiff, on the same kernels as the
// training graph, with a key/value cache per sequence. A Runner is not safe
// for concurrent use (it reuses scratch buffers); its Params may be shared.
type Runner struct {
	P *Params[float32]
	// Observe, when set, sees the input of every projection (n rows of x),
	// e.g. to collect calibration activations for Wanda pruning.
	Observe func(lin *Linear[float32], x []float32, n int)
	invFreq []float64
	buf     scratch
}

// scratch holds reusable buffers sized for the largest batch seen.
type scratch struct {
	x, h, q, k, v, att, o, gate, up, act, down []float32
	lr                                         []float32 // low-rank intermediate
	moe                                        moeScratch
}

// NewRunner prepares p for inference.
func NewRunner(p *Params[float32]) *Runner {
	return &Runner{P: p, invFreq: p.Config.InvFreq()}
}

// Cache is one sequence's key/value cache: for every layer, the rotated keys
// and the values of the tokens seen so far.
type Cache struct {
	K, V [][]float32 // per layer: [Cap, KV·D]
	Len  int         // tokens cached
	Cap  int         // capacity in tokens
}

// NewCache returns an empty cache for up to capacity tokens.
func (r *Runner) NewCache(capacity int) *Cache {
	cfg := r.P.Config
	kv := cfg.KVDim()
	c := &Cache{K: make([][]float32, cfg.Layers), V: make([][]float32, cfg.Layers), Cap: capacity}
	for l := range c.K {
		c.K[l] = make([]float32, capacity*kv)
		c.V[l] = make([]float32, capacity*kv)
	}
	return c
}

// Fork returns a copy of c with the same contents and capacity, so that
// several continuations can share one prefilled prompt.
func (c *Cache) Fork() *Cache {
	d := &Cache{K: make([][]float32, len(c.K)), V: make([][]float32, len(c.V)), Len: c.Len, Cap: c.Cap}
	for l := range c.K {
		d.K[l] = append([]float32(nil), c.K[l]...)
		d.V[l] = append([]float32(nil), c.V[l]...)
	}
	return d
}

// CopyFrom makes c hold the first n tokens of src (same model; c must be
// large enough). It reuses c's memory.
func (c *Cache) CopyFrom(src *Cache, n int) {
	if n > src.Len || n > c.Cap {
		panic("model: Cache.CopyFrom: prefix longer than the source or the capacity")
	}
	for l := range c.K {
		w := len(src.K[l]) / src.Cap
		copy(c.K[l][:n*w], src.K[l][:n*w])
		copy(c.V[l][:n*w], src.V[l][:n*w])
	}
	c.Len = n
}

func grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

// Forward appends tokens[i] to sequence i (whose cache is caches[i]) and
// returns, for every sequence, the logits of its new tokens: all of them
// ([len(tokens[i])·V], row-major) when all is true, else only the last
// ([V]). Sequences may have different lengths and positions.
func (r *Runner) Forward(tokens [][]int, caches []*Cache, all bool) ([][]float32, error) {
	cfg := r.P.Config
	if len(tokens) != len(caches) {
		return nil, fmt.Errorf("model: Forward: %d sequences but %d caches", len(tokens), len(caches))
	}
	rows := 0
	for i, t := range tokens {
		if len(t) == 0 {
			return nil, fmt.Errorf("model: Forward: sequence %d has no new tokens", i)
		}
		if caches[i].Len+len(t) > caches[i].Cap {
			return nil, fmt.Errorf("model: Forward: sequence %d needs %d positions, its cache holds %d", i, caches[i].Len+len(t), caches[i].Cap)
		}
		for _, id := range t {
			if id < 0 || id >= cfg.Vocab {
				return nil, fmt.Errorf("model: Forward: token id %d out of range [0,%d)", id, cfg.Vocab)
			}
		}
		rows += len(t)
	}
	c, kv, qd, inter := cfg.Hidden, cfg.KVDim(), cfg.Heads*cfg.HeadDim, cfg.Intermediate
	b := &r.buf
	b.x, b.h = grow(b.x, rows*c), grow(b.h, rows*c)
	b.q, b.k, b.v = grow(b.q, rows*qd), grow(b.k, rows*kv), grow(b.v, rows*kv)
	b.att, b.o = grow(b.att, rows*qd), grow(b.o, rows*c)
	b.gate, b.up, b.act = grow(b.gate, rows*inter), grow(b.up, rows*inter), grow(b.act, rows*inter)
	b.down = grow(b.down, rows*c)

	ids := make([]int, 0, rows)
	pos := make([]int, 0, rows)
	for i, t := range tokens {
		ids = append(ids, t...)
		for j := range t {
			pos = append(pos, caches[i].Len+j)
		}
	}
	r.P.Embed.GatherRows(b.x, ids)
	eps := cfg.RMSNormEps
	for l := range r.P.Layers {
		L := &r.P.Layers[l]
		kernels.RMSNormForward(b.h, b.x, L.AttnNorm, rows, c, eps)
		r.linear(L.Proj[QProj], b.q, b.h, rows)
		r.linear(L.Proj[KProj], b.k, b.h, rows)
		r.linear(L.Proj[VProj], b.v, b.h, rows)
		kernels.RopeForward(b.q, rows, qd, 0, cfg.Heads, cfg.HeadDim, pos, r.invFreq)
		kernels.RopeForward(b.k, rows, kv, 0, cfg.KVHeads, cfg.HeadDim, pos, r.invFreq)
		row := 0
		for i, t := range tokens {
			cache, n := caches[i], len(t)
			copy(cache.K[l][cache.Len*kv:], b.k[row*kv:(row+n)*kv])
			copy(cache.V[l][cache.Len*kv:], b.v[row*kv:(row+n)*kv])
			kernels.Attn[float32]{
				Tq: n, Tk: cache.Len + n, Heads: cfg.Heads, KVHeads: cfg.KVHeads, HeadDim: cfg.HeadDim,
				Q: b.q[row*qd:], K: cache.K[l], V: cache.V[l], Out: b.att[row*qd:],
				QStride: qd, KStride: kv, VStride: kv, OutStride: qd,
			}.Forward()
			row += n
		}
		r.linear(L.Proj[OProj], b.o, b.att, rows)
		addInto(b.x, b.o)
		kernels.RMSNormForward(b.h, b.x, L.MLPNorm, rows, c, eps)
		if L.MoE != nil {
			r.moe(L.MoE, b.down, b.h, rows)
		} else {
			r.linear(L.Proj[GateProj], b.gate, b.h, rows)
			r.linear(L.Proj[UpProj], b.up, b.h, rows)
			kernels.SwiGLUForward(b.act, b.gate, b.up)
			r.linear(L.Proj[DownProj], b.down, b.act, rows)
		}
		addInto(b.x, b.down)
	}
	for i, t := range tokens {
		caches[i].Len += len(t)
	}

	// Final norm and head, only on the rows whose logits are wanted.
	var want []int
	row := 0
	for _, t := range tokens {
		if all {
			for j := range t {
				want = append(want, row+j)
			}
		} else {
			want = append(want, row+len(t)-1)
		}
		row += len(t)
	}
	sel := make([]float32, len(want)*c)
	for i, rw := range want {
		copy(sel[i*c:(i+1)*c], b.x[rw*c:(rw+1)*c])
	}
	kernels.RMSNormForward(sel, sel, r.P.Norm, len(want), c, eps)
	logits := make([]float32, len(want)*cfg.Vocab)
	r.P.Head.MulT(logits, sel, len(want))

	out := make([][]float32, len(tokens))
	k := 0
	for i, t := range tokens {
		n := 1
		if all {
			n = len(t)
		}
		out[i] = logits[k*cfg.Vocab : (k+n)*cfg.Vocab : (k+n)*cfg.Vocab]
		k += n
	}
	return out, nil
}

// linear computes y = x Wᵀ + b + the low-rank update for n rows.
func (r *Runner) linear(lin *Linear[float32], y, x []float32, n int) {
	if r.Observe != nil {
		r.Observe(lin, x[:n*lin.Base.Cols()], n)
	}
	lin.Base.MulT(y, x, n)
	if lin.Bias != nil {
		out := lin.Base.Rows()
		for row := 0; row < n; row++ {
			addInto(y[row*out:(row+1)*out], lin.Bias)
		}
	}
	if a := lin.Adapter; a != nil {
		r.buf.lr = grow(r.buf.lr, n*a.R)
		a.AddTo(y, x, n, lin.Base.Cols(), lin.Base.Rows(), r.buf.lr)
	}
}

// AddTo adds the update ((x Aᵀ) ⊙ Scale) Bᵀ to y for n rows of x [n, in]
// (the fused adapters' forward without dropout, on the kernels the training
// op uses); h is scratch of n·R.
func (a *LowRank[T]) AddTo(y, x []T, n, in, out int, h []T) {
	kernels.FusedAdapterHidden(kernels.AdapterDims{N: n, In: in, Out: out, R: a.R}, h, nil, x, nil, a.A, a.Scale)
	kernels.Gemm(false, true, n, out, a.R, 1, h, a.R, a.B, a.R, 1, y, out)
}

func addInto(dst, src []float32) {
	for i, v := range src {
		dst[i] += v
	}
}
