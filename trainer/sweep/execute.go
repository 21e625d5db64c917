package sweep

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/trainer"
)

// Files a sweep adds to a run directory (besides the trainer's).
const (
	// LogFile receives a locally executed run's output.
	LogFile = "log.txt"
	// EvalFile holds the evaluation results (eval.Results as JSON) of a run
	// whose config sets eval.task, written by the trainer after training.
	EvalFile = trainer.EvalResultsFile
)

// ErrInterrupted is returned when a sweep or run stopped on a signal; what
// it finished is kept, and rerunning the same command continues.
var ErrInterrupted = errors.New("sweep interrupted; rerun the same command to continue")

// State is how far a run has got, as its directory shows.
type State struct {
	// Phase is one of the Phase constants.
	Phase Phase
	// Step is the step of the latest checkpoint (PhaseInterrupted).
	Step int
}

// Phase is a run's stage.
type Phase int

// The phases of a run.
const (
	PhasePending     Phase = iota // nothing written yet
	PhaseStarted                  // config.toml written, no checkpoint yet
	PhaseInterrupted              // a checkpoint exists; training resumes from it
	PhaseTrained                  // training finished, the evaluation has not
	PhaseFinished                 // training (and evaluation, if any) finished
)

// String renders the state for listings: "pending", "interrupted at step
// 40", ...
func (s State) String() string {
	switch s.Phase {
	case PhaseStarted:
		return "started"
	case PhaseInterrupted:
		return fmt.Sprintf("interrupted at step %d", s.Step)
	case PhaseTrained:
		return "trained, eval pending"
	case PhaseFinished:
		return "finished"
	}
	return "pending"
}

// StateOf reads a run's state from its directory.
func StateOf(r Run) State {
	if trainer.IsFinished(r.Dir) {
		if trainer.EvalPending(r.Dir, r.Config) {
			return State{Phase: PhaseTrained}
		}
		return State{Phase: PhaseFinished}
	}
	if !fileExists(filepath.Join(r.Dir, trainer.ConfigFile)) {
		return State{Phase: PhasePending}
	}
	if step, ok := checkpointStep(r.Dir); ok {
		return State{Phase: PhaseInterrupted, Step: step}
	}
	return State{Phase: PhaseStarted}
}

// checkpointStep reads the step of the latest checkpoint
// (checkpoints/latest names "step-NNNNNNN").
func checkpointStep(runDir string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(runDir, "checkpoints", "latest"))
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimLeft(strings.TrimPrefix(strings.TrimSpace(string(b)), "step-"), "0"))
	if err != nil {
		return 0, true
	}
	return n, true
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// ExecOptions configure Execute.
type ExecOptions struct {
	// Log receives one-line status messages (nil: discarded).
	Log io.Writer
	// Progress receives the training and evaluation progress bars (nil:
	// none).
	Progress io.Writer
	// Comm joins the ranks of a data-parallel run (trainer.Options.Comm;
	// nil: one process).
	Comm trainer.Comm
}

// Execute carries run r to the end in this process: it trains it (a new
// run, or resuming an interrupted one from its latest checkpoint), and the
// trainer then evaluates it when its config sets eval.task (see EvalFile).
// A finished run is left alone. The run directory starts as config.toml
// alone and is always continued with trainer.Options.Resume, so that a run
// killed at any point, evaluation included, continues where its files stop.
// It returns ErrInterrupted when ctx is cancelled.
func Execute(ctx context.Context, r Run, opt ExecOptions) error {
	logf := func(format string, a ...any) {
		if opt.Log != nil {
			fmt.Fprintf(opt.Log, format+"\n", a...)
		}
	}
	if err := claimRunDir(r); err != nil {
		return err
	}
	state := StateOf(r)
	if state.Phase == PhaseFinished {
		logf("run %d (%s) is already finished", r.Index, r.Dir)
		return nil
	}
	logf("run %d: %s (%s)", r.Index, r.Describe(), state)
	_, err := trainer.Train(ctx, trainer.Options{Resume: r.Dir, Log: opt.Log, Progress: opt.Progress, Comm: opt.Comm})
	if errors.Is(err, trainer.ErrInterrupted) || (err != nil && ctx.Err() != nil) {
		return ErrInterrupted
	}
	return err
}

// claimRunDir makes r.Dir hold r's config.toml: it writes it into a new
// directory, or checks that an existing one describes the same run.
func claimRunDir(r Run) error {
	path := filepath.Join(r.Dir, trainer.ConfigFile)
	if !fileExists(path) {
		text, err := r.Config.MarshalTOML()
		if err != nil {
			return err
		}
		return writeAtomic(path, text)
	}
	cfg, err := configs.Load(path, nil)
	if err != nil {
		return fmt.Errorf("sweep: run %d: %w", r.Index, err)
	}
	if h := cfg.Hash(); h != r.Hash {
		return fmt.Errorf("sweep: run %d: %s holds another config (hash %s, the sweep's run has %s); move it away to rerun",
			r.Index, r.Dir, h, r.Hash)
	}
	return nil
}
