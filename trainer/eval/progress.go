package eval

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress shows documents done and docs/s on a terminal; a nil *progress
// shows nothing.
type progress struct {
	bar *progressbar.ProgressBar
}

// newProgress returns a bar over total documents written to w, or nil when w
// is nil.
func newProgress(w io.Writer, total int, task string) *progress {
	if w == nil {
		return nil
	}
	return &progress{bar: progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(task),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("docs"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)}
}

// add records n more documents done.
func (p *progress) add(n int) {
	if p != nil {
		p.bar.Add(n) // the error is the writer's; a progress bar is not worth failing for
	}
}

// finish completes the bar after a successful run, or leaves it where it
// stopped after a failed one.
func (p *progress) finish(ok bool) {
	if p == nil {
		return
	}
	if ok {
		p.bar.Finish()
	} else {
		p.bar.Exit()
	}
}
