package sparsity

import (
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
)

// quantized returns rows×cols weights drawn from a few levels of both signs so
// that many magnitudes tie, exercising the tie-breaking rule.
func quantized(rng *rand.Rand, rows, cols, levels int) []float32 {
	w := make([]float32, rows*cols)
	for i := range w {
		v := float32(rng.IntN(levels)) * 0.25
		if rng.IntN(2) == 0 {
			v = -v
		}
		w[i] = v
	}
	return w
}

// naivePrune is the reference: within each group of flat indices, sort by
// (score, index) with a stable sort and prune the first k.
func naivePrune(score []float64, groups [][]int, k int, rows, cols int) []bool {
	keep := make([]bool, rows*cols)
	for i := range keep {
		keep[i] = true
	}
	for _, g := range groups {
		idx := append([]int(nil), g...)
		sort.SliceStable(idx, func(a, b int) bool {
			if score[idx[a]] != score[idx[b]] {
				return score[idx[a]] < score[idx[b]]
			}
			return idx[a] < idx[b]
		})
		for _, i := range idx[:k] {
			keep[i] = false
		}
	}
	return keep
}

// groupsOf lists the competing index groups of a pattern.
func groupsOf(p Pattern, rows, cols int) [][]int {
	var out [][]int
	span := func(start, n int) []int {
		g := make([]int, n)
		for i := range g {
			g[i] = start + i
		}
		return g
	}
	switch p.Kind {
	case PerMatrix:
		out = append(out, span(0, rows*cols))
	case PerRow:
		for r := 0; r < rows; r++ {
			out = append(out, span(r*cols, cols))
		}
	case NM:
		for s := 0; s < rows*cols; s += p.M {
			out = append(out, span(s, p.M))
		}
	}
	return out
}

func perGroupK(p Pattern, rows, cols int) int {
	switch p.Kind {
	case PerMatrix:
		return p.PrunedCount(rows, cols)
	case PerRow:
		return p.PrunedCount(1, cols)
	}
	return p.M - p.N
}

func magnitudes(w []float32) []float64 {
	s := make([]float64, len(w))
	for i, v := range w {
		s[i] = math.Abs(float64(v))
	}
	return s
}

func mustPattern(t *testing.T, name string, ratio float64) Pattern {
	t.Helper()
	p, err := ParsePattern(name, ratio)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func checkAgainstNaive(t *testing.T, what string, m *Mask, want []bool) {
	t.Helper()
	got := m.Bools()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: mask differs from the reference at flat index %d (kept=%v, want %v)", what, i, got[i], want[i])
		}
	}
}

func TestMagnitudeMasksMatchReferenceAndCounts(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	cases := []struct {
		pattern    string
		ratio      float64
		rows, cols int
	}{
		{"matrix", 0.5, 13, 17}, {"matrix", 0.3, 8, 9}, {"matrix", 0.5, 1, 3}, {"matrix", 0.9, 5, 1},
		{"row", 0.5, 11, 15}, {"row", 0.25, 6, 10}, {"row", 0.7, 4, 3}, {"row", 0.5, 3, 300},
		{"2:4", 0, 7, 16}, {"4:8", 0.5, 5, 24}, {"1:3", 0, 4, 9}, {"3:4", 0, 3, 8},
	}
	for _, c := range cases {
		p := mustPattern(t, c.pattern, c.ratio)
		for _, levels := range []int{3, 1000} {
			w := quantized(rng, c.rows, c.cols, levels)
			m, err := Spec{Magnitude, p}.Mask(w, c.rows, c.cols, nil)
			if err != nil {
				t.Fatal(err)
			}
			what := p.String()
			if m.Pruned() != p.PrunedCount(c.rows, c.cols) {
				t.Fatalf("%s: pruned %d, want %d", what, m.Pruned(), p.PrunedCount(c.rows, c.cols))
			}
			if got := len(m.Bools()) - countTrue(m.Bools()); got != m.Pruned() {
				t.Fatalf("%s: Pruned()=%d but the mask has %d zeros", what, m.Pruned(), got)
			}
			checkAgainstNaive(t, what, m, naivePrune(magnitudes(w), groupsOf(p, c.rows, c.cols), perGroupK(p, c.rows, c.cols), c.rows, c.cols))
		}
	}
}

func countTrue(b []bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}

func TestExactCountsClosedForm(t *testing.T) {
	// round(ratio·size) with half away from zero: 0.5·(7·7)=24.5 -> 25.
	if got := mustPattern(t, "matrix", 0.5).PrunedCount(7, 7); got != 25 {
		t.Fatalf("matrix 0.5 of 49: %d, want 25", got)
	}
	if got := mustPattern(t, "row", 0.5).PrunedCount(3, 7); got != 12 {
		t.Fatalf("row 0.5 of 3×7: %d, want 3·4=12", got)
	}
	if got := mustPattern(t, "2:4", 0).PrunedCount(3, 8); got != 12 {
		t.Fatalf("2:4 of 3×8: %d, want 12", got)
	}
}

func TestNMStructureBlockByBlock(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, name := range []string{"2:4", "4:8", "1:4", "5:8"} {
		p := mustPattern(t, name, 0)
		rows, cols := 9, 32
		w := make([]float32, rows*cols)
		for i := range w {
			w[i] = float32(rng.NormFloat64())
		}
		m, err := Spec{Magnitude, p}.Mask(w, rows, cols, nil)
		if err != nil {
			t.Fatal(err)
		}
		for start := 0; start < rows*cols; start += p.M {
			pruned := 0
			maxPruned, minKept := 0.0, math.Inf(1)
			for i := start; i < start+p.M; i++ {
				a := math.Abs(float64(w[i]))
				if m.Kept(i) {
					minKept = min(minKept, a)
				} else {
					pruned++
					maxPruned = max(maxPruned, a)
				}
			}
			if pruned != p.M-p.N {
				t.Fatalf("%s: group at %d has %d pruned, want %d", name, start, pruned, p.M-p.N)
			}
			if maxPruned > minKept {
				t.Fatalf("%s: group at %d prunes |w|=%g but keeps |w|=%g", name, start, maxPruned, minKept)
			}
		}
		if m.Sparsity() != p.Ratio {
			t.Fatalf("%s: sparsity %g, want %g", name, m.Sparsity(), p.Ratio)
		}
	}
}

func TestPerRowExactCounts(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	rows, cols := 12, 21
	w := quantized(rng, rows, cols, 4)
	p := mustPattern(t, "row", 0.4) // round(8.4) = 8 per row
	m, err := Spec{Magnitude, p}.Mask(w, rows, cols, nil)
	if err != nil {
		t.Fatal(err)
	}
	for r := 0; r < rows; r++ {
		if got := m.RowPruned(r); got != 8 {
			t.Fatalf("row %d: %d pruned, want 8", r, got)
		}
	}
}

func TestTieBreakingLowerIndexFirst(t *testing.T) {
	// All magnitudes equal (with mixed signs): the lowest flat indices go.
	rows, cols := 4, 6
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = 1
		if i%3 == 0 {
			w[i] = -1
		}
	}
	m, err := Spec{Magnitude, mustPattern(t, "matrix", 0.5)}.Mask(w, rows, cols, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < rows*cols; i++ {
		if m.Kept(i) != (i >= 12) {
			t.Fatalf("index %d kept=%v; equal magnitudes must prune the lowest indices first", i, m.Kept(i))
		}
	}
	// Determinism: a second computation gives the same bits.
	m2, _ := Spec{Magnitude, mustPattern(t, "matrix", 0.5)}.Mask(w, rows, cols, nil)
	for i, word := range m.Words() {
		if m2.Words()[i] != word {
			t.Fatal("two computations of the same mask differ")
		}
	}
	// -0 and +0 tie: the lower index is pruned.
	m3, err := Spec{Magnitude, mustPattern(t, "matrix", 0.5)}.Mask([]float32{1, float32(math.Copysign(0, -1)), 0, 2}, 2, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m3.Kept(1) || m3.Kept(2) || !m3.Kept(0) || !m3.Kept(3) {
		t.Fatalf("zeros of both signs must be pruned first: %v", m3.Bools())
	}
}

func TestRadixSelectMatchesSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	// Scores spread over the high bits, clustered in the low bits, and ties.
	for trial := 0; trial < 20; trial++ {
		n := 1 + rng.IntN(300)
		w := make([]float32, n)
		for i := range w {
			switch trial % 3 {
			case 0:
				w[i] = float32(rng.IntN(5))
			case 1:
				w[i] = math.Float32frombits(0x3f800000 + uint32(rng.IntN(40)))
			default:
				w[i] = float32(rng.ExpFloat64())
			}
		}
		score := make([]uint32, len(w))
		for i, v := range w {
			score[i] = math.Float32bits(v) &^ signBit
		}
		for _, k := range []int{0, 1, n / 2, n - 1, n} {
			a := NewMask(1, n)
			(&selector{}).sortPrune(a, score, 0, n, k)
			for _, digits := range []uint{8, 16} {
				b := NewMask(1, n)
				(&selector{digitBits: digits}).pruneSmallest(b, score, 0, n, k)
				for i := 0; i < n; i++ {
					if a.Kept(i) != b.Kept(i) {
						t.Fatalf("trial %d n=%d k=%d: %d-bit radix and sort differ at %d", trial, n, k, digits, i)
					}
				}
			}
		}
	}
}

func TestLargeMatrixUsesRadixAndMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	rows, cols := 260, 260 // 67600 >= radix16Min
	w := quantized(rng, rows, cols, 50)
	p := mustPattern(t, "matrix", 0.5)
	m, err := Spec{Magnitude, p}.Mask(w, rows, cols, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Pruned() != p.PrunedCount(rows, cols) {
		t.Fatalf("pruned %d, want %d", m.Pruned(), p.PrunedCount(rows, cols))
	}
	checkAgainstNaive(t, "large matrix", m, naivePrune(magnitudes(w), groupsOf(p, rows, cols), perGroupK(p, rows, cols), rows, cols))
}

func TestWandaMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	rows, cols, tokens := 10, 16, 37
	w := quantized(rng, rows, cols, 6)
	cal := NewCalibration(cols)
	x := make([]float32, tokens*cols)
	for i := range x {
		x[i] = float32(rng.NormFloat64()) * float32(1+i%cols) // features of different scales
	}
	cal.AddActivations(x[:20*cols], 20)
	cal.AddActivations(x[20*cols:], tokens-20)
	if cal.Tokens() != tokens {
		t.Fatalf("tokens %d, want %d", cal.Tokens(), tokens)
	}
	norms := cal.Norms()
	for j := 0; j < cols; j++ {
		var s float64
		for tok := 0; tok < tokens; tok++ {
			s += float64(x[tok*cols+j]) * float64(x[tok*cols+j])
		}
		if math.Abs(float64(norms[j])-math.Sqrt(s)) > 1e-5*math.Sqrt(s) {
			t.Fatalf("norm %d: %g, want %g", j, norms[j], math.Sqrt(s))
		}
	}
	// Reference scores: the float32 product |W_ij|·||X_j|| compared per row.
	score := make([]float64, rows*cols)
	for i := range score {
		score[i] = float64(float32(math.Abs(float64(w[i]))) * norms[i%cols])
	}
	for _, name := range []string{"row", "matrix", "2:4"} {
		p := mustPattern(t, name, 0.5)
		m, err := Spec{Wanda, p}.Mask(w, rows, cols, norms)
		if err != nil {
			t.Fatal(err)
		}
		checkAgainstNaive(t, "wanda "+name, m, naivePrune(score, groupsOf(p, rows, cols), perGroupK(p, rows, cols), rows, cols))
	}
	// Wanda differs from magnitude when feature norms differ.
	mw, _ := Spec{Wanda, mustPattern(t, "row", 0.5)}.Mask(w, rows, cols, norms)
	mm, _ := Spec{Magnitude, mustPattern(t, "row", 0.5)}.Mask(w, rows, cols, nil)
	same := true
	for i := range w {
		same = same && mw.Kept(i) == mm.Kept(i)
	}
	if same {
		t.Fatal("wanda and magnitude masks are identical despite unequal feature norms")
	}
}

func TestMaskErrors(t *testing.T) {
	p := mustPattern(t, "matrix", 0.5)
	cases := []struct {
		name string
		spec Spec
		w    []float32
		r, c int
		nrm  []float32
		want string
	}{
		{"nan", Spec{Magnitude, p}, []float32{1, float32(math.NaN()), 3, 4}, 2, 2, nil, "weight [0 1] is NaN"},
		{"inf", Spec{Magnitude, p}, []float32{1, 2, float32(math.Inf(1)), 4}, 2, 2, nil, "weight [1 0] is +Inf"},
		{"shape", Spec{Magnitude, p}, []float32{1, 2, 3}, 2, 2, nil, "shape [2 2] has 3 values"},
		{"nm width", Spec{Magnitude, mustPattern(t, "2:4", 0)}, make([]float32, 6), 1, 6, nil, "multiple of 4"},
		{"wanda norms", Spec{Wanda, p}, make([]float32, 4), 2, 2, []float32{1}, "needs 2 input-feature norms"},
		{"wanda negative", Spec{Wanda, p}, make([]float32, 4), 2, 2, []float32{1, -1}, "norm 1 is -1"},
		{"method", Spec{"random", p}, make([]float32, 4), 2, 2, nil, "unknown pruning method"},
		{"ratio", Spec{Magnitude, Pattern{Kind: PerMatrix, Ratio: 1}}, make([]float32, 4), 2, 2, nil, "must be in (0, 1)"},
	}
	for _, c := range cases {
		_, err := c.spec.Mask(c.w, c.r, c.c, c.nrm)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

func TestParseSpec(t *testing.T) {
	good := map[string]string{
		"magnitude|matrix|0.5": "magnitude/matrix@0.5",
		"wanda|row|0.25":       "wanda/row@0.25",
		"magnitude|2:4|0":      "magnitude/2:4",
		"magnitude|4:8|0.5":    "magnitude/4:8",
	}
	for in, want := range good {
		f := strings.Split(in, "|")
		var ratio float64
		switch f[2] {
		case "0.5":
			ratio = 0.5
		case "0.25":
			ratio = 0.25
		}
		s, err := ParseSpec(f[0], f[1], ratio)
		if err != nil || s.String() != want {
			t.Errorf("ParseSpec(%s) = %v, %v; want %s", in, s, err, want)
		}
	}
	bad := []struct {
		method, pattern string
		ratio           float64
		want            string
	}{
		{"magnitude", "matrix", 0, "must be in (0, 1)"},
		{"magnitude", "row", 1.5, "must be in (0, 1)"},
		{"magnitude", "2:4", 0.6, "contradicts"},
		{"magnitude", "4:4", 0, "1 <= N < M"},
		{"magnitude", "0:4", 0, "1 <= N < M"},
		{"magnitude", "a:4", 0, "integers"},
		{"magnitude", "column", 0.5, "unknown pattern"},
		{"sparsegpt", "row", 0.5, "unknown pruning method"},
	}
	for _, b := range bad {
		if _, err := ParseSpec(b.method, b.pattern, b.ratio); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("ParseSpec(%s, %s, %g): error %v, want %q", b.method, b.pattern, b.ratio, err, b.want)
		}
	}
}

func TestMaskBasics(t *testing.T) {
	keep := []bool{true, false, true, true, false, true, true}
	m, err := MaskFromBools(1, 7, keep)
	if err != nil {
		t.Fatal(err)
	}
	if m.Pruned() != 2 || math.Abs(m.Sparsity()-2.0/7) > 1e-15 {
		t.Fatalf("pruned %d sparsity %g", m.Pruned(), m.Sparsity())
	}
	m.Prune(1) // already pruned: no double count
	if m.Pruned() != 2 {
		t.Fatal("pruning twice counted twice")
	}
	w := []float32{1, 2, 3, 4, 5, 6, 7}
	m.Apply(w)
	want := []float32{1, 0, 3, 4, 0, 6, 7}
	for i := range w {
		if w[i] != want[i] {
			t.Fatalf("Apply: %v, want %v", w, want)
		}
	}
	if _, err := MaskFromBools(2, 2, keep); err == nil {
		t.Fatal("MaskFromBools accepted a wrong length")
	}
	// 130 weights span three words; Apply must not touch bits past the end.
	big := NewMask(10, 13)
	big.Prune(129)
	wb := make([]float32, 130)
	for i := range wb {
		wb[i] = 1
	}
	big.Apply(wb)
	if wb[129] != 0 || wb[128] != 1 || big.Pruned() != 1 {
		t.Fatal("Apply across word boundary wrong")
	}
}

func TestSplitStatistics(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	rows, cols := 6, 8
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	m, err := Spec{Magnitude, mustPattern(t, "matrix", 0.5)}.Mask(w, rows, cols, nil)
	if err != nil {
		t.Fatal(err)
	}
	kept, res, st := Split(w, m)
	var sw, se float64
	for i := range w {
		if kept[i]+res[i] != w[i] || (kept[i] != 0 && res[i] != 0) {
			t.Fatalf("entry %d: kept %g + residual %g != w %g", i, kept[i], res[i], w[i])
		}
		if m.Kept(i) != (res[i] == 0) {
			t.Fatalf("entry %d: residual does not follow the mask", i)
		}
		sw += float64(w[i]) * float64(w[i])
		se += float64(res[i]) * float64(res[i])
	}
	if st.Pruned != 24 || st.Sparsity != 0.5 || st.Rows != rows || st.Cols != cols {
		t.Fatalf("stats %+v", st)
	}
	if math.Abs(st.NormW-math.Sqrt(sw)) > 1e-12 || math.Abs(st.NormE-math.Sqrt(se)) > 1e-12 || math.Abs(st.MSE-se/48) > 1e-15 {
		t.Fatalf("norms/MSE %+v, want ||W||=%g ||E||=%g mse=%g", st, math.Sqrt(sw), math.Sqrt(se), se/48)
	}
	// Pruning by magnitude removes the smallest half: the residual energy is
	// less than half the total.
	if st.NormE*st.NormE >= 0.5*st.NormW*st.NormW {
		t.Fatalf("magnitude pruning removed %g of %g energy", st.NormE*st.NormE, st.NormW*st.NormW)
	}
}

// FuzzSelect checks the radix and sorting selections against each other and
// the exact count on arbitrary byte-derived scores.
func FuzzSelect(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5}, uint8(2))
	f.Add([]byte{7, 7, 7, 7, 0, 0, 255, 7}, uint8(5))
	f.Fuzz(func(t *testing.T, data []byte, k8 uint8) {
		n := len(data)
		if n == 0 {
			return
		}
		k := int(k8) % (n + 1)
		score := make([]uint32, n)
		s := make([]float64, n)
		for i := range s {
			score[i] = uint32(data[i]) << (8 * (uint(i) % 4)) // spread over all bytes
			s[i] = float64(score[i])
		}
		want := naivePrune(s, [][]int{rangeOf(n)}, k, 1, n)
		for _, digits := range []uint{0, 8, 16} {
			m := NewMask(1, n)
			sel := &selector{digitBits: digits}
			if digits == 0 {
				sel.sortPrune(m, score, 0, n, k)
			} else {
				sel.pruneSmallest(m, score, 0, n, k)
			}
			if m.Pruned() != k {
				t.Fatalf("digits %d: pruned %d, want %d", digits, m.Pruned(), k)
			}
			for i := 0; i < n; i++ {
				if m.Kept(i) != want[i] {
					t.Fatalf("digits %d, index %d: kept=%v want %v", digits, i, m.Kept(i), want[i])
				}
			}
		}
	})
}

func rangeOf(n int) []int {
	r := make([]int, n)
	for i := range r {
		r[i] = i
	}
	return r
}

// FuzzParsePattern checks that ParsePattern either rejects its input or
// returns a valid pattern that its String form parses back to.
func FuzzParsePattern(f *testing.F) {
	for _, s := range []string{"matrix", "row", "2:4", "4:8", "3:2", ":", "1:-4", "99999999999999999999:1"} {
		f.Add(s, 0.5)
	}
	f.Fuzz(func(t *testing.T, name string, ratio float64) {
		p, err := ParsePattern(name, ratio)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("ParsePattern(%q, %g) returned an invalid pattern: %v", name, ratio, err)
		}
		back, _, _ := strings.Cut(p.String(), "@")
		q, err := ParsePattern(back, p.Ratio)
		if err != nil || q != p {
			t.Fatalf("%v does not round-trip through %q: %v, %v", p, p.String(), q, err)
		}
		if got := p.PrunedCount(3, 2*max(p.M, 1)); got < 0 || got > 6*max(p.M, 1) {
			t.Fatalf("%v prunes %d of %d", p, got, 6*max(p.M, 1))
		}
	})
}

// TestNMKeepsN checks the N:M convention of PyTorch and NVIDIA: N of every M
// consecutive inputs are kept (the largest), so the ratio is 1 - N/M.
func TestNMKeepsN(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, c := range []struct {
		name  string
		ratio float64
	}{{"1:4", 0.75}, {"2:4", 0.5}, {"3:4", 0.25}, {"4:8", 0.5}, {"1:8", 0.875}} {
		p, err := ParsePattern(c.name, c.ratio)
		if err != nil {
			t.Fatalf("ParsePattern(%q, %g): %v", c.name, c.ratio, err)
		}
		if p.Ratio != c.ratio {
			t.Fatalf("%s: ratio %g, want %g", c.name, p.Ratio, c.ratio)
		}
		rows, cols := 3, 16
		w := make([]float32, rows*cols)
		for i := range w {
			w[i] = float32(rng.NormFloat64()) + 0.01 // no exact zeros
		}
		m, err := Spec{Magnitude, p}.Mask(w, rows, cols, nil)
		if err != nil {
			t.Fatal(err)
		}
		for start := 0; start < len(w); start += p.M {
			kept := 0
			for i := start; i < start+p.M; i++ {
				if m.Kept(i) {
					kept++
				}
			}
			if kept != p.N {
				t.Fatalf("%s: block at %d keeps %d weights, want %d", c.name, start, kept, p.N)
			}
		}
		if m.Sparsity() != c.ratio || m.Pruned() != p.PrunedCount(rows, cols) {
			t.Fatalf("%s: sparsity %g (%d pruned, PrunedCount %d), want %g", c.name, m.Sparsity(), m.Pruned(), p.PrunedCount(rows, cols), c.ratio)
		}
	}
	for _, bad := range []string{"+2:4", " 2:4", "2:+4", "2:4 "} {
		if _, err := ParsePattern(bad, 0); err == nil {
			t.Errorf("ParsePattern(%q) accepted", bad)
		}
	}
}

func TestCheckCols(t *testing.T) {
	p := mustPattern(t, "4:8", 0)
	if err := p.CheckCols(64); err != nil {
		t.Errorf("64 columns: %v", err)
	}
	if err := p.CheckCols(172); err == nil || !strings.Contains(err.Error(), "(172) to be a multiple of 8") {
		t.Errorf("172 columns: %v", err)
	}
	if err := mustPattern(t, "row", 0.5).CheckCols(7); err != nil {
		t.Errorf("row pattern, 7 columns: %v", err)
	}
}
