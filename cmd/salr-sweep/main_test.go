package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/salr-go/salr/cmd/internal/cli"
	"github.com/salr-go/salr/datasets/assets"

	"github.com/salr-go/salr/trainer"
)

// setAssets points SALR_ASSETS at the shared assets or skips the test.
func setAssets(t *testing.T) { assets.ForTest(t) }

func TestParseArgsRejectsBadUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-config", "a.toml", "-collect", "dir"},
		{"-config", "a.toml", "-dry-run", "-index", "1"},
		{"-config", "a.toml", "-emit", "pbs"},
		{"-config", "a.toml", "-parallel", "0"},
		{"-config", "a.toml", "extra"},
		{"-config", "a.toml", "-emit", "slurm", "-ranks", "0"},
		{"-config", "a.toml", "-emit", "slurm", "-ranks", "2", "-ranks-per-node", "-1"},
		{"-config", "a.toml", "-ranks", "2"},
		{"-config", "a.toml", "-emit", "k8s", "-ranks", "2", "-parallel", "2"},
	} {
		_, err := parseArgs(args, io.Discard)
		if !cli.IsUsage(err) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}

// TestCommands runs the modes of salr-sweep on a three-run sweep whose runs
// do not train (max_steps 0): -dry-run, -index, -emit and -collect.
func TestCommands(t *testing.T) {
	setAssets(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "cmd.toml")
	text := fmt.Sprintf(`name = "cmd"
base = "quickstart"
root = %q
set = ["train.max_steps=0", "data.seq_len=160", "data.max_examples=16", "data.eval_examples=2"]
[grid]
method = ["lora", "prune-lora", "salr"]
`, dir)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	do := func(args ...string) string {
		t.Helper()
		o, err := parseArgs(args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		var out, log bytes.Buffer
		if err := run(context.Background(), o, &out, &log); err != nil {
			t.Fatalf("%q: %v\n%s", args, err, log.String())
		}
		return out.String() + log.String()
	}
	out := do("-config", path, "-dry-run")
	if n := strings.Count(out, "pending"); n != 3 || !strings.Contains(out, "method=prune-lora") {
		t.Errorf("-dry-run:\n%s", out)
	}
	do("-config", path, "-index", "2", "-threads", "1")
	entries, _ := os.ReadDir(filepath.Join(dir, "cmd"))
	var runDirs []string
	for _, e := range entries {
		if e.IsDir() {
			runDirs = append(runDirs, e.Name())
		}
	}
	if len(runDirs) != 1 || !strings.HasPrefix(runDirs[0], "2-") {
		t.Fatalf("after -index 2 the sweep directory holds %v", runDirs)
	}
	if sum, err := trainer.ReadSummary(filepath.Join(dir, "cmd", runDirs[0])); err != nil || sum.Method != "salr" {
		t.Errorf("run 2: %+v, %v", sum, err)
	}
	if out := do("-config", path, "-dry-run"); strings.Count(out, "pending") != 2 || strings.Count(out, "finished") != 1 {
		t.Errorf("-dry-run after -index 2:\n%s", out)
	}
	out = do("-config", path, "-emit", "slurm", "-parallel", "2")
	script, err := os.ReadFile(filepath.Join(dir, "cmd", "sweep.sbatch"))
	if err != nil || !strings.Contains(string(script), "#SBATCH --array=0-2%2") || !strings.Contains(out, "sbatch ") {
		t.Errorf("-emit slurm: %v\n%s\n%s", err, out, script)
	}
	out = do("-collect", path)
	if !strings.Contains(out, "| 2 | salr | finished |") || !strings.Contains(out, "| 0 | lora | pending |") {
		t.Errorf("-collect:\n%s", out)
	}
	for _, f := range []string{"results.csv", "results.md", "objective.png"} {
		if _, err := os.Stat(filepath.Join(dir, "cmd", f)); err != nil {
			t.Errorf("-collect did not write %s", f)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "cmd", "loss_curves.png")); err == nil {
		t.Error("-collect drew loss curves of runs that logged no step")
	}
	// -curves of two runs' metrics.jsonl.
	png := filepath.Join(dir, "two.png")
	run2 := filepath.Join(dir, "cmd", runDirs[0])
	if err := os.WriteFile(filepath.Join(run2, trainer.MetricsFile), []byte(`{"step":1,"loss":3}`+"\n"+`{"step":2,"loss":2}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out = do("-curves", run2+","+run2, "-labels", "a,b", "-out", png)
	if b, err := os.ReadFile(png); err != nil || !strings.HasPrefix(string(b), "\x89PNG") || !strings.Contains(out, "wrote "+png) {
		t.Errorf("-curves: %v\n%s", err, out)
	}
	if _, err := parseArgs([]string{"-curves", run2, "-labels", "a,b"}, io.Discard); err != nil {
		t.Fatal(err)
	} else if err := run(context.Background(), options{curves: run2, labels: "a,b"}, io.Discard, io.Discard); err == nil {
		t.Error("-curves with 2 labels for 1 run accepted")
	}
}

// TestEmitRanksFailsBeforeWriting checks that -emit with -ranks not dividing
// a run's batch size fails naming the flag and the run, and writes nothing;
// with a rank count that divides it the script runs srun --mpi=pmix.
func TestEmitRanksFailsBeforeWriting(t *testing.T) {
	setAssets(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "mpi.toml")
	text := fmt.Sprintf(`name = "mpi"
base = "quickstart"
root = %q
[grid]
"train.batch_size" = [8, 4]
`, dir)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, emit := range []string{"slurm", "k8s"} {
		o, err := parseArgs([]string{"-config", path, "-emit", emit, "-ranks", "8", "-image", "img", "-pvc", "claim"}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		err = run(context.Background(), o, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "-ranks 8") || !strings.Contains(err.Error(), "run 1") {
			t.Errorf("-emit %s -ranks 8: %v, want an error naming -ranks 8 and run 1", emit, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "mpi")); !os.IsNotExist(err) {
			t.Fatalf("-emit %s -ranks 8 wrote the sweep directory (%v)", emit, err)
		}
	}
	o, err := parseArgs([]string{"-config", path, "-emit", "slurm", "-ranks", "4", "-ranks-per-node", "2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), o, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(filepath.Join(dir, "mpi", "sweep.sbatch"))
	if err != nil || !strings.Contains(string(script), "#SBATCH --ntasks=4\n") ||
		!strings.Contains(string(script), "exec srun --mpi=pmix ") {
		t.Errorf("-emit slurm -ranks 4: %v\n%s", err, script)
	}
}
