package bitmap

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/salr-go/salr/kernels"
)

// roundXBF16 returns x rounded to bf16 as VCVTNE2PS2BF16 does (nearest even,
// subnormals to signed zero), as fp32; swapHalves also swaps the two halves
// of every group of 32 values (the mistake of a conversion with its operands
// in the wrong order).
func roundXBF16(x []float32, swapHalves bool) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		r := kernels.BF16ToFloat32(kernels.Float32ToBF16(v))
		if math.Abs(float64(r)) < 0x1p-126 {
			r = float32(math.Copysign(0, float64(r)))
		}
		out[i] = r
	}
	if swapHalves {
		for g := 0; g+32 <= len(out); g += 32 {
			for i := range 16 {
				out[g+i], out[g+16+i] = out[g+16+i], out[g+i]
			}
		}
	}
	return out
}

// emulatedBF16Kernels is the avx512bf16 set's arithmetic in pure Go: the Go
// kernels with x rounded to bf16 in the dot products of bf16 weights, with
// the flags the real set carries (declared false: the set claims fp32
// accuracy). It lets this machine check the tolerances the avx512bf16 set is
// tested with, and the self-check on a set of that accuracy.
func emulatedBF16Kernels(declared, swapHalves bool) *kernelSet {
	ks := *goKernels
	ks.name = "go-bf16x"
	ks.fallback = goKernels
	ks.denseBF16X, ks.bitmapBF16X = declared, declared
	ks.denseDot = func(d *DenseBF16, y, x []float32, r0, r1 int) {
		goKernels.denseDot(d, y, roundXBF16(x[:d.cols], swapHalves), r0, r1)
	}
	ks.denseDotBatch = func(d *DenseBF16, yT, xT []float32, nb, r0, r1 int) {
		goKernels.denseDotBatch(d, yT, roundXBF16(xT, false), nb, r0, r1)
	}
	ks.bitmapDot = func(m *Matrix, y, x []float32, r0, r1 int) {
		if m.dtype == BF16 {
			x = roundXBF16(x[:m.cols], swapHalves)
		}
		goKernels.bitmapDot(m, y, x, r0, r1)
	}
	ks.bitmapDotBatch = func(m *Matrix, yT, xT []float32, nb, r0, r1 int) {
		if m.dtype == BF16 {
			xT = roundXBF16(xT, false)
		}
		goKernels.bitmapDotBatch(m, yT, xT, nb, r0, r1)
	}
	return &ks
}

func TestSelfCheckAccepts(t *testing.T) {
	exact := *goKernels
	exact.fallback = goKernels
	for _, ks := range []*kernelSet{&exact, emulatedBF16Kernels(true, false)} {
		var warn bytes.Buffer
		if got := verifiedKernels(ks, &warn); got != ks || warn.Len() != 0 {
			t.Errorf("%s: verifiedKernels gave %s, warning %q; want the set itself, silently", ks.name, got.name, warn.String())
		}
	}
	if got := verifiedKernels(goKernels, nil); got != goKernels { // no fallback: not checked
		t.Errorf("a set without fallback: verifiedKernels gave %s", got.name)
	}
}

// TestSelfCheckFallsBack injects one wrong kernel at a time into a copy of the
// Go set and checks that the self-check rejects it, falls back, and names the
// kernel in one warning line.
func TestSelfCheckFallsBack(t *testing.T) {
	// perturb changes one output value by a relative 1/1000, far above the
	// fp32 bound and below the bf16 one for a sum of many terms.
	perturb := func(v []float32, i int) { v[i] += 1e-3 * (1 + float32(math.Abs(float64(v[i])))) }
	type inject struct {
		kernel string
		set    func(ks *kernelSet)
	}
	cases := []inject{
		{"bitmapDot", func(ks *kernelSet) {
			ks.bitmapDot = func(m *Matrix, y, x []float32, r0, r1 int) {
				goKernels.bitmapDot(m, y, x, r0, r1)
				perturb(y, r1-r0-1)
			}
		}},
		{"bitmapDotBatch", func(ks *kernelSet) {
			ks.bitmapDotBatch = func(m *Matrix, yT, xT []float32, nb, r0, r1 int) {
				goKernels.bitmapDotBatch(m, yT, xT, nb, r0, r1)
				if nb == 12 {
					perturb(yT, 5)
				}
			}
		}},
		{"bitmapAxpy", func(ks *kernelSet) {
			ks.bitmapAxpy = func(m *Matrix, dx, dy []float32, r0, r1 int) {
				goKernels.bitmapAxpy(m, dx, dy, r0+1, r1) // skips a row
			}
		}},
		{"bitmapDecode", func(ks *kernelSet) {
			ks.bitmapDecode = func(m *Matrix, dst []float32, r0, r1 int) {
				goKernels.bitmapDecode(m, dst, r0, r1)
				if m.dtype == F16 {
					dst[len(dst)-1] = 1 - dst[len(dst)-1]
				}
			}
		}},
		{"denseDot", func(ks *kernelSet) {
			ks.denseDot = func(d *DenseBF16, y, x []float32, r0, r1 int) {
				goKernels.denseDot(d, y, x, r0, r1)
				y[:r1-r0+1][r1-r0] = 0 // one past its range
			}
		}},
		{"denseDotBatch", func(ks *kernelSet) {
			ks.denseDotBatch = func(d *DenseBF16, yT, xT []float32, nb, r0, r1 int) {
				goKernels.denseDotBatch(d, yT, xT, nb, r0, r1-1) // leaves the last row unwritten
			}
		}},
		{"denseAxpy", func(ks *kernelSet) {
			ks.denseAxpy = func(d *DenseBF16, dx, dy []float32, r0, r1 int) {
				goKernels.denseAxpy(d, dx, dy, r0, r1)
				perturb(dx, 0)
			}
		}},
		{"denseDecode", func(ks *kernelSet) {
			ks.denseDecode = func(d *DenseBF16, dst []float32, r0, r1 int) {
				goKernels.denseDecode(d, dst, r0, r1)
				dst[7] = math.Float32frombits(math.Float32bits(dst[7]) ^ 1)
			}
		}},
		{"nf4Decode", func(ks *kernelSet) {
			ks.nf4Dequant = func(dst []uint16, codes []uint8, sc []float32, k0, k1 int) {
				dequantGo(dst, codes, sc, k0, k1)
				if k1 > k0 {
					dst[0] ^= 1 // one bf16 value off by an ulp
				}
			}
		}},
		{"nf4Dot", func(ks *kernelSet) {
			ks.nf4Dot = func(m *NF4, y, x []float32, r0, r1 int) int {
				if !m.Dense() || m.Cols()%NF4BlockSize != 0 {
					return r0 // only dense-nf4 of whole blocks, the last case
				}
				for r := r0; r < r1; r++ {
					v, _ := nf4DotRef(m, x, r)
					y[r-r0] = float32(v)
				}
				perturb(y, 0)
				return r1
			}
		}},
	}
	for _, c := range cases {
		ks := *goKernels
		ks.name, ks.fallback = "broken", goKernels
		c.set(&ks)
		checkFallback(t, &ks, c.kernel)
	}
	// The bf16 arithmetic without its declared tolerance, and with the
	// halves of each group of x swapped (a conversion with its operands in
	// the wrong order) even with it.
	checkFallback(t, emulatedBF16Kernels(false, false), "bitmapDot")
	checkFallback(t, emulatedBF16Kernels(true, true), "bitmapDot")
}

func checkFallback(t *testing.T, ks *kernelSet, kernel string) {
	t.Helper()
	var warn bytes.Buffer
	if got := verifiedKernels(ks, &warn); got != goKernels {
		t.Errorf("%s with a wrong %s: verifiedKernels kept %s, want the fallback go", ks.name, kernel, got.name)
		return
	}
	msg := warn.String()
	if strings.Count(msg, "\n") != 1 || !strings.Contains(msg, "the "+ks.name+" kernels failed their self-check ("+kernel+" on ") ||
		!strings.HasSuffix(msg, "using the go kernels\n") {
		t.Errorf("wrong %s: warning %q, want one line naming the set, the kernel and the fallback", kernel, msg)
	}
}

// TestProductBound checks the bf16 bound against its derivation on a worst
// case: x = 1 + 2⁻⁸ (a tie, rounded to even 1) times w = 1, k times.
func TestProductBound(t *testing.T) {
	const k = 64
	x := make([]float32, k)
	for i := range x {
		x[i] = 1 + 0x1p-8
	}
	xr := roundXBF16(x, false)
	var got float64
	for _, v := range xr {
		got += float64(v)
	}
	exact := float64(k) * (1 + 0x1p-8)
	if err := math.Abs(got - exact); err > productBound(exact, k, bf16RoundX) {
		t.Fatalf("rounding error %g above the bound %g", err, productBound(exact, k, bf16RoundX))
	} else if err < 0.9*bf16RoundX*exact {
		t.Fatalf("rounding error %g: the case is not the worst one (bound's relX term %g)", err, bf16RoundX*exact)
	}
}

// TestBF16XTolerances runs the suite's products on the emulated bf16
// arithmetic with the tolerances the avx512bf16 set is tested with: they must
// accept x rounded to bf16 (the self-check test shows the fp32 ones do not).
func TestBF16XTolerances(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	ks := emulatedBF16Kernels(true, false)
	for _, shape := range suiteShapes {
		rows, cols := shape[0], shape[1]
		w := randomSparse(rng, rows, cols, 0.5)
		for _, tm := range formatsUnder(t, ks, w, rows, cols) {
			for _, n := range []int{1, 5, 16} {
				checkMulT(t, rng, tm, n)
			}
		}
	}
}
