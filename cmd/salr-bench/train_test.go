package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/salr-go/salr/kernels/bitmap"
)

// TestMain lets the test binary act as salr-bench for the child processes
// that "salr-bench train" starts when given several methods.
func TestMain(m *testing.M) {
	if os.Getenv("SALR_BENCH_AS_MAIN") == "1" {
		os.Args = append([]string{"salr-bench"}, os.Args[1:]...)
		main()
	}
	os.Exit(m.Run())
}

// TestTrainSeveralMethods runs two methods on a tiny shape: each in its own
// child process, with one JSON result per method.
func TestTrainSeveralMethods(t *testing.T) {
	t.Setenv("SALR_BENCH_AS_MAIN", "1")
	code, out, errOut := runCmd("train", "-shape", "llama-64x2", "-batch", "1", "-seq", "8", "-steps", "1", "-warmup", "0", "-method", "lora,salr", "-json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 result lines, got:\n%s", out)
	}
	for i, want := range []string{"lora", "salr"} {
		var r struct {
			Bench, Method string
			Trainable     int     `json:"trainable_params"`
			RSS           float64 `json:"peak_rss_mb"`
			Memory        struct {
				Plan    struct{ Total int64 }
				PeakRSS int64 `json:"peak_rss_bytes"`
			}
			bitmap.Paths
		}
		if err := json.Unmarshal([]byte(lines[i]), &r); err != nil {
			t.Fatal(err)
		}
		if r.Bench != "train" || r.Method != want || r.Trainable <= 0 || r.RSS <= 0 || r.Memory.Plan.Total <= 0 || r.Memory.PeakRSS <= 0 || r.Paths != bitmap.CurrentPaths() {
			t.Errorf("line %d: %+v, want a %s train result", i, r, want)
		}
	}
}
