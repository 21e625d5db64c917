package kernels

import (
	"fmt"
	"math"
	"testing"
)

// naiveAttention computes Out (in a copy of a.Out) and the probabilities
// [Heads, Tq, Tk] by explicit loops over positions: query row i at position
// Tk-Tq+i, keys 0..that position, head h reading key/value head h/(H/KV).
func naiveAttention(a Attn[float64]) (out, probs []float64) {
	out = append([]float64(nil), a.Out...)
	probs = make([]float64, a.Heads*a.Tq*a.Tk)
	d := a.HeadDim
	for h := 0; h < a.Heads; h++ {
		g := h / (a.Heads / a.KVHeads)
		for i := 0; i < a.Tq; i++ {
			position := a.Tk - a.Tq + i
			scores := make([]float64, position+1)
			peak := math.Inf(-1)
			for j := range scores {
				for c := 0; c < d; c++ {
					scores[j] += a.Q[i*a.QStride+h*d+c] * a.K[j*a.KStride+g*d+c]
				}
				scores[j] /= math.Sqrt(float64(d))
				peak = math.Max(peak, scores[j])
			}
			var total float64
			for j := range scores {
				scores[j] = math.Exp(scores[j] - peak)
				total += scores[j]
			}
			for c := 0; c < d; c++ {
				var s float64
				for j := range scores {
					s += scores[j] / total * a.V[j*a.VStride+g*d+c]
				}
				out[i*a.OutStride+h*d+c] = s
			}
			for j := range scores {
				probs[(h*a.Tq+i)*a.Tk+j] = scores[j] / total
			}
		}
	}
	return out, probs
}

// attnCase is a test shape; strides get padding columns so that stride bugs
// and writes outside the head columns show.
type attnCase struct{ tq, tk, heads, kvHeads, d int }

func (c attnCase) String() string {
	return fmt.Sprintf("Tq=%d Tk=%d H=%d KV=%d D=%d", c.tq, c.tk, c.heads, c.kvHeads, c.d)
}

func (c attnCase) random(seed uint64) Attn[float64] {
	rng := testRand(seed)
	a := Attn[float64]{Tq: c.tq, Tk: c.tk, Heads: c.heads, KVHeads: c.kvHeads, HeadDim: c.d,
		QStride: c.heads*c.d + 1, KStride: c.kvHeads*c.d + 2, VStride: c.kvHeads*c.d + 3, OutStride: c.heads*c.d + 1}
	a.Q = randNormal(rng, c.tq*a.QStride, 1)
	a.K = randNormal(rng, c.tk*a.KStride, 1)
	a.V = randNormal(rng, c.tk*a.VStride, 1)
	a.Out = randNormal(rng, c.tq*a.OutStride, 1)
	return a
}

var attnCases = []attnCase{
	{5, 5, 4, 2, 3},    // GQA prefill
	{2, 6, 4, 2, 4},    // decode of two rows with a cache
	{1, 4, 2, 1, 2},    // one decode step, multi-query
	{70, 70, 2, 1, 2},  // more rows than attnRowBlock
	{66, 70, 2, 2, 3},  // several row blocks after a cache
	{3, 3, 3, 3, 16},   // plain multi-head
	{9, 130, 1, 1, 40}, // long cache: BLAS-sized products
}

// attnGradCases are smaller than attnCases (a gradient check costs two
// forward passes per input) but still cover GQA, a cache and several row blocks.
var attnGradCases = []attnCase{{5, 5, 4, 2, 3}, {2, 6, 4, 2, 4}, {1, 4, 2, 1, 2}, {66, 67, 2, 1, 1}, {3, 3, 3, 3, 16}}

// withGemmPaths runs fn once with every product through BLAS and once with
// every product through the small-product loops.
func withGemmPaths(t *testing.T, fn func(t *testing.T)) {
	saved := smallGemmWork
	defer func() { smallGemmWork = saved }()
	for _, path := range []struct {
		name  string
		limit int
	}{{"blas", 0}, {"loops", math.MaxInt}} {
		smallGemmWork = path.limit
		t.Run(path.name, fn)
	}
}

func TestAttnForwardMatchesNaive(t *testing.T) {
	withGemmPaths(t, func(t *testing.T) {
		for k, c := range attnCases {
			a := c.random(uint64(10 + k))
			wantOut, wantProbs := naiveAttention(a)
			a.Forward()
			assertClose(t, c.String()+" Out", a.Out, wantOut, 1e-12)
			a.Probs = make([]float64, c.heads*c.tq*c.tk)
			for i := range a.Probs {
				a.Probs[i] = math.NaN() // all must be overwritten, zeros above the causal limit
			}
			a.Forward()
			assertClose(t, c.String()+" Probs", a.Probs, wantProbs, 1e-12)

			a32 := Attn[float32]{Tq: a.Tq, Tk: a.Tk, Heads: a.Heads, KVHeads: a.KVHeads, HeadDim: a.HeadDim,
				Q: to32(a.Q), K: to32(a.K), V: to32(a.V), Out: to32(a.Out),
				QStride: a.QStride, KStride: a.KStride, VStride: a.VStride, OutStride: a.OutStride}
			a32.Forward()
			assertClose(t, c.String()+" Out f32", a32.Out, wantOut, 2e-5)
		}
	})
}

func TestAttnBackwardGradients(t *testing.T) {
	withGemmPaths(t, func(t *testing.T) {
		for k, c := range attnGradCases {
			for _, storeProbs := range []bool{false, true} {
				name := fmt.Sprintf("%v probs=%v", c, storeProbs)
				a := c.random(uint64(20 + k))
				if storeProbs {
					a.Probs = make([]float64, c.heads*c.tq*c.tk)
				}
				R := randNormal(testRand(uint64(30+k)), len(a.Out), 1)
				objective := func() float64 {
					a.Forward()
					return dotSum(a.Out, R)
				}
				objective() // leaves Probs as Backward expects them
				const sentinel = 7.5
				dQ, dK, dV := filled(len(a.Q), sentinel), filled(len(a.K), sentinel), filled(len(a.V), sentinel)
				a.Backward(dQ, dK, dV, R)
				for _, g := range []struct {
					name         string
					grad, input  []float64
					rows, stride int
					heads        int
				}{{"dQ", dQ, a.Q, c.tq, a.QStride, c.heads}, {"dK", dK, a.K, c.tk, a.KStride, c.kvHeads}, {"dV", dV, a.V, c.tk, a.VStride, c.kvHeads}} {
					checkPadding(t, name+" "+g.name, g.grad, g.rows, g.stride, g.heads*c.d, sentinel)
					gradCheck(t, name+" "+g.name, g.input, g.grad, objective, gradTol)
				}
				// Skipped outputs: dK alone equals the dK above.
				dK2 := make([]float64, len(a.K))
				a.Backward(nil, dK2, nil, R)
				assertClose(t, name+" dK alone", dK2, dK, 1e-12)
			}
		}
	})
}

// filled returns n copies of v.
func filled(n int, v float64) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = v
	}
	return s
}

// checkPadding verifies that the columns past width of each row still hold
// sentinel, then zeroes them (their true gradient) for the gradient check.
func checkPadding(t *testing.T, name string, m []float64, rows, stride, width int, sentinel float64) {
	t.Helper()
	for r := 0; r < rows; r++ {
		for c := width; c < stride && r*stride+c < len(m); c++ {
			if m[r*stride+c] != sentinel {
				t.Fatalf("%s: padding at row %d column %d was written (%v)", name, r, c, m[r*stride+c])
			}
			m[r*stride+c] = 0
		}
	}
}

func TestAttnDecodeMatchesPrefill(t *testing.T) {
	// A KV cache runs Forward one row at a time with Tq=1 and a growing Tk; the
	// result must equal the full causal prefill.
	c := attnCase{70, 70, 4, 2, 8}
	a := c.random(40)
	a32 := Attn[float32]{Tq: a.Tq, Tk: a.Tk, Heads: a.Heads, KVHeads: a.KVHeads, HeadDim: a.HeadDim,
		Q: to32(a.Q), K: to32(a.K), V: to32(a.V), Out: make([]float32, len(a.Out)),
		QStride: a.QStride, KStride: a.KStride, VStride: a.VStride, OutStride: a.OutStride}
	a32.Forward()
	a.Forward()
	step64, step32 := a, a32
	step64.Out, step32.Out = make([]float64, len(a.Out)), make([]float32, len(a.Out))
	for i := 0; i < c.tq; i++ {
		d64, d32 := step64, step32
		d64.Tq, d64.Tk, d32.Tq, d32.Tk = 1, i+1, 1, i+1
		d64.Q, d64.Out = step64.Q[i*a.QStride:], step64.Out[i*a.OutStride:]
		d32.Q, d32.Out = step32.Q[i*a.QStride:], step32.Out[i*a.OutStride:]
		d64.Forward()
		d32.Forward()
	}
	for r := 0; r < c.tq; r++ { // compare the head columns only
		for j := 0; j < c.heads*c.d; j++ {
			i := r*a.OutStride + j
			if math.Abs(step64.Out[i]-a.Out[i]) > 1e-12 || math.Abs(float64(step32.Out[i]-a32.Out[i])) > 1e-5 {
				t.Fatalf("row %d col %d: decode %v / %v, prefill %v / %v", r, j, step64.Out[i], step32.Out[i], a.Out[i], a32.Out[i])
			}
		}
	}
}

func TestAttnPanics(t *testing.T) {
	a := attnCase{3, 3, 2, 1, 2}.random(50)
	bad := a
	bad.Tq = 4
	expectPanic(t, "Tq > Tk", bad.Forward)
	bad = a
	bad.KVHeads = 3
	expectPanic(t, "Heads not a multiple of KVHeads", bad.Forward)
	bad = a
	bad.K = bad.K[:len(bad.K)-3]
	expectPanic(t, "short K", bad.Forward)
	expectPanic(t, "short dQ", func() { a.Backward(make([]float64, 2), nil, nil, a.Out) })
}

// selfAttentionReference is SelfAttentionForward from independent pieces:
// complex-number RoPE and the explicit-loop attention, sequence by sequence.
func selfAttentionReference(s SelfAttention, qkv []float64) []float64 {
	n, w, hd := s.Batch*s.Seq, (s.Heads+2*s.KVHeads)*s.HeadDim, s.Heads*s.HeadDim
	pos := make([]int, n)
	for r := range pos {
		pos[r] = r % s.Seq
	}
	roped := complexRope(qkv, n, w, 0, s.Heads+s.KVHeads, s.HeadDim, pos, s.InvFreq)
	out := make([]float64, n*hd)
	for b := 0; b < s.Batch; b++ {
		rows := roped[b*s.Seq*w:]
		o, _ := naiveAttention(Attn[float64]{Tq: s.Seq, Tk: s.Seq, Heads: s.Heads, KVHeads: s.KVHeads, HeadDim: s.HeadDim,
			Q: rows, K: rows[hd:], V: rows[hd+s.KVHeads*s.HeadDim:], Out: make([]float64, s.Seq*hd),
			QStride: w, KStride: w, VStride: w, OutStride: hd})
		copy(out[b*s.Seq*hd:], o)
	}
	return out
}

func TestSelfAttention(t *testing.T) {
	s := SelfAttention{Batch: 2, Seq: 4, Heads: 4, KVHeads: 2, HeadDim: 4, InvFreq: RopeInvFreq(4, 10, RopeScaling{})}
	n, w, hd := s.Batch*s.Seq, (s.Heads+2*s.KVHeads)*s.HeadDim, s.Heads*s.HeadDim
	rng := testRand(60)
	qkv, R := randNormal(rng, n*w, 1), randNormal(rng, n*hd, 1)
	orig := append([]float64(nil), qkv...)
	out := make([]float64, n*hd)
	SelfAttentionForward(s, out, qkv)
	assertClose(t, "SelfAttentionForward", out, selfAttentionReference(s, qkv), 1e-12)
	assertClose(t, "qkv after forward", qkv, orig, 0)

	out32 := make([]float32, n*hd)
	SelfAttentionForward(s, out32, to32(qkv))
	assertClose(t, "SelfAttentionForward f32", out32, out, 2e-5)

	dqkv := randNormal(rng, n*w, 1)
	SelfAttentionBackward(s, dqkv, R, qkv)
	assertClose(t, "qkv after backward", qkv, orig, 0)
	gradCheck(t, "SelfAttention dqkv", qkv, dqkv, func() float64 {
		SelfAttentionForward(s, out, qkv)
		return dotSum(out, R)
	}, gradTol)

	expectPanic(t, "short qkv", func() { SelfAttentionForward(s, out, qkv[:n*w-1]) })
	expectPanic(t, "wrong InvFreq", func() {
		s2 := s
		s2.InvFreq = s.InvFreq[:1]
		SelfAttentionForward(s2, out, qkv)
	})
}

// packedPositions returns the Positions of sequences that hold examples of
// the given lengths, sequence by sequence (each list must sum to seq).
func packedPositions(seq int, lengths ...[]int) []int {
	var pos []int
	for _, row := range lengths {
		for _, n := range row {
			for p := 0; p < n; p++ {
				pos = append(pos, p)
			}
		}
		if len(pos)%seq != 0 {
			panic("packedPositions: lengths do not fill the sequence")
		}
	}
	return pos
}

// TestSelfAttentionPacked checks packed sequences against each example run
// alone as its own sequence (the reference of TestSelfAttention), the
// gradient by central differences, and that positions 0..Seq-1 give exactly
// the unpacked result.
func TestSelfAttentionPacked(t *testing.T) {
	const seq = 70 // more rows than attnRowBlock, so examples straddle row blocks
	lengths := [][]int{{3, 66, 1}, {70}, {1, 1, 68}}
	s := SelfAttention{Batch: 3, Seq: seq, Heads: 4, KVHeads: 2, HeadDim: 4, InvFreq: RopeInvFreq(4, 10, RopeScaling{}),
		Positions: packedPositions(seq, lengths...)}
	n, w, hd := s.Batch*s.Seq, s.width(), s.Heads*s.HeadDim
	rng := testRand(61)
	qkv, R := randNormal(rng, n*w, 1), randNormal(rng, n*hd, 1)
	out := make([]float64, n*hd)
	SelfAttentionForward(s, out, qkv)

	want := make([]float64, 0, n*hd)
	start := 0
	for _, row := range lengths {
		for _, l := range row {
			alone := SelfAttention{Batch: 1, Seq: l, Heads: s.Heads, KVHeads: s.KVHeads, HeadDim: s.HeadDim, InvFreq: s.InvFreq}
			want = append(want, selfAttentionReference(alone, qkv[start*w:(start+l)*w])...)
			start += l
		}
	}
	assertClose(t, "packed SelfAttentionForward", out, want, 1e-12)

	dqkv := randNormal(rng, n*w, 1)
	SelfAttentionBackward(s, dqkv, R, qkv)
	small := SelfAttention{Batch: 2, Seq: 5, Heads: 4, KVHeads: 2, HeadDim: 4, InvFreq: s.InvFreq,
		Positions: packedPositions(5, []int{2, 3}, []int{1, 3, 1})}
	sq, sR := qkv[:small.Batch*small.Seq*w], R[:small.Batch*small.Seq*hd]
	sOut, sd := make([]float64, len(sR)), make([]float64, len(sq))
	SelfAttentionBackward(small, sd, sR, sq)
	gradCheck(t, "packed SelfAttention dqkv", sq, sd, func() float64 {
		SelfAttentionForward(small, sOut, sq)
		return dotSum(sOut, sR)
	}, gradTol)

	// One example per sequence through Positions is the unpacked layer, bit for bit.
	plain := s
	plain.Positions = nil
	full := s
	full.Positions = packedPositions(seq, []int{seq}, []int{seq}, []int{seq})
	q32 := to32(qkv)
	o1, o2 := make([]float32, n*hd), make([]float32, n*hd)
	SelfAttentionForward(plain, o1, q32)
	SelfAttentionForward(full, o2, q32)
	d1, d2 := make([]float32, n*w), make([]float32, n*w)
	SelfAttentionBackward(plain, d1, to32(R), q32)
	SelfAttentionBackward(full, d2, to32(R), q32)
	for i := range o1 {
		if o1[i] != o2[i] {
			t.Fatalf("out[%d]: %v with Positions 0..Seq-1, %v without", i, o2[i], o1[i])
		}
	}
	for i := range d1 {
		if d1[i] != d2[i] {
			t.Fatalf("dqkv[%d]: %v with Positions 0..Seq-1, %v without", i, d2[i], d1[i])
		}
	}

	bad := s
	bad.Positions = append([]int(nil), s.Positions...)
	bad.Positions[5] = 7
	expectPanic(t, "positions that skip", func() { SelfAttentionForward(bad, out, qkv) })
	bad.Positions = s.Positions[:n-1]
	expectPanic(t, "short positions", func() { SelfAttentionForward(bad, out, qkv) })
}

func TestCheckPositions(t *testing.T) {
	for _, c := range []struct {
		pos       []int
		batch, sq int
		ok        bool
	}{
		{[]int{0, 1, 2, 0, 1, 0}, 2, 3, true},
		{[]int{0, 0, 0}, 1, 3, true},
		{[]int{0, 1, 2, 3, 0, 1}, 2, 3, false}, // the second sequence starts at 3
		{[]int{0, 2, 3}, 1, 3, false},          // skips 1
		{[]int{0, 1}, 1, 3, false},             // too short
		{[]int{0, 1, -1}, 1, 3, false},
		{nil, 1, 0, false},
	} {
		if err := CheckPositions(c.pos, c.batch, c.sq); (err == nil) != c.ok {
			t.Errorf("CheckPositions(%v, %d, %d) = %v, want ok=%v", c.pos, c.batch, c.sq, err, c.ok)
		}
	}
}

func bench60MSelfAttention() (SelfAttention, []float32) {
	s := SelfAttention{Batch: 4, Seq: 256, Heads: 8, KVHeads: 8, HeadDim: 64, InvFreq: RopeInvFreq(64, 10000, RopeScaling{})}
	return s, randomFloat32(1, s.Batch*s.Seq*(s.Heads+2*s.KVHeads)*s.HeadDim, 1)
}

func BenchmarkSelfAttentionForward(b *testing.B) {
	s, qkv := bench60MSelfAttention()
	out := make([]float32, s.Batch*s.Seq*s.Heads*s.HeadDim)
	for b.Loop() {
		SelfAttentionForward(s, out, qkv)
	}
}

func BenchmarkSelfAttentionBackward(b *testing.B) {
	s, qkv := bench60MSelfAttention()
	dqkv, dout := make([]float32, len(qkv)), randomFloat32(2, s.Batch*s.Seq*s.Heads*s.HeadDim, 1)
	for b.Loop() {
		SelfAttentionBackward(s, dqkv, dout, qkv)
	}
}

// BenchmarkSelfAttentionPacked is forward and backward of the bench-60M
// attention layer with each sequence packed with four examples of 64 tokens:
// compare with BenchmarkSelfAttentionForward plus Backward (one example of
// 256), which does about four times the attention work.
func BenchmarkSelfAttentionPacked(b *testing.B) {
	s, qkv := bench60MSelfAttention()
	rows := make([][]int, s.Batch)
	for r := range rows {
		rows[r] = []int{64, 64, 64, 64}
	}
	s.Positions = packedPositions(s.Seq, rows...)
	out, dqkv := make([]float32, s.Batch*s.Seq*s.Heads*s.HeadDim), make([]float32, len(qkv))
	for b.Loop() {
		SelfAttentionForward(s, out, qkv)
		SelfAttentionBackward(s, dqkv, out, qkv)
	}
}

// BenchmarkAttnDecode is one decode step of the bench-60M model's attention
// layer against a 256-token KV cache.
func BenchmarkAttnDecode(b *testing.B) {
	const tk, heads, d = 256, 8, 64
	a := Attn[float32]{Tq: 1, Tk: tk, Heads: heads, KVHeads: heads, HeadDim: d,
		Q: randomFloat32(1, heads*d, 1), K: randomFloat32(2, tk*heads*d, 1), V: randomFloat32(3, tk*heads*d, 1),
		Out: make([]float32, heads*d), QStride: heads * d, KStride: heads * d, VStride: heads * d, OutStride: heads * d}
	for b.Loop() {
		a.Forward()
	}
}

func TestGemmAutoMatchesNaive(t *testing.T) {
	saved := smallGemmWork
	defer func() { smallGemmWork = saved }()
	rng := testRand(61)
	// Shapes with long rows, long inner dimensions and many columns, each as
	// loops and as a BLAS call; and tiny loops.
	for _, shape := range [][3]int{{4, 5, 6}, {5, 300, 200}, {3, 10, 30000}, {1, 200, 100}, {2, 3, 2}} {
		m, n, k := shape[0], shape[1], shape[2]
		for _, limit := range []int{0, math.MaxInt} {
			if limit == math.MaxInt && m*n*k > 1e5 {
				continue
			}
			smallGemmWork = limit
			for _, tA := range []bool{false, true} {
				for _, tB := range []bool{false, true} {
					lda, ldb, ldc := k+1, n+2, n+3
					rowsA, rowsB := m, k
					if tA {
						lda, rowsA = m+1, k
					}
					if tB {
						ldb, rowsB = k+2, n
					}
					a, b := randNormal(rng, rowsA*lda, 1), randNormal(rng, rowsB*ldb, 1)
					for _, beta := range []float64{0, 0.5} {
						c := randNormal(rng, m*ldc, 1)
						want := append([]float64(nil), c...)
						naiveGemm(tA, tB, m, n, k, 0.7, a, lda, b, ldb, beta, want, ldc)
						gemmAuto(tA, tB, m, n, k, 0.7, a, lda, b, ldb, beta, c, ldc)
						name := fmt.Sprintf("gemmAuto %v tA=%v tB=%v beta=%v loops=%v", shape, tA, tB, beta, limit > 0)
						assertClose(t, name, c, want, 1e-10)
					}
				}
			}
		}
	}
}
