package trainer

import (
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/salr-go/salr/internal/atomicfile"
)

// plotLoss draws the training loss per step and the held-out loss at its
// evaluation steps (from initial at step 0 when not nil) into path (PNG),
// written atomically.
func plotLoss(path, title string, ms []Metrics, initial *float64) error {
	return writePlot(path, title, []Curve{{Metrics: ms, InitialEvalLoss: initial}})
}

// Curve is one run's losses in a plot: Label names it in the legend (none
// for a plot of one run).
type Curve struct {
	Label           string
	Metrics         []Metrics
	InitialEvalLoss *float64 // the held-out loss at step 0, if measured
}

// PlotRuns overlays the training and held-out losses of runs (run
// directories, finished or not) in one PNG at path, written atomically;
// labels names them in the legend (nil: the directories' base names).
func PlotRuns(path, title string, runs, labels []string) error {
	if labels != nil && len(labels) != len(runs) {
		return fmt.Errorf("trainer: %d labels for %d runs", len(labels), len(runs))
	}
	curves := make([]Curve, len(runs))
	for i, dir := range runs {
		ms, err := ReadMetrics(dir)
		if err != nil {
			return err
		}
		c := Curve{Label: filepath.Base(dir), Metrics: ms}
		if labels != nil {
			c.Label = labels[i]
		}
		if s, err := ReadSummary(dir); err == nil && !s.noHeldOut && s.Finished {
			c.InitialEvalLoss = &s.InitialEvalLoss
		}
		curves[i] = c
	}
	return writePlot(path, title, curves)
}

// writePlot draws curves (see curvesPlot) into path.
func writePlot(path, title string, curves []Curve) error {
	p, err := curvesPlot(title, curves)
	if err != nil {
		return fmt.Errorf("trainer: plotting %s: %w", path, err)
	}
	wt, err := p.WriterTo(8*vg.Inch, 5*vg.Inch, "png")
	if err != nil {
		return fmt.Errorf("trainer: plotting %s: %w", path, err)
	}
	err = atomicfile.Write(path, func(w io.Writer) error {
		_, err := wt.WriteTo(w)
		return err
	})
	if err != nil {
		return fmt.Errorf("trainer: plotting %s: %w", path, err)
	}
	return nil
}

// curvesPlot draws each curve's training loss as a line and its held-out
// losses as a line with markers, in a colour of its own (a single curve:
// training and held-out in two colours). Later curves are drawn dashed, so
// that curves lying on top of each other stay visible. The axes leave a
// margin around the data so that the markers at the ends and the legend stay
// inside the frame; steps are ticked at round numbers.
func curvesPlot(title string, curves []Curve) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "step"
	p.Y.Label.Text = "loss (nats/token)"
	p.X.Tick.Marker = stepTicks{}
	p.Add(plotter.NewGrid())
	for i, c := range curves {
		var train, eval plotter.XYs
		if c.InitialEvalLoss != nil {
			eval = append(eval, plotter.XY{X: 0, Y: *c.InitialEvalLoss})
		}
		for _, m := range c.Metrics {
			if m.Step > 0 {
				train = append(train, plotter.XY{X: float64(m.Step), Y: m.Loss})
			}
			if m.EvalLoss != nil {
				eval = append(eval, plotter.XY{X: float64(m.Step), Y: *m.EvalLoss})
			}
		}
		trainColor, evalColor := plotutil.Color(2*i), plotutil.Color(2*i+1)
		if len(curves) == 1 {
			trainColor, evalColor = plotutil.Color(0), plotutil.Color(1)
		}
		name := func(what string) string {
			if c.Label == "" {
				return what
			}
			return c.Label + ": " + what
		}
		if len(train) > 0 {
			l, err := plotter.NewLine(train)
			if err != nil {
				return nil, err
			}
			l.Color = trainColor
			if i > 0 {
				l.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
			}
			p.Add(l)
			p.Legend.Add(name("train"), l)
		}
		if len(eval) > 0 {
			l, pts, err := plotter.NewLinePoints(eval)
			if err != nil {
				return nil, err
			}
			l.Color, pts.Color = evalColor, evalColor
			if i > 0 {
				l.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
				pts.Shape = draw.PyramidGlyph{}
			}
			p.Add(l, pts)
			p.Legend.Add(name("held-out"), l, pts)
		}
	}
	p.Legend.Top = true
	p.Legend.XOffs, p.Legend.YOffs = -vg.Millimeter*3, -vg.Millimeter*3
	// Room above the data for the legend, and on every side for the markers.
	pad := func(a *plot.Axis, below, above float64) {
		span := a.Max - a.Min
		if span <= 0 {
			span = math.Max(math.Abs(a.Max), 1)
		}
		a.Min -= below * span
		a.Max += above * span
	}
	pad(&p.X, 0.03, 0.03)
	pad(&p.Y, 0.05, 0.17+0.08*float64(len(curves)))
	return p, nil
}

// stepTicks marks an axis of optimizer steps at round whole numbers (1, 2 or
// 5 times a power of ten apart).
type stepTicks struct{}

// Ticks implements plot.Ticker.
func (stepTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) {
		return nil
	}
	step := 1.0
	for _, mult := range []float64{1, 2, 5, 10, 20, 50} {
		pow := math.Pow(10, math.Floor(math.Log10((hi-lo)/6)))
		if s := mult * pow; s >= 1 && (hi-lo)/s <= 8 {
			step = s
			break
		}
	}
	var ticks []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.Itoa(int(math.Round(v)))})
	}
	return ticks
}
