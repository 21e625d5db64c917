package sweep

import (
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

// series is one line of the objective plot: the runs sharing a value of
// the second varied key.
type series struct {
	label  string
	points map[string]float64 // x text -> objective (the best, if several runs share it)
}

// Plot draws the objective of the finished runs against the first varied
// key (a numeric axis when all its values are numbers, else one tick per
// value), one line per value of the second varied key; with more varied
// keys each point is the best run over the others. It writes a PNG to path
// atomically and reports false (writing nothing) when no run has the
// objective yet.
func (r *Results) Plot(path string) (bool, error) {
	metric := r.Objective.Metric
	xKey := "run"
	if len(r.Varied) > 0 {
		xKey = r.Varied[0]
	}
	var xs []string // x values in order of first appearance
	var lines []*series
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
		if !slices.Contains(xs, x) {
			xs = append(xs, x)
		}
		i := slices.IndexFunc(lines, func(s *series) bool { return s.label == label })
		if i < 0 {
			lines = append(lines, &series{label: label, points: map[string]float64{}})
			i = len(lines) - 1
		}
		if old, seen := lines[i].points[x]; !seen || r.Objective.Better(v, old) {
			lines[i].points[x] = v
		}
	}
	if len(xs) == 0 {
		return false, nil
	}
	numeric, pos := xPositions(xs)

	p := plot.New()
	p.Title.Text = fmt.Sprintf("sweep %s: %s (%s)", r.Name, metric, r.Objective.Direction)
	if len(r.Varied) > 2 {
		p.Title.Text += fmt.Sprintf(", best over %s", strings.Join(r.Varied[2:], ", "))
	}
	p.X.Label.Text = xKey
	p.Y.Label.Text = metric
	p.Add(plotter.NewGrid())
	if !numeric {
		p.NominalX(xs...)
	}
	for i, s := range lines {
		var pts plotter.XYs
		for x, y := range s.points {
			pts = append(pts, plotter.XY{X: pos[x], Y: y})
		}
		slices.SortFunc(pts, func(a, b plotter.XY) int {
			switch {
			case a.X < b.X:
				return -1
			case a.X > b.X:
				return 1
			}
			return 0
		})
		l, sc, err := plotter.NewLinePoints(pts)
		if err != nil {
			return false, fmt.Errorf("sweep: plotting: %w", err)
		}
		l.Color, sc.Color = plotutil.Color(i), plotutil.Color(i)
		sc.Shape = plotutil.Shape(i)
		p.Add(l, sc)
		if s.label != "" {
			p.Legend.Add(s.label, l, sc)
		}
	}
	p.Legend.Top = true
	frame(p, len(lines), numeric, xs, pos)
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
