package trainer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/salr-go/salr/internal/atomicfile"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/model/safetensors"
	"github.com/salr-go/salr/model/tokenizer"
)

// RandomCheckpointOptions are the settings of "salr-bench checkpoint"
// (errors name its flags).
type RandomCheckpointOptions struct {
	Shape        string            // -shape: a model.NamedShape
	Out          string            // -out: the directory to write
	DType        safetensors.DType // -dtype: F32, BF16 or F16
	Seed         uint64            // -seed
	MaxShardSize int64             // -max-shard-size in bytes; 0: one file
	Tokenizer    string            // -tokenizer: a file or HF directory to add; "" for none
	Vocab        int               // -vocab: overrides the shape's vocabulary when > 0
	Overwrite    bool              // -overwrite: replace an existing Out
}

// RandomCheckpointResult is what WriteRandomCheckpoint wrote.
type RandomCheckpointResult struct {
	model.RandomHFResult
	Config    model.Config
	Tokenizer bool // the directory holds a tokenizer
}

// progressLogEvery is the interval of progress lines when stderr is not a
// terminal.
const progressLogEvery = 10 * time.Second

// WriteRandomCheckpoint writes a random-weight HF model directory of a named
// shape (model.WriteRandomHF: weights streamed, never all in memory) with,
// when o.Tokenizer is set, the tokenizer (see WriteTokenizer). Everything is
// checked before the weights are generated. The directory is built under a
// temporary name beside o.Out and renamed to o.Out once complete, so an
// interrupted run leaves no directory at o.Out; an existing o.Out is refused
// unless o.Overwrite is set. Progress goes to progress: a bar on a terminal,
// else a line every 10 s; nil shows none.
func WriteRandomCheckpoint(ctx context.Context, o RandomCheckpointOptions, progress io.Writer) (RandomCheckpointResult, error) {
	cfg, err := model.NamedShape(o.Shape)
	if err != nil {
		return RandomCheckpointResult{}, fmt.Errorf("-shape: %w", err)
	}
	switch {
	case o.Vocab < 0:
		return RandomCheckpointResult{}, fmt.Errorf("-vocab %d: want a positive vocabulary size (or 0 for the shape's, %d)", o.Vocab, cfg.Vocab)
	case o.Vocab > 0:
		cfg.Vocab = o.Vocab
	}
	switch o.DType {
	case safetensors.F32, safetensors.BF16, safetensors.F16:
	default:
		return RandomCheckpointResult{}, fmt.Errorf("-dtype %q: want fp32, bf16 or fp16", o.DType)
	}
	if o.MaxShardSize < 0 {
		return RandomCheckpointResult{}, fmt.Errorf("-max-shard-size %d: must not be negative", o.MaxShardSize)
	}
	if err := cfg.Validate(); err != nil {
		return RandomCheckpointResult{}, fmt.Errorf("shape %s: %w", o.Shape, err)
	}
	if o.Out == "" {
		return RandomCheckpointResult{}, errors.New("-out is required")
	}
	out := filepath.Clean(o.Out)
	if err := checkOutDir(out, o.Overwrite); err != nil {
		return RandomCheckpointResult{}, err
	}
	var tok tokenizer.Tokenizer
	if o.Tokenizer != "" {
		if tok, err = tokenizer.Load(o.Tokenizer); err != nil {
			return RandomCheckpointResult{}, fmt.Errorf("-tokenizer: %w", err)
		}
		if n := tok.VocabSize(); n > cfg.Vocab {
			return RandomCheckpointResult{}, fmt.Errorf("-vocab: the tokenizer %s has %d tokens, more than the vocabulary of %d (the shape's, or -vocab): give -vocab %d or more", o.Tokenizer, n, cfg.Vocab, n)
		}
	}

	parent := filepath.Dir(out)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return RandomCheckpointResult{}, err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return RandomCheckpointResult{}, err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	// MkdirTemp makes the directory private (0700); a model is for sharing.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return RandomCheckpointResult{}, err
	}
	if tok != nil {
		if err := WriteTokenizer(tok, o.Tokenizer, "", tmp); err != nil {
			return RandomCheckpointResult{}, err
		}
	}
	bar := newBytesProgress(progress, "writing "+filepath.Base(out))
	res, err := model.WriteRandomHF(ctx, tmp, cfg, model.RandomHFOptions{DType: o.DType, Seed: o.Seed, MaxShardSize: o.MaxShardSize, Progress: bar.update})
	bar.finish(err == nil)
	if err != nil {
		return RandomCheckpointResult{}, err
	}
	if err := replaceDir(tmp, out, o.Overwrite); err != nil {
		return RandomCheckpointResult{}, err
	}
	cfg.TorchDtype = o.DType.TorchName()
	return RandomCheckpointResult{RandomHFResult: res, Config: cfg, Tokenizer: tok != nil}, nil
}

// checkOutDir refuses an existing path unless overwrite is set, and
// anything but a directory even then.
func checkOutDir(out string, overwrite bool) error {
	st, err := os.Lstat(out)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return err
	case !st.IsDir():
		return fmt.Errorf("-out %s exists and is not a directory", out)
	case !overwrite:
		return fmt.Errorf("-out %s already exists; give -overwrite to replace it", out)
	}
	return nil
}

// replaceDir renames the finished directory tmp to out (a sibling). An
// existing out is moved aside first (when overwrite is set; refused
// otherwise) and removed after the rename.
func replaceDir(tmp, out string, overwrite bool) error {
	if err := checkOutDir(out, overwrite); err != nil {
		return err // it appeared while we were writing
	}
	parent := filepath.Dir(out)
	var old string
	if _, err := os.Lstat(out); err == nil {
		old = tmp + ".old" // unique as tmp is
		if err := os.Rename(out, old); err != nil {
			return err
		}
	}
	// os.Rename refuses to replace a directory, so an out that appeared
	// since the check above is not clobbered.
	if err := os.Rename(tmp, out); err != nil {
		if old != "" {
			os.Rename(old, out) // put the previous directory back
		}
		return err
	}
	if old != "" {
		if err := os.RemoveAll(old); err != nil {
			return fmt.Errorf("removing the replaced directory (now %s): %w", old, err)
		}
	}
	return atomicfile.SyncDir(parent)
}

// bytesProgress shows bytes written: a bar on a terminal, otherwise a log
// line every progressLogEvery. A nil *bytesProgress shows nothing.
type bytesProgress struct {
	bar         *progressbar.ProgressBar
	log         io.Writer
	task        string
	start, last time.Time
}

func newBytesProgress(w io.Writer, task string) *bytesProgress {
	if w == nil {
		return nil
	}
	p := &bytesProgress{task: task, start: time.Now()}
	p.last = p.start
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(task),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetWidth(24),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
		return p
	}
	p.log = w
	return p
}

// update records written of total bytes.
func (p *bytesProgress) update(written, total int64) {
	if p == nil {
		return
	}
	if p.bar != nil {
		if p.bar.GetMax64() != total {
			p.bar.ChangeMax64(total)
		}
		p.bar.Set64(written) // the error is the terminal's; not worth failing for
		return
	}
	now := time.Now()
	if now.Sub(p.last) < progressLogEvery || written == total {
		return
	}
	p.last = now
	elapsed := now.Sub(p.start)
	left := time.Duration(float64(elapsed) * float64(total-written) / float64(written))
	fmt.Fprintf(p.log, "%s: %.2f of %.2f GB (%.0f%%), %s, about %s left\n", p.task, float64(written)/1e9, float64(total)/1e9,
		100*float64(written)/float64(total), elapsed.Round(time.Second), left.Round(time.Second))
}

// finish completes the bar after success, or ends its line after a failure.
func (p *bytesProgress) finish(ok bool) {
	if p == nil || p.bar == nil {
		return
	}
	if ok {
		p.bar.Finish()
	} else {
		p.bar.Exit()
	}
}
