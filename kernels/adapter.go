package kernels

// AdapterDims names the shapes of one projection's fused low-rank adapters:
// N token rows, In and Out the projection's input and output widths, R the
// total rank of all adapters stacked along the rank dimension, and Dropped the
// number of leading ranks (the LoRA ranks) that read the dropped-out input;
// the remaining R−Dropped ranks (the SVD residual adapter) read the clean x.
// Dropped is 0 without dropout. Precision is the arithmetic of the GEMMs
// (see MatMul), FP32 when left zero.
type AdapterDims struct {
	N, In, Out, R, Dropped int
	Precision              Precision
}

func (d AdapterDims) check(what string) {
	if d.N < 0 || d.In <= 0 || d.Out <= 0 || d.R <= 0 || d.Dropped < 0 || d.Dropped > d.R {
		panic("kernels: " + what + ": invalid AdapterDims")
	}
}

// FusedAdapterForward computes the output delta of all adapters of one
// projection with one pair of GEMMs over the concatenated ranks:
//
//	h[:, :D] = (xd A[:D]ᵀ) ⊙ scale[:D]   where xd = x ⊙ drop (dropped-out input)
//	h[:, D:] = (x  A[D:]ᵀ) ⊙ scale[D:]
//	y        = h Bᵀ
//
// with D = d.Dropped and shapes x, drop, xd: N×In; a (A_cat): R×In;
// b (B_cat): Out×R; scale: R; h: N×R; y: N×Out. The per-rank scale sits
// between the GEMMs, so B holds the unscaled adapter factors and the result is
// exactly Σ_adapters scale·(x Aᵀ) Bᵀ.
//
// Outputs y, h (the scaled intermediate, needed by the backward pass for dB)
// and, when D > 0, xd are overwritten. drop is the dropout multiplier, each
// entry 0 or 1/(1−p); drop and xd are not touched when D == 0 and may be nil.
// When D > 0 and drop is nil, xd must already hold x ⊙ drop (ApplyDropout
// writes it straight from the keep mask) and is only read.
// GEMM count: 2 when D is 0 or R, 3 otherwise (the first product is split
// between the dropped and the clean input).
func FusedAdapterForward[T Float](d AdapterDims, y, h, xd, x, drop, a, b, scale []T) {
	FusedAdapterHidden(d, h, xd, x, drop, a, scale)
	FusedAdapterOutput(d, y, h, b)
}

// FusedAdapterOutput computes the second half of FusedAdapterForward,
// y = h Bᵀ (one GEMM), overwriting y.
func FusedAdapterOutput[T Float](d AdapterDims, y, h, b []T) {
	d.check("FusedAdapterOutput")
	checkLen("FusedAdapterForward h", h, d.N*d.R)
	checkLen("FusedAdapterForward b", b, d.Out*d.R)
	checkLen("FusedAdapterForward y", y, d.N*d.Out)
	MatMul(d.Precision, false, true, d.N, d.Out, d.R, 1, h, d.R, b, d.R, 0, y, d.Out)
}

// FusedAdapterHidden computes only the first half of FusedAdapterForward:
// xd = x ⊙ drop (when D > 0 and drop is not nil; see FusedAdapterForward)
// and the scaled intermediate h (N×R), both overwritten. The backward pass of
// dB uses it to recompute h.
func FusedAdapterHidden[T Float](d AdapterDims, h, xd, x, drop, a, scale []T) {
	d.check("FusedAdapterHidden")
	n, in, r, dr := d.N, d.In, d.R, d.Dropped
	checkLen("FusedAdapterHidden x", x, n*in)
	checkLen("FusedAdapterHidden a", a, r*in)
	checkLen("FusedAdapterHidden scale", scale, r)
	checkLen("FusedAdapterHidden h", h, n*r)
	if dr > 0 {
		checkLen("FusedAdapterHidden xd", xd, n*in)
		if drop != nil {
			checkLen("FusedAdapterHidden drop", drop, n*in)
			MulElems(xd[:n*in], x[:n*in], drop[:n*in])
		}
		MatMul(d.Precision, false, true, n, dr, in, 1, xd, in, a, in, 0, h, r)
	}
	if dr < r {
		MatMul(d.Precision, false, true, n, r-dr, in, 1, x, in, a[dr*in:], in, 0, h[dr:], r)
	}
	scaleColumns(h, scale, n, r)
}

// FusedAdapterBackward computes the gradients of FusedAdapterForward from dy
// (N×Out), with g = (dy B) ⊙ scale (N×R, written to the scratch dh):
//
//	dx     = (g[:, :D] A[:D]) ⊙ drop + g[:, D:] A[D:]     (N×In)
//	dA[:D] = g[:, :D]ᵀ xd,  dA[D:] = g[:, D:]ᵀ x           (R×In)
//	dB     = dyᵀ h                                         (Out×R)
//
// where h and xd are the values FusedAdapterForward produced for the same
// inputs. dx, da and db are overwritten; any of them may be nil to skip it,
// and only what the requested outputs need is read: h for db; dh (N×R
// scratch), a, b and scale for dx and da; drop for dx and xd and x for da
// when D > 0. GEMMs: 1 for g (when dx or da is requested), then 1 each for dx
// and dA (2 each when 0 < D < R) and 1 for dB. It is
// FusedAdapterOutputBackward followed by FusedAdapterHiddenBackward.
func FusedAdapterBackward[T Float](d AdapterDims, dx, da, db, dh, dy, h, xd, x, drop, a, b, scale []T) {
	d.check("FusedAdapterBackward")
	if dx == nil && da == nil {
		dh = nil
	}
	FusedAdapterOutputBackward(d, dh, db, dy, h, b)
	if dh == nil {
		return
	}
	FusedAdapterHiddenBackward(d, dx, da, dh, dh, xd, x, drop, a, scale)
}

// FusedAdapterOutputBackward is the backward pass of the second GEMM of
// FusedAdapterForward, y = h Bᵀ: dh = dy B (N×R, unscaled) and dB = dyᵀ h
// (Out×R), each overwritten unless nil (then skipped; b is read only for dh,
// h only for db). One GEMM each.
func FusedAdapterOutputBackward[T Float](d AdapterDims, dh, db, dy, h, b []T) {
	d.check("FusedAdapterOutputBackward")
	n, out, r := d.N, d.Out, d.R
	checkLen("FusedAdapterBackward dy", dy, n*out)
	if db != nil {
		checkLen("FusedAdapterBackward h", h, n*r)
		checkLen("FusedAdapterBackward db", db, out*r)
		MatMul(d.Precision, true, false, out, r, n, 1, dy, out, h, r, 0, db, r)
	}
	if dh != nil {
		checkLen("FusedAdapterBackward dh", dh, n*r)
		checkLen("FusedAdapterBackward b", b, out*r)
		MatMul(d.Precision, false, false, n, r, out, 1, dy, out, b, r, 0, dh, r)
	}
}

// FusedAdapterHiddenBackward is the backward pass of FusedAdapterHidden from
// dh, the gradient of its output h (N×R): it writes g = dh ⊙ scale to the
// scratch g (N×R; it may be dh itself), then dx and dA as in
// FusedAdapterBackward, each overwritten unless nil (then skipped). a and
// drop are read for dx, xd and x for dA. GEMMs: 1 each for dx and dA, 2 each
// when 0 < D < R.
func FusedAdapterHiddenBackward[T Float](d AdapterDims, dx, da, g, dh, xd, x, drop, a, scale []T) {
	d.check("FusedAdapterHiddenBackward")
	n, in, r, dr := d.N, d.In, d.R, d.Dropped
	checkLen("FusedAdapterBackward dh", dh, n*r)
	checkLen("FusedAdapterBackward g", g, n*r)
	checkLen("FusedAdapterBackward scale", scale, r)
	copy(g, dh)
	scaleColumns(g, scale, n, r)
	if dx != nil {
		checkLen("FusedAdapterBackward a", a, r*in)
		checkLen("FusedAdapterBackward dx", dx, n*in)
		beta := T(0)
		if dr > 0 {
			checkLen("FusedAdapterBackward drop", drop, n*in)
			MatMul(d.Precision, false, false, n, in, dr, 1, g, r, a, in, 0, dx, in)
			MulElems(dx[:n*in], dx[:n*in], drop[:n*in])
			beta = 1
		}
		if dr < r {
			MatMul(d.Precision, false, false, n, in, r-dr, 1, g[dr:], r, a[dr*in:], in, beta, dx, in)
		}
	}
	if da != nil {
		checkLen("FusedAdapterBackward da", da, r*in)
		if dr > 0 {
			checkLen("FusedAdapterBackward xd", xd, n*in)
			MatMul(d.Precision, true, false, dr, in, n, 1, g, r, xd, in, 0, da, in)
		}
		if dr < r {
			checkLen("FusedAdapterBackward x", x, n*in)
			MatMul(d.Precision, true, false, r-dr, in, n, 1, g[dr:], r, x, in, 0, da[dr*in:], in)
		}
	}
}

// ApplyDropout writes dst[i] = x[i]·scale when bit i of keep (bit i%64 of
// word i/64) is set, else 0: x ⊙ drop without materialising drop. dst may be
// x.
func ApplyDropout[T Float](dst, x []T, keep []uint64, scale T) {
	checkLen("ApplyDropout x", x, len(dst))
	checkLen("ApplyDropout keep", keep, (len(dst)+63)/64)
	vals := [2]T{0, scale}
	parallelFor(len(keep), len(dst), func(lo, hi int) {
		for w := lo; w < hi; w++ {
			word := keep[w]
			end := min(w*64+64, len(dst))
			d, s := dst[w*64:end], x[w*64:end]
			s = s[:len(d)]
			for j := range d {
				d[j] = s[j] * vals[word&1] // branch-free
				word >>= 1
			}
		}
	})
}

// ExpandDropout writes the dropout multiplier of a keep mask: drop[i] is
// scale when bit i of keep (bit i%64 of word i/64) is set, else 0.
func ExpandDropout[T Float](drop []T, keep []uint64, scale T) {
	checkLen("ExpandDropout keep", keep, (len(drop)+63)/64)
	vals := [2]T{0, scale}
	parallelFor(len(keep), len(drop), func(lo, hi int) {
		for w := lo; w < hi; w++ {
			word := keep[w]
			chunk := drop[w*64 : min(w*64+64, len(drop))]
			for j := range chunk {
				chunk[j] = vals[word&1]
				word >>= 1
			}
		}
	})
}

// scaleColumns multiplies column j of the rows×cols matrix m by s[j].
func scaleColumns[T Float](m, s []T, rows, cols int) {
	for i := 0; i < rows; i++ {
		row := m[i*cols : (i+1)*cols]
		for j := range row {
			row[j] *= s[j]
		}
	}
}
