package trainer

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLossPlotFrame: the held-out curve starts at step 0, the axes leave a
// margin beyond the data, and steps are ticked at round numbers.
func TestLossPlotFrame(t *testing.T) {
	var ms []Metrics
	for s := 1; s <= 60; s++ {
		m := Metrics{Step: s, Loss: 3 - float64(s)/60}
		if s%25 == 0 || s == 60 {
			el := m.Loss + 0.1
			m.EvalLoss = &el
		}
		ms = append(ms, m)
	}
	initial := 3.2
	p, err := curvesPlot("t", []Curve{{Metrics: ms, InitialEvalLoss: &initial}})
	if err != nil {
		t.Fatal(err)
	}
	// The data span steps 0..60 (the initial held-out loss at 0) and losses
	// 2..3.2; each axis extends beyond them.
	if math.Abs(p.X.Min-(-0.03*60)) > 1e-9 || !(p.X.Max > 60) {
		t.Errorf("x range [%v, %v], want the data 0..60 with a margin", p.X.Min, p.X.Max)
	}
	if !(p.Y.Min < 2) || !(p.Y.Max > 3.2) {
		t.Errorf("y range [%v, %v] does not enclose 2..3.2", p.Y.Min, p.Y.Max)
	}
	var labels []string
	for _, tk := range p.X.Tick.Marker.Ticks(p.X.Min, p.X.Max) {
		labels = append(labels, tk.Label)
	}
	if len(labels) != 7 || labels[0] != "0" || labels[1] != "10" || labels[6] != "60" {
		t.Errorf("step ticks %v, want 0, 10, ..., 60", labels)
	}
	if got := (stepTicks{}).Ticks(-0.2, 8.2); len(got) != 5 || got[0].Label != "0" || got[4].Label != "8" {
		t.Errorf("ticks of 0..8: %v", got)
	}
}

// TestPlotRuns overlays two run directories' curves, one with a torn last
// line, and refuses a malformed line in the middle of metrics.jsonl.
func TestPlotRuns(t *testing.T) {
	root := t.TempDir()
	one, two := filepath.Join(root, "one"), filepath.Join(root, "two")
	for _, d := range []string{one, two} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(dir, s string) {
		if err := os.WriteFile(filepath.Join(dir, MetricsFile), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(one, `{"step":1,"loss":3}`+"\n"+`{"step":2,"loss":2.5,"eval_loss":2.7}`+"\n")
	write(two, `{"step":1,"loss":3.1}`+"\n"+`{"step":2,"lo`)
	ms, err := ReadMetrics(two)
	if err != nil || len(ms) != 1 || ms[0].Loss != 3.1 {
		t.Fatalf("torn last line: %v, %v", ms, err)
	}
	out := filepath.Join(root, "curves.png")
	if err := PlotRuns(out, "t", []string{one, two}, []string{"1 process", "2 ranks"}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(out); err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Fatalf("no PNG written: %v", err)
	}
	if err := PlotRuns(out, "t", []string{one}, []string{"a", "b"}); err == nil {
		t.Error("2 labels for 1 run accepted")
	}
	write(two, `{"step":1,"loss":3.1}`+"\n"+`not json`+"\n"+`{"step":3,"loss":2}`+"\n")
	if _, err := ReadMetrics(two); err == nil || !strings.Contains(err.Error(), "metrics.jsonl:2") {
		t.Errorf("malformed line 2: %v", err)
	}
}
