package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestGenerateJSON(t *testing.T) {
	code, out, errOut := runCmd("generate", "-shape", "llama-64x2", "-vocab", "64", "-prompt-tokens", "3", "-new-tokens", "4",
		"-reps", "1", "-formats", "dense-fp32,dense-bf16,bitmap-bf16", "-json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d JSON lines, want 3:\n%s", len(lines), out)
	}
	for i, l := range lines {
		var r map[string]any
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		for _, key := range []string{"bench", "shape", "format", "sparsity", "tokens_per_second", "model_bytes", "speedup_vs_dense_bf16", "blas_core", "kernel_path"} {
			if _, ok := r[key]; !ok {
				t.Fatalf("line %q lacks %q", l, key)
			}
		}
		if r["bench"] != "generate" || r["shape"] != "llama-64x2" || r["sparsity"] != 0.5 || r["format"] != []string{"dense-fp32", "dense-bf16", "bitmap-bf16"}[i] {
			t.Errorf("line %q", l)
		}
	}
}

func TestGenerateTableAndErrors(t *testing.T) {
	code, out, errOut := runCmd("generate", "-shape", "llama-64x1", "-vocab", "32", "-prompt-tokens", "2", "-new-tokens", "2", "-reps", "2", "-formats", "dense-bf16,bitmap-fp16", "-in-turns")
	if code != 0 || !strings.Contains(out, "bitmap-fp16") || !strings.Contains(out, "vs bf16") || !strings.Contains(out, "1.00x") || !strings.Contains(out, "in turns") {
		t.Fatalf("exit %d, stdout:\n%s\nstderr: %s", code, out, errOut)
	}
	if code, _, errOut := runCmd("generate", "-formats", "dense-int4"); code != 1 || !strings.Contains(errOut, "dense-int4") {
		t.Errorf("bad format: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCmd("generate", "-shape", "tiny"); code != 1 || !strings.Contains(errOut, "tiny") {
		t.Errorf("bad shape: exit %d, %q", code, errOut)
	}
	if code, _, _ := runCmd("generate", "-new-tokens", "x"); code != 2 {
		t.Errorf("bad flag: exit %d, want 2", code)
	}
}

// TestGenerateFormatSpellings: dense-f32, the old spelling of dense-fp32, is
// accepted.
func TestGenerateFormatSpellings(t *testing.T) {
	code, out, errOut := runCmd("generate", "-shape", "llama-64x1", "-vocab", "32", "-prompt-tokens", "2", "-new-tokens", "1", "-reps", "1", "-formats", "dense-f32", "-json")
	if code != 0 || !strings.Contains(out, `"bench":"generate"`) {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
