package trainer

import (
	"fmt"
	"math"
)

// Param is one trainable tensor as the optimizer sees it: its values (updated
// in place), its accumulated gradient, and an optional per-element mask of
// the entries that may change (nil: all of them), e.g. to keep the SVD
// residual adapter's ranks frozen while LoRA's ranks train in the same
// concatenated tensor.
type Param struct {
	Name      string
	Data      []float32
	Grad      []float32
	Trainable []bool
}

// AdamW is Adam with decoupled weight decay (Loshchilov & Hutter) and bias
// correction:
//
//	m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²
//	θ -= lr·( m/(1-β1ᵗ) / (sqrt(v/(1-β2ᵗ)) + ε) + λ·θ )
//
// The moments are kept per parameter in float32; the arithmetic of one update
// is done in float64 and rounded once, so a resumed run repeats it bit for
// bit.
type AdamW struct {
	Beta1, Beta2, Eps, WeightDecay float64
	// Steps counts the updates done so far (t in the bias correction).
	Steps int
	M, V  [][]float32
}

// NewAdamW returns an optimizer with zeroed moments for params.
func NewAdamW(params []Param, beta1, beta2, eps, weightDecay float64) *AdamW {
	o := &AdamW{Beta1: beta1, Beta2: beta2, Eps: eps, WeightDecay: weightDecay,
		M: make([][]float32, len(params)), V: make([][]float32, len(params))}
	for i, p := range params {
		o.M[i] = make([]float32, len(p.Data))
		o.V[i] = make([]float32, len(p.Data))
	}
	return o
}

// Update applies one step at learning rate lr to every parameter, reading
// each parameter's Grad.
func (o *AdamW) Update(params []Param, lr float64) error {
	if len(params) != len(o.M) {
		return fmt.Errorf("trainer: AdamW has state for %d tensors, got %d", len(o.M), len(params))
	}
	o.Steps++
	c1 := 1 - math.Pow(o.Beta1, float64(o.Steps))
	c2 := 1 - math.Pow(o.Beta2, float64(o.Steps))
	for i, p := range params {
		m, v := o.M[i], o.V[i]
		for j, g32 := range p.Grad {
			if p.Trainable != nil && !p.Trainable[j] {
				continue
			}
			g := float64(g32)
			mj := o.Beta1*float64(m[j]) + (1-o.Beta1)*g
			vj := o.Beta2*float64(v[j]) + (1-o.Beta2)*g*g
			m[j], v[j] = float32(mj), float32(vj)
			theta := float64(p.Data[j])
			theta -= lr * ((mj/c1)/(math.Sqrt(vj/c2)+o.Eps) + o.WeightDecay*theta)
			p.Data[j] = float32(theta)
		}
	}
	return nil
}

// GradNorm returns the global L2 norm of the trainable gradient entries.
func GradNorm(params []Param) float64 {
	var s float64
	for _, p := range params {
		for j, g := range p.Grad {
			if p.Trainable == nil || p.Trainable[j] {
				s += float64(g) * float64(g)
			}
		}
	}
	return math.Sqrt(s)
}

// ScaleGrads multiplies every gradient by f.
func ScaleGrads(params []Param, f float64) {
	for _, p := range params {
		for j := range p.Grad {
			p.Grad[j] = float32(float64(p.Grad[j]) * f)
		}
	}
}

// ClipGrads scales the gradients so that their global norm is at most
// maxNorm (0 disables clipping) and returns the norm before clipping.
func ClipGrads(params []Param, maxNorm float64) float64 {
	norm := GradNorm(params)
	if maxNorm > 0 && norm > maxNorm {
		ScaleGrads(params, maxNorm/(norm+1e-6))
	}
	return norm
}

// Schedule is a learning-rate schedule: linear warmup from 0 over Warmup
// steps, then cosine or linear decay from Peak to MinRatio·Peak at Total
// steps, or constant.
type Schedule struct {
	Kind     string // "cosine" | "linear" | "constant"
	Peak     float64
	Warmup   int
	Total    int
	MinRatio float64
}

// LR returns the learning rate of update number step (0-based).
func (s Schedule) LR(step int) float64 {
	if step < s.Warmup {
		return s.Peak * float64(step+1) / float64(s.Warmup+1)
	}
	if s.Kind == "constant" || s.Total <= s.Warmup {
		return s.Peak
	}
	progress := float64(step-s.Warmup) / float64(s.Total-s.Warmup)
	progress = math.Min(1, math.Max(0, progress))
	lo := s.Peak * s.MinRatio
	switch s.Kind {
	case "linear":
		return lo + (s.Peak-lo)*(1-progress)
	default: // cosine
		return lo + (s.Peak-lo)*0.5*(1+math.Cos(math.Pi*progress))
	}
}
