package trainer

import (
	"fmt"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// plotLoss draws the training loss per step and the held-out loss at its
// evaluation steps into path (PNG), written atomically.
func plotLoss(path, title string, ms []Metrics) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "step"
	p.Y.Label.Text = "loss (nats/token)"
	p.Add(plotter.NewGrid())
	var train, eval plotter.XYs
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
			return err
		}
		l.Color = plotutil.Color(0)
		p.Add(l)
		p.Legend.Add("train", l)
	}
	if len(eval) > 0 {
		l, pts, err := plotter.NewLinePoints(eval)
		if err != nil {
			return err
		}
		l.Color, pts.Color = plotutil.Color(1), plotutil.Color(1)
		p.Add(l, pts)
		p.Legend.Add("held-out", l, pts)
	}
	p.Legend.Top = true
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s.tmp%d.png", filepath.Base(path), os.Getpid()))
	if err := p.Save(8*vg.Inch, 5*vg.Inch, tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("trainer: plotting %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}
