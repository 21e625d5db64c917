package kernels

import (
	"math"
	"testing"
)

func naiveSwiGLU(gate, up []float64) []float64 {
	out := make([]float64, len(gate))
	for i, g := range gate {
		out[i] = g / (1 + math.Exp(-g)) * up[i]
	}
	return out
}

func TestSwiGLUForward(t *testing.T) {
	rng := testRand(70)
	n := 3*swigluChunk + 17 // several chunks and a partial one
	gate, up := randNormal(rng, n, 3), randNormal(rng, n, 1)
	gate[0], gate[1], gate[2] = 100, -100, 0 // saturated sigmoid both ways
	want := naiveSwiGLU(gate, up)
	out := make([]float64, n)
	SwiGLUForward(out, gate, up)
	assertClose(t, "SwiGLU f64", out, want, 1e-14)
	g32, u32 := to32(gate), to32(up)
	out32 := make([]float32, n)
	SwiGLUForward(out32, g32, u32)
	assertClose(t, "SwiGLU f32", out32, want, 1e-5)
	SwiGLUForward(g32, g32, u32) // out aliasing gate
	assertClose(t, "SwiGLU f32 in place", g32, want, 1e-5)
}

func TestSwiGLUBackwardGradients(t *testing.T) {
	rng := testRand(71)
	n := 40
	gate, up, R := randNormal(rng, n, 3), randNormal(rng, n, 1), randNormal(rng, n, 1)
	out := make([]float64, n)
	objective := func() float64 {
		SwiGLUForward(out, gate, up)
		return dotSum(out, R)
	}
	dgate, dup := make([]float64, n), make([]float64, n)
	SwiGLUBackward(dgate, dup, R, gate, up)
	gradCheck(t, "SwiGLU dgate", gate, dgate, objective, gradTol)
	gradCheck(t, "SwiGLU dup", up, dup, objective, gradTol)

	dgate32, dout32 := make([]float32, n), to32(R)
	SwiGLUBackward(dgate32, dout32, dout32, to32(gate), to32(up)) // dup aliasing dout
	assertClose(t, "SwiGLU dgate f32", dgate32, dgate, 1e-5)
	assertClose(t, "SwiGLU dup f32 aliasing dout", dout32, dup, 1e-5)
}

func BenchmarkSwiGLUForward(b *testing.B) {
	n := bench60MRows * bench60MMLP
	gate, up, out := randomFloat32(1, n, 2), randomFloat32(2, n, 1), make([]float32, n)
	b.SetBytes(int64(12 * n))
	for b.Loop() {
		SwiGLUForward(out, gate, up)
	}
}

func BenchmarkSwiGLUBackward(b *testing.B) {
	n := bench60MRows * bench60MMLP
	gate, up, dout := randomFloat32(1, n, 2), randomFloat32(2, n, 1), randomFloat32(3, n, 1)
	dgate, dup := make([]float32, n), make([]float32, n)
	b.SetBytes(int64(20 * n))
	for b.Loop() {
		SwiGLUBackward(dgate, dup, dout, gate, up)
	}
}
