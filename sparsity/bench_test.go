package sparsity

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkMask times mask computation on a 4096×4096 Llama-sized projection.
func BenchmarkMask(b *testing.B) {
	const rows, cols = 4096, 4096
	rng := rand.New(rand.NewPCG(1, 1))
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	for _, name := range []string{"matrix", "row", "2:4"} {
		p, err := ParsePattern(name, 0.5)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := (Spec{Magnitude, p}).Mask(w, rows, cols, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
