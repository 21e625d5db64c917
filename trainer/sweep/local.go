package sweep

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// exitInterrupted is the exit status of a worker stopped by a signal after
// writing a checkpoint (128 + SIGINT, as salr-train uses).
const exitInterrupted = 130

// LocalOptions configure RunLocal.
type LocalOptions struct {
	// Parallel is how many runs execute at once (at least 1).
	Parallel int
	// Cores is the number of cores shared among the parallel runs; 0 means
	// runtime.NumCPU(). Each run gets max(1, Cores/Parallel) threads.
	Cores int
	// Executable is the salr-sweep binary started for each run; empty
	// means this process's own executable.
	Executable string
	// Out receives one line per run start and finish (nil: discarded).
	Out io.Writer
	// Grace is how long a worker may take to write its checkpoint after
	// SIGTERM before it is killed; 0 means 2 minutes.
	Grace time.Duration
}

// LocalResult counts what RunLocal did.
type LocalResult struct {
	// Skipped runs were already finished; Finished ran to the end now;
	// Failed exited with an error; Interrupted stopped on a signal.
	Skipped, Finished, Failed, Interrupted int
	// FailedRuns lists the indices of the failed runs.
	FailedRuns []int
}

// RunLocal executes the unfinished runs on this machine, opt.Parallel at a
// time, each in its own worker process (salr-sweep -index i -threads k with
// the same sweep file), so that a crashing run does not end the sweep and
// thread settings stay per process. A worker's output is appended to its
// run directory's log.txt. Finished runs are skipped and interrupted ones
// resume from their checkpoints, so rerunning a killed sweep continues it.
// Cancelling ctx sends SIGTERM to the workers (they checkpoint and exit),
// waits for them and returns ErrInterrupted. Failed runs make the error
// list them; the other runs still execute.
func RunLocal(ctx context.Context, s *Sweep, runs []Run, opt LocalOptions) (LocalResult, error) {
	var res LocalResult
	exe := opt.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return res, fmt.Errorf("sweep: finding the salr-sweep binary: %w", err)
		}
	}
	if err := WriteManifest(s, runs); err != nil {
		return res, err
	}
	var todo []Run
	for _, r := range runs {
		if StateOf(r).Phase == PhaseFinished {
			res.Skipped++
		} else {
			todo = append(todo, r)
		}
	}
	parallel := max(1, min(opt.Parallel, len(todo)))
	threads := max(1, cmp.Or(opt.Cores, runtime.NumCPU())/parallel)
	out := &syncWriter{w: opt.Out}
	out.printf("sweep %s: %d runs, %d finished before; running %d, %d at a time, %d thread(s) each, in %s\n",
		s.Name, len(runs), res.Skipped, len(todo), parallel, threads, s.Dir())

	jobs := make(chan Run)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for r := range jobs {
				outcome := runWorker(ctx, exe, s, r, threads, opt.Grace, out, len(runs))
				mu.Lock()
				switch outcome {
				case workerFinished:
					res.Finished++
				case workerInterrupted:
					res.Interrupted++
				default:
					res.Failed++
					res.FailedRuns = append(res.FailedRuns, r.Index)
				}
				mu.Unlock()
			}
		})
	}
	for _, r := range todo {
		if ctx.Err() != nil {
			break
		}
		select {
		case jobs <- r:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	slices.Sort(res.FailedRuns)
	switch {
	case ctx.Err() != nil || res.Interrupted > 0:
		out.printf("sweep %s interrupted: %d finished now, %d failed, %d not finished; rerun the same command to continue\n",
			s.Name, res.Finished, res.Failed, len(todo)-res.Finished-res.Failed)
		return res, ErrInterrupted
	case res.Failed > 0:
		return res, fmt.Errorf("sweep %s: %d of %d runs failed (runs %s); see their %s", s.Name, res.Failed, len(runs),
			joinInts(res.FailedRuns), LogFile)
	}
	return res, nil
}

// workerOutcome is how a worker process ended.
type workerOutcome int

const (
	workerFinished workerOutcome = iota
	workerInterrupted
	workerFailed
)

// runWorker executes run r in a worker process and reports the outcome.
func runWorker(ctx context.Context, exe string, s *Sweep, r Run, threads int, grace time.Duration,
	out *syncWriter, total int) workerOutcome {
	tag := fmt.Sprintf("run %*d %s", len(strconv.Itoa(total-1)), r.Index, r.Name)
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		out.printf("%s FAILED: %v\n", tag, err)
		return workerFailed
	}
	logPath := filepath.Join(r.Dir, LogFile)
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		out.printf("%s FAILED: %v\n", tag, err)
		return workerFailed
	}
	defer log.Close()
	args := s.WorkerArgs(strconv.Itoa(r.Index), strconv.Itoa(threads))
	fmt.Fprintf(log, "=== %s: %s %s\n", time.Now().Format(time.RFC3339), filepath.Base(exe), strings.Join(args, " "))

	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = workerProcAttr()
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = grace
	if grace == 0 {
		cmd.WaitDelay = 2 * time.Minute
	}
	state := StateOf(r)
	out.printf("%s start (%s): %s\n", tag, state, r.Describe())
	start := time.Now()
	err = cmd.Run()
	took := time.Since(start).Round(time.Second)
	var exit *exec.ExitError
	switch {
	case err == nil:
		out.printf("%s finished in %s%s\n", tag, took, objectiveNote(s.Objective, r))
		return workerFinished
	case ctx.Err() != nil || errors.As(err, &exit) && exit.ExitCode() == exitInterrupted:
		out.printf("%s interrupted after %s (%s)\n", tag, took, StateOf(r))
		return workerInterrupted
	default:
		out.printf("%s FAILED after %s: %v; see %s\n", tag, took, err, logPath)
		return workerFailed
	}
}

// objectiveNote renders ", eval_loss 3.1234" for a finished run, or "".
func objectiveNote(o Objective, r Run) string {
	row := readRow(r.Dir)
	if v, ok := row.metric(o.Metric); ok {
		return fmt.Sprintf(", %s %s", o.Metric, formatMetric(v))
	}
	return ""
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ", ")
}

// syncWriter serialises the status lines of concurrent workers.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *syncWriter) printf(format string, a ...any) {
	if w.w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	fmt.Fprintf(w.w, format, a...)
}

// List writes one line per run: index, directory, varied values and state
// (what -dry-run prints).
func List(w io.Writer, runs []Run) error {
	for _, r := range runs {
		if _, err := fmt.Fprintf(w, "%3d  %-40s  %-40s  %s\n", r.Index, r.Dir, r.Describe(), StateOf(r)); err != nil {
			return err
		}
	}
	return nil
}
