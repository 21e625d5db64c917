package kernels

import (
	"errors"
	"fmt"
	"math"
)

// RopeScaling is the rope_scaling entry of a HuggingFace config.json (the
// model package's Config holds one).
//
// Type is "" (or "default": plain RoPE), "linear" (position interpolation:
// frequencies divided by Factor), "dynamic" (dynamic NTK scaling) or "llama3"
// (the wavelength-dependent rule of Llama 3.1, which uses all four fields).
// OriginalMaxPositions is required for llama3 and optional for dynamic.
type RopeScaling struct {
	Type                          string
	Factor                        float64
	LowFreqFactor, HighFreqFactor float64
	OriginalMaxPositions          int
}

// Validate reports a rope_scaling entry that breaks transformers'
// conventions (its rope validation functions): an unknown type; a factor
// that is not a finite number >= 1 (a scaling extends the context, it never
// shrinks it); a negative original_max_position_embeddings; for llama3,
// factors outside finite 0 < low_freq_factor < high_freq_factor, or
// original_max_position_embeddings missing. Bounds that involve other
// config.json fields are the model package's. RopeInvFreq panics on an entry
// that fails Validate, so loaders call it first.
func (s RopeScaling) Validate() error {
	switch s.Type {
	case "", "default":
		return nil
	case "linear", "dynamic", "llama3":
	default:
		return fmt.Errorf("rope_scaling: type %q is not supported (want default, linear, dynamic or llama3)", s.Type)
	}
	if !(s.Factor >= 1) || math.IsInf(s.Factor, 0) {
		return fmt.Errorf("rope_scaling %s: factor must be a finite number >= 1, got %v", s.Type, s.Factor)
	}
	if s.OriginalMaxPositions < 0 {
		return fmt.Errorf("rope_scaling %s: original_max_position_embeddings must not be negative, got %d", s.Type, s.OriginalMaxPositions)
	}
	if s.Type != "llama3" {
		return nil
	}
	if !(s.LowFreqFactor > 0) || !(s.HighFreqFactor > s.LowFreqFactor) || math.IsInf(s.HighFreqFactor, 0) {
		return fmt.Errorf("rope_scaling llama3: needs finite 0 < low_freq_factor < high_freq_factor, got %v and %v", s.LowFreqFactor, s.HighFreqFactor)
	}
	if s.OriginalMaxPositions == 0 {
		return errors.New("rope_scaling llama3: original_max_position_embeddings must be > 0")
	}
	return nil
}

// RopeInvFreq returns the headDim/2 inverse frequencies θ^(-2i/headDim) of
// rotary embeddings with base theta (config rope_theta), adjusted for s as
// HF transformers' rope initialisation functions do:
//   - "linear": every frequency divided by Factor;
//   - "llama3": wavelengths 2π/f longer than OriginalMaxPositions/LowFreqFactor
//     divided by Factor, shorter than OriginalMaxPositions/HighFreqFactor
//     unchanged, in between interpolated with
//     k = (OriginalMaxPositions/wavelength - LowFreqFactor)/(HighFreqFactor - LowFreqFactor)
//     as (1-k)·f/Factor + k·f;
//   - "dynamic": unchanged. HF rescales the base only once a sequence grows
//     beyond the original maximum length, so these are the exact frequencies
//     for every position below it (and the caller must recompute past it).
//
// Frequencies are computed in float64 (HF computes them in float32; the two
// differ by about 1e-7 relatively). It panics on an odd or non-positive
// headDim, theta <= 0 or an s that fails Validate.
func RopeInvFreq(headDim int, theta float64, s RopeScaling) []float64 {
	if headDim <= 0 || headDim%2 != 0 {
		panic(fmt.Sprintf("kernels: RopeInvFreq: head size %d is not a positive even number", headDim))
	}
	if !(theta > 0) {
		panic(fmt.Sprintf("kernels: RopeInvFreq: theta %v is not positive", theta))
	}
	if err := s.Validate(); err != nil {
		panic("kernels: RopeInvFreq: " + err.Error())
	}
	invFreq := make([]float64, headDim/2)
	for i := range invFreq {
		invFreq[i] = math.Pow(theta, -float64(2*i)/float64(headDim))
	}
	switch s.Type {
	case "linear":
		for i := range invFreq {
			invFreq[i] /= s.Factor
		}
	case "llama3":
		original := float64(s.OriginalMaxPositions)
		lowFreqWavelen := original / s.LowFreqFactor
		highFreqWavelen := original / s.HighFreqFactor
		for i, f := range invFreq {
			wavelen := 2 * math.Pi / f
			switch {
			case wavelen < highFreqWavelen:
				// high frequency: unchanged
			case wavelen > lowFreqWavelen:
				invFreq[i] = f / s.Factor
			default:
				k := (original/wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
				invFreq[i] = (1-k)*f/s.Factor + k*f
			}
		}
	}
	return invFreq
}

// RopeForward applies rotary position embeddings in place, HuggingFace
// half-split convention: for each row r < rows of x (row stride `stride`) and
// each of `heads` heads of size D = headDim starting at column col, the pairs
// (a, b) = (x[i], x[i+D/2]), i < D/2, of the head are rotated by the angle
// pos[r]·invFreq[i]:
//
//	(a, b) -> (a·cos - b·sin, a·sin + b·cos)
//
// Angles, cosines and sines are computed in float64. invFreq has D/2 entries
// (see RopeInvFreq).
func RopeForward[T Float](x []T, rows, stride, col, heads, headDim int, pos []int, invFreq []float64) {
	checkLen("RopeForward pos", pos, rows)
	ropeRotate(x, rows, stride, col, heads, headDim, func(r int) int { return pos[r] }, invFreq, false)
}

// RopeBackward is the gradient of RopeForward: it rotates the gradient dx in
// place by the opposite angles, (a, b) -> (a·cos + b·sin, -a·sin + b·cos), so
// that RopeBackward undoes RopeForward. Arguments as for RopeForward.
func RopeBackward[T Float](dx []T, rows, stride, col, heads, headDim int, pos []int, invFreq []float64) {
	checkLen("RopeBackward pos", pos, rows)
	ropeRotate(dx, rows, stride, col, heads, headDim, func(r int) int { return pos[r] }, invFreq, true)
}

// ropeRotate is RopeForward (inverse false) or RopeBackward (inverse true)
// with the position of row r given by position(r).
func ropeRotate[T Float](x []T, rows, stride, col, heads, headDim int, position func(r int) int, invFreq []float64, inverse bool) {
	if headDim <= 0 || headDim%2 != 0 {
		panic(fmt.Sprintf("kernels: RoPE: head size %d is not a positive even number", headDim))
	}
	half := headDim / 2
	if len(invFreq) != half {
		panic(fmt.Sprintf("kernels: RoPE: %d inverse frequencies for head size %d, want %d", len(invFreq), headDim, half))
	}
	if rows == 0 || heads == 0 {
		return
	}
	if stride < col+heads*headDim {
		panic("kernels: RoPE: row stride smaller than col + heads*headDim")
	}
	checkLen("RoPE x", x, (rows-1)*stride+col+heads*headDim)
	parallelFor(rows, rows*(heads*headDim+half*expCost), func(lo, hi int) {
		buf := getScratch[T](headDim)
		defer putScratch(buf)
		cos, sin := (*buf)[:half], (*buf)[half:]
		for r := lo; r < hi; r++ {
			p := float64(position(r))
			for i, f := range invFreq {
				s, c := math.Sincos(p * f)
				if inverse {
					s = -s
				}
				cos[i], sin[i] = T(c), T(s)
			}
			row := x[r*stride+col : r*stride+col+heads*headDim]
			for h := 0; h < heads; h++ {
				a, b := row[h*headDim:h*headDim+half], row[h*headDim+half:(h+1)*headDim]
				for i, av := range a {
					bv := b[i]
					a[i] = av*cos[i] - bv*sin[i]
					b[i] = av*sin[i] + bv*cos[i]
				}
			}
		}
	})
}
