// Package vecmath holds the float32 vector loops behind the softmax,
// cross-entropy and SwiGLU kernels of package kernels: exponentials with a
// running sum, sigmoids and row maxima. On amd64 they run as AVX-512F or
// AVX2+FMA assembly, chosen at run time from the CPU's features; elsewhere,
// and with the purego build tag, as the pure-Go reference loops below.
//
// It is a separate package because Go assembly cannot live in a package that
// uses cgo, as package kernels does for OpenBLAS.
package vecmath

import "math"

// Impl is one implementation of the kernels.
type Impl struct {
	// Name is "avx512", "avx2" or "go".
	Name string
	// ExpShiftedSum: see the package function ExpShiftedSum.
	ExpShiftedSum func(dst, src []float32, shift float32) float64
	// Sigmoid: see the package function Sigmoid.
	Sigmoid func(dst, src []float32)
	// Max: see the package function Max.
	Max func(x []float32) float32
	// Scale: see the package function Scale.
	Scale func(x []float32, a float32)
	// SoftmaxBackward: see the package function SoftmaxBackward.
	SoftmaxBackward func(dx, p []float32)
}

// Impls lists the implementations this CPU can run, fastest first; the last
// one is always the pure-Go reference.
var Impls = available()

// active is the implementation the package functions use.
var active = Impls[0]

// ExpShiftedSum writes dst[j] = exp(src[j] - shift) for j < len(src) and
// returns Σ_j dst[j] accumulated in float64. dst may alias src and must be at
// least as long. Exponentials below the smallest normal float32 (arguments
// below -87.3365) are flushed to 0, arguments above ln(MaxFloat32) give +Inf
// and NaN gives NaN; elsewhere the relative error is below 2e-7.
func ExpShiftedSum(dst, src []float32, shift float32) float64 {
	return active.ExpShiftedSum(dst, src, shift)
}

// Sigmoid writes dst[j] = 1/(1 + exp(-src[j])) for j < len(src); dst may alias
// src and must be at least as long.
func Sigmoid(dst, src []float32) { active.Sigmoid(dst, src) }

// Max returns the largest element of x that is not NaN, or -Inf when there is
// none (including for an empty x).
func Max(x []float32) float32 { return active.Max(x) }

// Scale multiplies every element of x by a.
func Scale(x []float32, a float32) { active.Scale(x, a) }

// SoftmaxBackward turns dx, the gradient with respect to p = softmax(z), into
// the gradient with respect to z: dx[j] = p[j]·(dx[j] - d) with d = Σ_k
// p[k]·dx[k] accumulated in float64 and rounded to float32. len(p) >=
// len(dx).
func SoftmaxBackward(dx, p []float32) { active.SoftmaxBackward(dx, p) }

// goImpl is the pure-Go reference implementation:
//
//	ExpShiftedSum:   for j, v := range src { dst[j] = Exp32(v - shift); sum += float64(dst[j]) }
//	Sigmoid:         for j, v := range src { dst[j] = 1 / (1 + Exp32(-v)) }
//	Max:             m := -Inf; for _, v := range x { if v > m { m = v } }
//	Scale:           for j := range x { x[j] *= a }
//	SoftmaxBackward: for j := range dx { d += float64(p[j]) * float64(dx[j]) }
//	                 for j := range dx { dx[j] = p[j] * (dx[j] - float32(d)) }
var goImpl = Impl{
	Name: "go",
	ExpShiftedSum: func(dst, src []float32, shift float32) float64 {
		dst = dst[:len(src)]
		var sum float64
		for j, v := range src {
			e := Exp32(v - shift)
			dst[j] = e
			sum += float64(e)
		}
		return sum
	},
	Sigmoid: func(dst, src []float32) {
		dst = dst[:len(src)]
		for j, v := range src {
			dst[j] = 1 / (1 + Exp32(-v))
		}
	},
	Max: func(x []float32) float32 {
		m := float32(math.Inf(-1))
		for _, v := range x {
			if v > m { // not the builtin max, whose NaN handling makes it several times slower
				m = v
			}
		}
		return m
	},
	Scale: func(x []float32, a float32) {
		for j := range x {
			x[j] *= a
		}
	},
	SoftmaxBackward: func(dx, p []float32) {
		p = p[:len(dx)]
		var d float64
		for j, v := range p {
			d += float64(v) * float64(dx[j])
		}
		d32 := float32(d)
		for j, v := range p {
			dx[j] = v * (dx[j] - d32)
		}
	},
}

// Exp32 is a scalar float32 exponential about 1.5-2 times as fast as math.Exp
// through float64, accurate to about 2 ulp (relative error below 2.5e-7).
// With x = (64·e + i)·ln2/64 + r, |r| <= ln2/128 (Cody–Waite reduction in two
// parts), exp(x) = 2^e · 2^(i/64) · exp(r), where 2^(i/64) comes from a table
// and exp(r) from its degree-4 Taylor polynomial (error below 1e-10). Results
// below the smallest normal float32 (x < -87.34) are flushed to zero; x > 88.72
// gives +Inf and NaN gives NaN.
func Exp32(x float32) float32 {
	const (
		scale      = 64 / math.Ln2
		ln2Hi      = 0.693359375 / 64 // ln2/64 = ln2Hi + ln2Lo, ln2Hi exact in few bits
		ln2Lo      = -2.12194440e-4 / 64
		roundMagic = 12582912 // 1.5·2²³: adding it rounds a small float32 to an integer
		minArg     = -87.33654
		maxArg     = 88.72284
	)
	if x < minArg {
		return 0
	}
	if x > maxArg {
		return float32(math.Inf(1))
	}
	t := x*scale + roundMagic
	n := t - roundMagic
	r := x - n*ln2Hi - n*ln2Lo
	k := int32(math.Float32bits(t) - math.Float32bits(roundMagic)) // n as an integer, in [-8064, 8192]
	p := 1 + r + r*r*(0.5+r*(1.0/6+r*(1.0/24)))
	p *= exp2Sixtyfourths[k&63]
	e := k >> 6 // floor(k/64), in [-126, 128]
	if e > 127 {
		p *= 2
		e--
	}
	return p * math.Float32frombits(uint32(e+127)<<23)
}

// exp2Sixtyfourths[i] = 2^(i/64).
var exp2Sixtyfourths = func() (t [64]float32) {
	for i := range t {
		t[i] = float32(math.Exp2(float64(i) / 64))
	}
	return t
}()
