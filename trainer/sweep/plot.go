package sweep

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// series is one line of the objective plot: the runs (or seed groups)
// sharing a value of the second varied key.
type series struct {
	label  string
	points map[string]point // x text -> point (the best, if several share it)
}

// point is one plotted objective value: a run's, or a group's mean with
// its standard deviation over n seeds.
type point struct {
	y, sd float64
	n     int
}

// Plot draws the objective of the finished runs against the first varied
// key (a numeric axis when all its values are numbers, else one tick per
// value), one line per value of the second varied key; with more varied
// keys each point is the best run over the others. When the sweep varies
// train.seed alongside other keys, each point is a group's mean objective
// with an error bar of one standard deviation, against the first other key,
// one line per combination of the rest (no group is left out). It writes a PNG to path atomically and reports false (writing
// nothing) when no run has the objective yet.
func (r *Results) Plot(path string) (bool, error) {
	p, _, err := r.newPlot()
	if p == nil || err != nil {
		return false, err
	}
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s.tmp%d.png", filepath.Base(path), os.Getpid()))
	if err := p.Save(8*vg.Inch, 5*vg.Inch, tmp); err != nil {
		os.Remove(tmp)
		return false, fmt.Errorf("sweep: plotting %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return false, fmt.Errorf("sweep: %w", err)
	}
	return true, nil
}

// lines returns the plot's x key ("run" when nothing varies), the keys its
// points are the best over, its x values in order of first appearance and
// its lines.
func (r *Results) lines() (xKey string, bestOver, xs []string, lines []*series) {
	xKey = "run"
	collided := false
	add := func(x, label string, pt point) {
		if !slices.Contains(xs, x) {
			xs = append(xs, x)
		}
		i := slices.IndexFunc(lines, func(s *series) bool { return s.label == label })
		if i < 0 {
			lines = append(lines, &series{label: label, points: map[string]point{}})
			i = len(lines) - 1
		}
		old, seen := lines[i].points[x]
		collided = collided || seen
		if !seen || r.Objective.Better(pt.y, old.y) {
			lines[i].points[x] = pt
		}
	}
	metric := r.Objective.Metric
	if r.Axes == (PlotAxes{}) && len(r.GroupKeys) == 0 {
		if len(r.Varied) > 0 {
			xKey = r.Varied[0]
		}
		if len(r.Varied) > 2 {
			bestOver = r.Varied[2:]
		}
		for _, row := range r.Rows {
			v, ok := row.Metrics[metric]
			if !ok || row.State.Phase != PhaseFinished {
				continue
			}
			x, label := strconv.Itoa(row.Index), ""
			if len(row.Values) > 0 {
				x = row.Values[0]
			}
			if len(row.Values) > 1 {
				label = r.Varied[1] + "=" + row.Values[1]
			}
			add(x, label, point{y: v, n: 1})
		}
		return xKey, bestOver, xs, lines
	}

	// Seed groups or chosen axes: the items are the groups (else the
	// finished runs), x is Axes.X (else the first key) and the lines are
	// Axes.Lines (else every other key, so that no item is hidden).
	keys := r.Varied
	type item struct {
		values []string
		value  func(metric string) (float64, bool)
		pt     point
	}
	var items []item
	if len(r.GroupKeys) > 0 {
		keys = r.GroupKeys
		for _, g := range r.Groups {
			if s, ok := g.Stats[metric]; ok {
				items = append(items, item{g.Values, func(m string) (float64, bool) {
					s, ok := g.Stats[m]
					return s.Mean, ok
				}, point{y: s.Mean, sd: s.SD, n: s.N}})
			}
		}
	} else {
		for _, row := range r.Rows {
			if v, ok := row.Metrics[metric]; ok && row.State.Phase == PhaseFinished {
				items = append(items, item{row.Values, func(m string) (float64, bool) {
					v, ok := row.Metrics[m]
					return v, ok
				}, point{y: v, n: 1}})
			}
		}
	}
	xKey = r.Axes.X
	if xKey == "" && len(keys) > 0 {
		xKey = keys[0]
	}
	xIndex, lineIndex := slices.Index(keys, xKey), slices.Index(keys, r.Axes.Lines)
	for i, key := range keys {
		if i != xIndex && i != lineIndex && r.Axes.Lines != "" {
			bestOver = append(bestOver, key)
		}
	}
	for _, it := range items {
		var x string
		switch {
		case xIndex >= 0:
			x = it.values[xIndex]
		default:
			v, ok := it.value(xKey)
			if !ok {
				continue
			}
			x = formatMetric(v)
		}
		var label []string
		for i, key := range keys {
			if i != xIndex && (r.Axes.Lines == "" || i == lineIndex) {
				label = append(label, key[strings.LastIndex(key, ".")+1:]+"="+it.values[i])
			}
		}
		add(x, strings.Join(label, " "), it.pt)
	}
	if !collided {
		bestOver = nil
	}
	return xKey, bestOver, xs, lines
}

// errorPoints are points with their error bars, as plotter.NewYErrorBars
// takes them.
type errorPoints struct {
	plotter.XYs
	plotter.YErrors
}

// newPlot builds the objective plot and returns it with its error bars (a
// nil plot when no run has the objective).
func (r *Results) newPlot() (*plot.Plot, []*plotter.YErrorBars, error) {
	metric := r.Objective.Metric
	xKey, bestOver, xs, lines := r.lines()
	if len(xs) == 0 {
		return nil, nil, nil
	}
	numeric, pos := xPositions(xs)

	p := plot.New()
	p.Title.Text = fmt.Sprintf("sweep %s: %s (%s)", r.Name, metric, r.Objective.Direction)
	if len(r.GroupKeys) > 0 {
		p.Title.Text += fmt.Sprintf(", mean ± sd over %s", SeedKey)
	}
	if len(bestOver) > 0 {
		p.Title.Text += fmt.Sprintf(", best over %s", strings.Join(bestOver, ", "))
	}
	p.X.Label.Text = xKey
	p.Y.Label.Text = metric
	p.Add(plotter.NewGrid())
	if !numeric {
		p.NominalX(xs...)
	}
	var bars []*plotter.YErrorBars
	for i, s := range lines {
		var pts plotter.XYs
		var errs errorPoints
		for _, x := range xs {
			pt, ok := s.points[x]
			if !ok {
				continue
			}
			pts = append(pts, plotter.XY{X: pos[x], Y: pt.y})
			if pt.n > 1 && pt.sd > 0 {
				errs.XYs = append(errs.XYs, plotter.XY{X: pos[x], Y: pt.y})
				errs.YErrors = append(errs.YErrors, struct{ Low, High float64 }{pt.sd, pt.sd})
			}
		}
		slices.SortFunc(pts, func(a, b plotter.XY) int { return cmp.Compare(a.X, b.X) })
		l, sc, err := plotter.NewLinePoints(pts)
		if err != nil {
			return nil, nil, fmt.Errorf("sweep: plotting: %w", err)
		}
		l.Color, sc.Color = plotutil.Color(i), plotutil.Color(i)
		sc.Shape = plotutil.Shape(i)
		p.Add(l, sc)
		if len(errs.XYs) > 0 {
			eb, err := plotter.NewYErrorBars(errs)
			if err != nil {
				return nil, nil, fmt.Errorf("sweep: plotting: %w", err)
			}
			eb.Color = plotutil.Color(i)
			p.Add(eb)
			bars = append(bars, eb)
		}
		if s.label != "" {
			p.Legend.Add(s.label, l, sc)
		}
	}
	p.Legend.Top = true
	frame(p, len(lines), numeric, xs, pos)
	return p, bars, nil
}

// frame pads the axes so that points do not sit on the frame and the
// legend (entries lines in the top right corner) does not cover the data,
// and, for a numeric x axis with few values, puts a tick at each value.
func frame(p *plot.Plot, entries int, numeric bool, xs []string, pos map[string]float64) {
	xr, yr := p.X.Max-p.X.Min, p.Y.Max-p.Y.Min
	if yr == 0 {
		yr = math.Max(math.Abs(p.Y.Max), 1) * 0.1
	}
	if xr == 0 {
		xr = 1
	}
	p.X.Min, p.X.Max = p.X.Min-0.05*xr, p.X.Max+0.05*xr
	p.Y.Min -= 0.05 * yr
	if entries > 1 {
		p.Y.Max += (0.05 + 0.1*float64(entries)) * yr
	} else {
		p.Y.Max += 0.05 * yr
	}
	if numeric && len(xs) <= 12 {
		ticks := make([]plot.Tick, len(xs))
		for i, x := range xs {
			ticks[i] = plot.Tick{Value: pos[x], Label: x}
		}
		p.X.Tick.Marker = plot.ConstantTicks(ticks)
	}
}

// xPositions places x values on the axis: at their numeric value when all
// are numbers, else at 0, 1, 2, ... in order.
func xPositions(xs []string) (numeric bool, pos map[string]float64) {
	pos = map[string]float64{}
	numeric = true
	for _, x := range xs {
		f, err := strconv.ParseFloat(x, 64)
		if err != nil {
			numeric = false
			break
		}
		pos[x] = f
	}
	if !numeric {
		for i, x := range xs {
			pos[x] = float64(i)
		}
	}
	return numeric, pos
}
