package sweep

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// syntheticResults is a finished 2 x 2 sweep with a hand-picked objective.
func syntheticResults(direction string) *Results {
	finished := State{Phase: PhaseFinished}
	row := func(i int, x, g string, loss float64) Row {
		return Row{Index: i, Dir: "d", Values: []string{x, g}, State: finished,
			Metrics: map[string]float64{"eval_loss": loss, "trainable_params": 1234}}
	}
	return &Results{Name: "s", Objective: Objective{Metric: "eval_loss", Direction: direction},
		Varied: []string{"sparsity.ratio", "method"}, Metrics: []string{"eval_loss", "trainable_params"},
		Rows: []Row{row(0, "0.1", "lora", 3.5), row(1, "0.1", "salr", 3.25), row(2, "0.5", "lora", 3.5), row(3, "0.5", "salr", 3.75)},
		Best: -1}
}

func TestMarkdownOfAFinishedSweep(t *testing.T) {
	for _, c := range []struct {
		direction string
		best      int
		bold      string
	}{{Minimize, 1, "**3.2500**"}, {Maximize, 3, "**3.7500**"}} {
		r := syntheticResults(c.direction)
		if r.Best = r.best(); r.Best != c.best {
			t.Fatalf("%s: best %d, want %d", c.direction, r.Best, c.best)
		}
		md := r.Markdown()
		want := "| run | sparsity.ratio | method | eval_loss | trainable_params |\n| ---: | --- | --- | ---: | ---: |\n" +
			"| 0 | 0.1 | lora | 3.5000 | 1234 |\n"
		if !strings.Contains(md, want) || !strings.Contains(md, c.bold) || strings.Count(md, "**") != 2 {
			t.Errorf("%s: markdown\n%s", c.direction, md)
		}
	}
}

func TestPlotNumericAndCategoricalAxes(t *testing.T) {
	dir := t.TempDir()
	for _, swap := range []bool{false, true} {
		r := syntheticResults(Minimize)
		if swap { // method first: a categorical x axis
			r.Varied[0], r.Varied[1] = r.Varied[1], r.Varied[0]
			for i := range r.Rows {
				v := r.Rows[i].Values
				v[0], v[1] = v[1], v[0]
			}
		}
		path := filepath.Join(dir, "p.png")
		drawn, err := r.Plot(path)
		if err != nil || !drawn {
			t.Fatalf("swap %v: drawn %v, %v", swap, drawn, err)
		}
		b, _ := os.ReadFile(path)
		if !strings.HasPrefix(string(b), "\x89PNG") {
			t.Errorf("swap %v: not a PNG", swap)
		}
	}
	numeric, pos := xPositions([]string{"0.5", "0.1"})
	if !numeric || pos["0.5"] != 0.5 {
		t.Errorf("numeric positions %v %v", numeric, pos)
	}
	numeric, pos = xPositions([]string{"salr", "0.1", "lora"})
	if numeric || pos["salr"] != 0 || pos["0.1"] != 1 || pos["lora"] != 2 {
		t.Errorf("categorical positions %v %v", numeric, pos)
	}
	// Nothing to draw: no file.
	r := syntheticResults(Minimize)
	for i := range r.Rows {
		r.Rows[i].State = State{Phase: PhaseInterrupted, Step: 3}
	}
	if drawn, err := r.Plot(filepath.Join(dir, "none.png")); drawn || err != nil {
		t.Errorf("plot of unfinished runs: %v %v", drawn, err)
	}
}

func TestFormatMetric(t *testing.T) {
	for v, want := range map[float64]string{3.61644: "3.6164", 92.68091: "92.681", 1280.94: "1280.9",
		0.5: "0.5000", 46240: "46240", 0: "0", 123456.7: "123457", -0.25: "-0.2500"} {
		if got := formatMetric(v); got != want {
			t.Errorf("formatMetric(%v) = %s, want %s", v, got, want)
		}
	}
}

// TestSeedlessOutputUnchanged pins the table of a sweep that does not vary
// train.seed to what -collect wrote before seed groups existed.
func TestSeedlessOutputUnchanged(t *testing.T) {
	r := syntheticResults(Minimize)
	r.Best, r.BestGroup = r.best(), -1
	r.groupBySeed()
	if len(r.Groups) != 0 || len(r.GroupKeys) != 0 || r.BestGroup != -1 {
		t.Fatalf("groups in a seedless sweep: %v %v %d", r.GroupKeys, r.Groups, r.BestGroup)
	}
	wantMD := "Sweep `s`: 4 runs; objective eval_loss (minimize).\n\n" +
		"| run | sparsity.ratio | method | eval_loss | trainable_params |\n" +
		"| ---: | --- | --- | ---: | ---: |\n" +
		"| 0 | 0.1 | lora | 3.5000 | 1234 |\n" +
		"| 1 | 0.1 | salr | **3.2500** | 1234 |\n" +
		"| 2 | 0.5 | lora | 3.5000 | 1234 |\n" +
		"| 3 | 0.5 | salr | 3.7500 | 1234 |\n\n" +
		"Best: run 1 (sparsity.ratio=0.1 method=salr), eval_loss 3.2500.\n"
	if md := r.Markdown(); md != wantMD {
		t.Errorf("markdown\n%s\nwant\n%s", md, wantMD)
	}
	var b strings.Builder
	if err := r.WriteCSV(&b); err != nil {
		t.Fatal(err)
	}
	wantCSV := "run,sparsity.ratio,method,state,eval_loss,trainable_params,dir\n" +
		"0,0.1,lora,finished,3.5,1234,d\n1,0.1,salr,finished,3.25,1234,d\n" +
		"2,0.5,lora,finished,3.5,1234,d\n3,0.5,salr,finished,3.75,1234,d\n"
	if b.String() != wantCSV {
		t.Errorf("csv\n%s\nwant\n%s", b.String(), wantCSV)
	}
	if _, bars, err := r.newPlot(); err != nil || len(bars) != 0 {
		t.Errorf("seedless plot: %d error bars, %v", len(bars), err)
	}
}

// writeFakeSweep writes a sweep directory whose runs report only
// summary.json (eval_loss, trainable_params and finished).
func writeFakeSweep(t *testing.T, varied []string, runs [][]string, loss []float64, finished []bool) string {
	t.Helper()
	dir := t.TempDir()
	m := manifest{Name: "m", Objective: Objective{Metric: "eval_loss", Direction: Minimize}, Varied: varied}
	for i, values := range runs {
		e := manifestEntry{Index: i, Dir: fmt.Sprintf("%d-x", i), Values: values}
		m.Runs = append(m.Runs, e)
		summary := fmt.Sprintf(`{"eval_loss": %v, "trainable_params": 46240, "finished": %v}`, loss[i], finished[i])
		if err := os.MkdirAll(filepath.Join(dir, e.Dir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Dir, "summary.json"), []byte(summary), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(dir, ManifestFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestSeedGroups checks mean and sample standard deviation over seeds
// against hand-computed values: lora 2.1, 2.6, 3.1 (mean 2.6, sd 0.5);
// salr 1.25, 2.25, 6.25 (mean 3.25, sd sqrt(7)), its fourth run unfinished and
// left out.
func TestSeedGroups(t *testing.T) {
	runs := [][]string{{"lora", "42"}, {"lora", "7"}, {"lora", "1"}, {"salr", "42"}, {"salr", "7"}, {"salr", "1"}, {"salr", "5"}}
	loss := []float64{2.1, 2.6, 3.1, 1.25, 2.25, 6.25, 0.1}
	finished := []bool{true, true, true, true, true, true, false}
	dir := writeFakeSweep(t, []string{"method", SeedKey}, runs, loss, finished)
	res, written, err := WriteResults(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(written, filepath.Join(dir, GroupsCSV)) || !slices.Contains(written, filepath.Join(dir, ObjectivePlot)) {
		t.Errorf("written %v", written)
	}
	if len(res.Groups) != 2 || !slices.Equal(res.GroupKeys, []string{"method"}) || res.BestGroup != 0 {
		t.Fatalf("groups %v %+v best %d", res.GroupKeys, res.Groups, res.BestGroup)
	}
	lora, salr := res.Groups[0].Stats["eval_loss"], res.Groups[1].Stats["eval_loss"]
	if lora.N != 3 || math.Abs(lora.Mean-2.6) > 1e-12 || math.Abs(lora.SD-0.5) > 1e-12 {
		t.Errorf("lora %+v, want n 3, 2.6 ± 0.5", lora)
	}
	if salr.N != 3 || math.Abs(salr.Mean-3.25) > 1e-12 || math.Abs(salr.SD-math.Sqrt(7)) > 1e-12 {
		t.Errorf("salr %+v, want n 3, 3.25 ± sqrt(7)", salr)
	}
	if !slices.Equal(res.Groups[1].Seeds, []string{"42", "7", "1"}) {
		t.Errorf("salr seeds %v", res.Groups[1].Seeds)
	}
	md := res.Markdown()
	for _, want := range []string{
		"| method | n | seeds | eval_loss | initial_eval_loss |",
		"| lora | 3 | 42, 7, 1 | **2.6000 ± 0.5000** |  |  |  | 46240 |",
		"| salr | 3 | 42, 7, 1 | 3.2500 ± 2.6458 |  |  |  | 46240 |",
		"Best mean: method=lora, eval_loss 2.6000 ± 0.5000 over 3 seeds.",
		"| 6 | salr | 5 | pending | 0.1000 |",
		"Best single run: run 3 (method=salr train.seed=42), eval_loss 1.2500.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	csvText, err := os.ReadFile(filepath.Join(dir, GroupsCSV))
	if err != nil {
		t.Fatal(err)
	}
	wantCSV := "lora,3,42 7 1,2.6,0.5,"
	if lines := strings.Split(string(csvText), "\n"); !strings.HasPrefix(lines[0], "method,n,seeds,eval_loss.mean,eval_loss.sd,") ||
		!strings.HasPrefix(lines[1], wantCSV) || !strings.Contains(lines[1], ",46240,0,") {
		t.Errorf("%s:\n%s", GroupsCSV, csvText)
	}
	_, bars, err := res.newPlot()
	if err != nil || len(bars) != 1 || len(bars[0].YErrors) != 2 {
		t.Fatalf("error bars %v, %v", bars, err)
	}
	for i, want := range []struct{ y, sd float64 }{{2.6, 0.5}, {3.25, math.Sqrt(7)}} {
		e := bars[0].YErrors[i]
		if math.Abs(bars[0].XYs[i].Y-want.y) > 1e-12 || math.Abs(e.Low-want.sd) > 1e-12 || math.Abs(e.High-want.sd) > 1e-12 {
			t.Errorf("bar %d: y %v ± %v/%v, want %v ± %v", i, bars[0].XYs[i].Y, e.Low, e.High, want.y, want.sd)
		}
	}
}

func TestStatOfOneRun(t *testing.T) {
	s := newStat([]float64{2.75})
	if s.N != 1 || s.Mean != 2.75 || !math.IsNaN(s.SD) || s.String() != "2.7500" {
		t.Errorf("one run: %+v %q", s, s.String())
	}
	if s := newStat([]float64{46240, 46240}); s.String() != "46240" {
		t.Errorf("equal runs: %q", s.String())
	}
}

// TestGroupPlotKeepsEveryGroup checks that with more than two other varied
// keys each group is a point of its own (no best-of selection hides one).
func TestGroupPlotKeepsEveryGroup(t *testing.T) {
	runs := [][]string{
		{"lora", "8", "true", "42"}, {"lora", "8", "true", "7"},
		{"salr", "8", "true", "42"}, {"salr", "8", "true", "7"},
		{"salr", "8", "false", "42"}, {"salr", "8", "false", "7"},
		{"lora", "16", "true", "42"}, {"lora", "16", "true", "7"},
	}
	loss := []float64{2.75, 2.76, 2.7, 2.71, 2.8, 2.9, 2.6, 2.61}
	finished := slices.Repeat([]bool{true}, len(runs))
	res, err := Collect(writeFakeSweep(t, []string{"method", "adapters.lora_rank", "adapters.svd_trainable", SeedKey}, runs, loss, finished))
	if err != nil {
		t.Fatal(err)
	}
	xKey, bestOver, xs, lines := res.lines()
	if xKey != "method" || bestOver != nil || !slices.Equal(xs, []string{"lora", "salr"}) || len(lines) != 3 {
		t.Fatalf("x %s, best over %v, xs %v, %d lines", xKey, bestOver, xs, len(lines))
	}
	points := 0
	for _, l := range lines {
		points += len(l.points)
	}
	if points != 4 || lines[1].label != "lora_rank=8 svd_trainable=false" {
		t.Errorf("%d points (want 4), line 1 %q", points, lines[1].label)
	}
	if got := lines[1].points["salr"]; math.Abs(got.y-2.85) > 1e-12 || got.n != 2 {
		t.Errorf("frozen salr %+v, want mean 2.85 over 2", got)
	}
}

// TestPlotAxes checks a [plot] table: x a summary field, one line per
// method, every (method, budget) its own point.
func TestPlotAxes(t *testing.T) {
	runs := [][]string{
		{"lora", "8", "42"}, {"lora", "8", "7"}, {"lora", "16", "42"}, {"lora", "16", "7"},
		{"salr", "8", "42"}, {"salr", "8", "7"},
	}
	loss := []float64{2.75, 2.76, 2.6, 2.61, 2.7, 2.72}
	res, err := Collect(writeFakeSweep(t, []string{"method", "adapters.lora_rank", SeedKey}, runs, loss, slices.Repeat([]bool{true}, len(runs))))
	if err != nil {
		t.Fatal(err)
	}
	// writeFakeSweep reports 46240 trainable parameters for every run;
	// make rank 16 twice that.
	for i := range res.Groups {
		if res.Groups[i].Values[1] == "16" {
			res.Groups[i].Stats["trainable_params"] = Stat{N: 2, Mean: 92480}
		}
	}
	res.Axes = PlotAxes{X: "trainable_params", Lines: "method"}
	xKey, bestOver, xs, lines := res.lines()
	if xKey != "trainable_params" || bestOver != nil || !slices.Equal(xs, []string{"46240", "92480"}) || len(lines) != 2 {
		t.Fatalf("x %s, best over %v, xs %v, %d lines", xKey, bestOver, xs, len(lines))
	}
	if lines[0].label != "method=lora" || len(lines[0].points) != 2 || lines[1].label != "method=salr" || len(lines[1].points) != 1 {
		t.Errorf("lines %q %v, %q %v", lines[0].label, lines[0].points, lines[1].label, lines[1].points)
	}
	if p := lines[0].points["92480"]; math.Abs(p.y-2.605) > 1e-12 || p.n != 2 {
		t.Errorf("lora r16 %+v", p)
	}
	if p, _, err := res.newPlot(); p == nil || err != nil {
		t.Errorf("plot: %v", err)
	}
}
