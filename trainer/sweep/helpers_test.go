package sweep

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/salr-go/salr/datasets/assets"
)

// The test binary doubles as the processes a sweep starts: with
// testModeEnv=worker it is a salr-sweep worker (-config F [-set S]... -index
// I -threads K), with testModeEnv=local a salr-sweep parent running a
// sweep locally, and with testModeEnv=expand it prints a sweep's expansion.
const testModeEnv = "SALR_SWEEP_TEST_MODE"

// workerPIDFile is written by a test worker into its run directory, so that
// tests can kill it.
const workerPIDFile = "worker.pid"

func TestMain(m *testing.M) {
	switch os.Getenv(testModeEnv) {
	case "worker":
		os.Exit(testWorker(os.Args[1:]))
	case "local":
		os.Exit(testLocal(os.Args[1:]))
	case "expand":
		os.Exit(testExpand(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// sweepFlags reads "-config F -set S ... [-index I -threads K]".
func sweepFlags(args []string) (s *Sweep, runs []Run, index int, err error) {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	config := fs.String("config", "", "")
	var sets []string
	fs.Func("set", "", func(v string) error { sets = append(sets, v); return nil })
	idx := fs.Int("index", -1, "")
	fs.Int("threads", 0, "")
	if err := fs.Parse(args); err != nil {
		return nil, nil, 0, err
	}
	if s, err = Load(*config, sets); err != nil {
		return nil, nil, 0, err
	}
	runs, err = s.Expand()
	return s, runs, *idx, err
}

func testWorker(args []string) int {
	_, runs, i, err := sweepFlags(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	r := runs[i]
	os.MkdirAll(r.Dir, 0o755)
	os.WriteFile(filepath.Join(r.Dir, workerPIDFile), fmt.Appendf(nil, "%d", os.Getpid()), 0o644)
	ctx, stop := signalContext()
	defer stop()
	err = Execute(ctx, r, ExecOptions{Log: os.Stderr})
	switch {
	case errors.Is(err, ErrInterrupted):
		fmt.Fprintln(os.Stderr, "worker:", err)
		return exitInterrupted
	case err != nil:
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 1
	}
	return 0
}

func testLocal(args []string) int {
	s, runs, _, err := sweepFlags(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	os.Setenv(testModeEnv, "worker")
	exe, _ := os.Executable()
	ctx, stop := signalContext()
	defer stop()
	if _, err := RunLocal(ctx, s, runs, LocalOptions{Parallel: 1, Cores: 1, Executable: exe, Out: os.Stdout}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func testExpand(args []string) int {
	_, runs, _, err := sweepFlags(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Print(expansionText(runs))
	return 0
}

// expansionText renders runs as "index name values" lines.
func expansionText(runs []Run) string {
	var b strings.Builder
	for _, r := range runs {
		fmt.Fprintf(&b, "%d %s %s\n", r.Index, r.Name, r.Describe())
	}
	return b.String()
}

// assetsDir is the shared assets directory (assets.ForTest, which also sets
// SALR_ASSETS for the configs).
func assetsDir(t testing.TB) string { return assets.ForTest(t) }

// tinySets shrink the quickstart to a second per run.
var tinySets = []string{
	"data.seq_len=160", "data.max_examples=32", "data.eval_examples=4",
	"train.batch_size=2", "train.eval_every=0", "train.warmup_steps=1",
	"adapters.svd_rank=2", "output.save_peft=false",
}

// writeSweep writes a sweep file into dir whose runs go under dir/out and
// returns its path. body holds the varied tables; the fixed overrides are
// tinySets plus extra.
func writeSweep(t testing.TB, dir, name, body string, extra ...string) string {
	t.Helper()
	var sets []string
	for _, s := range append(append([]string(nil), tinySets...), extra...) {
		sets = append(sets, fmt.Sprintf("%q", s))
	}
	text := fmt.Sprintf("name = %q\nbase = \"quickstart.toml\"\nroot = %q\nset = [%s]\n\n%s\n",
		name, filepath.Join(dir, "out"), strings.Join(sets, ", "), body)
	path := filepath.Join(dir, name+".toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// mustExpand loads and expands a sweep file.
func mustExpand(t testing.TB, path string, sets ...string) (*Sweep, []Run) {
	t.Helper()
	s, err := Load(path, sets)
	if err != nil {
		t.Fatal(err)
	}
	runs, err := s.Expand()
	if err != nil {
		t.Fatal(err)
	}
	return s, runs
}

// execute runs Execute with a background context.
func execute(t testing.TB, r Run) {
	t.Helper()
	if err := Execute(context.Background(), r, ExecOptions{}); err != nil {
		t.Fatalf("run %d: %v", r.Index, err)
	}
}
