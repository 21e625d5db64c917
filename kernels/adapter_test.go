package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// naiveFusedAdapter is the reference: the sum over ranks k of
// scale[k]·(Σ_i A[k,i]·x̃[n,i])·B[o,k], where x̃ = x⊙drop for the first D ranks
// and x otherwise, by plain loops in float64.
func naiveFusedAdapter(d AdapterDims, x, drop, a, b, scale []float64) []float64 {
	y := make([]float64, d.N*d.Out)
	for n := 0; n < d.N; n++ {
		for k := 0; k < d.R; k++ {
			var hk float64
			for i := 0; i < d.In; i++ {
				xi := x[n*d.In+i]
				if k < d.Dropped {
					xi *= drop[n*d.In+i]
				}
				hk += a[k*d.In+i] * xi
			}
			for o := 0; o < d.Out; o++ {
				y[n*d.Out+o] += scale[k] * hk * b[o*d.R+k]
			}
		}
	}
	return y
}

// adapterCase holds random inputs of one fused-adapter shape; drop zeroes
// about a third of the entries and scales the rest by 1/(1−p).
type adapterCase struct {
	d                        AdapterDims
	x, drop, a, b, scale, dy []float64
}

func newAdapterCase(seed uint64, d AdapterDims) *adapterCase {
	rng := testRand(seed)
	c := &adapterCase{d: d,
		x: randNormal(rng, d.N*d.In, 1), a: randNormal(rng, d.R*d.In, 0.5),
		b: randNormal(rng, d.Out*d.R, 0.5), scale: randNormal(rng, d.R, 1),
		dy: randNormal(rng, d.N*d.Out, 1), drop: make([]float64, d.N*d.In)}
	const p = 1.0 / 3
	for i := range c.drop {
		if rng.Float64() >= p {
			c.drop[i] = 1 / (1 - p)
		}
	}
	return c
}

func adapterShapes() []AdapterDims {
	var out []AdapterDims
	for _, n := range []int{1, 4} {
		for _, dropped := range []int{0, 2, 5} {
			out = append(out, AdapterDims{N: n, In: 7, Out: 6, R: 5, Dropped: dropped})
		}
	}
	return out
}

func toF32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

func TestFusedAdapterForwardMatchesNaive(t *testing.T) {
	for i, d := range adapterShapes() {
		c := newAdapterCase(uint64(i), d)
		want := naiveFusedAdapter(d, c.x, c.drop, c.a, c.b, c.scale)
		y, h, xd := make([]float64, d.N*d.Out), make([]float64, d.N*d.R), make([]float64, d.N*d.In)
		FusedAdapterForward(d, y, h, xd, c.x, c.drop, c.a, c.b, c.scale)
		assertClose(t, "float64 y", y, want, 1e-12)
		y32, h32, xd32 := make([]float32, d.N*d.Out), make([]float32, d.N*d.R), make([]float32, d.N*d.In)
		FusedAdapterForward(d, y32, h32, xd32, toF32(c.x), toF32(c.drop), toF32(c.a), toF32(c.b), toF32(c.scale))
		assertClose(t, "float32 y", y32, want, 1e-5)
		if d.Dropped > 0 {
			for j := range xd {
				if xd[j] != c.x[j]*c.drop[j] {
					t.Fatalf("xd[%d] = %g, want x⊙drop = %g", j, xd[j], c.x[j]*c.drop[j])
				}
			}
			// Without drop, xd is taken as ready.
			y2 := make([]float64, d.N*d.Out)
			FusedAdapterForward(d, y2, h, xd, c.x, nil, c.a, c.b, c.scale)
			assertClose(t, "float64 y from a ready xd", y2, want, 1e-12)
		}
	}
}

func TestFusedAdapterGradients(t *testing.T) {
	for i, d := range adapterShapes() {
		c := newAdapterCase(uint64(100+i), d)
		objective := func() float64 {
			return dotSum(naiveFusedAdapter(d, c.x, c.drop, c.a, c.b, c.scale), c.dy)
		}
		h, xd := make([]float64, d.N*d.R), make([]float64, d.N*d.In)
		FusedAdapterHidden(d, h, xd, c.x, c.drop, c.a, c.scale)
		dx, da, db := make([]float64, d.N*d.In), make([]float64, d.R*d.In), make([]float64, d.Out*d.R)
		FusedAdapterBackward(d, dx, da, db, make([]float64, d.N*d.R), c.dy, h, xd, c.x, c.drop, c.a, c.b, c.scale)
		gradCheck(t, "dx", c.x, dx, objective, gradTol)
		gradCheck(t, "dA", c.a, da, objective, gradTol)
		gradCheck(t, "dB", c.b, db, objective, gradTol)
	}
}

func TestFusedAdapterBackwardOverwritesAndSkips(t *testing.T) {
	d := AdapterDims{N: 3, In: 4, Out: 5, R: 3, Dropped: 1}
	c := newAdapterCase(7, d)
	h, xd := make([]float64, d.N*d.R), make([]float64, d.N*d.In)
	FusedAdapterHidden(d, h, xd, c.x, c.drop, c.a, c.scale)
	full := [3][]float64{make([]float64, d.N*d.In), make([]float64, d.R*d.In), make([]float64, d.Out*d.R)}
	FusedAdapterBackward(d, full[0], full[1], full[2], make([]float64, d.N*d.R), c.dy, h, xd, c.x, c.drop, c.a, c.b, c.scale)
	// One output at a time, into buffers full of NaN: each must be overwritten
	// and match the all-at-once result; the others are skipped (nil).
	for which := 0; which < 3; which++ {
		out := make([]float64, len(full[which]))
		for i := range out {
			out[i] = math.NaN()
		}
		var dx, da, db []float64
		switch which {
		case 0:
			dx = out
		case 1:
			da = out
		default:
			db = out
		}
		FusedAdapterBackward(d, dx, da, db, make([]float64, d.N*d.R), c.dy, h, xd, c.x, c.drop, c.a, c.b, c.scale)
		assertClose(t, "single output", out, full[which], 0)
	}
	// dB needs only dy and h.
	db := make([]float64, d.Out*d.R)
	FusedAdapterBackward(d, nil, nil, db, nil, c.dy, h, nil, nil, nil, nil, nil, nil)
	assertClose(t, "dB alone", db, full[2], 0)
}

func TestFusedAdapterPanics(t *testing.T) {
	d := AdapterDims{N: 2, In: 3, Out: 4, R: 2, Dropped: 1}
	c := newAdapterCase(9, d)
	expectPanic(t, "short y", func() {
		FusedAdapterForward(d, make([]float64, 7), make([]float64, 4), make([]float64, 6), c.x, c.drop, c.a, c.b, c.scale)
	})
	expectPanic(t, "missing drop and xd", func() {
		FusedAdapterForward(d, make([]float64, 8), make([]float64, 4), nil, c.x, nil, c.a, c.b, c.scale)
	})
	expectPanic(t, "dropped > R", func() {
		FusedAdapterHidden(AdapterDims{N: 2, In: 3, Out: 4, R: 2, Dropped: 3}, make([]float64, 4), nil, c.x, nil, c.a, c.scale)
	})
	expectPanic(t, "short dh", func() {
		FusedAdapterBackward(d, make([]float64, 6), nil, nil, make([]float64, 3), c.dy, nil, nil, c.x, c.drop, c.a, c.b, c.scale)
	})
}

func TestDropoutHelpers(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	for _, n := range []int{0, 1, 63, 64, 65, 1000, 3 * minParallelWork} {
		keep := make([]uint64, (n+63)/64)
		for i := range keep {
			keep[i] = rng.Uint64()
		}
		drop := make([]float32, n+1)
		drop[n] = 42 // guard
		ExpandDropout(drop[:n], keep, 1.25)
		for i := range n {
			want := float32(0)
			if keep[i/64]&(1<<(i%64)) != 0 {
				want = 1.25
			}
			if drop[i] != want {
				t.Fatalf("n=%d: drop[%d] = %v, want %v", n, i, drop[i], want)
			}
		}
		if drop[n] != 42 {
			t.Fatalf("n=%d: ExpandDropout wrote past its slice", n)
		}
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		want := make([]float32, n)
		for i := range want {
			want[i] = x[i] * drop[i]
		}
		applied := make([]float32, n)
		ApplyDropout(applied, x, keep, 1.25)
		MulElems(x, x, drop[:n]) // in place
		for i := range want {
			if x[i] != want[i] {
				t.Fatalf("n=%d: MulElems[%d] = %v, want %v", n, i, x[i], want[i])
			}
			if applied[i] != want[i] {
				t.Fatalf("n=%d: ApplyDropout[%d] = %v, want %v", n, i, applied[i], want[i])
			}
		}
	}
}
