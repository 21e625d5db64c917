package trainer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/salr-go/salr/internal/atomicfile"
	"github.com/salr-go/salr/kernels/bitmap"
)

// The files of a run directory (see README, "Run directories").
const (
	ConfigFile    = "config.toml"
	MetricsFile   = "metrics.jsonl"
	SummaryFile   = "summary.json"
	LossPlot      = "loss.png"
	AdapterDir    = "adapter"
	BaseDir       = "base"
	CompressedDir = "compressed"
	// MergedAdapterDir holds the adapters lora-prune and lora-prune-dynamic
	// trained and merged into their pruned base (salr_adapters.safetensors);
	// the run's model does not use them.
	MergedAdapterDir = "merged-adapter"
	lockFile         = ".lock"
)

// Summary is summary.json: the outcome of a run.
type Summary struct {
	Method         string  `json:"method"`
	Steps          int     `json:"steps"`
	FinalTrainLoss float64 `json:"final_train_loss"`
	// EvalLoss and InitialEvalLoss are the held-out losses after and
	// before training (omitted from summary.json without a held-out set).
	EvalLoss         float64 `json:"eval_loss"`
	InitialEvalLoss  float64 `json:"initial_eval_loss"`
	TokensPerSecond  float64 `json:"tokens_per_second"`
	Sparsity         float64 `json:"sparsity"`
	TrainableParams  int     `json:"trainable_params"`
	WallSeconds      float64 `json:"wall_seconds"`
	Finished         bool    `json:"finished"`
	TrainExamples    int     `json:"train_examples"`
	EvalExamples     int     `json:"eval_examples"`
	TruncatedExample int     `json:"truncated_examples"`
	DroppedExamples  int     `json:"dropped_examples"`
	// DroppedNoAnswer counts the training examples skipped because no
	// answer token was left after truncation to data.seq_len.
	DroppedNoAnswer int    `json:"dropped_no_answer"`
	ConfigHash      string `json:"config_hash"`
	// BaseBytes and CompressedBytes are the sizes of base/model.safetensors
	// and compressed/model.safetensors (omitted when not written).
	BaseBytes       int64 `json:"base_bytes,omitempty"`
	CompressedBytes int64 `json:"compressed_bytes,omitempty"`
	// Eval is the headline of eval/results.json, once the evaluation the
	// config's [eval] asks for is done (omitted otherwise).
	Eval *EvalSummary `json:"eval,omitempty"`
	// Memory is the run's memory plan beside its peak RSS.
	Memory *Memory `json:"memory,omitempty"`
	// EvalLossBeforePrune is the held-out loss of lora-prune and
	// lora-prune-dynamic runs before the final merge and pruning (the dense
	// LoRA model; the model through its last training mask); EvalLoss is the
	// pruned merged model's.
	EvalLossBeforePrune *float64 `json:"eval_loss_before_prune,omitempty"`
	// Precision is train.precision, the arithmetic of the training step's
	// products ("fp32" or "bf16").
	Precision string `json:"precision"`
	// Paths are the BLAS core and kernel path the (last) invocation ran.
	bitmap.Paths

	// noHeldOut marks a run without a held-out set (data.eval_examples = 0).
	noHeldOut bool
}

// HasHeldOutLoss reports whether the run measured a held-out loss (false
// for data.eval_examples = 0 and no data.eval_path).
func (s Summary) HasHeldOutLoss() bool { return !s.noHeldOut }

// MarshalJSON writes the summary's fields in order, leaving out the
// held-out losses of a run without a held-out set.
func (s Summary) MarshalJSON() ([]byte, error) {
	type plain Summary // the fields without this method
	if !s.noHeldOut {
		return json.Marshal(plain(s))
	}
	return json.Marshal(struct {
		plain
		// Nil, so omitted; they hide plain's fields of the same names.
		EvalLoss        *float64 `json:"eval_loss,omitempty"`
		InitialEvalLoss *float64 `json:"initial_eval_loss,omitempty"`
	}{plain: plain(s)})
}

// Metrics is one line of metrics.jsonl.
type Metrics struct {
	Step int     `json:"step"`
	Loss float64 `json:"loss"`
	// RouterAuxLoss is the routers' load-balancing loss (without its
	// coefficient; Loss includes coef times it), when train.router_aux_loss_coef > 0.
	RouterAuxLoss   *float64 `json:"router_aux_loss,omitempty"`
	LR              float64  `json:"lr"`
	GradNorm        float64  `json:"grad_norm"`
	TokensPerSecond float64  `json:"tokens_per_second"`
	Elapsed         float64  `json:"elapsed_seconds"`
	EvalLoss        *float64 `json:"eval_loss,omitempty"`
}

// ReadMetrics reads a run directory's metrics.jsonl. A torn last line (a
// killed or running run) is left out; any other line that is not a Metrics
// object is an error naming the file and line.
func ReadMetrics(runDir string) ([]Metrics, error) {
	path := filepath.Join(runDir, MetricsFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("trainer: %w", err)
	}
	lines := bytes.Split(b, []byte("\n"))
	var ms []Metrics
	for i, line := range lines {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var m Metrics
		if err := json.Unmarshal(line, &m); err != nil {
			if i == len(lines)-1 {
				break // no newline yet: torn by a kill, or being written
			}
			return nil, fmt.Errorf("trainer: %s:%d: %w", path, i+1, err)
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// ReadSummary reads a run directory's summary.json.
func ReadSummary(runDir string) (*Summary, error) {
	b, err := os.ReadFile(filepath.Join(runDir, SummaryFile))
	if err != nil {
		return nil, err
	}
	var s Summary
	var losses struct {
		EvalLoss *float64 `json:"eval_loss"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("trainer: %s: %w", filepath.Join(runDir, SummaryFile), err)
	}
	json.Unmarshal(b, &losses) // cannot fail where the first did not
	s.noHeldOut = losses.EvalLoss == nil
	return &s, nil
}

// IsFinished reports whether runDir holds a finished run.
func IsFinished(runDir string) bool {
	s, err := ReadSummary(runDir)
	return err == nil && s.Finished
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(path, append(b, '\n'))
}

// openNewRunDir makes runDir ready for a new run and locks it; release the
// lock with the returned function. runDir must be absent or empty, unless
// overwrite is set, in which case a previous run's files are removed. The
// lock is taken before anything is removed, so a directory another process
// trains into is never cleared; a finished or interrupted run is never
// replaced silently.
func openNewRunDir(runDir string, overwrite bool) (func(), error) {
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return nil, fmt.Errorf("trainer: %w", err)
	}
	names, hasLock, err := runDirEntries(runDir)
	if err != nil {
		return nil, err
	}
	// Without -overwrite, a directory that was never a run directory gets no
	// lock file: refuse before creating one.
	if len(names) > 0 && !overwrite && !hasLock {
		return nil, refuseRunDir(runDir)
	}
	unlock, err := lockRunDir(runDir)
	if err != nil {
		return nil, err
	}
	if names, _, err = runDirEntries(runDir); err != nil {
		unlock()
		return nil, err
	}
	if len(names) > 0 && !overwrite {
		unlock()
		return nil, refuseRunDir(runDir)
	}
	for _, name := range names {
		if err := os.RemoveAll(filepath.Join(runDir, name)); err != nil {
			unlock()
			return nil, fmt.Errorf("trainer: clearing %s: %w", runDir, err)
		}
	}
	return unlock, nil
}

// runDirEntries lists runDir's entries other than the lock file and reports
// whether the lock file exists.
func runDirEntries(runDir string) (names []string, hasLock bool, err error) {
	entries, err := os.ReadDir(runDir)
	if err != nil {
		return nil, false, fmt.Errorf("trainer: %w", err)
	}
	for _, e := range entries {
		if e.Name() == lockFile {
			hasLock = true
			continue
		}
		names = append(names, e.Name())
	}
	return names, hasLock, nil
}

// refuseRunDir is the error for a non-empty runDir without -overwrite.
func refuseRunDir(runDir string) error {
	if IsFinished(runDir) {
		return fmt.Errorf("trainer: %s holds a finished run; pass -overwrite to replace it or choose another output.dir", runDir)
	}
	if ck, _ := latestCheckpoint(runDir); ck != "" {
		return fmt.Errorf("trainer: %s holds an unfinished run; continue it with -resume %s, or pass -overwrite to start over", runDir, runDir)
	}
	return fmt.Errorf("trainer: %s is not empty; pass -overwrite to replace its contents or choose another output.dir", runDir)
}

// lockRunDir takes an exclusive lock on runDir so that two processes never
// train into the same directory; release it with the returned function.
func lockRunDir(runDir string) (func(), error) {
	path := filepath.Join(runDir, lockFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("trainer: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("trainer: another process holds the lock %s (a run in progress?); wait for it to end or choose another output.dir", path)
		}
		return nil, fmt.Errorf("trainer: locking %s: %w", path, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// removeStale deletes the temporary files a killed process left in runDir
// and the subdirectories a run writes, and the temporary checkpoint
// directories. It returns the paths removed.
func removeStale(runDir string) ([]string, error) {
	var removed []string
	for _, sub := range []string{"", BaseDir, CompressedDir, AdapterDir, EvalDir, checkpointsDir} {
		dir := filepath.Join(runDir, sub)
		names, err := atomicfile.RemoveStale(dir)
		for _, n := range names {
			removed = append(removed, filepath.Join(dir, n))
		}
		if err != nil {
			return removed, fmt.Errorf("trainer: %w", err)
		}
	}
	tmps, err := removeCheckpointTemps(filepath.Join(runDir, checkpointsDir))
	return append(removed, tmps...), err
}

// metricsLog appends Metrics lines to metrics.jsonl, syncing after each so a
// killed run keeps every line it logged.
type metricsLog struct {
	f *os.File
}

// openMetrics opens metrics.jsonl for appending, first dropping lines of
// steps after keepUpTo (they belong to work a resumed run redoes); keepUpTo <
// 0 starts an empty log.
func openMetrics(runDir string, keepUpTo int) (*metricsLog, []Metrics, error) {
	path := filepath.Join(runDir, MetricsFile)
	var kept []Metrics
	if keepUpTo >= 0 {
		b, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("trainer: %w", err)
		}
		var buf bytes.Buffer
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m Metrics
			if json.Unmarshal(sc.Bytes(), &m) != nil || m.Step > keepUpTo {
				continue // a torn last line, or work to be redone
			}
			kept = append(kept, m)
			buf.Write(sc.Bytes())
			buf.WriteByte('\n')
		}
		if err := atomicfile.WriteBytes(path, buf.Bytes()); err != nil {
			return nil, nil, fmt.Errorf("trainer: %w", err)
		}
	} else if err := atomicfile.WriteBytes(path, nil); err != nil {
		return nil, nil, fmt.Errorf("trainer: %w", err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("trainer: %w", err)
	}
	return &metricsLog{f: f}, kept, nil
}

func (l *metricsLog) write(m Metrics) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("trainer: metrics: %w", err)
	}
	return l.f.Sync()
}

func (l *metricsLog) close() error { return l.f.Close() }
