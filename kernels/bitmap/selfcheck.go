package bitmap

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"

	"github.com/salr-go/salr/kernels"
)

// A kernel set with a fallback (one whose instructions may never have run on
// a machine before this one) is checked against its fallback the first time
// it would become the default: a few products of small random matrices in
// every format, microseconds of work. On a mismatch the process warns once
// on stderr and runs the fallback instead.
func init() {
	defaultKernels = verifiedKernels(defaultKernels, os.Stderr)
}

// verifiedKernels returns ks, or ks.fallback when ks has one and fails
// selfCheck against it; then it writes one line to warn naming the kernel.
func verifiedKernels(ks *kernelSet, warn io.Writer) *kernelSet {
	if ks.fallback == nil {
		return ks
	}
	if err := selfCheck(ks, ks.fallback); err != nil {
		fmt.Fprintf(warn, "salr: warning: the %s kernels failed their self-check (%v); using the %s kernels\n",
			ks.name, err, ks.fallback.name)
		return ks.fallback
	}
	return ks
}

// bf16RoundX is the relative error of rounding a value to bf16 (8
// significant bits, nearest even): 2⁻⁸.
const bf16RoundX = 0x1p-8

// productBound bounds the error of a product of k terms computed in fp32
// whose exact Σ|terms| is abs: the fp32 accumulation bound (k+4)·2⁻²⁴·abs,
// and when x is rounded to bf16 first (relX = bf16RoundX) relX·abs more, with
// 2⁻¹¹⁸ per term for the subnormal inputs and partial sums VDPBF16PS flushes
// to zero (for |w|, |x| up to 16).
func productBound(abs float64, k int, relX float64) float64 {
	if relX == 0 {
		return float64(k+4) * (0x1p-24*abs + 0x1p-149)
	}
	return relX*abs + float64(k+4)*(0x1p-24*(1+relX)*abs+0x1p-118)
}

// The shape of the self-check's matrices: several row blocks of the kernels
// (37 = 9·4 + 1 rows) and column counts that leave partial chunks and groups.
const selfCheckRows, selfCheckCols = 37, 300

// selfCheckBatch is the number of rows of x for the batched product: more
// than maxBatch, and not a multiple of the blocks of x the kernels take.
const selfCheckBatch = 2*maxBatch + 3

// selfCheck runs every kernel of ks on random matrices of each format
// (bitmap bf16, fp16, fp32 and nf4 at 50% density, dense bf16) over a range of
// 32 rows and compares with ref: products within twice productBound (both
// sets round), decodes exactly, nothing written outside the output; and the
// set's own batched products (denseMulT, bitmapMulT, denseMul, bitmapMul),
// where it has them, on the whole matrix and selfCheckBatch rows of x or dy
// against a float64 product within productBound. It returns an error naming the first kernel that
// disagrees.
func selfCheck(ks, ref *kernelSet) error {
	rng := rand.New(rand.NewPCG(selfCheckRows, selfCheckCols))
	rows, cols := selfCheckRows, selfCheckCols
	w := make([]float32, rows*cols)
	for i := range w {
		if rng.IntN(2) == 0 {
			w[i] = float32(rng.NormFloat64())
		}
	}
	for _, dt := range []DType{BF16, F16, F32, 0} {
		var a, b rowOps
		var relX float64
		if dt == 0 {
			d := NewDenseBF16(w, rows, cols)
			d2 := *d
			d.kern, d2.kern = ks, ref
			a, b = d, &d2
			if ks.denseBF16X {
				relX = bf16RoundX
			}
		} else {
			m, err := Encode(w, rows, cols, dt)
			if err != nil {
				return err
			}
			m2 := *m
			m.kern, m2.kern = ks, ref
			a, b = m, &m2
			if dt == BF16 && ks.bitmapBF16X {
				relX = bf16RoundX
			}
		}
		name := "dense-bf16"
		if dt != 0 {
			name = "bitmap-" + dt.String()
		}
		// Rows from 3 to rows-2: the kernels see sliced rows, not offsets.
		if err := checkRowOps(rng, a, b, 3, rows-2, relX); err != nil {
			return fmt.Errorf("%s on %s %d×%d rows [3,%d): %w", err.kernel, name, rows, cols, rows-2, err)
		}
	}
	// NF4: bitmap-nf4 (its decoder, then the set's bf16 bitmap kernels) and
	// dense-nf4 (the same, or the set's fused GEMV), the latter also with
	// rows of whole blocks of 64 (a width the fused GEMV reads x in place
	// at).
	relX := 0.0
	if ks.bitmapBF16X {
		relX = bf16RoundX
	}
	for _, f := range []struct {
		dense bool
		cols  int
	}{{false, cols}, {true, cols}, {true, cols / NF4BlockSize * NF4BlockSize}} {
		wf := w[:rows*f.cols]
		m, err := EncodeNF4(wf, rows, f.cols, f.dense, true)
		if err != nil {
			return err
		}
		m2 := *m
		m.kern, m2.kern = ks, ref
		name := map[bool]string{false: "bitmap-nf4", true: "dense-nf4"}[f.dense]
		if err := checkRowOps(rng, m, &m2, 3, rows-2, relX+nf4DotRelW(ks, m)); err != nil {
			return fmt.Errorf("%s on %s %d×%d rows [3,%d): %w", err.kernel, name, rows, f.cols, rows-2, err)
		}
		if err := checkNF4Dot(rng, ks, m, 3, rows-2); err != nil {
			return fmt.Errorf("%s on %s %d×%d rows [3,%d): %w", err.kernel, name, rows, f.cols, rows-2, err)
		}
	}
	return nil
}

// nf4DotRelW is the relative difference of the weights of the set's fused
// NF4 GEMV (nf4Dot) from the decoder's, to add to relX when comparing the
// products of m: nf4Dot multiplies bf16(code)·scale, the decoder
// bf16(code·scale), each within 2⁻⁹ of code·scale, so they differ by at
// most 2⁻⁸·|code·scale| ≤ 2⁻⁸·(1+2⁻⁸)·|bf16(code·scale)|; 0 where m does
// not take the fused GEMV.
func nf4DotRelW(ks *kernelSet, m *NF4) float64 {
	if ks.nf4Dot == nil || !m.Dense() {
		return 0
	}
	return 0x1.01p-8
}

// nf4DotRef is nf4Dot's product of row r of the dense-nf4 m with x in
// float64, and Σ|terms|: Σ over blocks of scale · Σ bf16(code)·x.
func nf4DotRef(m *NF4, x []float32, r int) (y, abs float64) {
	cols := m.cols
	nb := cols / NF4BlockSize
	sc := make([]float32, nb)
	m.scales(sc, r*nb, (r+1)*nb)
	for j := range cols {
		k := r*cols + j
		c := kernels.BF16ToFloat32(kernels.Float32ToBF16(NF4Code[m.codes[k/2]>>(4*(k%2))&15]))
		t := float64(sc[j/NF4BlockSize]) * float64(c) * float64(x[j])
		y += t
		abs += math.Abs(t)
	}
	return y, abs
}

// checkNF4Dot compares the rows [r0, done) that the set's fused NF4 GEMV
// takes of the dense-nf4 m (of whole blocks) with nf4DotRef within twice
// productBound: the fused kernel's own values, which the comparison with
// the decode path only bounds within 2⁻⁸·Σ|terms|.
func checkNF4Dot(rng *rand.Rand, ks *kernelSet, m *NF4, r0, r1 int) *kernelError {
	if ks.nf4Dot == nil || !m.Dense() || m.cols%NF4BlockSize != 0 {
		return nil
	}
	x := randomVector(rng, m.cols)
	got := guardedOut(r1 - r0)
	done := ks.nf4Dot(m, got[:r1-r0], x, r0, r1)
	want := guardedOut(r1 - r0)
	abs := make([]float64, r1-r0)
	for r := r0; r < done; r++ {
		y, a := nf4DotRef(m, x, r)
		want[r-r0], abs[r-r0] = float32(y), a
	}
	for i := done - r0; i < r1-r0; i++ { // the rows left to the decode path
		got[i], want[i] = 0, 0
	}
	if i := firstMismatch(got, want, r1-r0, func(i int) float64 { return 2 * productBound(abs[i], m.cols, 0) }); i >= 0 {
		return &kernelError{"nf4Dot", fmt.Sprintf("y[%d] = %v, want %v", i, got[i], want[i])}
	}
	return nil
}

// kernelError is a disagreement of one kernel of a set with the reference.
type kernelError struct {
	kernel string // the kernelSet field: "bitmapDot", "denseDotBatch", ...
	what   string
}

func (e *kernelError) Error() string { return e.what }

// checkRowOps compares the row kernels of a (the set under test) with those of
// b (the reference) on rows [r0, r1); relX is a's rounding of x in dot products.
func checkRowOps(rng *rand.Rand, a, b rowOps, r0, r1 int, relX float64) *kernelError {
	rows, cols := a.dims()
	n := r1 - r0
	kind := "bitmap"
	switch a.(type) {
	case *DenseBF16:
		kind = "dense"
	case *NF4:
		kind = "nf4"
	}
	fail := func(kernel, format string, args ...any) *kernelError {
		return &kernelError{kind + kernel, fmt.Sprintf(format, args...)}
	}
	wt := make([]float32, rows*cols) // the reference's decoded weights
	b.decode(wt, 0, rows)

	// Decode: exact.
	got, want := guardedOut(n*cols), guardedOut(n*cols)
	a.decode(got[:n*cols], r0, r1)
	b.decode(want[:n*cols], r0, r1)
	if i := firstMismatch(got, want, n*cols, func(i int) float64 { return 0 }); i >= 0 {
		return fail("Decode", "element %d = %v, want %v", i, got[i], want[i])
	}

	// Dot and the small-batch dot for every batch size.
	x := randomVector(rng, cols)
	got, want = guardedOut(n), guardedOut(n)
	a.dot(got[:n], x, r0, r1)
	b.dot(want[:n], x, r0, r1)
	if i := firstMismatch(got, want, n, func(i int) float64 {
		return 2 * productBound(absDot(wt[(r0+i)*cols:], x, 1), cols, relX)
	}); i >= 0 {
		return fail("Dot", "y[%d] = %v, want %v", i, got[i], want[i])
	}
	chunks := ChunksPerRow(cols)
	for nb := 4; nb <= maxBatch; nb += 4 {
		xs := randomVector(rng, nb*cols)
		xT := make([]float32, chunks*nb*ChunkCols)
		packBatch(xT, xs, nb, nb, cols)
		got, want = guardedOut(n*nb), guardedOut(n*nb)
		a.dotBatch(got[:n*nb], xT, nb, r0, r1)
		b.dotBatch(want[:n*nb], xT, nb, r0, r1)
		if i := firstMismatch(got, want, n*nb, func(i int) float64 {
			r, k := r0+i/nb, i%nb
			return 2 * productBound(absDot(wt[r*cols:], xs[k*cols:(k+1)*cols], 1), cols, relX)
		}); i >= 0 {
			return fail("DotBatch", "nb=%d: yT[%d] = %v, want %v", nb, i, got[i], want[i])
		}
	}

	// The batched products of the whole matrix, where the set has its own.
	nx := selfCheckBatch
	xs := randomVector(rng, nx*cols)
	got = guardedOut(nx * rows)
	if a.mulTBatch(got[:nx*rows], xs, nx) {
		want := exactMulT(wt, xs, nx, rows, cols)
		if i := firstMismatch(got, want, nx*rows, func(i int) float64 {
			return productBound(absDot(wt[i%rows*cols:], xs[i/rows*cols:(i/rows+1)*cols], 1), cols, bf16RoundX)
		}); i >= 0 {
			return fail("MulT", "n=%d: y[%d] = %v, want %v", nx, i, got[i], want[i])
		}
	}
	dys := randomVector(rng, nx*rows)
	got = guardedOut(nx * cols)
	if a.mulBatch(got[:nx*cols], dys, nx) {
		want := exactMul(wt, dys, nx, rows, cols)
		if i := firstMismatch(got, want, nx*cols, func(i int) float64 {
			return productBound(absDot(wt[i%cols:], dys[i/cols*rows:(i/cols+1)*rows], cols), rows, bf16RoundX)
		}); i >= 0 {
			return fail("Mul", "n=%d: dx[%d] = %v, want %v", nx, i, got[i], want[i])
		}
	}

	// Axpy accumulates into what dx holds.
	dy := randomVector(rng, n)
	init := randomVector(rng, cols)
	got, want = guardedOut(cols), guardedOut(cols)
	copy(got, init)
	copy(want, init)
	a.axpy(got[:cols], dy, r0, r1)
	b.axpy(want[:cols], dy, r0, r1)
	if i := firstMismatch(got, want, cols, func(j int) float64 {
		return 2 * productBound(math.Abs(float64(init[j]))+absDot(wt[r0*cols+j:], dy, cols), n+1, 0)
	}); i >= 0 {
		return fail("Axpy", "dx[%d] = %v, want %v", i, got[i], want[i])
	}
	return nil
}

// exactMulT returns x (n × cols) Wᵀ for W (rows × cols) rounded from float64
// (plus guardLanes sentinels, as guardedOut).
func exactMulT(w, x []float32, n, rows, cols int) []float32 {
	y := guardedOut(n * rows)
	for i := range n {
		for r := range rows {
			s := 0.0
			for j := range cols {
				s += float64(w[r*cols+j]) * float64(x[i*cols+j])
			}
			y[i*rows+r] = float32(s)
		}
	}
	return y
}

// exactMul returns dy (n × rows) W for W (rows × cols) rounded from float64
// (plus guardLanes sentinels, as guardedOut).
func exactMul(w, dy []float32, n, rows, cols int) []float32 {
	dx := guardedOut(n * cols)
	for i := range n {
		for j := range cols {
			s := 0.0
			for r := range rows {
				s += float64(dy[i*rows+r]) * float64(w[r*cols+j])
			}
			dx[i*cols+j] = float32(s)
		}
	}
	return dx
}

// guardLanes is the number of sentinel values after a self-check output.
const guardLanes = 16

// guardedOut returns n NaNs (a kernel that does not write an output is
// caught) followed by guardLanes sentinels.
func guardedOut(n int) []float32 {
	s := make([]float32, n+guardLanes)
	for i := range s {
		s[i] = float32(math.NaN())
	}
	for i := n; i < len(s); i++ {
		s[i] = -7777.25
	}
	return s
}

// firstMismatch returns the first index i < n where |got[i] - want[i]| exceeds
// tol(i) (or either is NaN), the first guard index after n that got changed,
// or -1.
func firstMismatch(got, want []float32, n int, tol func(i int) float64) int {
	for i := 0; i < n; i++ {
		if d := math.Abs(float64(got[i]) - float64(want[i])); !(d <= tol(i)) {
			return i
		}
	}
	for i := n; i < len(got); i++ {
		if got[i] != -7777.25 {
			return i
		}
	}
	return -1
}

// absDot is Σ_i |w[i·stride]·x[i]| over the len(x) terms, in float64 (stride
// 1: a row of a row-major matrix, stride cols: a column).
func absDot(w, x []float32, stride int) float64 {
	s := 0.0
	for i, v := range x {
		s += math.Abs(float64(w[i*stride]) * float64(v))
	}
	return s
}

// randomVector returns n normal values.
func randomVector(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}
