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
	lockFile      = ".lock"
)

// Summary is summary.json: the outcome of a run.
type Summary struct {
	Method           string  `json:"method"`
	Steps            int     `json:"steps"`
	FinalTrainLoss   float64 `json:"final_train_loss"`
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
	ConfigHash       string  `json:"config_hash"`
	// BaseBytes and CompressedBytes are the sizes of base/model.safetensors
	// and compressed/model.safetensors (omitted when not written).
	BaseBytes       int64 `json:"base_bytes,omitempty"`
	CompressedBytes int64 `json:"compressed_bytes,omitempty"`
}

// Metrics is one line of metrics.jsonl.
type Metrics struct {
	Step            int      `json:"step"`
	Loss            float64  `json:"loss"`
	LR              float64  `json:"lr"`
	GradNorm        float64  `json:"grad_norm"`
	TokensPerSecond float64  `json:"tokens_per_second"`
	Elapsed         float64  `json:"elapsed_seconds"`
	EvalLoss        *float64 `json:"eval_loss,omitempty"`
}

// ReadSummary reads a run directory's summary.json.
func ReadSummary(runDir string) (*Summary, error) {
	b, err := os.ReadFile(filepath.Join(runDir, SummaryFile))
	if err != nil {
		return nil, err
	}
	var s Summary
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("trainer: %s: %w", filepath.Join(runDir, SummaryFile), err)
	}
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

// prepareRunDir makes runDir ready for a new run: it must be absent or empty,
// unless overwrite is set, in which case a previous run's files are removed.
// A finished or interrupted run is never replaced silently.
func prepareRunDir(runDir string, overwrite bool) error {
	entries, err := os.ReadDir(runDir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return os.MkdirAll(runDir, 0o755)
	case err != nil:
		return fmt.Errorf("trainer: %w", err)
	case len(entries) == 0:
		return nil
	}
	if !overwrite {
		if IsFinished(runDir) {
			return fmt.Errorf("trainer: %s holds a finished run; pass -overwrite to replace it or choose another output.dir", runDir)
		}
		if ck, _ := latestCheckpoint(runDir); ck != "" {
			return fmt.Errorf("trainer: %s holds an unfinished run; continue it with -resume %s, or pass -overwrite to start over", runDir, runDir)
		}
		return fmt.Errorf("trainer: %s is not empty; pass -overwrite to replace its contents or choose another output.dir", runDir)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(runDir, e.Name())); err != nil {
			return fmt.Errorf("trainer: clearing %s: %w", runDir, err)
		}
	}
	return nil
}

// lockRunDir takes an exclusive lock on runDir so that two processes never
// train into the same directory; release it with the returned function.
func lockRunDir(runDir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(runDir, lockFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("trainer: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("trainer: %s is in use by another salr process", runDir)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
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
