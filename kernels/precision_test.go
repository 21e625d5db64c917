package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestMatMulBF16Rounds multiplies operands that bfloat16 cannot hold: with
// 7 fraction bits, 1+2⁻⁸ is a tie between 1 and 1+2⁻⁷ and rounds to the even
// 1, 1+2⁻¹⁰ rounds down to 1 and 1+3·2⁻⁸ (a tie) up to the even 1+2⁻⁶, so
// the bf16 product differs from the fp32 one by exactly the dropped bits.
func TestMatMulBF16Rounds(t *testing.T) {
	a := []float32{1 + 0x1p-8, 1 + 0x1p-10, 1 + 3*0x1p-8}
	b := []float32{1, 1, 0.5}
	c32, c16 := []float32{0}, []float32{0}
	MatMul(FP32, false, true, 1, 1, 3, 1, a, 3, b, 3, 0, c32, 1)
	MatMul(BF16, false, true, 1, 1, 3, 1, a, 3, b, 3, 0, c16, 1)
	if want := float32(2 + 0x1p-8 + 0x1p-10 + 0.5 + 1.5*0x1p-8); c32[0] != want {
		t.Fatalf("fp32 product %v, want %v", c32[0], want)
	}
	if want := float32(2 + 0.5 + 0x1p-7); c16[0] != want {
		t.Fatalf("bf16 product %v, want %v (fp32 gives %v)", c16[0], want, c32[0])
	}
	if d := c32[0] - c16[0]; d != 0x1p-9+0x1p-10 {
		t.Fatalf("fp32 - bf16 = %v", d)
	}
	// The operands are not modified.
	if a[0] != 1+0x1p-8 || b[2] != 0.5 {
		t.Fatal("MatMul modified its operands")
	}
}

// TestMatMulBF16MatchesReference checks every transpose and strided operands
// against float64 products of the rounded operands, and that float64 takes
// the same rounding.
func TestMatMulBF16MatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const m, n, k, pad = 5, 7, 33, 3
	for _, ta := range []bool{false, true} {
		for _, tb := range []bool{false, true} {
			ar, ac := m, k
			if ta {
				ar, ac = k, m
			}
			br, bc := k, n
			if tb {
				br, bc = n, k
			}
			lda, ldb, ldc := ac+pad, bc+pad, n+pad
			a := randSlice(rng, ar*lda)
			b := randSlice(rng, br*ldb)
			c := randSlice(rng, m*ldc)
			c64 := make([]float64, len(c))
			for i, v := range c {
				c64[i] = float64(v)
			}
			want := slicesClone64(c64)
			round := func(x []float32) []float64 {
				out := make([]float64, len(x))
				for i, v := range x {
					out[i] = float64(BF16ToFloat32(Float32ToBF16(v)))
				}
				return out
			}
			naiveGemm(ta, tb, m, n, k, 0.5, round(a), lda, round(b), ldb, 2, want, ldc)
			MatMul(BF16, ta, tb, m, n, k, 0.5, a, lda, b, ldb, 2, c, ldc)
			a64, b64 := toF64(a), toF64(b)
			MatMul(BF16, ta, tb, m, n, k, 0.5, a64, lda, b64, ldb, 2, c64, ldc)
			for i := range want {
				if math.Abs(float64(c[i])-want[i]) > 1e-5*max(1, math.Abs(want[i])) {
					t.Fatalf("transA %v transB %v: c[%d] = %v, want %v", ta, tb, i, c[i], want[i])
				}
				if math.Abs(c64[i]-want[i]) > 1e-12*max(1, math.Abs(want[i])) {
					t.Fatalf("float64, transA %v transB %v: c[%d] = %v, want %v", ta, tb, i, c64[i], want[i])
				}
			}
		}
	}
}

// TestSetBF16Gemm checks that MatMul with BF16 runs an installed product and
// that removing it restores the emulation.
func TestSetBF16Gemm(t *testing.T) {
	calls := 0
	SetBF16Gemm("test", func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
		calls++
		c[0] = 42
	})
	defer SetBF16Gemm("", nil)
	if BF16GemmPath() != "test" {
		t.Fatalf("path %q", BF16GemmPath())
	}
	c := []float32{0}
	MatMul(BF16, false, false, 1, 1, 1, 1, []float32{2}, 1, []float32{3}, 1, 0, c, 1)
	c32 := []float32{0}
	MatMul(FP32, false, false, 1, 1, 1, 1, []float32{2}, 1, []float32{3}, 1, 0, c32, 1)
	if calls != 1 || c[0] != 42 || c32[0] != 6 {
		t.Fatalf("installed product called %d times, c = %v, fp32 c = %v", calls, c, c32)
	}
	SetBF16Gemm("", nil)
	MatMul(BF16, false, false, 1, 1, 1, 1, []float32{2}, 1, []float32{3}, 1, 0, c, 1)
	if BF16GemmPath() != "emulated" || c[0] != 6 || calls != 1 {
		t.Fatalf("after removal: path %q, c = %v, %d calls", BF16GemmPath(), c, calls)
	}
}

// TestAutocastBF16 checks that the wrapper rounds the activation operand of
// both products and nothing else.
func TestAutocastBF16(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const rows, cols, n = 6, 9, 4
	w := randSlice(rng, rows*cols)
	RoundBF16(w, w)
	d := NewDense(w, rows, cols)
	m := AutocastBF16[float32](d)
	x, dy := randSlice(rng, n*cols), randSlice(rng, n*rows)
	xr, dyr := make([]float32, len(x)), make([]float32, len(dy))
	RoundBF16(xr, x)
	RoundBF16(dyr, dy)
	got, want := make([]float32, n*rows), make([]float32, n*rows)
	m.MulT(got, x, n)
	d.MulT(want, xr, n)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("MulT[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	gotDx, wantDx := make([]float32, n*cols), make([]float32, n*cols)
	m.Mul(gotDx, dy, n)
	d.Mul(wantDx, dyr, n)
	for i := range wantDx {
		if gotDx[i] != wantDx[i] {
			t.Fatalf("Mul[%d] = %v, want %v", i, gotDx[i], wantDx[i])
		}
	}
	if m.Rows() != rows || m.Cols() != cols {
		t.Fatalf("shape %dx%d, want %dx%d", m.Rows(), m.Cols(), rows, cols)
	}
}

// TestAdapterBF16 checks the adapter's products under BF16: the hidden
// values are those of the rounded operands, and they differ from fp32's.
func TestAdapterBF16(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	d := AdapterDims{N: 3, In: 8, Out: 5, R: 4}
	x, a, b := randSlice(rng, d.N*d.In), randSlice(rng, d.R*d.In), randSlice(rng, d.Out*d.R)
	scale := []float32{1, 2, 0.5, 1}
	y16, h16 := make([]float32, d.N*d.Out), make([]float32, d.N*d.R)
	d16 := d
	d16.Precision = BF16
	FusedAdapterForward(d16, y16, h16, nil, x, nil, a, b, scale)
	xr, ar, br := make([]float32, len(x)), make([]float32, len(a)), make([]float32, len(b))
	RoundBF16(xr, x)
	RoundBF16(ar, a)
	y, h := make([]float32, d.N*d.Out), make([]float32, d.N*d.R)
	FusedAdapterHidden(d, h, nil, xr, nil, ar, scale)
	for i := range h {
		if h[i] != h16[i] {
			t.Fatalf("h[%d] = %v, want %v", i, h16[i], h[i])
		}
	}
	hr := make([]float32, len(h))
	RoundBF16(hr, h)
	RoundBF16(br, b)
	FusedAdapterOutput(d, y, hr, br)
	y32 := make([]float32, len(y))
	FusedAdapterForward(d, y32, h, nil, x, nil, a, b, scale)
	differ := false
	for i := range y {
		if y[i] != y16[i] {
			t.Fatalf("y[%d] = %v, want %v", i, y16[i], y[i])
		}
		differ = differ || y32[i] != y16[i]
	}
	if !differ {
		t.Fatal("bf16 and fp32 give the same adapter output")
	}
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

func toF64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

func slicesClone64(x []float64) []float64 { return append([]float64(nil), x...) }

// TestAttnBF16 checks attention's products under BF16 against the naive
// attention of the rounded Q, K and V whose probabilities are rounded before
// they multiply V (softmax itself stays in full precision).
func TestAttnBF16(t *testing.T) {
	round := func(x []float64) []float64 {
		out := make([]float64, len(x))
		RoundBF16(out, x)
		return out
	}
	withGemmPaths(t, func(t *testing.T) {
		for k, c := range attnCases {
			a := c.random(uint64(40 + k))
			r := a
			r.Q, r.K, r.V = round(a.Q), round(a.K), round(a.V)
			want, probs := naiveAttention(r)
			probs = round(probs)
			d := a.HeadDim
			for h := 0; h < a.Heads; h++ {
				g := h / (a.Heads / a.KVHeads)
				for i := 0; i < a.Tq; i++ {
					for col := 0; col < d; col++ {
						var s float64
						for j := 0; j < a.Tk; j++ {
							s += probs[(h*a.Tq+i)*a.Tk+j] * r.V[j*a.VStride+g*d+col]
						}
						want[i*a.OutStride+h*d+col] = s
					}
				}
			}
			fp32 := a
			fp32.Out = append([]float64(nil), a.Out...)
			fp32.Forward()
			a.Precision = BF16
			a.Forward()
			assertClose(t, c.String()+" bf16 Out", a.Out, want, 1e-12)
			differ := false
			for i := range a.Out {
				differ = differ || a.Out[i] != fp32.Out[i]
			}
			if !differ {
				t.Fatalf("%v: bf16 and fp32 attention agree exactly", c)
			}
		}
	})
}
