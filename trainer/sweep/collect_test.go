package sweep

import (
	"os"
	"path/filepath"
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
