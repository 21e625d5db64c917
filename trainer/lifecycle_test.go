package trainer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/salr-go/salr/adapters"
)

// holdLock takes the run directory's lock as another salr process would.
func holdLock(t *testing.T, dir string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
}

// TestOverwriteRefusesALockedRunDir: -overwrite into a directory another
// process trains into fails and deletes nothing.
func TestOverwriteRefusesALockedRunDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	os.MkdirAll(filepath.Join(dir, checkpointsDir), 0o755)
	os.WriteFile(filepath.Join(dir, MetricsFile), []byte("{\"step\":1}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, checkpointsDir, latestFile), []byte("step-0000001\n"), 0o644)
	b, _ := tinyConfig(t, dir).MarshalTOML()
	os.WriteFile(filepath.Join(dir, ConfigFile), b, 0o644)
	holdLock(t, dir)
	_, err := Train(context.Background(), Options{Config: tinyConfig(t, dir), Overwrite: true})
	if err == nil || !strings.Contains(err.Error(), "another process holds the lock") {
		t.Fatalf("-overwrite into a locked directory: %v", err)
	}
	for _, f := range []string{ConfigFile, MetricsFile, filepath.Join(checkpointsDir, latestFile)} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s was deleted: %v", f, err)
		}
	}
	if _, err := Train(context.Background(), Options{Resume: dir}); err == nil || !strings.Contains(err.Error(), "another process holds the lock") {
		t.Fatalf("-resume of a locked directory: %v", err)
	}
}

// TestNewRunDirLeavesNoLockInAForeignDirectory: refusing a non-empty
// directory that is no run directory creates nothing in it.
func TestNewRunDirLeavesNoLockInAForeignDirectory(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644)
	if _, err := Train(context.Background(), Options{Config: tinyConfig(t, dir)}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("non-empty directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, lockFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a lock file was left in a foreign directory: %v", err)
	}
}

// TestOpenRunRefusesMissingAdapters: a salr run without compressed/ whose
// adapters are gone is an error, not the bare pruned base; a prune run has
// no adapters to miss.
func TestOpenRunRefusesMissingAdapters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "salr")
	if _, err := Train(context.Background(), Options{Config: tinyConfig(t, dir, "train.max_steps=1", "output.base_format=dense-f32")}); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, AdapterDir, adapters.NativeFile))
	if l, err := OpenRun(dir); err == nil || !strings.Contains(err.Error(), `"salr"`) || !strings.Contains(err.Error(), adapters.NativeFile) {
		if l != nil {
			l.Close()
		}
		t.Fatalf("OpenRun without the adapters of a salr run: %v", err)
	}
	prune := filepath.Join(t.TempDir(), "prune")
	if _, err := Train(context.Background(), Options{Config: tinyConfig(t, prune, "method=prune", "output.base_format=dense-f32")}); err != nil {
		t.Fatal(err)
	}
	l, err := OpenRun(prune)
	if err != nil {
		t.Fatalf("OpenRun of a prune run: %v", err)
	}
	l.Close()
}

// interruptedRun makes a run stopped after four steps (checkpoints at steps
// 2 and 4) and returns its directory.
func interruptedRun(t *testing.T, sets ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "run")
	_, err := Train(context.Background(), Options{Config: tinyConfig(t, dir, sets...), StopAfter: 4})
	if err != ErrInterrupted {
		t.Fatalf("stop: %v", err)
	}
	return dir
}

// TestResumeChecksCheckpointIntegrity: a flipped bit in state.safetensors or
// an edited state.json is an error naming the file, before pruning, not a
// resumed run; deleting the checkpoint resumes from the previous one.
func TestResumeChecksCheckpointIntegrity(t *testing.T) {
	for _, c := range []struct {
		file   string
		damage func([]byte) []byte
	}{
		{stateTensors, func(b []byte) []byte { b[len(b)-2] ^= 0x40; return b }},
		{stateJSON, func(b []byte) []byte { return bytes.Replace(b, []byte(`"step": 4`), []byte(`"step": 8`), 1) }},
	} {
		dir := interruptedRun(t)
		ck, err := latestCheckpoint(dir)
		if err != nil || ck == "" {
			t.Fatal(ck, err)
		}
		path := filepath.Join(ck, c.file)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		damaged := c.damage(bytes.Clone(b))
		if bytes.Equal(damaged, b) {
			t.Fatalf("%s: the damage changed nothing", c.file)
		}
		os.WriteFile(path, damaged, 0o644)
		var log bytes.Buffer
		_, err = Train(context.Background(), Options{Resume: dir, Log: &log})
		if err == nil || !strings.Contains(err.Error(), "checksum mismatch") || !strings.Contains(err.Error(), c.file) {
			t.Errorf("resume with a damaged %s: %v", c.file, err)
		}
		if strings.Contains(log.String(), "prun") {
			t.Errorf("damaged %s: the error came after pruning:\n%s", c.file, log.String())
		}
		if IsFinished(dir) {
			t.Errorf("damaged %s: the run was marked finished", c.file)
		}
		// As the error says: delete the checkpoint to resume from the
		// previous one.
		os.RemoveAll(ck)
		log.Reset()
		if _, err := Train(context.Background(), Options{Resume: dir, Log: &log}); err != nil {
			t.Fatalf("resume after deleting the damaged checkpoint: %v", err)
		}
		if !strings.Contains(log.String(), "at step 2\n") {
			t.Errorf("did not resume from the previous checkpoint:\n%s", log.String())
		}
	}
}

// TestResumeAcceptsCheckpointsWithoutChecksums: a checkpoint of an older
// version (no checksums.sha256) resumes, with a warning.
func TestResumeAcceptsCheckpointsWithoutChecksums(t *testing.T) {
	dir := interruptedRun(t)
	ck, _ := latestCheckpoint(dir)
	if err := os.Remove(filepath.Join(ck, checksumsFile)); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	if _, err := Train(context.Background(), Options{Resume: dir, Log: &log}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "warning: checkpoint") {
		t.Errorf("no warning about the unchecked checkpoint:\n%s", log.String())
	}
}

// TestResumeRemovesStaleTemporaries: temporaries a killed process left (of
// atomicfile's naming, and temporary checkpoint directories) are removed on
// resume, and every directory of the run is 0755.
func TestResumeRemovesStaleTemporaries(t *testing.T) {
	dir := interruptedRun(t, "output.base_format=bitmap-bf16")
	stale := []string{
		".summary.json.tmp-123",
		filepath.Join(BaseDir, ".model.safetensors.tmp-456"),
		filepath.Join(CompressedDir, ".model.safetensors.tmp-789"),
		filepath.Join(AdapterDir, ".salr_adapters.safetensors.tmp-1"),
		filepath.Join(checkpointsDir, ".tmp-step-0000004-99", stateTensors),
	}
	for _, f := range stale {
		path := filepath.Join(dir, f)
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Train(context.Background(), Options{Resume: dir}); err != nil {
		t.Fatal(err)
	}
	for _, f := range stale {
		if _, err := os.Stat(filepath.Join(dir, f)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s survived the resume (%v)", f, err)
		}
	}
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if d.IsDir() {
			if st, _ := d.Info(); st.Mode().Perm() != 0o755 {
				t.Errorf("%s has mode %v, want 0755", path, st.Mode().Perm())
			}
		}
		return nil
	})
}

// TestEvalExamplesZeroTrainsWithoutHeldOutLoss: data.eval_examples = 0
// disables the held-out set: the run finishes with no held-out loss.
func TestEvalExamplesZeroTrainsWithoutHeldOutLoss(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	sum, err := Train(context.Background(), Options{Config: tinyConfig(t, dir, "data.eval_examples=0", "train.max_steps=3", "train.eval_every=1")})
	if err != nil {
		t.Fatal(err)
	}
	if sum.EvalExamples != 0 || sum.EvalLoss != 0 || sum.InitialEvalLoss != 0 || !sum.Finished || sum.HasHeldOutLoss() {
		t.Errorf("summary %+v", sum)
	}
	b, _ := os.ReadFile(filepath.Join(dir, SummaryFile))
	if bytes.Contains(b, []byte("eval_loss")) {
		t.Errorf("summary.json has a held-out loss:\n%s", b)
	}
	m, _ := os.ReadFile(filepath.Join(dir, MetricsFile))
	if bytes.Contains(m, []byte("eval_loss")) || bytes.Count(m, []byte("\n")) != 3 {
		t.Errorf("metrics.jsonl:\n%s", m)
	}
	if _, err := os.Stat(filepath.Join(dir, LossPlot)); err != nil {
		t.Error(err)
	}
}

// TestBadHeldOutSetFailsBeforePruning: a held-out set with nothing to score
// (every answer cut off by seq_len) is reported, naming the file, before the
// model is pruned.
func TestBadHeldOutSetFailsBeforePruning(t *testing.T) {
	root := t.TempDir()
	evalPath := filepath.Join(root, "long.jsonl")
	q := strings.Repeat("How many apples are there in the big basket? ", 40)
	line, _ := json.Marshal(map[string]string{"question": q, "answer": "There are 3.\n#### 3"})
	os.WriteFile(evalPath, append(append(line, '\n'), append(line, '\n')...), 0o644)
	var log bytes.Buffer
	_, err := Train(context.Background(), Options{Config: tinyConfig(t, filepath.Join(root, "run"), "data.eval_path="+evalPath), Log: &log})
	if err == nil || !strings.Contains(err.Error(), "no loss tokens") || !strings.Contains(err.Error(), evalPath) {
		t.Fatalf("held-out set without answer tokens: %v", err)
	}
	if strings.Contains(log.String(), "prun") {
		t.Errorf("the error came after pruning:\n%s", log.String())
	}
}

// TestDroppedNoAnswerIsCounted: examples whose answer is cut off entirely by
// seq_len are counted in the data line and summary.json.
func TestDroppedNoAnswerIsCounted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	var log bytes.Buffer
	sum, err := Train(context.Background(), Options{Config: tinyConfig(t, dir, "data.seq_len=112", "train.max_steps=1"), Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if sum.DroppedNoAnswer == 0 || sum.TrainExamples+sum.DroppedNoAnswer+sum.DroppedExamples != 64-8 {
		t.Errorf("%d kept, %d without answer tokens, %d dropped of 56 training examples", sum.TrainExamples, sum.DroppedNoAnswer, sum.DroppedExamples)
	}
	if s, _ := ReadSummary(dir); s.DroppedNoAnswer != sum.DroppedNoAnswer {
		t.Errorf("summary.json dropped_no_answer %d, want %d", s.DroppedNoAnswer, sum.DroppedNoAnswer)
	}
	if want := regexp.MustCompile(`data: \d+ training sequences \(\d+ truncated, \d+ dropped, (\d+) with no answer tokens left after truncation\)`); !want.MatchString(log.String()) {
		t.Errorf("data line:\n%s", log.String())
	}
}
