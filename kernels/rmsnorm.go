package kernels

import "math"

// RMSNormForward normalises each row of x [N,C] by its root mean square and
// scales it by w [C]:
//
//	y[r,j] = x[r,j] / sqrt(mean_j(x[r,:]²) + eps) · w[j]
//
// (HF LlamaRMSNorm; the mean of squares is accumulated in float64). y [N,C] is
// overwritten and may alias x.
func RMSNormForward[T Float](y, x, w []T, n, c int, eps float64) {
	checkRMSNorm("RMSNormForward", x, w, n, c)
	checkLen("RMSNormForward y", y, n*c)
	parallelFor(n, n*c, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, yr := x[r*c:(r+1)*c], y[r*c:(r+1)*c]
			inv := T(invRMS(xr, eps))
			for j, v := range xr {
				yr[j] = v * inv * w[j]
			}
		}
	})
}

// RMSNormBackward computes the gradients of RMSNormForward for the upstream
// gradient dy [N,C]. With ρ = 1/sqrt(mean(x²) + eps) per row:
//
//	dx[r,j] = ρ·dy[r,j]·w[j] - ρ³·x[r,j]·mean_k(dy[r,k]·w[k]·x[r,k])
//	dw[j]   = Σ_r dy[r,j]·x[r,j]·ρ_r
//
// dx [N,C] and dw [C] are overwritten; either may be nil to skip it.
func RMSNormBackward[T Float](dx, dw, dy, x, w []T, n, c int, eps float64) {
	checkRMSNorm("RMSNormBackward", x, w, n, c)
	checkLen("RMSNormBackward dy", dy, n*c)
	if dx == nil && dw == nil {
		return
	}
	scratch := getScratch[float64](n)
	defer putScratch(scratch)
	rho := *scratch
	// Rows in parallel: ρ per row (kept for dw) and dx.
	parallelFor(n, n*c, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, dyr := x[r*c:(r+1)*c], dy[r*c:(r+1)*c]
			rho[r] = invRMS(xr, eps)
			if dx == nil {
				continue
			}
			var dot float64
			for j, v := range xr {
				dot += float64(dyr[j]) * float64(w[j]) * float64(v)
			}
			a, b := T(rho[r]), T(rho[r]*rho[r]*rho[r]*dot/float64(c))
			dxr := dx[r*c : (r+1)*c]
			for j, v := range xr {
				dxr[j] = a*dyr[j]*w[j] - b*v
			}
		}
	})
	if dw == nil {
		return
	}
	checkLen("RMSNormBackward dw", dw, c)
	sumOverRows(dw, n, c, func(sums []float64, r, lo, hi int) {
		dyr := dy[r*c+lo : r*c+hi]
		for j, v := range x[r*c+lo : r*c+hi] {
			sums[j] += float64(dyr[j]) * float64(v) * rho[r]
		}
	})
}

// invRMS returns 1/sqrt(mean(x²) + eps), accumulated in float64.
func invRMS[T Float](x []T, eps float64) float64 {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	return 1 / math.Sqrt(ss/float64(len(x))+eps)
}

func checkRMSNorm[T Float](fn string, x, w []T, n, c int) {
	checkLen(fn+" x", x, n*c)
	checkLen(fn+" w", w, c)
}
