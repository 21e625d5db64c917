package trainer

import (
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/term"

	"github.com/schollz/progressbar/v3"
)

// defaultStatusEvery is the interval of status lines without a bar.
const defaultStatusEvery = 30 * time.Second

// reporter shows a run's progress: log lines, and either a progress bar on
// out (a terminal) or, without one, a status line (step, loss, tokens/s,
// time left) on log at most every interval, for logs under a batch system
// or a pipe. An out that is an *os.File but not a terminal counts as no bar
// (and serves as log when there is none).
type reporter struct {
	log   io.Writer
	out   io.Writer
	every time.Duration

	bar *progressbar.ProgressBar
	// Status lines: the steps of this invocation run from first to total;
	// since the last line, tokens were trained on.
	first, total int
	start, last  time.Time
	tokens       int
}

// logf writes a log line, clearing an unfinished bar first so that the line
// starts at the left margin (the bar is redrawn at the next step).
func (r *reporter) logf(format string, a ...any) {
	if r.log == nil {
		return
	}
	if r.bar != nil && !r.bar.IsFinished() {
		r.bar.Clear()
	}
	fmt.Fprintf(r.log, format+"\n", a...)
}

// begin starts reporting the steps after step (of total).
func (r *reporter) begin(step, total int) {
	r.first, r.total = step, total
	r.start = time.Now()
	r.last = r.start
	if barWriter(r.out) == nil && r.out != nil {
		// A file or pipe gets status lines, not a bar redrawn in place.
		if r.log == nil {
			r.log = r.out
		}
		r.out = nil
	}
	if r.out == nil {
		if r.every <= 0 {
			r.every = defaultStatusEvery
		}
		return
	}
	r.bar = progressbar.NewOptions(total,
		progressbar.OptionSetWriter(r.out),
		progressbar.OptionSetDescription("train"),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetWidth(24),
		progressbar.OptionThrottle(200*time.Millisecond),
		// The finished bar stays on screen, 100%, ended by a newline.
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(r.out) }))
	r.bar.Set(step)
}

// step reports the step m, which trained on tokens tokens.
func (r *reporter) step(m Metrics, tokens int) {
	if r.bar != nil {
		r.bar.Describe(fmt.Sprintf("loss %.4f lr %.2e %.0f tok/s", m.Loss, m.LR, m.TokensPerSecond))
		r.bar.Set(m.Step)
		return
	}
	r.tokens += tokens
	now := time.Now()
	if r.log == nil || now.Sub(r.last) < r.every {
		return
	}
	rate := float64(r.tokens) / now.Sub(r.last).Seconds()
	left := time.Duration(float64(now.Sub(r.start)) * float64(r.total-m.Step) / float64(m.Step-r.first))
	aux := ""
	if m.RouterAuxLoss != nil {
		aux = fmt.Sprintf(" (router aux loss %.4f)", *m.RouterAuxLoss)
	}
	fmt.Fprintf(r.log, "step %d/%d: loss %.4f%s, %.0f tokens/s, about %s left\n", m.Step, r.total, m.Loss, aux, rate, left.Round(time.Second))
	r.last, r.tokens = now, 0
}

// stop ends the bar's line if the run stopped before the last step.
func (r *reporter) stop() {
	if r.bar != nil && !r.bar.IsFinished() {
		r.bar.Exit() // runs the completion hook: a newline
	}
	r.bar = nil
}

// progressLog reports a long loop's progress in log lines, at most one per
// interval (pruning and SVD of a 7B model take minutes before training
// starts).
type progressLog struct {
	logf        func(string, ...any)
	what, unit  string // "pruning", "projections"
	every       time.Duration
	start, last time.Time
}

// done reports that i of n items are finished, if the last report is older
// than the interval.
func (p *progressLog) done(i, n int) {
	now := time.Now()
	since := p.start
	if p.last.After(since) {
		since = p.last
	}
	if i == 0 || now.Sub(since) < p.every {
		return
	}
	p.last = now
	elapsed := now.Sub(p.start)
	left := time.Duration(float64(elapsed) * float64(n-i) / float64(i))
	p.logf("%s: %d of %d %s done, %s elapsed, about %s left", p.what, i, n, p.unit, elapsed.Round(time.Second), left.Round(time.Second))
}

// prepareLogEvery is the interval of stageProgress's log lines.
const prepareLogEvery = 10 * time.Second

// stageProgress shows a preparation stage's progress over n items (pruning
// and the SVD, counted in projections): a bar with the time left on out when
// out is a terminal (see barWriter), else progressLog's lines.
type stageProgress struct {
	bar  *progressbar.ProgressBar
	log  progressLog
	i, n int
}

// newStageProgress starts showing a stage of n items (in unit) called what.
func newStageProgress(out io.Writer, logf func(string, ...any), what, unit string, n int) *stageProgress {
	p := &stageProgress{n: n, log: progressLog{logf: logf, what: what, unit: unit, every: prepareLogEvery, start: time.Now()}}
	if out = barWriter(out); out != nil && n > 0 {
		p.bar = progressbar.NewOptions(n,
			progressbar.OptionSetWriter(out),
			progressbar.OptionSetDescription(what),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString(unit),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionSetWidth(24),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(out) }))
	}
	return p
}

// add records one more item done.
func (p *stageProgress) add() {
	p.i++
	if p.bar != nil {
		p.bar.Set(p.i) // the error is the writer's; a progress bar is not worth failing for
		return
	}
	p.log.done(p.i, p.n)
}

// finish ends the bar: full after a successful stage, where it stopped
// otherwise (both end its line).
func (p *stageProgress) finish(ok bool) {
	if p.bar == nil || p.bar.IsFinished() {
		return
	}
	if ok {
		p.bar.Finish()
	} else {
		p.bar.Exit()
	}
}

// barWriter returns out if a progress bar may be drawn on it: not nil, and
// not a file that is not a terminal (a log file or a pipe).
func barWriter(out io.Writer) io.Writer {
	if f, ok := out.(*os.File); ok && !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return out
}
