package sweep

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/trainer"
)

// TestExecuteRunsExactlyThatRun executes run 1 of three (max_steps 0: the
// run directory is written without training) and checks that only its
// directory exists, with the run's config, and that executing it again
// leaves it alone.
func TestExecuteRunsExactlyThatRun(t *testing.T) {
	assetsDir(t)
	dir := t.TempDir()
	s, runs := mustExpand(t, writeSweep(t, dir, "one", "[grid]\nmethod = [\"lora\", \"prune-lora\", \"salr\"]\n", "train.max_steps=0"))
	if got := StateOf(runs[1]); got.Phase != PhasePending {
		t.Fatalf("state before: %v", got)
	}
	execute(t, runs[1])
	entries, err := os.ReadDir(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != runs[1].Name {
		t.Fatalf("sweep directory holds %v, want only %s", entries, runs[1].Name)
	}
	sum, err := trainer.ReadSummary(runs[1].Dir)
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Finished || sum.Method != "prune-lora" || sum.ConfigHash != runs[1].Hash {
		t.Errorf("summary %+v, want a finished prune-lora run with hash %s", sum, runs[1].Hash)
	}
	cfg, err := configs.Load(filepath.Join(runs[1].Dir, trainer.ConfigFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Hash() != runs[1].Hash || cfg.Output.Dir != runs[1].Dir {
		t.Errorf("config.toml has hash %s and output.dir %s", cfg.Hash(), cfg.Output.Dir)
	}
	if got := StateOf(runs[1]); got.Phase != PhaseFinished {
		t.Errorf("state after: %v", got)
	}
	// A finished run is not executed again.
	info, _ := os.Stat(filepath.Join(runs[1].Dir, trainer.SummaryFile))
	execute(t, runs[1])
	again, _ := os.Stat(filepath.Join(runs[1].Dir, trainer.SummaryFile))
	if !again.ModTime().Equal(info.ModTime()) {
		t.Error("executing a finished run rewrote its summary")
	}
	// A directory holding another config is refused.
	other := runs[0]
	other.Dir = runs[1].Dir
	if err := Execute(context.Background(), other, ExecOptions{}); err == nil || !strings.Contains(err.Error(), "holds another config") {
		t.Errorf("executing run 0 in run 1's directory: %v", err)
	}
}

// TestEvalAndCollect runs a sweep whose runs are evaluated on GSM8K after
// training and checks eval/results.json, the results table, its CSV and the plot.
func TestEvalAndCollect(t *testing.T) {
	assetsDir(t)
	dir := t.TempDir()
	path := writeSweep(t, dir, "ev", `[objective]
metric = "eval_loss"
[eval]
task = "gsm8k"
shots = 0
limit = 2
max_new_tokens = 4
batch = 2
[grid]
"sparsity.ratio" = [0.3, 0.5]
method = ["prune-lora", "salr"]
`, "train.max_steps=1")
	s, runs := mustExpand(t, path)
	for _, r := range runs[:3] {
		execute(t, r)
	}
	// Run 3 stays pending; run 2 is trained but not yet evaluated.
	if err := os.Remove(filepath.Join(runs[2].Dir, EvalFile)); err != nil {
		t.Fatal(err)
	}
	if got := StateOf(runs[2]); got.Phase != PhaseTrained {
		t.Fatalf("run 2 state %v, want trained", got)
	}
	if err := WriteManifest(s, runs); err != nil {
		t.Fatal(err)
	}
	res, written, err := WriteResults(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 4 || filepath.Base(written[3]) != CurvesPlot {
		t.Errorf("wrote %v, want the CSV, the Markdown, the objective plot and the loss curves", written)
	}
	if len(res.Rows) != 4 {
		t.Fatalf("%d rows", len(res.Rows))
	}
	for i, want := range []string{"finished", "finished", "trained, eval pending", "pending"} {
		if got := res.Rows[i].State.String(); got != want {
			t.Errorf("row %d state %q, want %q", i, got, want)
		}
	}
	const em = "eval.exact_match,strict-match"
	for i := range 2 {
		sum, _ := trainer.ReadSummary(runs[i].Dir)
		if got := res.Rows[i].Metrics["eval_loss"]; got != sum.EvalLoss {
			t.Errorf("row %d eval_loss %v, summary %v", i, got, sum.EvalLoss)
		}
		if v, ok := res.Rows[i].Metrics[em]; !ok || v != 0 {
			t.Errorf("row %d %s = %v (%v), want 0 (a 260K model solves no GSM8K problem)", i, em, v, ok)
		}
	}
	// The best run is the finished one with the lowest eval_loss.
	best := 0
	if res.Rows[1].Metrics["eval_loss"] < res.Rows[0].Metrics["eval_loss"] {
		best = 1
	}
	if res.Best != best {
		t.Errorf("best row %d, want %d", res.Best, best)
	}
	md := res.Markdown()
	if !strings.Contains(md, "| run | sparsity.ratio | method | state | eval_loss |") ||
		!strings.Contains(md, "**"+formatMetric(res.Rows[best].Metrics["eval_loss"])+"**") ||
		!strings.Contains(md, "Best: run "+strconv.Itoa(best)) {
		t.Errorf("markdown:\n%s", md)
	}
	f, err := os.Open(filepath.Join(s.Dir(), ResultsCSV))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	header := recs[0]
	col := func(name string) int {
		for i, h := range header {
			if h == name {
				return i
			}
		}
		t.Fatalf("CSV has no column %q: %q", name, header)
		return -1
	}
	if len(recs) != 5 || recs[1][col("method")] != "prune-lora" || recs[2][col("sparsity.ratio")] != "0.3" ||
		recs[4][col("eval_loss")] != "" || recs[1][col("dir")] != runs[0].Name {
		t.Errorf("CSV:\n%q", recs)
	}
	if v, _ := strconv.ParseFloat(recs[1][col("eval_loss")], 64); v != res.Rows[0].Metrics["eval_loss"] {
		t.Errorf("CSV eval_loss %s, want full precision %v", recs[1][col("eval_loss")], res.Rows[0].Metrics["eval_loss"])
	}
	png, err := os.ReadFile(filepath.Join(s.Dir(), ObjectivePlot))
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("objective.png: %v", err)
	}
}

// TestKilledSweepResumes runs a sweep in a separate salr-sweep parent
// process and kills it twice while run 1 trains: first the parent alone
// with SIGKILL (its worker gets SIGTERM from the kernel and checkpoints),
// then the parent and the worker with SIGKILL (the run resumes from its
// last periodic checkpoint). A final local sweep must skip run 0, resume
// run 1 and run run 2, each run's log showing how often it was started.
func TestKilledSweepResumes(t *testing.T) {
	assetsDir(t)
	dir := t.TempDir()
	path := writeSweep(t, dir, "kill", `[[runs]]
"train.max_steps" = 1
[[runs]]
"train.max_steps" = 40
[[runs]]
"train.max_steps" = 1
`, "train.checkpoint_every=1", "train.batch_size=1")
	s, runs := mustExpand(t, path)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var parentOut bytes.Buffer
	var parentDone chan struct{}
	startParent := func() *os.Process {
		cmd := exec.Command(exe, "-config", path)
		cmd.Env = append(os.Environ(), testModeEnv+"=local")
		cmd.Stdout, cmd.Stderr = &parentOut, &parentOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		t.Cleanup(func() { cmd.Process.Kill(); <-done })
		parentDone = done
		return cmd.Process
	}
	killParent := func(p *os.Process) {
		p.Kill()
		<-parentDone
		parentDone = nil
	}
	run1 := runs[1]
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(40 * time.Second)
		for !cond() {
			select {
			case <-parentDone:
				t.Fatalf("the sweep ended while waiting for %s:\n%s", what, parentOut.String())
			default:
			}
			if time.Now().After(deadline) {
				log, _ := os.ReadFile(filepath.Join(run1.Dir, LogFile))
				t.Fatalf("timed out waiting for %s; sweep output:\n%s\nrun 1 log:\n%s", what, parentOut.String(), log)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	workerPID := func() int {
		b, _ := os.ReadFile(filepath.Join(run1.Dir, workerPIDFile))
		pid, _ := strconv.Atoi(string(b))
		return pid
	}
	alive := func(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil && !isZombie(pid) }

	// 1. Kill the parent while run 1 trains: the worker checkpoints and stops.
	parent := startParent()
	waitFor("run 1 to checkpoint", func() bool { return StateOf(run1).Phase == PhaseInterrupted })
	pid := workerPID()
	killParent(parent)
	waitFor("the orphaned worker to stop", func() bool { return !alive(pid) })
	if !trainer.IsFinished(runs[0].Dir) || StateOf(runs[2]).Phase != PhasePending {
		t.Fatalf("after the first kill: run 0 %v, run 2 %v", StateOf(runs[0]), StateOf(runs[2]))
	}
	first := StateOf(run1)
	if first.Phase != PhaseInterrupted || first.Step >= 40 {
		t.Fatalf("run 1 after the first kill: %v", first)
	}
	sum0, _ := os.Stat(filepath.Join(runs[0].Dir, trainer.SummaryFile))

	// 2. Kill parent and worker hard once run 1 has moved on.
	parent = startParent()
	waitFor("run 1 to resume and checkpoint again", func() bool {
		st := StateOf(run1)
		return workerPID() != pid && st.Phase == PhaseInterrupted && st.Step > first.Step
	})
	pid = workerPID()
	syscall.Kill(pid, syscall.SIGKILL)
	killParent(parent)
	waitFor("the killed worker to disappear", func() bool { return !alive(pid) })
	second := StateOf(run1)
	if second.Phase != PhaseInterrupted && second.Phase != PhaseFinished {
		t.Fatalf("run 1 after the second kill: %v", second)
	}

	// 3. Finish the sweep here.
	t.Setenv(testModeEnv, "worker")
	var out bytes.Buffer
	res, err := RunLocal(context.Background(), s, runs, LocalOptions{Parallel: 2, Cores: 2, Executable: exe, Out: &out})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if res.Skipped != 1 || res.Finished != 2 {
		t.Errorf("result %+v, want run 0 skipped and runs 1 and 2 finished\n%s", res, out.String())
	}
	again, _ := os.Stat(filepath.Join(runs[0].Dir, trainer.SummaryFile))
	if !again.ModTime().Equal(sum0.ModTime()) {
		t.Error("run 0 was executed again")
	}
	for i, want := range []int{1, 3, 1} {
		log, _ := os.ReadFile(filepath.Join(runs[i].Dir, LogFile))
		if got := strings.Count(string(log), "=== "); got != want {
			t.Errorf("run %d was started %d times, want %d:\n%s", i, got, want, log)
		}
		if i == 1 && strings.Count(string(log), "resuming") != 2 {
			t.Errorf("run 1 did not resume from its checkpoints twice:\n%s", log)
		}
	}
	sum, err := trainer.ReadSummary(run1.Dir)
	if err != nil || !sum.Finished || sum.Steps != 40 {
		t.Fatalf("run 1 summary %+v, %v", sum, err)
	}
	// The resumed run logged every step once.
	metrics, _ := os.ReadFile(filepath.Join(run1.Dir, trainer.MetricsFile))
	if n := strings.Count(string(metrics), "\n"); n != 40 {
		t.Errorf("metrics.jsonl of run 1 has %d lines, want 40", n)
	}
	if !strings.Contains(out.String(), "1 finished before") {
		t.Errorf("parent output:\n%s", out.String())
	}
}

// isZombie reports whether pid has exited but not been reaped (its parent,
// killed, has not been replaced by a reaper yet).
func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(fields) > 0 && fields[0] == "Z"
}

// TestRunLocalReportsFailures makes one run fail (its data file is missing)
// and checks that the others still run and the error names the failed run.
func TestRunLocalReportsFailures(t *testing.T) {
	assetsDir(t)
	dir := t.TempDir()
	path := writeSweep(t, dir, "fail", `[[runs]]
[[runs]]
"data.train_path" = "`+filepath.Join(dir, "missing.jsonl")+`"
[[runs]]
`, "train.max_steps=0")
	s, runs := mustExpand(t, path)
	exe, _ := os.Executable()
	t.Setenv(testModeEnv, "worker")
	var out bytes.Buffer
	res, err := RunLocal(context.Background(), s, runs, LocalOptions{Parallel: 2, Executable: exe, Out: &out})
	if err == nil || errors.Is(err, ErrInterrupted) || !strings.Contains(err.Error(), "runs 1)") {
		t.Fatalf("error %v\n%s", err, out.String())
	}
	if res.Finished != 2 || res.Failed != 1 || len(res.FailedRuns) != 1 || res.FailedRuns[0] != 1 {
		t.Errorf("result %+v", res)
	}
	log, _ := os.ReadFile(filepath.Join(runs[1].Dir, LogFile))
	if !strings.Contains(string(log), "missing.jsonl") {
		t.Errorf("run 1's log does not say what failed:\n%s", log)
	}
	if !strings.Contains(out.String(), "FAILED") {
		t.Errorf("parent output:\n%s", out.String())
	}
}
