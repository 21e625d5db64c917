package trainer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
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
//	checksums.sha256   the SHA-256 of the two files above (sha256sum format),
//	                   verified on resume
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
	checksumsFile   = "checksums.sha256"
	checkpointTemp  = ".tmp-"
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
	tmp, err := os.MkdirTemp(root, checkpointTemp+name+"-")
	if err != nil {
		return fmt.Errorf("trainer: checkpoint: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	// MkdirTemp makes the directory private (0700); a run directory is 0755
	// throughout.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("trainer: checkpoint: %w", err)
	}

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
	if err := writeChecksums(tmp); err != nil {
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
	if _, err := removeCheckpointTemps(root); err != nil {
		return err
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	var steps []string
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), "step-") {
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

// removeCheckpointTemps deletes the temporary checkpoint directories in root
// (left by a process killed while writing one) and returns their paths. A
// missing root is not an error.
func removeCheckpointTemps(root string) ([]string, error) {
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("trainer: %w", err)
	}
	var removed []string
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), checkpointTemp) {
			path := filepath.Join(root, e.Name())
			if err := os.RemoveAll(path); err != nil {
				return removed, fmt.Errorf("trainer: %w", err)
			}
			removed = append(removed, path)
		}
	}
	return removed, nil
}

// checksummed are the files of a checkpoint that checksums.sha256 covers.
var checksummed = []string{stateTensors, stateJSON}

// writeChecksums writes checksums.sha256 for the files of the checkpoint
// directory dir, as read back from disk.
func writeChecksums(dir string) error {
	var b strings.Builder
	for _, name := range checksummed {
		sum, err := fileSHA256(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s  %s\n", sum, name)
	}
	return atomicfile.WriteBytes(filepath.Join(dir, checksumsFile), []byte(b.String()))
}

// verifyChecksums checks the files of the checkpoint directory dir against
// its checksums.sha256. It reports false, and no error, for a checkpoint
// written before checksums were recorded.
func verifyChecksums(dir string) (bool, error) {
	path := filepath.Join(dir, checksumsFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(dir, stateJSON)); err != nil {
			return false, fmt.Errorf("trainer: checkpoint: %w", err)
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("trainer: checkpoint: %w", err)
	}
	corrupt := func(what string) error {
		return fmt.Errorf("trainer: checkpoint %s: %s; the checkpoint is corrupt: delete %s to resume from the previous checkpoint", dir, what, dir)
	}
	want := map[string]string{}
	for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok || len(sum) != 2*sha256.Size {
			return false, corrupt(fmt.Sprintf("%s line %d is not \"<sha256>  <file>\"", checksumsFile, i+1))
		}
		want[name] = sum
	}
	for _, name := range checksummed {
		sum, ok := want[name]
		if !ok {
			return false, corrupt(fmt.Sprintf("%s has no checksum of %s", checksumsFile, name))
		}
		got, err := fileSHA256(filepath.Join(dir, name))
		if err != nil {
			return false, fmt.Errorf("trainer: checkpoint: %w", err)
		}
		if got != sum {
			return false, corrupt(fmt.Sprintf("checksum mismatch in %s (SHA-256 %s, recorded %s)", name, got, sum))
		}
	}
	return true, nil
}

// fileSHA256 is the hex SHA-256 of the file at path.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// latestCheckpoint returns the directory of the newest complete checkpoint
// of a run, or "" when there is none. When the checkpoint named in latest
// was deleted (a corrupt one, say), the newest remaining one is used.
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
	if _, err := os.Stat(filepath.Join(root, name)); errors.Is(err, fs.ErrNotExist) {
		return newestCheckpoint(root)
	}
	return filepath.Join(root, name), nil
}

// newestCheckpoint is the checkpoint directory in root with the highest
// step, or "" when there is none. Renamed into place whole, each is
// complete.
func newestCheckpoint(root string) (string, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return "", fmt.Errorf("trainer: %w", err)
	}
	newest := ""
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), "step-") && e.Name() > newest {
			newest = e.Name()
		}
	}
	if newest == "" {
		return "", nil
	}
	return filepath.Join(root, newest), nil
}

// readCheckpointState checks the files of a checkpoint directory against
// their checksums and returns its state. A checkpoint without checksums
// (written by an older version) is accepted after a warning through logf.
func readCheckpointState(dir string, logf func(string, ...any)) (TrainState, error) {
	var st TrainState
	verified, err := verifyChecksums(dir)
	if err != nil {
		return st, err
	}
	if !verified {
		logf("warning: checkpoint %s has no %s (written by an older version); its files cannot be checked", dir, checksumsFile)
	}
	js, err := os.ReadFile(filepath.Join(dir, stateJSON))
	if err != nil {
		return st, fmt.Errorf("trainer: checkpoint: %w", err)
	}
	if err := json.Unmarshal(js, &st); err != nil {
		return st, fmt.Errorf("trainer: checkpoint %s: %w", filepath.Join(dir, stateJSON), err)
	}
	return st, nil
}

// checkLatestCheckpoint checks the latest checkpoint of runDir, if any, as
// loadCheckpoint will (checksums, and the config hash against hash), so that
// a resume that cannot work fails before the model is prepared.
func checkLatestCheckpoint(runDir, hash string) error {
	ck, err := latestCheckpoint(runDir)
	if err != nil || ck == "" {
		return err
	}
	st, err := readCheckpointState(ck, func(string, ...any) {}) // loadCheckpoint warns
	if err != nil {
		return err
	}
	return checkConfigHash(ck, st, hash)
}

// checkConfigHash is the error for a checkpoint ck of another config.
func checkConfigHash(ck string, st TrainState, hash string) error {
	if st.ConfigHash != hash {
		return fmt.Errorf("trainer: %s was written by another config (hash %s, now %s)", ck, st.ConfigHash, hash)
	}
	return nil
}

// loadCheckpoint restores params and opt (values copied into the existing
// slices) from a checkpoint directory and returns its state, after checking
// the files against their checksums (see readCheckpointState).
func loadCheckpoint(dir string, params []Param, opt *AdamW, logf func(string, ...any)) (TrainState, error) {
	st, err := readCheckpointState(dir, logf)
	if err != nil {
		return st, err
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
