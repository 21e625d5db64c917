package kernels

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/salr-go/salr/kernels/internal/vecmath"
)

// CrossEntropyForward returns the masked mean next-token loss over logits [N,V]:
//
//	Σ_r mask[r]·(logsumexp(logits[r]) - logits[r, targets[r]]) / Σ_r mask[r]
//
// and 0 when Σ mask = 0. mask values are weights (0 or 1 in practice); a nil
// mask weighs every row 1. Rows with weight 0 are not read at all (their
// targets may be anything, e.g. -100). A target outside [0, V) on a weighted
// row panics. Sums are accumulated in float64 in row order, so the result does
// not depend on the number of goroutines.
func CrossEntropyForward[T Float](logits []T, n, v int, targets []int, mask []T) T {
	total := checkCrossEntropy("CrossEntropyForward", logits, n, v, targets, mask)
	if total == 0 {
		return 0
	}
	losses := getScratch[float64](n)
	defer putScratch(losses)
	parallelFor(n, n*v*expCost, func(lo, hi int) {
		row := getScratch[T](v)
		defer putScratch(row)
		for r := lo; r < hi; r++ {
			(*losses)[r] = 0
			if mask != nil && mask[r] == 0 {
				continue
			}
			(*losses)[r] = rowLoss(*row, logits[r*v:(r+1)*v], targets[r])
		}
	})
	return T(weightedMean(*losses, mask, total))
}

// CrossEntropyBackward writes the gradient of CrossEntropyForward scaled by
// the upstream gradient dloss:
//
//	dlogits[r] = dloss · mask[r]/Σmask · (softmax(logits[r]) - onehot(targets[r]))
//
// dlogits [N,V] is overwritten (rows of weight 0 become zero) and may alias
// logits.
func CrossEntropyBackward[T Float](dlogits, logits []T, n, v int, targets []int, mask []T, dloss T) {
	total := checkCrossEntropy("CrossEntropyBackward", logits, n, v, targets, mask)
	checkLen("CrossEntropyBackward dlogits", dlogits, n*v)
	parallelFor(n, n*v*expCost, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			d := dlogits[r*v : (r+1)*v]
			weight := rowWeight(mask, r)
			if weight == 0 || total == 0 {
				clear(d)
				continue
			}
			rowGradient(d, logits[r*v:(r+1)*v], targets[r], float64(dloss)*weight/total)
		}
	})
}

// weightedMean returns Σ_r mask[r]·losses[r] / total, summed in row order
// (a nil mask weighs every row 1).
func weightedMean[T Float](losses []float64, mask []T, total float64) float64 {
	var sum float64
	for r, loss := range losses {
		sum += rowWeight(mask, r) * loss
	}
	return sum / total
}

// rowLoss returns the cross-entropy logsumexp(x) - x[target] of one row of
// logits; scratch (len >= len(x)) receives the shifted exponentials and may
// alias x.
func rowLoss[T Float](scratch, x []T, target int) float64 {
	xt := float64(x[target]) // read before scratch may overwrite it
	return logSumExp(scratch, x) - xt
}

// rowGradient writes d = g·(softmax(x) - onehot(target)), the gradient of
// g·rowLoss(x); d may alias x.
func rowGradient[T Float](d, x []T, target int, g float64) {
	_, sum := expRow(d, x)
	expToGradient(d, sum, target, g)
}

// rowLossGradient returns rowLoss(x, target) and overwrites x with the
// gradient of g·rowLoss, as rowGradient(x, x, target, g) would, computing the
// exponentials once.
func rowLossGradient[T Float](x []T, target int, g float64) float64 {
	xt := float64(x[target])
	m, sum := expRow(x, x)
	expToGradient(x, sum, target, g)
	return float64(m) + math.Log(sum) - xt
}

// expToGradient turns e = exp(x - max x), whose sum is sum, into
// g·(softmax(x) - onehot(target)).
func expToGradient[T Float](e []T, sum float64, target int, g float64) {
	scaleRow(e, T(g/sum))
	e[target] -= T(g)
}

// TokenLogProbs writes out[r] = log softmax(logits[r])[targets[r]] for each
// row of logits [N,V] (for evaluation). A target outside [0, V) panics.
func TokenLogProbs[T Float](out, logits []T, n, v int, targets []int) {
	checkCrossEntropy("TokenLogProbs", logits, n, v, targets, nil)
	checkLen("TokenLogProbs out", out, n)
	parallelFor(n, n*v*expCost, func(lo, hi int) {
		row := getScratch[T](v)
		defer putScratch(row)
		for r := lo; r < hi; r++ {
			x := logits[r*v : (r+1)*v]
			out[r] = T(float64(x[targets[r]]) - logSumExp(*row, x))
		}
	})
}

// LogSoftmax writes y[r] = x[r] - logsumexp(x[r]) for each row of x [N,V]
// (for sampling and evaluation). y may alias x.
func LogSoftmax[T Float](y, x []T, n, v int) {
	checkLen("LogSoftmax x", x, n*v)
	checkLen("LogSoftmax y", y, n*v)
	parallelFor(n, n*v*expCost, func(lo, hi int) {
		row := getScratch[T](v)
		defer putScratch(row)
		for r := lo; r < hi; r++ {
			lse := T(logSumExp(*row, x[r*v:(r+1)*v]))
			yr, xr := y[r*v:(r+1)*v], x[r*v:(r+1)*v]
			for j, xv := range xr {
				yr[j] = xv - lse
			}
		}
	})
}

// checkCrossEntropy validates the shapes and the targets of weighted rows and
// returns Σ mask (n when mask is nil).
func checkCrossEntropy[T Float](fn string, logits []T, n, v int, targets []int, mask []T) float64 {
	checkLen(fn+" logits", logits, n*v)
	return checkTargets(fn, n, v, targets, mask)
}

// checkTargets validates the lengths of targets and mask and the targets of
// weighted rows, and returns Σ mask (n when mask is nil).
func checkTargets[T Float](fn string, n, v int, targets []int, mask []T) float64 {
	checkLen(fn+" targets", targets, n)
	if mask != nil {
		checkLen(fn+" mask", mask, n)
	}
	var total float64
	for r := 0; r < n; r++ {
		weight := rowWeight(mask, r)
		if weight == 0 {
			continue
		}
		if t := targets[r]; t < 0 || t >= v {
			panic(fmt.Sprintf("kernels: %s: target %d of row %d outside the vocabulary [0, %d)", fn, t, r, v))
		}
		total += weight
	}
	return total
}

// rowWeight is mask[r] as float64, or 1 when mask is nil.
func rowWeight[T Float](mask []T, r int) float64 {
	if mask == nil {
		return 1
	}
	return float64(mask[r])
}

// Exponentials and softmax shared by cross-entropy, attention and SwiGLU.

// expCost is the rough cost of one exponential in element operations, for
// deciding when to split work across goroutines.
const expCost = 16

// logSumExp returns log Σ_j exp(x[j]) computed stably (max subtracted, sum in
// float64); scratch (len >= len(x)) receives the shifted exponentials.
func logSumExp[T Float](scratch, x []T) float64 {
	m, sum := expRow(scratch, x)
	return float64(m) + math.Log(sum)
}

// expRow writes e[j] = exp(x[j] - m) for the row maximum m (e may alias x) and
// returns m and Σ_j e[j] accumulated in float64.
func expRow[T Float](e, x []T) (m T, sum float64) {
	m = maxOf(x)
	return m, expShifted(e, x, m)
}

// softmaxRow writes y = softmax(x) (max subtracted, sum in float64); y may
// alias x.
func softmaxRow[T Float](y, x []T) {
	_, sum := expRow(y, x)
	scaleRow(y[:len(x)], T(1/sum))
}

// softmaxBackwardRow turns dx, the gradient with respect to p = softmax(z),
// into the gradient with respect to z: dx[j] = p[j]·(dx[j] - Σ_k p[k]·dx[k]),
// the sum accumulated in float64.
func softmaxBackwardRow[T Float](dx, p []T) {
	if isFloat32[T]() {
		vecmath.SoftmaxBackward(asFloat32(dx), asFloat32(p))
		return
	}
	p = p[:len(dx)]
	var dot float64
	for j, v := range p {
		dot += float64(v) * float64(dx[j])
	}
	d := T(dot)
	for j, v := range p {
		dx[j] = v * (dx[j] - d)
	}
}

// scaleRow multiplies every element of x by a.
func scaleRow[T Float](x []T, a T) {
	if isFloat32[T]() {
		vecmath.Scale(asFloat32(x), float32(a))
		return
	}
	for j := range x {
		x[j] *= a
	}
}

// maxOf returns the largest element of x that is not NaN (-Inf when there is
// none); the exponential sums that use it propagate NaNs anyway.
func maxOf[T Float](x []T) T {
	if isFloat32[T]() {
		return T(vecmath.Max(asFloat32(x)))
	}
	m := T(math.Inf(-1))
	for _, v := range x {
		if v > m { // not the builtin max, whose NaN handling makes it several times slower
			m = v
		}
	}
	return m
}

// expShifted writes dst[j] = exp(src[j] - shift) and returns Σ_j dst[j]
// accumulated in float64. dst may alias src. float32 data uses the vector
// kernels of package vecmath (assembly where the CPU allows), float64 data
// math.Exp.
func expShifted[T Float](dst, src []T, shift T) float64 {
	dst = dst[:len(src)]
	if isFloat32[T]() {
		return vecmath.ExpShiftedSum(asFloat32(dst), asFloat32(src), float32(shift))
	}
	var sum float64
	for j, v := range src {
		e := math.Exp(float64(v - shift))
		dst[j] = T(e)
		sum += e
	}
	return sum
}

// sigmoidInto writes dst[j] = σ(src[j]) = 1/(1 + exp(-src[j])); dst may alias src.
func sigmoidInto[T Float](dst, src []T) {
	dst = dst[:len(src)]
	if isFloat32[T]() {
		vecmath.Sigmoid(asFloat32(dst), asFloat32(src))
		return
	}
	for j, v := range src {
		dst[j] = T(1 / (1 + math.Exp(-float64(v))))
	}
}

// asFloat32 reinterprets a slice of a 4-byte float type as []float32 (T may be
// a named float32 type); the caller checks isFloat32[T]().
func asFloat32[T Float](x []T) []float32 {
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(x))), len(x))
}

// exp32 is the scalar float32 exponential (vecmath.Exp32, the reference of the
// vector kernels).
func exp32(x float32) float32 { return vecmath.Exp32(x) }
