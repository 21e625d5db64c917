package vecmath

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

const (
	// minArg and maxArg bound the arguments whose exponential is a normal
	// float32 (ln of the smallest normal and of the largest float32).
	minArg = -87.33654
	maxArg = 88.72283
	// asmTol is the relative error the assembly kernels promise; the Go
	// reference (the table-based Exp32) promises about 2 ulp.
	asmTol = 2e-7
	goTol  = 2.5e-7
)

var (
	posInf = float32(math.Inf(1))
	negInf = float32(math.Inf(-1))
	nan    = float32(math.NaN())
)

func tolerance(impl Impl) float64 {
	if impl.Name == "go" {
		return goTol
	}
	return asmTol
}

// sweep returns float32 values of both signs with magnitudes from 2⁻³⁰ to 100,
// taking every stride-th bit pattern, so that every binade and every mantissa
// region of the exponential's domain is visited.
func sweep(stride uint32) []float32 {
	lo, hi := math.Float32bits(0x1p-30), math.Float32bits(100)
	var xs []float32
	for b := lo; b <= hi; b += stride {
		v := math.Float32frombits(b)
		xs = append(xs, v, -v)
	}
	return xs
}

// expError checks got = exp(arg) for a float32 argument: the relative error
// within the normal range, exact 0, +Inf or NaN outside it. It returns a
// description of the failure or "".
func expError(arg, got float32, tol float64) string {
	switch {
	case arg != arg:
		if got == got {
			return fmt.Sprintf("exp(NaN) = %v", got)
		}
	case arg < minArg:
		if got != 0 {
			return fmt.Sprintf("exp(%v) = %v, want 0 (flushed)", arg, got)
		}
	case arg > maxArg+0.001:
		if got != posInf {
			return fmt.Sprintf("exp(%v) = %v, want +Inf", arg, got)
		}
	case arg <= maxArg:
		want := math.Exp(float64(arg))
		if rel := math.Abs(float64(got)-want) / want; !(rel <= tol) {
			return fmt.Sprintf("exp(%v) = %v, want %v (relative error %.3g > %.1g)", arg, got, want, rel, tol)
		}
	}
	return ""
}

func TestExpShiftedSumAccuracy(t *testing.T) {
	// Over every float32 argument in ±[2⁻³⁰, 88.72] the assembly's worst
	// relative error is 8.5e-8 (measured once, exhaustively); the test visits
	// every 61st argument with no shift and every 1009th with shifts.
	dense, sparse := sweep(61), sweep(1009)
	specials := []float32{0, minArg, maxArg, -87.3365, 88.7228, 88.72284, 88.7229, -88, 89, 1000, -1000,
		posInf, negInf, nan, 0x1p-149, -0x1p-149, math.MaxFloat32, -math.MaxFloat32}
	for _, impl := range Impls {
		for _, shift := range []float32{0, 3.5, -40} {
			xs := slices.Concat(sparse, specials)
			if shift == 0 {
				xs = slices.Concat(dense, specials)
			}
			dst := make([]float32, len(xs))
			sum := impl.ExpShiftedSum(dst, xs, shift)
			var want float64
			for j, x := range xs {
				if msg := expError(x-shift, dst[j], tolerance(impl)); msg != "" {
					t.Fatalf("%s, shift %v: %s", impl.Name, shift, msg)
				}
				want += float64(dst[j])
			}
			if !(math.Abs(sum-want) <= 1e-12*math.Abs(want)) && !(math.IsNaN(sum) && math.IsNaN(want)) && sum != want {
				t.Fatalf("%s shift %v: sum %v, want %v", impl.Name, shift, sum, want)
			}
		}
	}
}

func TestExpShiftedSumFiniteSum(t *testing.T) {
	// The sum of a row without NaN and with finite exponentials is exact to
	// float64 rounding of the float32 terms, whatever the lane order.
	rng := rand.New(rand.NewPCG(1, 2))
	for _, impl := range Impls {
		for _, n := range []int{1, 7, 8, 15, 16, 17, 31, 100, 32000} {
			src := make([]float32, n)
			for j := range src {
				src[j] = float32(rng.NormFloat64() * 4)
			}
			dst := make([]float32, n)
			sum := impl.ExpShiftedSum(dst, src, 2)
			var want float64
			for _, v := range dst {
				want += float64(v)
			}
			if math.Abs(sum-want) > 1e-12*want {
				t.Fatalf("%s n=%d: sum %v, want %v", impl.Name, n, sum, want)
			}
		}
	}
}

// TestKernelsTails runs every kernel on every length up to 70 (all tail sizes
// of 8- and 16-lane loops) inside longer buffers: elements past n are neither
// written nor read (they are +Inf in the inputs, which would show), each
// exponential and sigmoid does not depend on its position or on n, and every
// kernel matches its reference loop.
func TestKernelsTails(t *testing.T) {
	const maxN, guard = 70, 8
	rng := rand.New(rand.NewPCG(3, 4))
	src := make([]float32, maxN+guard)
	for j := range src {
		src[j] = float32(rng.NormFloat64() * 10)
	}
	for _, impl := range Impls {
		fullExp, fullSig := make([]float32, maxN), make([]float32, maxN)
		impl.ExpShiftedSum(fullExp, src[:maxN], 1)
		impl.Sigmoid(fullSig, src[:maxN])
		for n := 0; n <= maxN; n++ {
			name := fmt.Sprintf("%s n=%d", impl.Name, n)
			in := append([]float32(nil), src...)
			for j := n; j < len(in); j++ {
				in[j] = posInf // read past n, it would show in the max and sums
			}
			out := make([]float32, n+guard)
			for j := range out {
				out[j] = -7
			}
			sum := impl.ExpShiftedSum(out, in[:n], 1)
			var want float64
			for j := 0; j < n; j++ {
				if out[j] != fullExp[j] {
					t.Fatalf("%s: exp element %d = %v, in a longer slice %v", name, j, out[j], fullExp[j])
				}
				want += float64(out[j])
			}
			if math.Abs(sum-want) > 1e-12*want {
				t.Fatalf("%s: exp sum %v, want %v", name, sum, want)
			}
			checkGuard(t, name+" ExpShiftedSum", out[n:])
			impl.Sigmoid(out, in[:n])
			for j := 0; j < n; j++ {
				if out[j] != fullSig[j] {
					t.Fatalf("%s: sigmoid element %d = %v, in a longer slice %v", name, j, out[j], fullSig[j])
				}
			}
			checkGuard(t, name+" Sigmoid", out[n:])
			scaled := slices.Concat(in[:n], out[n:])
			impl.Scale(scaled[:n], -0.5)
			for j := 0; j < n; j++ {
				if scaled[j] != -0.5*in[j] {
					t.Fatalf("%s: Scale element %d = %v, want %v", name, j, scaled[j], -0.5*in[j])
				}
			}
			checkGuard(t, name+" Scale", scaled[n:])
			dx := slices.Concat(src[maxN-n:maxN], out[n:])
			var dot float64
			for j := 0; j < n; j++ {
				dot += float64(in[j]) * float64(dx[j])
			}
			wantDx := make([]float32, n)
			for j := range wantDx {
				wantDx[j] = in[j] * (dx[j] - float32(dot))
			}
			impl.SoftmaxBackward(dx[:n], in)
			for j := 0; j < n; j++ {
				if math.Abs(float64(dx[j]-wantDx[j])) > 1e-5*(1+math.Abs(float64(in[j]))) {
					t.Fatalf("%s: SoftmaxBackward element %d = %v, want %v", name, j, dx[j], wantDx[j])
				}
			}
			checkGuard(t, name+" SoftmaxBackward", dx[n:])
			wantMax := negInf
			for _, v := range in[:n] {
				wantMax = max(wantMax, v)
			}
			if got := impl.Max(in[:n]); got != wantMax {
				t.Fatalf("%s: Max = %v, want %v", name, got, wantMax)
			}
		}
	}
}

func checkGuard(t *testing.T, name string, guard []float32) {
	t.Helper()
	for j, v := range guard {
		if v != -7 {
			t.Fatalf("%s: wrote %v past the end, at +%d", name, v, j)
		}
	}
}

func TestSigmoid(t *testing.T) {
	xs := sweep(211)
	xs = append(xs, 0, 100, -100, 87.5, -87.5, 88.8, -88.8, 89, -89, posInf, negInf, nan)
	dst := make([]float32, len(xs))
	for _, impl := range Impls {
		impl.Sigmoid(dst, xs)
		for j, x := range xs {
			want := 1 / (1 + math.Exp(-float64(x)))
			got := float64(dst[j])
			switch {
			case x != x:
				if got == got {
					t.Fatalf("%s: sigmoid(NaN) = %v", impl.Name, got)
				}
			case x < -minArg && want >= 0x1p-126: // σ(x) is a normal float32
				// exp(-x) contributes its relative error, the division and the
				// addition half an ulp each.
				if rel := math.Abs(got-want) / want; !(rel <= tolerance(impl)+1.2e-7) {
					t.Fatalf("%s: sigmoid(%v) = %v, want %v (relative error %.3g)", impl.Name, x, got, want, rel)
				}
			default:
				if math.Abs(got-want) > 0x1p-126 {
					t.Fatalf("%s: sigmoid(%v) = %v, want %v", impl.Name, x, got, want)
				}
			}
		}
		if got := dst[len(dst)-5 : len(dst)-1]; got[0] != 1 || got[1] != 0 || got[2] != 1 || got[3] != 0 {
			t.Fatalf("%s: sigmoid(89, -89, +Inf, -Inf) = %v, want 1, 0, 1, 0", impl.Name, got)
		}
	}
}

func TestMax(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, impl := range Impls {
		for _, n := range []int{1, 3, 16, 63, 64, 65, 200, 1000} {
			x := make([]float32, n)
			for j := range x {
				x[j] = float32(rng.NormFloat64()) - 1000
			}
			for _, at := range []int{0, n / 2, n - 1} { // the maximum anywhere, next to NaNs
				y := append([]float32(nil), x...)
				y[at] = 5
				y[(at+1)%n] = nan
				want := float32(5)
				if n == 1 {
					want = negInf
				}
				if got := impl.Max(y); got != want {
					t.Fatalf("%s n=%d max at %d: got %v, want %v", impl.Name, n, at, got, want)
				}
			}
		}
		if got := impl.Max([]float32{nan, nan}); got != negInf {
			t.Fatalf("%s: Max(NaN, NaN) = %v, want -Inf", impl.Name, got)
		}
		if got := impl.Max(nil); got != negInf {
			t.Fatalf("%s: Max() = %v, want -Inf", impl.Name, got)
		}
	}
}

func TestSoftmaxBackwardGradient(t *testing.T) {
	// For p = softmax(z), SoftmaxBackward(dp, p) is the gradient of Σ dp⊙p
	// with respect to z; compare with float64 central differences.
	rng := rand.New(rand.NewPCG(9, 10))
	const n = 37
	z, dp := make([]float64, n), make([]float32, n)
	for j := range z {
		z[j], dp[j] = rng.NormFloat64()*2, float32(rng.NormFloat64())
	}
	softmax := func(z []float64) []float64 {
		p, total := make([]float64, len(z)), 0.0
		for j, v := range z {
			p[j] = math.Exp(v)
			total += p[j]
		}
		for j := range p {
			p[j] /= total
		}
		return p
	}
	objective := func() float64 {
		var s float64
		for j, v := range softmax(z) {
			s += v * float64(dp[j])
		}
		return s
	}
	p := make([]float32, n)
	for j, v := range softmax(z) {
		p[j] = float32(v)
	}
	for _, impl := range Impls {
		dz := slices.Clone(dp)
		impl.SoftmaxBackward(dz, p)
		for j := range z {
			const h = 1e-6
			orig := z[j]
			z[j] = orig + h
			plus := objective()
			z[j] = orig - h
			minus := objective()
			z[j] = orig
			if numeric := (plus - minus) / (2 * h); math.Abs(numeric-float64(dz[j])) > 1e-6 {
				t.Fatalf("%s: dz[%d] = %v, numeric %v", impl.Name, j, dz[j], numeric)
			}
		}
	}
}

// TestAssemblyAgrees checks that the assembly implementations give bit-equal
// results: they run the same operation sequence, only the final scaling by 2ⁿ
// differs, and it is exact.
func TestAssemblyAgrees(t *testing.T) {
	if len(Impls) < 3 {
		t.Skip("fewer than two assembly implementations on this CPU")
	}
	xs := sweep(997)
	a, b := make([]float32, len(xs)), make([]float32, len(xs))
	for _, shift := range []float32{0, 1.25} {
		sa, sb := Impls[0].ExpShiftedSum(a, xs, shift), Impls[1].ExpShiftedSum(b, xs, shift)
		for j := range a {
			if math.Float32bits(a[j]) != math.Float32bits(b[j]) {
				t.Fatalf("exp(%v - %v): %s %v, %s %v", xs[j], shift, Impls[0].Name, a[j], Impls[1].Name, b[j])
			}
		}
		if math.Abs(sa-sb) > 1e-12*math.Abs(sa) {
			t.Fatalf("sums %v and %v", sa, sb)
		}
	}
}

func FuzzExpShiftedSum(f *testing.F) {
	for _, x := range []float32{0, 1, -1, 88.5, -87.3, 1e-30, 200} {
		f.Add(x, float32(0))
	}
	f.Fuzz(func(t *testing.T, x, shift float32) {
		src := []float32{x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x} // main loop and tail
		dst := make([]float32, len(src))
		for _, impl := range Impls {
			impl.ExpShiftedSum(dst, src, shift)
			for _, v := range dst {
				if msg := expError(x-shift, v, tolerance(impl)); msg != "" {
					t.Fatalf("%s: %s", impl.Name, msg)
				}
			}
		}
	})
}

// Benchmarks over row lengths from attention (64, 256) to a vocabulary
// (32000), per implementation, next to math.Exp.

var benchSizes = []int{64, 256, 4096, 32000}

func benchInput(n int) []float32 {
	rng := rand.New(rand.NewPCG(7, 8))
	x := make([]float32, n)
	for j := range x {
		x[j] = float32(rng.NormFloat64() * 3)
	}
	return x
}

func benchImpls(b *testing.B, run func(b *testing.B, impl Impl, x, y []float32)) {
	for _, impl := range Impls {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%s/%d", impl.Name, n), func(b *testing.B) {
				x, y := benchInput(n), make([]float32, n)
				b.SetBytes(int64(4 * n))
				for b.Loop() {
					run(b, impl, x, y)
				}
			})
		}
	}
}

func BenchmarkExpShiftedSum(b *testing.B) {
	benchImpls(b, func(b *testing.B, impl Impl, x, y []float32) { impl.ExpShiftedSum(y, x, 1) })
}

func BenchmarkSigmoid(b *testing.B) {
	benchImpls(b, func(b *testing.B, impl Impl, x, y []float32) { impl.Sigmoid(y, x) })
}

func BenchmarkMax(b *testing.B) {
	benchImpls(b, func(b *testing.B, impl Impl, x, y []float32) { impl.Max(x) })
}

func BenchmarkScale(b *testing.B) {
	benchImpls(b, func(b *testing.B, impl Impl, x, y []float32) { impl.Scale(x, 1) })
}

func BenchmarkSoftmaxBackward(b *testing.B) {
	benchImpls(b, func(b *testing.B, impl Impl, x, y []float32) { impl.SoftmaxBackward(y, x) })
}

func BenchmarkMathExp(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			x, y := benchInput(n), make([]float32, n)
			b.SetBytes(int64(4 * n))
			for b.Loop() {
				for j, v := range x {
					y[j] = float32(math.Exp(float64(v)))
				}
			}
		})
	}
}
