package sweep

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/trainer"
	"github.com/salr-go/salr/trainer/eval"
)

// The files -collect writes into a sweep's directory.
const (
	ResultsCSV      = "results.csv"
	ResultsMarkdown = "results.md"
	ObjectivePlot   = "objective.png"
	CurvesPlot      = "loss_curves.png"
	// GroupsCSV holds mean and standard deviation over the seeds of each
	// setting; it is written only for sweeps that vary train.seed.
	GroupsCSV = "results_mean_sd.csv"
)

// summaryColumns are the summary.json fields shown in results tables, in
// this order (the objective is added when it is another field).
var summaryColumns = []string{"eval_loss", "initial_eval_loss", "final_train_loss", "sparsity",
	"trainable_params", "tokens_per_second", "wall_seconds"}

// Results is the table of a sweep's runs.
type Results struct {
	// Name is the sweep's name and Dir its directory.
	Name, Dir string
	// Objective ranks the runs.
	Objective Objective
	// Axes chooses the plot's axes.
	Axes PlotAxes
	// Varied are the varied keys, one column each.
	Varied []string
	// Metrics are the metric columns: summary.json fields, then the
	// evaluation metrics ("eval.acc", ...).
	Metrics []string
	// Rows holds one row per run, by index.
	Rows []Row
	// Best is the position in Rows of the finished run with the best
	// objective, or -1.
	Best int
	// GroupKeys are the varied keys but train.seed, and Groups the runs
	// that share their values, when the sweep varies train.seed (else
	// both are empty); BestGroup is the group with the best mean
	// objective, or -1.
	GroupKeys []string
	Groups    []Group
	BestGroup int
}

// Row is one run in Results.
type Row struct {
	Index int
	// Dir is the run directory's name inside the sweep directory.
	Dir string
	// Values are the varied keys' values, aligned with Results.Varied.
	Values []string
	// State is how far the run got.
	State State
	// Metrics holds the metrics the run reported, by column name.
	Metrics map[string]float64
}

// label names the row in a legend: its varied values ("lora.r=8,
// sparsity.ratio=0.5"), or its index when nothing varies.
func (row Row) label(varied []string) string {
	if len(varied) == 0 {
		return fmt.Sprintf("run %d", row.Index)
	}
	parts := make([]string, len(varied))
	for i, k := range varied {
		parts[i] = k + "=" + row.Values[i]
	}
	return strings.Join(parts, ", ")
}

// Collect reads the results of every run listed in a sweep directory's
// sweep.json: summary.json fields and evaluation metrics. Runs that have
// not finished appear with their state and whatever they reported.
func Collect(dir string) (*Results, error) {
	m, err := readManifest(dir)
	if err != nil {
		return nil, err
	}
	res := &Results{Name: m.Name, Dir: dir, Objective: m.Objective, Varied: m.Varied, Best: -1, BestGroup: -1}
	if m.Plot != nil {
		res.Axes = *m.Plot
	}
	evalNames := map[string]bool{}
	for _, e := range m.Runs {
		runDir := filepath.Join(dir, e.Dir)
		rec := readRow(runDir)
		row := Row{Index: e.Index, Dir: e.Dir, Values: e.Values, State: rec.state(runDir), Metrics: map[string]float64{}}
		for k, v := range rec.summary {
			row.Metrics[k] = v
		}
		for k, v := range rec.eval {
			row.Metrics[evalPrefix+k] = v
			evalNames[evalPrefix+k] = true
		}
		res.Rows = append(res.Rows, row)
	}
	res.Metrics = slices.Clone(summaryColumns)
	if o := m.Objective.Metric; !strings.HasPrefix(o, evalPrefix) && !slices.Contains(res.Metrics, o) {
		res.Metrics = append([]string{o}, res.Metrics...)
	}
	for _, name := range slices.Sorted(maps.Keys(evalNames)) {
		res.Metrics = append(res.Metrics, name)
	}
	res.Best = res.best()
	res.groupBySeed()
	return res, nil
}

// best returns the position of the finished row with the best objective,
// or -1 (the first of equals).
func (r *Results) best() int {
	best := -1
	o := r.Objective
	for i, row := range r.Rows {
		v, ok := row.Metrics[o.Metric]
		if ok && row.State.Phase == PhaseFinished && (best < 0 || o.Better(v, r.Rows[best].Metrics[o.Metric])) {
			best = i
		}
	}
	return best
}

// WriteResults collects a sweep directory and writes results.csv,
// results.md, objective.png and loss_curves.png (every run's losses, labelled
// by its varied values) into it, and results_mean_sd.csv when the sweep
// varies train.seed; it returns the results and the paths written (no
// objective plot when no run has the objective yet, no curves before a run
// has logged a step).
func WriteResults(dir string) (*Results, []string, error) {
	res, err := Collect(dir)
	if err != nil {
		return nil, nil, err
	}
	var b strings.Builder
	if err := res.WriteCSV(&b); err != nil {
		return nil, nil, err
	}
	written := []string{filepath.Join(dir, ResultsCSV), filepath.Join(dir, ResultsMarkdown)}
	if err := writeAtomic(written[0], []byte(b.String())); err != nil {
		return nil, nil, err
	}
	if err := writeAtomic(written[1], []byte(res.Markdown())); err != nil {
		return nil, nil, err
	}
	if len(res.Groups) > 0 {
		var g strings.Builder
		if err := res.WriteGroupsCSV(&g); err != nil {
			return nil, nil, err
		}
		path := filepath.Join(dir, GroupsCSV)
		if err := writeAtomic(path, []byte(g.String())); err != nil {
			return nil, nil, err
		}
		written = append(written, path)
	}
	plotPath := filepath.Join(dir, ObjectivePlot)
	drawn, err := res.Plot(plotPath)
	if err != nil {
		return nil, nil, err
	}
	if drawn {
		written = append(written, plotPath)
	}
	var runs, labels []string
	for _, row := range res.Rows {
		runDir := filepath.Join(dir, row.Dir)
		if info, err := os.Stat(filepath.Join(runDir, trainer.MetricsFile)); err != nil || info.Size() == 0 {
			continue // no step logged yet
		}
		runs = append(runs, runDir)
		labels = append(labels, row.label(res.Varied))
	}
	if len(runs) > 0 {
		path := filepath.Join(dir, CurvesPlot)
		if err := trainer.PlotRuns(path, "sweep "+res.Name, runs, labels); err != nil {
			return nil, nil, err
		}
		written = append(written, path)
	}
	return res, written, nil
}

// header is the table's column names.
func (r *Results) header(withState bool) []string {
	h := append([]string{"run"}, r.Varied...)
	if withState {
		h = append(h, "state")
	}
	return append(h, r.Metrics...)
}

// allFinished reports whether every run has finished.
func (r *Results) allFinished() bool {
	for _, row := range r.Rows {
		if row.State.Phase != PhaseFinished {
			return false
		}
	}
	return true
}

// WriteCSV writes the table as CSV with a header row; metrics are written
// at full precision, missing ones as empty fields.
func (r *Results) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(append(r.header(true), "dir")); err != nil {
		return err
	}
	for _, row := range r.Rows {
		rec := append([]string{strconv.Itoa(row.Index)}, row.Values...)
		rec = append(rec, row.State.String())
		for _, m := range r.Metrics {
			v, ok := row.Metrics[m]
			cell := ""
			if ok {
				cell = strconv.FormatFloat(v, 'g', -1, 64)
			}
			rec = append(rec, cell)
		}
		if err := cw.Write(append(rec, row.Dir)); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// Markdown renders the table (the best objective value in bold; a state
// column while some run has not finished) with a line naming the objective
// and the best run. A sweep that varies train.seed gets the table of
// Groups (mean ± sd over the seeds) first.
func (r *Results) Markdown() string {
	withState := !r.allFinished()
	var b strings.Builder
	fmt.Fprintf(&b, "Sweep `%s`: %d runs; objective %s (%s).\n\n", r.Name, len(r.Rows), r.Objective.Metric, r.Objective.Direction)
	bestLabel := "Best"
	if len(r.Groups) > 0 {
		r.groupsMarkdown(&b)
		b.WriteString("\nEvery run:\n\n")
		bestLabel = "Best single run"
	}
	cells := func(c []string) { fmt.Fprintf(&b, "| %s |\n", strings.Join(c, " | ")) }
	header := r.header(withState)
	cells(header)
	align := make([]string, len(header))
	for i := range align {
		align[i] = "---"
		if i == 0 || i >= len(header)-len(r.Metrics) {
			align[i] = "---:"
		}
	}
	cells(align)
	for i, row := range r.Rows {
		c := append([]string{strconv.Itoa(row.Index)}, row.Values...)
		if withState {
			c = append(c, row.State.String())
		}
		for _, m := range r.Metrics {
			v, ok := row.Metrics[m]
			switch {
			case !ok:
				c = append(c, "")
			case i == r.Best && m == r.Objective.Metric:
				c = append(c, "**"+formatMetric(v)+"**")
			default:
				c = append(c, formatMetric(v))
			}
		}
		for j := range c {
			c[j] = strings.ReplaceAll(c[j], "|", `\|`)
		}
		cells(c)
	}
	if r.Best >= 0 {
		best := r.Rows[r.Best]
		fmt.Fprintf(&b, "\n%s: run %d (%s), %s %s.\n", bestLabel, best.Index, describeValues(r.Varied, best.Values),
			r.Objective.Metric, formatMetric(best.Metrics[r.Objective.Metric]))
	} else {
		fmt.Fprintf(&b, "\nNo finished run reports %s yet.\n", r.Objective.Metric)
	}
	return b.String()
}

func describeValues(keys, values []string) string {
	parts := make([]string, len(keys))
	for i := range keys {
		parts[i] = keys[i] + "=" + values[i]
	}
	return strings.Join(parts, " ")
}

// formatMetric renders a metric for tables: integers as integers, other
// values with five significant digits but at most four decimals (3.6164,
// 92.681, 1280.9, 0.5000).
func formatMetric(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return fmt.Sprint(v)
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	decimals := min(4, max(0, 4-int(math.Floor(math.Log10(math.Abs(v))))))
	return strconv.FormatFloat(v, 'f', decimals, 64)
}

// runRecord is what a run directory reports.
type runRecord struct {
	summary  map[string]float64 // numeric summary.json fields
	eval     map[string]float64 // eval/results.json metrics by name
	finished bool
}

// readRow reads a run directory's summary.json and eval/results.json (either may be
// absent).
func readRow(dir string) runRecord {
	rec := runRecord{summary: map[string]float64{}, eval: map[string]float64{}}
	if b, err := os.ReadFile(filepath.Join(dir, trainer.SummaryFile)); err == nil {
		var m map[string]any
		if json.Unmarshal(b, &m) == nil {
			for k, v := range m {
				if x, ok := v.(float64); ok {
					rec.summary[k] = x
				}
			}
			rec.finished, _ = m["finished"].(bool)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, EvalFile)); err == nil {
		var res eval.Results
		if json.Unmarshal(b, &res) == nil {
			for k, v := range res.Metrics {
				if !math.IsNaN(float64(v)) {
					rec.eval[k] = float64(v)
				}
			}
		}
	}
	return rec
}

// metric returns a metric by objective name: a summary field, or
// "eval.<name>".
func (rec runRecord) metric(name string) (float64, bool) {
	if n, ok := strings.CutPrefix(name, evalPrefix); ok {
		v, ok := rec.eval[n]
		return v, ok
	}
	v, ok := rec.summary[name]
	return v, ok
}

// state derives a run's state from its files (the config says whether an
// evaluation is due).
func (rec runRecord) state(dir string) State {
	cfg, err := configs.Load(filepath.Join(dir, trainer.ConfigFile), nil)
	if err != nil {
		if rec.finished {
			return State{Phase: PhaseFinished}
		}
		return State{Phase: PhasePending}
	}
	return StateOf(Run{Dir: dir, Config: cfg})
}
