package bitmap

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/salr-go/salr/kernels"
)

// The shared kernel suite: every kernel implementation (pure Go and, where the
// CPU has it, AVX-512) runs every product of every format (bitmap bf16, fp16,
// fp32 and dense bf16) against a float64 naive product of a reference dense
// matrix decoded by the test itself, with guard values around every buffer.

// refDecode is the test's own decoder of p, independent of the kernels: bit j
// of mask c of row r is column 16c+j, values taken in order.
func refDecode(p Parts) []float64 {
	chunks := ChunksPerRow(p.Cols)
	w := make([]float64, p.Rows*p.Cols)
	k := 0
	for r := 0; r < p.Rows; r++ {
		for j := 0; j < p.Cols; j++ {
			if p.Bitmap[r*chunks+j/16]>>(j%16)&1 == 0 {
				continue
			}
			switch p.DType {
			case BF16:
				w[r*p.Cols+j] = float64(math.Float32frombits(uint32(p.Values16[k]) << 16))
			case F16:
				w[r*p.Cols+j] = float64(kernels.F16ToFloat32(p.Values16[k]))
			case F32:
				w[r*p.Cols+j] = float64(p.Values32[k])
			}
			k++
		}
	}
	return w
}

// randomSparse returns a rows × cols matrix of normal values with each entry
// zero with probability sparsity (exactly none at 0, all at 1).
func randomSparse(rng *rand.Rand, rows, cols int, sparsity float64) []float32 {
	w := make([]float32, rows*cols)
	for i := range w {
		if rng.Float64() >= sparsity {
			w[i] = float32(rng.NormFloat64())
		}
	}
	return w
}

// testMatrix is a matrix under test with its float64 reference.
type testMatrix struct {
	name       string
	mat        kernels.Matrix[float32]
	ref        []float64
	rows, cols int
	// relX is the rounding of x by the set's dot products of this format
	// (bf16RoundX when it rounds x to bf16, see productBound).
	relX float64
	// batched says that MulT and Mul above maxBatch run the set's own
	// batched products (which round x or dy to bf16), not the fp32 panel
	// pipeline.
	batched bool
}

// formatsUnder builds every format of w, all running the kernels ks.
func formatsUnder(t testing.TB, ks *kernelSet, w []float32, rows, cols int) []testMatrix {
	var out []testMatrix
	for _, dt := range []DType{BF16, F16, F32} {
		m, err := Encode(w, rows, cols, dt)
		if err != nil {
			t.Fatal(err)
		}
		m.kern = ks
		out = append(out, testMatrix{"bitmap-" + dt.String(), m, refDecode(m.Parts()), rows, cols, relXOf(ks, dt),
			dt == BF16 && ks.bitmapMulT != nil})
	}
	d := NewDenseBF16(w, rows, cols)
	d.kern = ks
	ref := make([]float64, len(w))
	for i, v := range w {
		ref[i] = float64(kernels.BF16ToFloat32(kernels.Float32ToBF16(v)))
	}
	out = append(out, testMatrix{"dense-bf16", d, ref, rows, cols, relXOf(ks, 0), ks.denseMulT != nil})
	for _, dense := range []bool{false, true} {
		for _, dq := range []bool{false, true} {
			m, err := EncodeNF4(w, rows, cols, dense, dq)
			if err != nil {
				t.Fatal(err)
			}
			m.kern = ks
			name := map[bool]string{false: "bitmap-nf4", true: "dense-nf4"}[dense] + map[bool]string{false: "", true: "-dq"}[dq]
			out = append(out, testMatrix{name, m, refDecodeNF4(m.Parts()), rows, cols, relXOf(ks, BF16) + nf4DotRelW(ks, m), false})
		}
	}
	return out
}

// refDecodeNF4 is the test's own decoder of NF4 parts: value k is
// NF4Code[nibble k] (low nibble first) times its block's scale, the scale
// decoded from double quantization as q·(absmax2/127) + offset in fp32,
// the product rounded to bf16, placed by the bitmap (or row-major for
// dense-nf4).
func refDecodeNF4(p NF4Parts) []float64 {
	scale := func(b int) float32 {
		if p.QAbsmax == nil {
			return p.Absmax[b]
		}
		return float32(p.QAbsmax[b])*(p.Absmax2[b/256]/127) + p.Offset
	}
	value := func(k int) float64 {
		nib := p.Codes[k/2]
		if k%2 == 1 {
			nib >>= 4
		}
		v := math.Float32bits(NF4Code[nib&15] * scale(k/64))
		v = (v + 0x7fff + v>>16&1) &^ 0xffff // bf16, nearest even (finite values)
		return float64(math.Float32frombits(v))
	}
	w := make([]float64, p.Rows*p.Cols)
	if p.Bitmap == nil {
		for k := range w {
			w[k] = value(k)
		}
		return w
	}
	chunks := ChunksPerRow(p.Cols)
	k := 0
	for r := 0; r < p.Rows; r++ {
		for j := 0; j < p.Cols; j++ {
			if p.Bitmap[r*chunks+j/16]>>(j%16)&1 != 0 {
				w[r*p.Cols+j] = value(k)
				k++
			}
		}
	}
	return w
}

// relXOf is the rounding of x by the dot products of ks on bitmap matrices
// of dt, or on dense bf16 ones for dt 0.
func relXOf(ks *kernelSet, dt DType) float64 {
	if dt == 0 && ks.denseBF16X || dt == BF16 && ks.bitmapBF16X {
		return bf16RoundX
	}
	return 0
}

const guardLen = 21

// outputSentinel fills the guards of output buffers; outputs start as NaN so a
// kernel that reads instead of overwriting is caught.
const outputSentinel = -7777.25

// guarded returns a buffer of n values between two guards of guardLen values
// set to guard, the inner part filled with inner.
func guarded(n int, guard, inner float32) (full, in []float32) {
	full = make([]float32, n+2*guardLen)
	for i := range full {
		full[i] = guard
	}
	in = full[guardLen : guardLen+n]
	for i := range in {
		in[i] = inner
	}
	return full, in
}

func checkGuards(t *testing.T, what string, full []float32) {
	t.Helper()
	n := len(full) - 2*guardLen
	for i := 0; i < guardLen; i++ {
		if full[i] != outputSentinel || full[guardLen+n+i] != outputSentinel {
			t.Fatalf("%s: write outside the output buffer (guard %d)", what, i)
		}
	}
}

// randomInput returns n*width normal values between NaN guards: a kernel
// that reads past an input and multiplies by a zero weight produces NaN.
func randomInput(rng *rand.Rand, n, width int) []float32 {
	nan := float32(math.NaN())
	_, in := guarded(n*width, nan, 0)
	for i := range in {
		in[i] = float32(rng.NormFloat64())
	}
	return in
}

// compare checks got against ref within the rounding bound of a length-k fp32
// accumulation: |got-ref| <= (k+4)·(2⁻²⁴·Σ|terms| + 2⁻¹⁴⁹), the second term
// for results in the subnormal range, where rounding is absolute.
func compare(t *testing.T, what string, got []float32, ref, absRef []float64, k int) {
	t.Helper()
	compareX(t, what, got, ref, absRef, k, 0)
}

// compareX is compare for a product that rounds x by relX first: the bound is
// productBound's, which adds relX·Σ|terms| (2⁻⁸ for bf16: the relative error
// of rounding to 8 significant bits; the products of bf16 values are exact in
// fp32, only the sums round) and an absolute term for flushed subnormals.
func compareX(t *testing.T, what string, got []float32, ref, absRef []float64, k int, relX float64) {
	t.Helper()
	for i := range ref {
		tol := productBound(absRef[i], k, relX)
		if d := math.Abs(float64(got[i]) - ref[i]); !(d <= tol) {
			t.Fatalf("%s: element %d = %v, want %v (|diff| %g > tol %g)", what, i, got[i], ref[i], d, tol)
		}
	}
}

// checkMulT runs y = x Wᵀ for n rows of x and compares with the reference.
func checkMulT(t *testing.T, rng *rand.Rand, tm testMatrix, n int) {
	x := randomInput(rng, n, tm.cols)
	full, y := guarded(n*tm.rows, outputSentinel, float32(math.NaN()))
	tm.mat.MulT(y, x, n)
	what := fmt.Sprintf("%s %dx%d MulT n=%d", tm.name, tm.rows, tm.cols, n)
	checkGuards(t, what, full)
	ref := make([]float64, n*tm.rows)
	abs := make([]float64, n*tm.rows)
	for i := 0; i < n; i++ {
		for r := 0; r < tm.rows; r++ {
			for j := 0; j < tm.cols; j++ {
				p := tm.ref[r*tm.cols+j] * float64(x[i*tm.cols+j])
				ref[i*tm.rows+r] += p
				abs[i*tm.rows+r] += math.Abs(p)
			}
		}
	}
	relX := tm.relX
	if n > maxBatch { // the panel pipeline (decoded weights, fp32 GEMM) or the set's bf16 GEMM
		relX = 0
		if tm.batched {
			relX = bf16RoundX
		}
	}
	compareX(t, what, y, ref, abs, tm.cols, relX)
}

// checkMul runs dx = dy W for n rows of dy and compares with the reference.
func checkMul(t *testing.T, rng *rand.Rand, tm testMatrix, n int) {
	dy := randomInput(rng, n, tm.rows)
	full, dx := guarded(n*tm.cols, outputSentinel, float32(math.NaN()))
	tm.mat.Mul(dx, dy, n)
	what := fmt.Sprintf("%s %dx%d Mul n=%d", tm.name, tm.rows, tm.cols, n)
	checkGuards(t, what, full)
	ref := make([]float64, n*tm.cols)
	abs := make([]float64, n*tm.cols)
	for i := 0; i < n; i++ {
		for r := 0; r < tm.rows; r++ {
			for j := 0; j < tm.cols; j++ {
				p := float64(dy[i*tm.rows+r]) * tm.ref[r*tm.cols+j]
				ref[i*tm.cols+j] += p
				abs[i*tm.cols+j] += math.Abs(p)
			}
		}
	}
	relX := 0.0
	if n > maxBatch && tm.batched {
		relX = bf16RoundX
	}
	compareX(t, what, dx, ref, abs, tm.rows, relX)
}

// checkDecode decodes the whole matrix and compares exactly with the reference.
func checkDecode(t *testing.T, tm testMatrix) {
	full, dst := guarded(tm.rows*tm.cols, outputSentinel, float32(math.NaN()))
	type decoder interface{ Decode([]float32) }
	tm.mat.(decoder).Decode(dst)
	what := fmt.Sprintf("%s %dx%d Decode", tm.name, tm.rows, tm.cols)
	checkGuards(t, what, full)
	for i, v := range dst {
		if float64(v) != tm.ref[i] {
			t.Fatalf("%s: element %d = %v, want %v", what, i, v, tm.ref[i])
		}
	}
}

// suiteShapes are odd and even shapes: 1×1, cols < 16, cols not a multiple of
// 16 or 64, rows not a multiple of 4, and one large enough to split across cores.
var suiteShapes = [][2]int{
	{1, 1}, {1, 7}, {3, 16}, {5, 17}, {2, 31}, {7, 33}, {16, 64}, {9, 65}, {19, 100}, {33, 257}, {70, 1000},
}

// TestMain prints which kernel paths the suite ran and which it could not
// run on this CPU, so that a skipped path is never mistaken for a passed one.
func TestMain(m *testing.M) {
	code := m.Run()
	fmt.Printf("kernel paths run: %s; skipped (no CPU feature): %s\n", pathNames(kernelSets), orNone(skippedPaths(kernelPaths)))
	os.Exit(code)
}

func pathNames(sets []*kernelSet) string {
	var names []string
	for _, ks := range sets {
		names = append(names, ks.name)
	}
	return strings.Join(names, " ")
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func TestKernelSuite(t *testing.T) {
	t.Logf("kernel paths run: %s; skipped (no CPU feature): %s", pathNames(kernelSets), orNone(skippedPaths(kernelPaths)))
	for _, p := range kernelPaths {
		if !p.ok {
			t.Run(p.set.name, func(t *testing.T) { t.Skipf("this CPU cannot run it (needs %s)", p.needs) })
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, ks := range kernelSets {
		for _, shape := range suiteShapes {
			rows, cols := shape[0], shape[1]
			for _, sp := range []float64{0, 0.5, 1, rng.Float64()} {
				t.Run(fmt.Sprintf("%s/%dx%d/sparsity=%.2f", ks.name, rows, cols, sp), func(t *testing.T) {
					w := randomSparse(rng, rows, cols, sp)
					for _, tm := range formatsUnder(t, ks, w, rows, cols) {
						checkDecode(t, tm)
						for _, n := range []int{1, 2, 5, 9, 16, 17} { // GEMV, each small-batch size, pipeline
							checkMulT(t, rng, tm, n)
						}
						for _, n := range []int{1, 2, 5} {
							checkMul(t, rng, tm, n)
						}
					}
				})
			}
		}
	}
}

// TestPipelinePanels forces many small panels and both ring depths so that
// the producer/consumer hand-over and the last partial panel are exercised.
func TestPipelinePanels(t *testing.T) {
	defer func(e, d int) { PanelElems, PipelineDepth = e, d }(PanelElems, PipelineDepth)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, depth := range []int{0, 1, 2, 3} {
		PanelElems, PipelineDepth = 1, depth // 16-row panels
		for _, ks := range kernelSets {
			for _, shape := range [][2]int{{33, 50}, {64, 17}, {100, 130}} {
				rows, cols := shape[0], shape[1]
				w := randomSparse(rng, rows, cols, 0.5)
				for _, tm := range formatsUnder(t, ks, w, rows, cols) {
					checkMulT(t, rng, tm, 3)
					checkMul(t, rng, tm, 4)
				}
			}
		}
	}
}

// TestMatchesDenseFP32 checks the compressed product against the project's
// dense fp32 Matrix on the decoded weights, through the kernels.Matrix interface.
func TestMatchesDenseFP32(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	rows, cols, n := 24, 40, 3
	w := randomSparse(rng, rows, cols, 0.5)
	m, err := Encode(w, rows, cols, F32)
	if err != nil {
		t.Fatal(err)
	}
	x := randomInput(rng, n, cols)
	var got, want []float32 = make([]float32, n*rows), make([]float32, n*rows)
	var mat kernels.Matrix[float32] = m
	mat.MulT(got, x, n)
	kernels.NewDense(w, rows, cols).MulT(want, x, n)
	for i := range got {
		if d := math.Abs(float64(got[i] - want[i])); d > 1e-5*(1+math.Abs(float64(want[i]))) {
			t.Fatalf("y[%d] = %v, dense fp32 gives %v", i, got[i], want[i])
		}
	}
}

// TestRowKernels calls each kernel of each implementation directly on random
// row ranges, with guards right around its own buffers (the products above go
// through aligned scratch vectors that could hide a write past the end), and
// checks that axpy accumulates into what dx held.
func TestRowKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, ks := range kernelSets {
		for _, shape := range suiteShapes {
			rows, cols := shape[0], shape[1]
			w := randomSparse(rng, rows, cols, rng.Float64())
			for _, tm := range formatsUnder(t, ks, w, rows, cols) {
				op := tm.mat.(rowOps)
				r0 := rng.IntN(rows)
				r1 := r0 + 1 + rng.IntN(rows-r0)
				what := fmt.Sprintf("%s %s %dx%d rows [%d,%d)", ks.name, tm.name, rows, cols, r0, r1)

				x := randomInput(rng, 1, cols)
				fullY, y := guarded(r1-r0, outputSentinel, float32(math.NaN()))
				op.dot(y, x, r0, r1)
				checkGuards(t, what+" dot", fullY)

				dy := randomInput(rng, 1, r1-r0)
				fullDX, dx := guarded(cols, outputSentinel, 0)
				init := make([]float32, cols)
				for j := range dx {
					init[j] = float32(rng.NormFloat64())
					dx[j] = init[j]
				}
				op.axpy(dx, dy, r0, r1)
				checkGuards(t, what+" axpy", fullDX)

				fullDst, dst := guarded((r1-r0)*cols, outputSentinel, float32(math.NaN()))
				op.decode(dst, r0, r1)
				checkGuards(t, what+" decode", fullDst)

				refY, absY := make([]float64, r1-r0), make([]float64, r1-r0)
				refDX, absDX := make([]float64, cols), make([]float64, cols)
				for j := range refDX {
					refDX[j], absDX[j] = float64(init[j]), math.Abs(float64(init[j]))
				}
				for r := r0; r < r1; r++ {
					for j := 0; j < cols; j++ {
						v := tm.ref[r*cols+j]
						refY[r-r0] += v * float64(x[j])
						absY[r-r0] += math.Abs(v * float64(x[j]))
						refDX[j] += float64(dy[r-r0]) * v
						absDX[j] += math.Abs(float64(dy[r-r0]) * v)
						if float64(dst[(r-r0)*cols+j]) != v {
							t.Fatalf("%s decode: element (%d,%d) = %v, want %v", what, r, j, dst[(r-r0)*cols+j], v)
						}
					}
				}
				compareX(t, what+" dot", y, refY, absY, cols, tm.relX)
				compare(t, what+" axpy", dx, refDX, absDX, r1-r0+1)

				for _, nb := range []int{4, 8, 12, 16} {
					xT := randomInput(rng, ChunksPerRow(cols)*nb, ChunkCols)
					fullYT, yT := guarded((r1-r0)*nb, outputSentinel, float32(math.NaN()))
					op.dotBatch(yT, xT, nb, r0, r1)
					checkGuards(t, what+" dotBatch", fullYT)
					ref, abs := make([]float64, (r1-r0)*nb), make([]float64, (r1-r0)*nb)
					for r := r0; r < r1; r++ {
						for b := 0; b < nb; b++ {
							for j := 0; j < cols; j++ {
								p := tm.ref[r*cols+j] * float64(xT[(j/ChunkCols*nb+b)*ChunkCols+j%ChunkCols])
								ref[(r-r0)*nb+b] += p
								abs[(r-r0)*nb+b] += math.Abs(p)
							}
						}
					}
					compareX(t, fmt.Sprintf("%s dotBatch nb=%d", what, nb), yT, ref, abs, cols, tm.relX)
				}
			}
		}
	}
}

// TestDeterministic: products split across goroutines (rows handed out on
// demand) give bit-identical results call after call.
func TestDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	rows, cols := 300, 700 // large enough to run on several goroutines
	w := randomSparse(rng, rows, cols, 0.5)
	for _, tm := range formatsUnder(t, defaultKernels, w, rows, cols) {
		dy, x := randomInput(rng, 1, rows), randomInput(rng, 1, cols)
		dx0, y0 := make([]float32, cols), make([]float32, rows)
		tm.mat.Mul(dx0, dy, 1)
		tm.mat.MulT(y0, x, 1)
		for range 20 {
			dx, y := make([]float32, cols), make([]float32, rows)
			tm.mat.Mul(dx, dy, 1)
			tm.mat.MulT(y, x, 1)
			for j := range dx {
				if math.Float32bits(dx[j]) != math.Float32bits(dx0[j]) {
					t.Fatalf("%s Mul: dx[%d] = %v, then %v", tm.name, j, dx0[j], dx[j])
				}
			}
			for j := range y {
				if math.Float32bits(y[j]) != math.Float32bits(y0[j]) {
					t.Fatalf("%s MulT: y[%d] = %v, then %v", tm.name, j, y0[j], y[j])
				}
			}
		}
	}
}

// TestPipelineOverlap runs MulT and Mul through the panel pipeline with
// several panels in flight: batches above maxBatch (so the small-batch
// kernels are not taken, which the panel counters confirm), rows not a
// multiple of the panel (tails of 3 and 19 rows), ring depths 0, 1, 2 and at
// least the number of panels, every format, against the float64 reference
// within the fp32 accumulation bound of compare.
func TestPipelineOverlap(t *testing.T) {
	defer func(e, d int) { PanelElems, PipelineDepth = e, d }(PanelElems, PipelineDepth)
	rng := rand.New(rand.NewPCG(5, 6))
	const rows, cols = 83, 40 // 40 columns: a partial last chunk in every row
	for _, panel := range []int{16, 32} {
		panels := (rows + panel - 1) / panel // 6 panels (tail 3) or 3 (tail 19)
		for _, depth := range []int{0, 1, 2, panels, panels + 4} {
			PanelElems, PipelineDepth = panel*cols, depth
			if got := panelRows(rows, cols); got != panel {
				t.Fatalf("panelRows(%d, %d) = %d with PanelElems %d, want %d", rows, cols, got, PanelElems, panel)
			}
			path := 1 // through the ring
			if depth == 0 {
				path = 0
			}
			for _, ks := range kernelSets {
				w := randomSparse(rng, rows, cols, 0.5)
				for _, tm := range formatsUnder(t, ks, w, rows, cols) {
					want := int64(2 * panels)
					if tm.batched { // MulT and Mul run the set's own batched products
						want = 0
					}
					for _, n := range []int{maxBatch + 1, 2*maxBatch + 3} {
						before := pipelinePanels[path].Load()
						checkMulT(t, rng, tm, n)
						checkMul(t, rng, tm, n)
						if got := pipelinePanels[path].Load() - before; got != want {
							t.Fatalf("%s %s n=%d panel %d depth %d: %d panels through pipeline path %d, want %d",
								ks.name, tm.name, n, panel, depth, got, path, want)
						}
					}
				}
			}
		}
	}
}
