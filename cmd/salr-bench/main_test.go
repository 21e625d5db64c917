package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestHelpListsSubcommands(t *testing.T) {
	code, out, _ := runCmd("-h")
	if code != 0 || !strings.Contains(out, "kernels") || !strings.Contains(out, "usage: salr-bench") {
		t.Fatalf("salr-bench -h: exit %d, output %q", code, out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{nil, {"nosuch"}, {"kernels", "-nosuchflag"}, {"kernels", "extra"}} {
		if code, _, _ := runCmd(args...); code != 2 {
			t.Errorf("salr-bench %q: exit %d, want 2", args, code)
		}
	}
	if code, _, errOut := runCmd("kernels", "-shapes", "1x2"); code != 1 || !strings.Contains(errOut, "MxKxN") {
		t.Errorf("bad -shapes: exit %d, stderr %q", code, errOut)
	}
	if code, _, _ := runCmd("kernels", "-h"); code != 0 {
		t.Errorf("salr-bench kernels -h: exit %d, want 0", code)
	}
}

func TestKernelsJSON(t *testing.T) {
	code, out, errOut := runCmd("kernels", "-shapes", "1x64x32,2x48x40", "-reps", "3", "-cold-mb", "1", "-json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 8 {
		t.Fatalf("%d JSON lines, want 8 (2 shapes × 4 cases):\n%s", len(lines), out)
	}
	formats := map[string]bool{}
	for _, l := range lines {
		var r map[string]any
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		for _, key := range []string{"bench", "m", "k", "n", "dtype", "format", "sparsity", "median_ms", "gb_per_s", "gflop_per_s"} {
			if _, ok := r[key]; !ok {
				t.Fatalf("line %q lacks %q", l, key)
			}
		}
		if r["bench"] != "kernel" || r["sparsity"] != 0.5 {
			t.Fatalf("line %q", l)
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
	if !strings.Contains(out, "vs bf16") || !strings.Contains(out, "bitmap-bf16") || !strings.Contains(out, "Mul (dx") {
		t.Fatalf("table:\n%s", out)
	}
}
