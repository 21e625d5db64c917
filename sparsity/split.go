package sparsity

import "math"

// SplitStats describes how much of a weight matrix pruning removed.
type SplitStats struct {
	Rows, Cols int
	// Pruned is the exact number of pruned weights; Sparsity = Pruned/(Rows·Cols).
	Pruned   int
	Sparsity float64
	// NormW and NormE are the Frobenius norms of W0 and of the residual E.
	NormW, NormE float64
	// MSE is the per-entry mean squared pruning error ||E||_F² / (Rows·Cols).
	MSE float64
}

// Split divides W0 (w, row-major out×in with the mask's shape) into the kept
// base W0⊙M and the residual E = W0 − W0⊙M (so kept + residual = w exactly,
// and each entry is nonzero in at most one of them), with statistics. It
// panics if len(w) does not match the mask (a wiring error).
func Split(w []float32, m *Mask) (kept, residual []float32, stats SplitStats) {
	if len(w) != m.Size() {
		panic("sparsity: Split: len(w) != mask rows*cols")
	}
	kept = make([]float32, len(w))
	residual = make([]float32, len(w))
	var sumW, sumE float64
	for wi, word := range m.keep {
		base := wi * 64
		end := min(base+64, len(w))
		for i, v := range w[base:end] {
			// Branch-free: keep is all ones for a kept weight, else zero.
			keep := -uint32(word >> uint(i) & 1)
			bits := math.Float32bits(v)
			kept[base+i] = math.Float32frombits(bits & keep)
			e := math.Float32frombits(bits &^ keep)
			residual[base+i] = e
			sumW += float64(v) * float64(v)
			sumE += float64(e) * float64(e)
		}
	}
	stats = SplitStats{
		Rows: m.Rows(), Cols: m.Cols(),
		Pruned: m.Pruned(), Sparsity: m.Sparsity(),
		NormW: math.Sqrt(sumW), NormE: math.Sqrt(sumE),
	}
	if n := m.Size(); n > 0 {
		stats.MSE = sumE / float64(n)
	}
	return kept, residual, stats
}
