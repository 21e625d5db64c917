package trainer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/salr-go/salr/datasets"
	"github.com/salr-go/salr/internal/atomicfile"
	"github.com/salr-go/salr/model/safetensors"
)

// A checkpoint is a directory checkpoints/step-NNNNNNN holding
//
//	state.safetensors  every trainable tensor ("param/<name>") and its AdamW
//	                   moments ("adam_m/<name>", "adam_v/<name>"), F32
//	state.json         step, optimizer step count, data position, counters
//
// written into a temporary directory, synced and renamed into place, then
// named in checkpoints/latest (replaced atomically). A run killed at any
// moment therefore resumes from the last complete checkpoint; older ones
// beyond the newest keepCheckpoints are removed.
const (
	checkpointsDir  = "checkpoints"
	latestFile      = "latest"
	stateTensors    = "state.safetensors"
	stateJSON       = "state.json"
	keepCheckpoints = 2
)

// TrainState is the non-tensor part of a checkpoint.
type TrainState struct {
	// Step is the number of optimizer updates done.
	Step int `json:"step"`
	// AdamSteps is the optimizer's bias-correction step count.
	AdamSteps int `json:"adam_steps"`
	// Loader is the data position of the next batch.
	Loader datasets.LoaderState `json:"loader"`
	// Tokens counts the input tokens trained on so far.
	Tokens int64 `json:"tokens"`
	// WallSeconds is the training time spent before this checkpoint.
	WallSeconds float64 `json:"wall_seconds"`
	// ConfigHash identifies the config the run was started with.
	ConfigHash string `json:"config_hash"`
	// LastLoss is the last training loss logged.
	LastLoss float64 `json:"last_loss"`
	// InitialEvalLoss is the held-out loss before training.
	InitialEvalLoss float64 `json:"initial_eval_loss"`
}

// saveCheckpoint writes a checkpoint of params and opt for st into runDir.
func saveCheckpoint(runDir string, params []Param, opt *AdamW, st TrainState) error {
	root := filepath.Join(runDir, checkpointsDir)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("trainer: checkpoint: %w", err)
	}
	name := fmt.Sprintf("step-%07d", st.Step)
	tmp, err := os.MkdirTemp(root, ".tmp-"+name+"-")
	if err != nil {
		return fmt.Errorf("trainer: checkpoint: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed

	var tensors []safetensors.Tensor
	add := func(prefix, pname string, data []float32) {
		tensors = append(tensors, safetensors.Tensor{Name: prefix + pname, DType: safetensors.F32,
			Shape: []int{len(data)}, Data: safetensors.Float32View(data)})
	}
	for i, p := range params {
		add("param/", p.Name, p.Data)
		add("adam_m/", p.Name, opt.M[i])
		add("adam_v/", p.Name, opt.V[i])
	}
	if err := safetensors.Write(filepath.Join(tmp, stateTensors), tensors, nil); err != nil {
		return fmt.Errorf("trainer: checkpoint: %w", err)
	}
	js, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(filepath.Join(tmp, stateJSON), append(js, '\n')); err != nil {
		return fmt.Errorf("trainer: checkpoint: %w", err)
	}
	final := filepath.Join(root, name)
	if err := os.RemoveAll(final); err != nil {
		return fmt.Errorf("trainer: checkpoint: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("trainer: checkpoint: %w", err)
	}
	if err := atomicfile.SyncDir(root); err != nil {
		return fmt.Errorf("trainer: checkpoint: %w", err)
	}
	if err := atomicfile.WriteBytes(filepath.Join(root, latestFile), []byte(name+"\n")); err != nil {
		return fmt.Errorf("trainer: checkpoint: %w", err)
	}
	return pruneCheckpoints(root, name)
}

// pruneCheckpoints removes all but the newest keepCheckpoints checkpoints
// (never the latest) and stale temporary directories.
func pruneCheckpoints(root, latest string) error {
	entries, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	var steps []string
	for _, e := range entries {
		switch {
		case strings.HasPrefix(e.Name(), ".tmp-"):
			os.RemoveAll(filepath.Join(root, e.Name()))
		case e.IsDir() && strings.HasPrefix(e.Name(), "step-"):
			steps = append(steps, e.Name())
		}
	}
	sort.Strings(steps)
	for i := 0; i < len(steps)-keepCheckpoints; i++ {
		if steps[i] != latest {
			if err := os.RemoveAll(filepath.Join(root, steps[i])); err != nil {
				return err
			}
		}
	}
	return nil
}

// latestCheckpoint returns the directory of the newest complete checkpoint
// of a run, or "" when there is none.
func latestCheckpoint(runDir string) (string, error) {
	root := filepath.Join(runDir, checkpointsDir)
	b, err := os.ReadFile(filepath.Join(root, latestFile))
	if os.IsNotExist(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("trainer: %w", err)
	}
	name := strings.TrimSpace(string(b))
	if !strings.HasPrefix(name, "step-") || strings.ContainsAny(name, `/\`) {
		return "", fmt.Errorf("trainer: %s: not a checkpoint name: %q", filepath.Join(root, latestFile), name)
	}
	return filepath.Join(root, name), nil
}

// loadCheckpoint restores params and opt (values copied into the existing
// slices) from a checkpoint directory and returns its state.
func loadCheckpoint(dir string, params []Param, opt *AdamW) (TrainState, error) {
	var st TrainState
	js, err := os.ReadFile(filepath.Join(dir, stateJSON))
	if err != nil {
		return st, fmt.Errorf("trainer: checkpoint: %w", err)
	}
	if err := json.Unmarshal(js, &st); err != nil {
		return st, fmt.Errorf("trainer: checkpoint %s: %w", filepath.Join(dir, stateJSON), err)
	}
	f, err := safetensors.Open(filepath.Join(dir, stateTensors))
	if err != nil {
		return st, fmt.Errorf("trainer: checkpoint: %w", err)
	}
	defer f.Close()
	restore := func(name string, dst []float32) error {
		src, err := f.Float32(name)
		if err != nil {
			return fmt.Errorf("trainer: checkpoint %s: %w", dir, err)
		}
		if len(src) != len(dst) {
			return fmt.Errorf("trainer: checkpoint %s: %s has %d values, the run expects %d (was the config changed?)", dir, name, len(src), len(dst))
		}
		copy(dst, src)
		return nil
	}
	for i, p := range params {
		if err := restore("param/"+p.Name, p.Data); err != nil {
			return st, err
		}
		if err := restore("adam_m/"+p.Name, opt.M[i]); err != nil {
			return st, err
		}
		if err := restore("adam_v/"+p.Name, opt.V[i]); err != nil {
			return st, err
		}
	}
	opt.Steps = st.AdamSteps
	return st, nil
}
