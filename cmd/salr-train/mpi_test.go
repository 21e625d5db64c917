package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/salr-go/salr/adapters"
	"github.com/salr-go/salr/cmd/internal/cli"
	"github.com/salr-go/salr/cmd/internal/cli/clitest"
	"github.com/salr-go/salr/datasets/assets"
	"github.com/salr-go/salr/internal/mpi"
)

// mpiTolerance bounds the adapters' difference between 1 and 2 ranks after
// 10 quickstart steps, relative to the largest adapter value: the ranks sum
// the same gradients in another order (float32), nothing else differs.
const mpiTolerance = 1e-4

// TestMPIRanks trains the quickstart for 10 steps in this process and as 2
// ranks under mpirun (this test binary, running main), and compares the
// adapters and losses; then checks that a batch that does not split and a
// rank that fails alone end the job with a clear error, not a hang. It
// needs a build with the tag mpi and mpirun on PATH.
func TestMPIRanks(t *testing.T) {
	clitest.Child("salr-train", main) // a rank started by mpirun
	if !mpi.Enabled {
		t.Skip("built without MPI: run go test -tags mpi ./cmd/salr-train -run TestMPIRanks")
	}
	mpirun, err := exec.LookPath("mpirun")
	if err != nil {
		t.Skip("mpirun is not on PATH (apt-get install openmpi-bin)")
	}
	assets.ForTest(t)
	dir := t.TempDir()
	sets := []string{"train.max_steps=10", "train.eval_every=0"}
	one, two := filepath.Join(dir, "one"), filepath.Join(dir, "two")
	o := options{ConfigFlags: cli.ConfigFlags{Path: "quickstart.toml", Sets: append(cli.StringList{"output.dir=" + one}, sets...)}, quiet: true}
	if err := run(context.Background(), o, nil, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	args := []string{"-config", "quickstart.toml", "-quiet", "-set", "output.dir=" + two}
	for _, s := range sets {
		args = append(args, "-set", s)
	}
	if code, out := runMPI(t, mpirun, 2, args); code != 0 {
		t.Fatalf("mpirun -np 2: exit %d\n%s", code, out)
	}
	a := readAdapters(t, one)
	b := readAdapters(t, two)
	var maxAbs, maxDiff float64
	for name, fa := range a {
		fb, ok := b[name]
		if !ok || len(fa.A) != len(fb.A) || len(fa.B) != len(fb.B) {
			t.Fatalf("%s: the 2-rank run's adapter differs in shape", name)
		}
		for _, pair := range [][2][]float32{{fa.A, fb.A}, {fa.B, fb.B}} {
			for i, x := range pair[0] {
				maxAbs = max(maxAbs, math.Abs(float64(x)))
				maxDiff = max(maxDiff, math.Abs(float64(x-pair[1][i])))
			}
		}
	}
	t.Logf("adapters after 10 steps, 1 vs 2 ranks: max |difference| %.3g, max |value| %.3g", maxDiff, maxAbs)
	if len(a) != len(b) || maxDiff > mpiTolerance*maxAbs {
		t.Errorf("1 vs 2 ranks: %d vs %d adapters, max difference %g > %g·%g", len(a), len(b), maxDiff, mpiTolerance, maxAbs)
	}
	la, lb := readLosses(t, one), readLosses(t, two)
	if len(la) != 10 || len(lb) != 10 {
		t.Fatalf("losses: %d and %d steps logged", len(la), len(lb))
	}
	for i := range la {
		if math.Abs(la[i]-lb[i]) > 1e-5*math.Abs(la[i]) {
			t.Errorf("step %d: loss %v with 1 rank, %v with 2", i+1, la[i], lb[i])
		}
	}

	// A global batch of 3 does not split across 2 ranks.
	bad := append(args[:len(args):len(args)], "-set", "train.batch_size=3", "-set", "output.dir="+filepath.Join(dir, "odd"))
	if code, out := runMPI(t, mpirun, 2, bad); code == 0 || !strings.Contains(out, "train.batch_size 3 is not divisible by the 2 ranks") {
		t.Errorf("batch_size 3 on 2 ranks: exit %d\n%s", code, out)
	}

	// Rank 1 alone fails (its training file is missing) while rank 0 goes
	// on to its first allreduce: rank 1 aborts the job, rank 0 does not
	// wait for ever.
	good := append(args[:len(args):len(args)], "-set", "output.dir="+filepath.Join(dir, "fail"))
	broken := append(good[:len(good):len(good)], "-set", "data.train_path="+filepath.Join(dir, "missing.jsonl"))
	code, out := runRanks(t, mpirun, [][]string{good, broken})
	if code == 0 || !strings.Contains(out, "rank 1 of 2") || !strings.Contains(out, "missing.jsonl") {
		t.Errorf("a failing rank 1: exit %d\n%s", code, out)
	}
}

// runMPI runs main as np ranks with args and returns the exit status and
// the combined output.
func runMPI(t *testing.T, mpirun string, np int, args []string) (int, string) {
	t.Helper()
	apps := make([][]string, np)
	for i := range apps {
		apps[i] = args
	}
	return runRanks(t, mpirun, apps)
}

// runRanks runs main as one rank for each of apps (its arguments; an MPMD
// launch, "mpirun -np 1 ... : -np 1 ..."). A job that does not end in 3
// minutes fails the test (a hang).
func runRanks(t *testing.T, mpirun string, apps [][]string) (int, string) {
	t.Helper()
	cmdArgs := []string{"--allow-run-as-root", "--oversubscribe"}
	for i, args := range apps {
		enc, err := json.Marshal(args)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			cmdArgs = append(cmdArgs, ":")
		}
		cmdArgs = append(cmdArgs, "-np", "1", "-x", "SALR_ASSETS", "-x", "SALR_CLITEST_ARGS="+string(enc), os.Args[0], "-test.run=^TestMPIRanks$")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, mpirun, cmdArgs...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("mpirun %q did not end in 3 minutes (a hang):\n%s", apps, out.String())
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String()
	}
	t.Fatal(err)
	return 0, ""
}

func readAdapters(t *testing.T, run string) map[string]*adapters.Fused {
	t.Helper()
	m, err := adapters.ReadNative(filepath.Join(run, "adapter", "salr_adapters.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func readLosses(t *testing.T, run string) []float64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(run, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var out []float64
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m struct{ Loss float64 }
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m.Loss)
	}
	return out
}
