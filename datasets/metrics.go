package datasets

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Accuracy accumulates 0/1 outcomes of one task or subject.
type Accuracy struct {
	Correct, Total int
}

// Add records one outcome.
func (a *Accuracy) Add(correct bool) {
	a.Total++
	if correct {
		a.Correct++
	}
}

// Merge adds the outcomes of b.
func (a *Accuracy) Merge(b Accuracy) {
	a.Correct += b.Correct
	a.Total += b.Total
}

// Value is the fraction correct (NaN with no outcomes).
func (a Accuracy) Value() float64 {
	if a.Total == 0 {
		return math.NaN()
	}
	return float64(a.Correct) / float64(a.Total)
}

// Stderr is lm-eval's mean_stderr of the outcomes: the sample standard
// deviation (n-1 denominator) divided by sqrt(n). It is NaN for fewer than two
// outcomes (lm-eval reports "N/A").
func (a Accuracy) Stderr() float64 {
	n := a.Total
	if n < 2 {
		return math.NaN()
	}
	mu := a.Value()
	ss := float64(a.Correct)*(1-mu)*(1-mu) + float64(n-a.Correct)*mu*mu
	return math.Sqrt(ss/float64(n-1)) / math.Sqrt(float64(n))
}

// MeanStderr is lm-eval's mean_stderr: sample standard deviation of xs
// (n-1 denominator) over sqrt(n); NaN for fewer than two values.
func MeanStderr(xs []float64) float64 {
	n := len(xs)
	if n < 2 {
		return math.NaN()
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	mu := sum / float64(n)
	var ss float64
	for _, x := range xs {
		ss += (x - mu) * (x - mu)
	}
	return math.Sqrt(ss/float64(n-1)) / math.Sqrt(float64(n))
}

// PooledStderr is lm-eval's pooled_sample_stderr, the standard error of a
// group whose score is the size-weighted mean of its subtasks:
// sqrt( Σ (n_i - 1)·se_i²·n_i / (N - k) / N ) with N = Σ n_i over k subtasks.
// It is NaN if any stderr is NaN or N <= k.
func PooledStderr(stderrs []float64, sizes []int) float64 {
	if len(stderrs) != len(sizes) {
		panic(fmt.Sprintf("datasets: PooledStderr with %d stderrs and %d sizes", len(stderrs), len(sizes)))
	}
	var num float64
	total := 0
	for i, se := range stderrs {
		n := sizes[i]
		num += float64(n-1) * se * se * float64(n)
		total += n
	}
	if total <= len(sizes) {
		return math.NaN()
	}
	return math.Sqrt(num / float64(total-len(sizes)) / float64(total))
}

// WeightedMean is lm-eval's aggregate_subtask_metrics with weight_by_size:
// Σ value_i·n_i / Σ n_i.
func WeightedMean(values []float64, sizes []int) float64 {
	if len(values) != len(sizes) {
		panic(fmt.Sprintf("datasets: WeightedMean with %d values and %d sizes", len(values), len(sizes)))
	}
	var num float64
	total := 0
	for i, v := range values {
		num += v * float64(sizes[i])
		total += sizes[i]
	}
	if total == 0 {
		return math.NaN()
	}
	return num / float64(total)
}

// GroupScore is the accuracy of a subject, a category or the whole benchmark.
type GroupScore struct {
	Name   string
	Acc    float64
	Stderr float64 // NaN when undefined
	N      int     // questions
}

// MMLUScores are MMLU results at the three levels lm-eval reports.
type MMLUScores struct {
	// Overall is the micro average over all questions (lm-eval's mmlu group,
	// size-weighted over subjects), with the pooled stderr over subjects.
	Overall GroupScore
	// Categories are stem, humanities, social_sciences, other (those with
	// results), each size-weighted over its subjects.
	Categories []GroupScore
	// Subjects are the per-subject accuracies, sorted by subject name.
	Subjects []GroupScore
}

// AggregateMMLU turns per-subject accuracies into subject, category and
// overall scores as lm-eval >= 0.4.3 does (weight_by_size groups, pooled
// standard errors). Unknown subjects and subjects without questions are
// errors.
func AggregateMMLU(perSubject map[string]Accuracy) (MMLUScores, error) {
	if len(perSubject) == 0 {
		return MMLUScores{}, fmt.Errorf("datasets: no MMLU results to aggregate")
	}
	names := make([]string, 0, len(perSubject))
	for s := range perSubject {
		names = append(names, s)
	}
	sort.Strings(names)
	var out MMLUScores
	byCategory := map[string][]GroupScore{}
	for _, s := range names {
		a := perSubject[s]
		cat := MMLUCategory(s)
		if cat == "" {
			return MMLUScores{}, fmt.Errorf("datasets: %q is not an MMLU subject (no category)", s)
		}
		if a.Total == 0 {
			return MMLUScores{}, fmt.Errorf("datasets: MMLU subject %q has no scored questions", s)
		}
		g := GroupScore{Name: s, Acc: a.Value(), Stderr: a.Stderr(), N: a.Total}
		out.Subjects = append(out.Subjects, g)
		byCategory[cat] = append(byCategory[cat], g)
	}
	for _, cat := range MMLUCategoryNames {
		if subjects := byCategory[cat]; len(subjects) > 0 {
			out.Categories = append(out.Categories, poolScores(cat, subjects))
		}
	}
	out.Overall = poolScores("mmlu", out.Subjects)
	return out, nil
}

// poolScores aggregates member scores into a group score.
func poolScores(name string, members []GroupScore) GroupScore {
	accs := make([]float64, len(members))
	stderrs := make([]float64, len(members))
	sizes := make([]int, len(members))
	n := 0
	for i, m := range members {
		accs[i], stderrs[i], sizes[i] = m.Acc, m.Stderr, m.N
		n += m.N
	}
	return GroupScore{Name: name, Acc: WeightedMean(accs, sizes), Stderr: PooledStderr(stderrs, sizes), N: n}
}

// ScoreRow is one line of a results table.
type ScoreRow struct {
	Task   string  // task, group or subject name (indent with " - " for nesting)
	Filter string  // "none", "strict-match", "flexible-extract"
	Shots  int     // few-shot examples
	Metric string  // "acc", "exact_match"
	Value  float64 // the score
	Stderr float64 // its standard error; NaN prints as N/A
	N      int     // scored documents
}

// Rows lists the MMLU scores as table rows: the overall score, then each
// category followed by its subjects, indented as lm-eval prints groups.
func (s MMLUScores) Rows(shots int) []ScoreRow {
	row := func(name string, g GroupScore) ScoreRow {
		return ScoreRow{Task: name, Filter: "none", Shots: shots, Metric: "acc", Value: g.Acc, Stderr: g.Stderr, N: g.N}
	}
	rows := []ScoreRow{row(s.Overall.Name, s.Overall)}
	for _, c := range s.Categories {
		rows = append(rows, row(" - "+strings.ReplaceAll(c.Name, "_", " "), c))
		for _, sub := range s.Subjects {
			if MMLUCategory(sub.Name) == c.Name {
				rows = append(rows, row("  - "+sub.Name, sub))
			}
		}
	}
	return rows
}

// GSM8KRows lists GSM8K exact-match scores under both lm-eval filters.
func GSM8KRows(strict, flexible Accuracy, shots int) []ScoreRow {
	return []ScoreRow{GSM8KRow(GSM8KFlexibleExtract, flexible, shots), GSM8KRow(GSM8KStrictMatch, strict, shots)}
}

// GSM8KRow is the exact-match row of one GSM8K filter (an answer
// extraction: strict-match, flexible-extract or metamath).
func GSM8KRow(filter string, a Accuracy, shots int) ScoreRow {
	return ScoreRow{Task: "gsm8k", Filter: filter, Shots: shots, Metric: "exact_match", Value: a.Value(), Stderr: a.Stderr(), N: a.Total}
}

// MarkdownTable renders rows as an aligned Markdown table with the columns
// lm-eval prints (Task, Filter, n-shot, Metric, Value, ±, Stderr) plus N.
// Values and stderrs use four decimals, as lm-eval does.
func MarkdownTable(rows []ScoreRow) string {
	header := []string{"Task", "Filter", "n-shot", "Metric", "N", "Value", "", "Stderr"}
	rightAligned := []bool{false, false, true, false, true, true, false, true}
	cells := make([][]string, 0, len(rows)+1)
	cells = append(cells, header)
	for _, r := range rows {
		cells = append(cells, []string{
			r.Task, r.Filter, fmt.Sprint(r.Shots), r.Metric, fmt.Sprint(r.N),
			formatScore(r.Value), "±", formatScore(r.Stderr),
		})
	}
	widths := make([]int, len(header))
	for _, row := range cells {
		for i, c := range row {
			widths[i] = max(widths[i], len([]rune(c)), 3)
		}
	}
	var b strings.Builder
	writeRow := func(row []string) {
		b.WriteString("|")
		for i, c := range row {
			pad := strings.Repeat(" ", widths[i]-len([]rune(c)))
			if rightAligned[i] {
				b.WriteString(" " + pad + c + " |")
			} else {
				b.WriteString(" " + c + pad + " |")
			}
		}
		b.WriteString("\n")
	}
	writeRow(cells[0])
	b.WriteString("|")
	for i, w := range widths {
		if rightAligned[i] {
			b.WriteString(" " + strings.Repeat("-", w-1) + ": |")
		} else {
			b.WriteString(" " + strings.Repeat("-", w) + " |")
		}
	}
	b.WriteString("\n")
	for _, row := range cells[1:] {
		writeRow(row)
	}
	return b.String()
}

// formatScore prints a score with four decimals, or N/A when undefined.
func formatScore(v float64) string {
	if math.IsNaN(v) {
		return "N/A"
	}
	return fmt.Sprintf("%.4f", v)
}
