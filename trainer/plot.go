package trainer

import (
	"fmt"
	"io"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/salr-go/salr/internal/atomicfile"
)

// plotLoss draws the training loss per step and the held-out loss at its
// evaluation steps (from initial at step 0 when not nil) into path (PNG),
// written atomically.
func plotLoss(path, title string, ms []Metrics, initial *float64) error {
	p, err := lossPlot(title, ms, initial)
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

// lossPlot is the plot plotLoss draws. The axes leave a margin around the
// data so that the markers at the ends and the legend stay inside the frame;
// steps are ticked at round numbers.
func lossPlot(title string, ms []Metrics, initial *float64) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "step"
	p.Y.Label.Text = "loss (nats/token)"
	p.X.Tick.Marker = stepTicks{}
	p.Add(plotter.NewGrid())
	var train, eval plotter.XYs
	if initial != nil {
		eval = append(eval, plotter.XY{X: 0, Y: *initial})
	}
	for _, m := range ms {
		if m.Step > 0 {
			train = append(train, plotter.XY{X: float64(m.Step), Y: m.Loss})
		}
		if m.EvalLoss != nil {
			eval = append(eval, plotter.XY{X: float64(m.Step), Y: *m.EvalLoss})
		}
	}
	if len(train) > 0 {
		l, err := plotter.NewLine(train)
		if err != nil {
			return nil, err
		}
		l.Color = plotutil.Color(0)
		p.Add(l)
		p.Legend.Add("train", l)
	}
	if len(eval) > 0 {
		l, pts, err := plotter.NewLinePoints(eval)
		if err != nil {
			return nil, err
		}
		l.Color, pts.Color = plotutil.Color(1), plotutil.Color(1)
		p.Add(l, pts)
		p.Legend.Add("held-out", l, pts)
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
	pad(&p.Y, 0.05, 0.25)
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
