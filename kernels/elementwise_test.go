package kernels

import (
	"math/rand/v2"
	"testing"
)

func TestAddAndCopyElems(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 11))
	for _, n := range []int{0, 1, 1000, 3 * minParallelWork} {
		a, b := make([]float32, n), make([]float32, n)
		for i := range a {
			a[i], b[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
		}
		sum := make([]float32, n+1)
		sum[n] = 42 // guard
		AddElems(sum[:n], a, b)
		cp := make([]float32, n+1)
		cp[n] = 42
		CopyElems(cp[:n], a)
		for i := range n {
			if sum[i] != a[i]+b[i] || cp[i] != a[i] {
				t.Fatalf("n=%d, i=%d: sum %v copy %v, want %v and %v", n, i, sum[i], cp[i], a[i]+b[i], a[i])
			}
		}
		if sum[n] != 42 || cp[n] != 42 {
			t.Fatalf("n=%d: wrote past the slice", n)
		}
	}
}
