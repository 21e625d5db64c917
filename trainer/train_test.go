package trainer

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/salr-go/salr/datasets/assets"
	"github.com/salr-go/salr/kernels/bitmap"

	"github.com/salr-go/salr/adapters"
	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/datasets"
	"github.com/salr-go/salr/model"
)

// assetsDir is the shared assets directory (assets.ForTest).
func assetsDir(t testing.TB) string { return assets.ForTest(t) }

// tinyConfig is the quickstart shrunk to seconds: short sequences, few
// steps, a small held-out set.
func tinyConfig(t testing.TB, outDir string, sets ...string) *configs.Config {
	t.Helper()
	t.Setenv("SALR_ASSETS", assetsDir(t))
	base := []string{
		"output.dir=" + outDir,
		"data.seq_len=160", "data.max_examples=64", "data.eval_examples=8",
		"train.batch_size=4", "train.max_steps=8", "train.eval_every=0",
		"train.checkpoint_every=2", "train.warmup_steps=2",
		"adapters.lora_rank=4", "adapters.svd_rank=4",
	}
	cfg, err := configs.Load("quickstart.toml", append(base, sets...))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestTrainWritesAFinishedRunAndLearns(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	cfg := tinyConfig(t, dir, "train.max_steps=12", "train.lr=3e-3", "output.base_format=dense-f32")
	sum, err := Train(context.Background(), Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Finished || !IsFinished(dir) {
		t.Fatal("summary does not say finished")
	}
	if !(sum.EvalLoss < sum.InitialEvalLoss) {
		t.Errorf("held-out loss did not fall: %.4f -> %.4f", sum.InitialEvalLoss, sum.EvalLoss)
	}
	if sum.Sparsity != 0.5 || sum.TrainableParams == 0 {
		t.Errorf("summary %+v", sum)
	}
	if onDisk, err := ReadSummary(dir); err != nil || onDisk.Paths != bitmap.CurrentPaths() || onDisk.BLASCore == "" {
		t.Errorf("summary.json paths %+v (%v), want %+v", onDisk, err, bitmap.CurrentPaths())
	}
	for _, f := range []string{ConfigFile, MetricsFile, SummaryFile, LossPlot,
		filepath.Join(AdapterDir, adapters.PEFTConfigFile), filepath.Join(AdapterDir, adapters.PEFTWeightsFile),
		filepath.Join(AdapterDir, adapters.NativeFile), filepath.Join(BaseDir, "config.json"),
		filepath.Join(BaseDir, "model.safetensors"), filepath.Join(BaseDir, "tokenizer.json")} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("run directory lacks %s", f)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, MetricsFile))
	if n := strings.Count(string(b), "\n"); n != 12 {
		t.Errorf("metrics.jsonl has %d lines, want 12", n)
	}
	// The exported run (an F32 base) evaluates like the trained model in
	// memory: the held-out loss through OpenRun equals the summary's.
	checkRunEvalLoss(t, dir, cfg, sum.EvalLoss, 1e-4)
	// A finished run is never overwritten silently.
	if _, err := Train(context.Background(), Options{Config: cfg}); err == nil || !strings.Contains(err.Error(), "finished") {
		t.Errorf("second run into a finished directory: %v", err)
	}
}

// TestResumeIsBitIdentical interrupts a run (a clean stop, then a SIGKILL of
// a child process mid-run), resumes it, and compares the final adapter files
// byte for byte with an uninterrupted run.
func TestResumeIsBitIdentical(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three small runs")
	}
	root := t.TempDir()
	sets := []string{"train.max_steps=10", "adapters.lora_dropout=0.1", "train.grad_accum=2"}
	ref := filepath.Join(root, "ref")
	if _, err := Train(context.Background(), Options{Config: tinyConfig(t, ref, sets...)}); err != nil {
		t.Fatal(err)
	}

	// A run stopped after 3 steps (checkpoint written on the way out), then resumed.
	stopped := filepath.Join(root, "stopped")
	_, err := Train(context.Background(), Options{Config: tinyConfig(t, stopped, sets...), StopAfter: 3})
	if err != ErrInterrupted {
		t.Fatalf("stop: %v", err)
	}
	if IsFinished(stopped) {
		t.Fatal("an interrupted run looks finished")
	}
	resumed, err := Train(context.Background(), Options{Resume: stopped})
	if err != nil {
		t.Fatal(err)
	}
	sameAdapters(t, ref, stopped)
	if refSum, _ := ReadSummary(ref); resumed.InitialEvalLoss != refSum.InitialEvalLoss || resumed.EvalLoss != refSum.EvalLoss {
		t.Errorf("resumed summary: held-out loss %v -> %v, uninterrupted %v -> %v", resumed.InitialEvalLoss, resumed.EvalLoss, refSum.InitialEvalLoss, refSum.EvalLoss)
	}

	// A child process killed with SIGKILL after its second checkpoint.
	killed := filepath.Join(root, "killed")
	cmd := exec.Command(os.Args[0], "-test.run=^TestTrainChild$")
	cmd.Env = append(os.Environ(), "SALR_TRAIN_CHILD="+killed, "SALR_TRAIN_CHILD_SETS="+strings.Join(sets, ";"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if ck, _ := latestCheckpoint(killed); strings.HasSuffix(ck, "step-0000004") {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("child made no checkpoint at step 4:\n%s", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if IsFinished(killed) {
		t.Skip("the child finished before it could be killed")
	}
	if _, err := Train(context.Background(), Options{Resume: killed}); err != nil {
		t.Fatal(err)
	}
	sameAdapters(t, ref, killed)
}

// TestTrainChild is the child process of TestResumeIsBitIdentical.
func TestTrainChild(t *testing.T) {
	dir := os.Getenv("SALR_TRAIN_CHILD")
	if dir == "" {
		t.Skip("only runs as a child process")
	}
	sets := strings.Split(os.Getenv("SALR_TRAIN_CHILD_SETS"), ";")
	if _, err := Train(context.Background(), Options{Config: tinyConfig(t, dir, sets...)}); err != nil {
		t.Fatal(err)
	}
}

func sameAdapters(t *testing.T, a, b string) {
	t.Helper()
	for _, f := range []string{adapters.NativeFile, adapters.PEFTWeightsFile} {
		x, err1 := os.ReadFile(filepath.Join(a, AdapterDir, f))
		y, err2 := os.ReadFile(filepath.Join(b, AdapterDir, f))
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between %s and %s", f, a, b)
		}
	}
}

func TestTrainErrorsLeaveNoFinishedRun(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "missing-data")
	cfg := tinyConfig(t, dir, fmt.Sprintf("data.train_path=%s", filepath.Join(root, "nope.jsonl")))
	if _, err := Train(context.Background(), Options{Config: cfg}); err == nil || !strings.Contains(err.Error(), "nope.jsonl") {
		t.Fatalf("missing data file: %v", err)
	}
	if IsFinished(dir) {
		t.Fatal("a failed run looks finished")
	}
	bad := filepath.Join(root, "bad.jsonl")
	os.WriteFile(bad, []byte("{\"question\": \"q\", \"answer\": \"a\"}\n{not json\n"), 0o644)
	dir2 := filepath.Join(root, "bad-data")
	cfg = tinyConfig(t, dir2, "data.train_path="+bad)
	if _, err := Train(context.Background(), Options{Config: cfg}); err == nil || !strings.Contains(err.Error(), "bad.jsonl") {
		t.Fatalf("malformed data file: %v", err)
	}
	if IsFinished(dir2) {
		t.Fatal("a failed run looks finished")
	}
}

func TestMethodsSetUpTheRightAdapters(t *testing.T) {
	cases := []struct {
		method       string
		pruned, svd  bool
		trainable    bool
		wantAdapters int
	}{
		{"lora", false, false, true, 35},
		{"prune-lora", true, false, true, 35},
		{"salr", true, true, true, 35},
		{"prune", true, false, false, 0},
		{"prune-svd", true, true, false, 35},
	}
	for _, c := range cases {
		cfg := tinyConfig(t, t.TempDir(), "method="+c.method)
		s, err := Build(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(s.Pruned) > 0; got != c.pruned {
			t.Errorf("%s: pruned %v", c.method, got)
		}
		if len(s.Adapters) != c.wantAdapters {
			t.Errorf("%s: %d adapted projections, want %d", c.method, len(s.Adapters), c.wantAdapters)
		}
		hasSVD := false
		for _, f := range s.Adapters {
			for _, p := range f.Parts {
				hasSVD = hasSVD || p.Kind == adapters.KindSVD
			}
		}
		if hasSVD != c.svd {
			t.Errorf("%s: SVD adapter present = %v", c.method, hasSVD)
		}
		if (len(s.Trainables) > 0) != c.trainable {
			t.Errorf("%s: %d trainable tensors", c.method, len(s.Trainables))
		}
		if c.pruned && s.Sparsity != 0.5 {
			t.Errorf("%s: sparsity %v", c.method, s.Sparsity)
		}
		s.Close()
	}
}

// TestHeldOutLossReference scores the assets README's prompt: the mean NLL of
// its tokens given their prefixes is about 0.0685 nats.
func TestHeldOutLossReference(t *testing.T) {
	l, err := model.Open(filepath.Join(assetsDir(t), "stories260K", "stories260K.bin"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	seq := datasets.Sequence{Tokens: []int{1, 403, 407, 261, 378}, Loss: []bool{false, true, true, true, true}}
	other := datasets.Sequence{Tokens: []int{1, 403, 407}, Loss: []bool{false, false, false}}
	got, err := HeldOutLoss(model.NewRunner(l.Params), []datasets.Sequence{other, seq, other}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if d := got - 0.0685; d > 1e-3 || d < -1e-3 {
		t.Fatalf("held-out loss %.5f, want 0.0685 ± 1e-3", got)
	}
}

// checkRunEvalLoss checks that the exported run in dir, opened with OpenRun,
// has the held-out loss want (the summary's) within tol.
func checkRunEvalLoss(t *testing.T, dir string, cfg *configs.Config, want, tol float64) {
	t.Helper()
	l, err := OpenRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	setup, err := Build(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer setup.Close()
	got, err := HeldOutLoss(model.NewRunner(l.Params), setup.Data.Eval, 4)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got-want) > tol {
		t.Errorf("held-out loss of the exported run %s: %.6f, summary %.6f", dir, got, want)
	}
}
