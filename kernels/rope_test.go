package kernels

import (
	"math"
	"math/cmplx"
	"strings"
	"testing"
)

// complexRope rotates each head's pairs (x[i], x[i+D/2]) as the complex number
// x[i] + i·x[i+D/2] multiplied by e^{i·pos·invFreq[i]}: the reference for
// RopeForward, written independently of it.
func complexRope(x []float64, rows, stride, col, heads, d int, pos []int, invFreq []float64) []float64 {
	y := append([]float64(nil), x...)
	for r := 0; r < rows; r++ {
		for h := 0; h < heads; h++ {
			base := r*stride + col + h*d
			for i := 0; i < d/2; i++ {
				z := complex(x[base+i], x[base+i+d/2]) * cmplx.Exp(complex(0, float64(pos[r])*invFreq[i]))
				y[base+i], y[base+i+d/2] = real(z), imag(z)
			}
		}
	}
	return y
}

func TestRopeForwardMatchesComplexRotation(t *testing.T) {
	rng := testRand(5)
	rows, stride, col, heads, d := 4, 23, 3, 2, 8 // columns outside [3, 19) must stay untouched
	invFreq := RopeInvFreq(d, 10000, RopeScaling{})
	pos := []int{0, 1, 7, 300}
	x := randNormal(rng, rows*stride, 1)
	want := complexRope(x, rows, stride, col, heads, d, pos, invFreq)
	got := append([]float64(nil), x...)
	RopeForward(got, rows, stride, col, heads, d, pos, invFreq)
	assertClose(t, "RopeForward f64", got, want, 1e-13)
	got32 := to32(x)
	RopeForward(got32, rows, stride, col, heads, d, pos, invFreq)
	assertClose(t, "RopeForward f32", got32, want, 1e-5)

	RopeBackward(got, rows, stride, col, heads, d, pos, invFreq)
	assertClose(t, "RopeBackward(RopeForward(x))", got, x, 1e-13)
}

func TestRopeBackwardIsGradient(t *testing.T) {
	rng := testRand(6)
	rows, stride, col, heads, d := 3, 14, 1, 3, 4
	invFreq := RopeInvFreq(d, 100, RopeScaling{Type: "linear", Factor: 2})
	pos := []int{5, 0, 2}
	x, R := randNormal(rng, rows*stride, 1), randNormal(rng, rows*stride, 1)
	y := make([]float64, len(x))
	objective := func() float64 {
		copy(y, x)
		RopeForward(y, rows, stride, col, heads, d, pos, invFreq)
		return dotSum(y, R)
	}
	dx := append([]float64(nil), R...)
	RopeBackward(dx, rows, stride, col, heads, d, pos, invFreq)
	gradCheck(t, "Rope dx", x, dx, objective, gradTol)
}

func TestRopeInvFreq(t *testing.T) {
	base := RopeInvFreq(8, 10000, RopeScaling{Type: "default"})
	for i, want := range []float64{1, 0.1, 0.01, 0.001} { // 10000^(-2i/8)
		if math.Abs(base[i]-want) > 1e-15 {
			t.Fatalf("default invFreq[%d] = %v, want %v", i, base[i], want)
		}
	}
	linear := RopeInvFreq(8, 10000, RopeScaling{Type: "linear", Factor: 4})
	dynamic := RopeInvFreq(8, 10000, RopeScaling{Type: "dynamic", Factor: 4, OriginalMaxPositions: 2048})
	for i := range base {
		if linear[i] != base[i]/4 || dynamic[i] != base[i] {
			t.Fatalf("invFreq[%d]: linear %v dynamic %v, base %v", i, linear[i], dynamic[i], base[i])
		}
	}
}

func TestRopeInvFreqLlama3(t *testing.T) {
	// Llama 3.1 8B: head 128, theta 500000, factor 8, low 1, high 4, original 8192.
	s := RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192}
	d, theta := 128, 500000.0
	got := RopeInvFreq(d, theta, s)
	// The published rule written as one clamped interpolation: with
	// k = clamp((L/λ - low)/(high - low), 0, 1) for wavelength λ = 2π/f,
	// f' = k·f + (1-k)·f/factor (k = 1 for short wavelengths, 0 for long ones).
	kinds := map[string]int{}
	for i := range got {
		f := math.Pow(theta, -float64(2*i)/float64(d))
		k := (8192/(2*math.Pi/f) - 1) / (4 - 1)
		k = math.Min(1, math.Max(0, k))
		want := k*f + (1-k)*f/8
		if math.Abs(got[i]-want) > 1e-15*f {
			t.Fatalf("llama3 invFreq[%d] = %v, want %v", i, got[i], want)
		}
		switch k {
		case 1:
			kinds["kept"]++
		case 0:
			kinds["divided"]++
		default:
			kinds["interpolated"]++
		}
	}
	if kinds["kept"] == 0 || kinds["divided"] == 0 || kinds["interpolated"] == 0 {
		t.Fatalf("test shape does not exercise all three regimes: %v", kinds)
	}
	// Spot values: the highest frequency is kept, the lowest divided by 8.
	if got[0] != 1 || math.Abs(got[63]-math.Pow(theta, -126.0/128)/8) > 1e-20 {
		t.Fatalf("llama3 invFreq[0] = %v, [63] = %v", got[0], got[63])
	}
}

func TestRopeScalingValidate(t *testing.T) {
	good := []RopeScaling{{}, {Type: "default"}, {Type: "linear", Factor: 2}, {Type: "dynamic", Factor: 2},
		{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192}}
	for _, s := range good {
		if err := s.Validate(); err != nil {
			t.Errorf("%+v: %v", s, err)
		}
	}
	bad := []RopeScaling{{Type: "yarn", Factor: 2}, {Type: "linear"}, {Type: "dynamic", Factor: -1},
		{Type: "llama3", Factor: 8, LowFreqFactor: 4, HighFreqFactor: 1, OriginalMaxPositions: 8192},
		{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4}}
	for _, s := range bad {
		if err := s.Validate(); err == nil {
			t.Errorf("%+v: accepted", s)
		}
	}
	expectPanic(t, "odd head size", func() { RopeInvFreq(7, 10000, RopeScaling{}) })
	expectPanic(t, "bad scaling", func() { RopeInvFreq(8, 10000, RopeScaling{Type: "yarn"}) })
	expectPanic(t, "wrong invFreq length", func() {
		RopeForward(make([]float32, 8), 1, 8, 0, 1, 8, []int{0}, []float64{1})
	})
}

// TestRopeScalingValidateBounds checks the bounds of transformers' rope
// validation: a finite factor >= 1 for every type, and finite llama3 factors.
func TestRopeScalingValidateBounds(t *testing.T) {
	inf := math.Inf(1)
	for _, tc := range []struct {
		s    RopeScaling
		want string // "" when valid, else a fragment of the error
	}{
		{RopeScaling{Type: "linear", Factor: 1}, ""},
		{RopeScaling{Type: "dynamic", Factor: 2, OriginalMaxPositions: 4096}, ""},
		{RopeScaling{Type: "linear", Factor: 0.5}, "factor"},
		{RopeScaling{Type: "dynamic", Factor: inf}, "factor"},
		{RopeScaling{Type: "linear", Factor: math.NaN()}, "factor"},
		{RopeScaling{Type: "dynamic", Factor: 2, OriginalMaxPositions: -1}, "original_max_position_embeddings"},
		{RopeScaling{Type: "llama3", Factor: 0.5, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192}, "factor"},
		{RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: inf, OriginalMaxPositions: 8192}, "high_freq_factor"},
		{RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 0, HighFreqFactor: 4, OriginalMaxPositions: 8192}, "low_freq_factor"},
	} {
		err := tc.s.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.s, err)
		case tc.want != "" && err == nil:
			t.Errorf("%+v: accepted, want an error about %s", tc.s, tc.want)
		case tc.want != "" && !strings.Contains(err.Error(), tc.want):
			t.Errorf("%+v: error %q does not mention %s", tc.s, err, tc.want)
		}
	}
}
