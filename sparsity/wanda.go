package sparsity

import (
	"fmt"
	"math"
)

// Calibration accumulates, for each input feature j of a linear layer, the sum
// of squares of its activations over calibration tokens, Σ_t X_tj², so that
// Norms can give the ||X_j||₂ that Wanda multiplies |W_ij| by.
//
// Projections that read the same activations (q/k/v after the attention norm,
// gate/up after the MLP norm) can share one Calibration. Any constant factor
// on all norms (e.g. averaging over tokens instead of summing) leaves Wanda's
// masks unchanged, since weights are only compared with each other.
type Calibration struct {
	sumSquares []float64
	tokens     int
}

// NewCalibration returns an empty accumulator for `features` input features.
func NewCalibration(features int) *Calibration {
	if features <= 0 {
		panic("sparsity: NewCalibration: features must be positive")
	}
	return &Calibration{sumSquares: make([]float64, features)}
}

// AddActivations adds rows calibration tokens x (rows×Features, row-major).
// It panics if len(x) != rows·Features (a wiring error, not user input).
func (c *Calibration) AddActivations(x []float32, rows int) {
	f := len(c.sumSquares)
	if rows < 0 || len(x) != rows*f {
		panic(fmt.Sprintf("sparsity: Calibration.AddActivations: got %d values for %d rows of %d features", len(x), rows, f))
	}
	for t := 0; t < rows; t++ {
		for j, v := range x[t*f : (t+1)*f] {
			c.sumSquares[j] += float64(v) * float64(v)
		}
	}
	c.tokens += rows
}

// Features is the number of input features.
func (c *Calibration) Features() int { return len(c.sumSquares) }

// Tokens is the number of calibration tokens added so far.
func (c *Calibration) Tokens() int { return c.tokens }

// Norms returns ||X_j||₂ = sqrt(Σ_t X_tj²) for every input feature j, the
// featureNorms argument of Spec.Mask for Wanda.
func (c *Calibration) Norms() []float32 {
	out := make([]float32, len(c.sumSquares))
	for j, s := range c.sumSquares {
		out[j] = float32(math.Sqrt(s))
	}
	return out
}
