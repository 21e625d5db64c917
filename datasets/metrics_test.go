package datasets

import (
	"math"
	"strings"
	"testing"
)

// sampleVariance is the n-1 variance, written independently of the package.
func sampleVariance(xs []float64) float64 {
	var mu float64
	for _, x := range xs {
		mu += x
	}
	mu /= float64(len(xs))
	var ss float64
	for _, x := range xs {
		ss += (x - mu) * (x - mu)
	}
	return ss / float64(len(xs)-1)
}

func outcomes(correct, total int) []float64 {
	xs := make([]float64, total)
	for i := 0; i < correct; i++ {
		xs[i] = 1
	}
	return xs
}

func closeTo(a, b float64) bool { return math.Abs(a-b) <= 1e-12*math.Max(1, math.Abs(b)) }

func TestMeanStderr(t *testing.T) {
	// [1 0 1 1]: mean 0.75, sample variance 0.25, stderr 0.5/2.
	if got := MeanStderr([]float64{1, 0, 1, 1}); !closeTo(got, 0.25) {
		t.Errorf("MeanStderr = %v, want 0.25", got)
	}
	if !math.IsNaN(MeanStderr([]float64{1})) {
		t.Error("MeanStderr of one value must be NaN")
	}
	for _, tc := range [][2]int{{3, 4}, {0, 5}, {7, 7}, {123, 1000}, {1, 2}} {
		a := Accuracy{Correct: tc[0], Total: tc[1]}
		xs := outcomes(tc[0], tc[1])
		want := math.Sqrt(sampleVariance(xs) / float64(len(xs)))
		if got := a.Stderr(); !closeTo(got, want) {
			t.Errorf("Accuracy%v.Stderr = %v, want %v", tc, got, want)
		}
		if got := MeanStderr(xs); !closeTo(got, want) {
			t.Errorf("MeanStderr(%v) = %v, want %v", tc, got, want)
		}
	}
	var a Accuracy
	for _, c := range []bool{true, false, true} {
		a.Add(c)
	}
	a.Merge(Accuracy{Correct: 1, Total: 1})
	if a != (Accuracy{Correct: 3, Total: 4}) || a.Value() != 0.75 {
		t.Errorf("accumulated %+v", a)
	}
	if !math.IsNaN((Accuracy{}).Value()) || !math.IsNaN((Accuracy{Total: 1}).Stderr()) {
		t.Error("empty accuracies must be NaN")
	}
}

func TestPooledStderr(t *testing.T) {
	g1, g2 := []float64{1, 0, 1, 1}, []float64{1, 0}
	// Pooled variance ((n1-1)s1² + (n2-1)s2²)/(N-k), divided by N.
	want := math.Sqrt((3*sampleVariance(g1) + 1*sampleVariance(g2)) / 4 / 6)
	got := PooledStderr([]float64{MeanStderr(g1), MeanStderr(g2)}, []int{4, 2})
	if !closeTo(got, want) {
		t.Errorf("PooledStderr = %v, want %v", got, want)
	}
	if !math.IsNaN(PooledStderr([]float64{0.1, math.NaN()}, []int{5, 1})) {
		t.Error("a NaN stderr must make the pooled stderr NaN")
	}
	if got := WeightedMean([]float64{0.75, 0.5}, []int{4, 2}); !closeTo(got, 4.0/6) {
		t.Errorf("WeightedMean = %v", got)
	}
}

func TestAggregateMMLU(t *testing.T) {
	per := map[string]Accuracy{
		"anatomy":          {Correct: 1, Total: 2},
		"abstract_algebra": {Correct: 3, Total: 4},
		"formal_logic":     {Correct: 2, Total: 3},
		"philosophy":       {Correct: 1, Total: 3},
	}
	s, err := AggregateMMLU(per)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Subjects) != 4 || s.Subjects[0].Name != "abstract_algebra" || s.Subjects[3].Name != "philosophy" {
		t.Fatalf("subjects %+v", s.Subjects)
	}
	if len(s.Categories) != 2 || s.Categories[0].Name != CategorySTEM || s.Categories[1].Name != CategoryHumanities {
		t.Fatalf("categories %+v", s.Categories)
	}
	stem, hum := s.Categories[0], s.Categories[1]
	if !closeTo(stem.Acc, 4.0/6) || stem.N != 6 || !closeTo(hum.Acc, 3.0/6) || hum.N != 6 {
		t.Errorf("category scores %+v %+v", stem, hum)
	}
	pooled := func(groups ...[]float64) float64 {
		var num float64
		n := 0
		for _, g := range groups {
			num += float64(len(g)-1) * sampleVariance(g)
			n += len(g)
		}
		return math.Sqrt(num / float64(n-len(groups)) / float64(n))
	}
	aa, an, fl, ph := outcomes(3, 4), outcomes(1, 2), outcomes(2, 3), outcomes(1, 3)
	if want := pooled(aa, an); !closeTo(stem.Stderr, want) {
		t.Errorf("stem stderr %v, want %v", stem.Stderr, want)
	}
	// The overall group pools over all subjects (lm-eval flattens the tree).
	if want := pooled(aa, an, fl, ph); !closeTo(s.Overall.Stderr, want) {
		t.Errorf("overall stderr %v, want %v", s.Overall.Stderr, want)
	}
	if !closeTo(s.Overall.Acc, 7.0/12) || s.Overall.N != 12 || s.Overall.Name != "mmlu" {
		t.Errorf("overall %+v, want micro average 7/12", s.Overall)
	}

	if _, err := AggregateMMLU(map[string]Accuracy{"cooking": {1, 2}}); err == nil {
		t.Error("unknown subject accepted")
	}
	if _, err := AggregateMMLU(map[string]Accuracy{"anatomy": {}}); err == nil {
		t.Error("subject without questions accepted")
	}
	if _, err := AggregateMMLU(nil); err == nil {
		t.Error("empty results accepted")
	}
}

func TestMarkdownTable(t *testing.T) {
	got := MarkdownTable(GSM8KRows(Accuracy{Correct: 1, Total: 4}, Accuracy{Correct: 3, Total: 4}, 5))
	want := "" +
		"| Task  | Filter           | n-shot | Metric      |   N |  Value |     | Stderr |\n" +
		"| ----- | ---------------- | -----: | ----------- | --: | -----: | --- | -----: |\n" +
		"| gsm8k | flexible-extract |      5 | exact_match |   4 | 0.7500 | ±   | 0.2500 |\n" +
		"| gsm8k | strict-match     |      5 | exact_match |   4 | 0.2500 | ±   | 0.2500 |\n"
	if got != want {
		t.Errorf("MarkdownTable =\n%s\nwant\n%s", got, want)
	}
}

func TestMMLURows(t *testing.T) {
	s, err := AggregateMMLU(map[string]Accuracy{
		"anatomy": {Correct: 1, Total: 2}, "formal_logic": {Correct: 1, Total: 1}, "virology": {Correct: 2, Total: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	rows := s.Rows(5)
	names := make([]string, len(rows))
	for i, r := range rows {
		names[i] = r.Task
		if r.Shots != 5 || r.Metric != "acc" || r.Filter != "none" {
			t.Errorf("row %+v", r)
		}
	}
	want := []string{"mmlu", " - stem", "  - anatomy", " - humanities", "  - formal_logic", " - other", "  - virology"}
	if len(names) != len(want) {
		t.Fatalf("rows %q, want %q", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Errorf("row %d = %q, want %q", i, names[i], want[i])
		}
	}
	// formal_logic has one question: its stderr, and the pooled stderr of its
	// category and of the whole benchmark, are undefined (lm-eval: N/A).
	for _, r := range rows {
		undefined := r.Task == "  - formal_logic" || r.Task == " - humanities" || r.Task == "mmlu"
		if math.IsNaN(r.Stderr) != undefined {
			t.Errorf("row %q stderr %v", r.Task, r.Stderr)
		}
	}
	for _, line := range strings.Split(MarkdownTable(rows), "\n") {
		if strings.HasPrefix(line, "|   - formal_logic ") && !strings.HasSuffix(line, "±   |    N/A |") {
			t.Errorf("formal_logic line %q does not show N/A", line)
		}
	}
}
