package main

import (
	"bytes"
	"encoding/json"
	"math"
	"regexp"
	"strings"
	"testing"

	"github.com/salr-go/salr/cmd/internal/cli"
	"github.com/salr-go/salr/kernels/bitmap"
)

func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = cli.Run("salr-bench", run, args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestHelpListsSubcommands(t *testing.T) {
	code, out, _ := runCmd("-h")
	if code != 0 || !strings.Contains(out, "kernels") || !strings.HasPrefix(out, "usage: salr-bench checkpoint|generate|kernels|serve|theorem2|train [flags]\n") {
		t.Fatalf("salr-bench -h: exit %d, output %q", code, out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "salr-bench: missing subcommand (checkpoint, generate, kernels, serve, theorem2, train)\n"},
		{[]string{"nosuch"}, `salr-bench: unknown subcommand "nosuch" (want checkpoint, generate, kernels, serve, theorem2, train)` + "\n"},
		{[]string{"kernels", "-nosuchflag"}, "salr-bench: kernels: flag provided but not defined: -nosuchflag\n"},
		{[]string{"kernels", "extra"}, `salr-bench: kernels: unexpected argument "extra"` + "\n"},
		{[]string{"generate", "-json", "extra", "-reps", "1"}, `salr-bench: generate: unexpected argument "extra" (flags after it are not read)` + "\n"},
	} {
		code, _, errOut := runCmd(c.args...)
		if want := c.want + "run 'salr-bench -h' for usage\n"; code != 2 || errOut != want {
			t.Errorf("salr-bench %q: exit %d, stderr %q; want 2 and %q", c.args, code, errOut, want)
		}
	}
	if code, _, errOut := runCmd("kernels", "-shapes", "1x2"); code != 1 || !strings.Contains(errOut, "MxKxN") {
		t.Errorf("bad -shapes: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := runCmd("kernels", "-cold-mb", "-1"); code != 1 || !strings.Contains(errOut, "-cold-mb -1") {
		t.Errorf("negative -cold-mb: exit %d, stderr %q", code, errOut)
	}
	for _, name := range []string{"checkpoint", "kernels", "generate", "serve", "theorem2", "train"} {
		code, out, _ := runCmd(name, "-h")
		if want := "usage: salr-bench " + name + " [flags]\n\n"; code != 0 || !strings.HasPrefix(out, want) || !strings.Contains(out, "flags:\n  -") {
			t.Errorf("salr-bench %s -h: exit %d, output %q; want 0 and a help starting %q", name, code, out, want)
		}
	}
}

func TestKernelsJSON(t *testing.T) {
	code, out, errOut := runCmd("kernels", "-shapes", "1x64x32,2x48x40", "-reps", "3", "-cold-mb", "1", "-json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 9 {
		t.Fatalf("%d JSON lines, want 9 (bandwidth, then 2 shapes × 4 cases):\n%s", len(lines), out)
	}
	var bw map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &bw); err != nil {
		t.Fatalf("line %q: %v", lines[0], err)
	}
	if bw["case"] != "bandwidth" || bw["bench"] != "kernel" || !(bw["gbps"].(float64) > 0) || bw["weight_bytes"] != float64(1<<20) || !(bw["llc_bytes"].(float64) > 0) {
		t.Fatalf("first line %q: want the bandwidth row over 1 MB", lines[0])
	}
	formats := map[string]bool{}
	for _, l := range lines[1:] {
		var r map[string]any
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		for _, key := range []string{"bench", "case", "m", "k", "n", "dtype", "format", "sparsity", "median_ms", "gb_per_s", "gbps", "gflop_per_s", "blas_core", "kernel_path"} {
			if _, ok := r[key]; !ok {
				t.Fatalf("line %q lacks %q", l, key)
			}
		}
		if r["bench"] != "kernel" || r["sparsity"] != 0.5 || r["case"] != r["format"].(string)+"-"+r["dtype"].(string) {
			t.Fatalf("line %q", l)
		}
		// gbps counts the activations read on top of the weights.
		m, k, w := r["m"].(float64), r["k"].(float64), r["weight_bytes"].(float64)
		if want := r["gb_per_s"].(float64) * (w + 4*m*k) / w; math.Abs(r["gbps"].(float64)-want) > 1e-9*want {
			t.Fatalf("line %q: gbps, want %v", l, want)
		}
		formats[r["format"].(string)+"-"+r["dtype"].(string)] = true
	}
	for _, want := range []string{"dense-bf16", "dense-fp32", "bitmap-bf16", "bitmap-fp32"} {
		if !formats[want] {
			t.Errorf("no %s result", want)
		}
	}
}

func TestKernelsTable(t *testing.T) {
	code, out, errOut := runCmd("kernels", "-shapes", "1x64x32", "-reps", "2", "-cold-mb", "1", "-backward")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "vs bf16") || !strings.Contains(out, "bitmap-bf16") || !strings.Contains(out, "Mul (dx") || !strings.Contains(out, bitmap.CurrentPaths().String()) ||
		!regexp.MustCompile(`\n1 MB \w+ +bandwidth +\d`).MatchString(out) || !strings.Contains(out, "MB (sysfs)") && !strings.Contains(out, "LLC unknown, assumed 32 MB") {
		t.Fatalf("table:\n%s", out)
	}
}

// TestKernelsCaseSpellings: the old spellings of the cases (f32, f16) are
// accepted for fp32 and fp16.
func TestKernelsCaseSpellings(t *testing.T) {
	code, out, errOut := runCmd("kernels", "-shapes", "1x32x16", "-reps", "1", "-cold-mb", "1", "-json", "-cases", "dense-f32,bitmap-f16,bitmap-f32")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{`"dtype":"fp32","format":"dense"`, `"dtype":"fp16","format":"bitmap"`, `"dtype":"fp32","format":"bitmap"`} {
		if !strings.Contains(out, want) {
			t.Errorf("no %s result:\n%s", want, out)
		}
	}
}

func TestTheorem2Errors(t *testing.T) {
	if code, _, errOut := runCmd("theorem2"); code != 2 || !strings.Contains(errOut, "-dense") {
		t.Errorf("theorem2 without runs: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := runCmd("theorem2", "-shape", "llama-64x1", "-ratios", "0.5,1.5", "-delta", "0.1"); code != 2 || !strings.Contains(errOut, "1.5") {
		t.Errorf("bad -ratios: exit %d, stderr %q", code, errOut)
	}
	dir := t.TempDir()
	if code, _, errOut := runCmd("theorem2", "-dense", dir, "-runs", dir); code != 1 || !strings.Contains(errOut, "config.toml") {
		t.Errorf("not a run directory: exit %d, stderr %q", code, errOut)
	}
	code, out, errOut := runCmd("theorem2", "-shape", "llama-64x1", "-ratios", "0.5", "-delta", "0.2", "-rank", "2", "-svd-rank", "2")
	if code != 0 || !strings.Contains(out, "| 50% | lora-prune (after) |") || !strings.Contains(out, "of 7 matrices") {
		t.Errorf("theorem2 -shape: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
