package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/salr-go/salr/datasets/assets"
)

func TestServeJSON(t *testing.T) {
	tok := filepath.Join(assets.ForTest(t), "stories260K", "tok512.bin")
	code, out, errOut := runCmd("serve", "-shape", "llama-64x2", "-tokenizer", tok, "-clients", "3", "-requests", "2", "-max-tokens", "5",
		"-reps", "1", "-formats", "dense-bf16,bitmap-bf16", "-json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d JSON lines, want 2:\n%s", len(lines), out)
	}
	for i, l := range lines {
		var r struct {
			Bench, Format      string
			One                map[string]float64 `json:"one_client"`
			Many               map[string]float64 `json:"many_clients"`
			SpeedupVsDenseBF16 float64            `json:"speedup_vs_dense_bf16"`
			KernelPath         string             `json:"kernel_path"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		// Random weights may end a request early at EOS, never later.
		if r.Bench != "serve" || r.Format != []string{"dense-bf16", "bitmap-bf16"}[i] || r.One["clients"] != 1 || r.Many["clients"] != 3 ||
			r.Many["requests"] != 6 || r.Many["completion_tokens"] > 30 || r.Many["completion_tokens"] < 6 || r.SpeedupVsDenseBF16 <= 0 || r.KernelPath == "" {
			t.Errorf("line %q", l)
		}
	}
}

func TestServeTableAndErrors(t *testing.T) {
	stories := filepath.Join(assets.ForTest(t), "stories260K", "stories260K.bin")
	code, out, errOut := runCmd("serve", "-model", stories, "-clients", "2", "-requests", "1", "-max-tokens", "3", "-reps", "1")
	if code != 0 || !strings.Contains(out, "bitmap-bf16") || !strings.Contains(out, "1.00x") || !strings.Contains(out, "TTFT p99 ms") {
		t.Fatalf("exit %d, stdout:\n%s\nstderr: %s", code, out, errOut)
	}
	for _, c := range []struct {
		args []string
		code int
		in   string
	}{
		{[]string{"serve"}, 2, "exactly one of -model, -run and -shape"},
		{[]string{"serve", "-shape", "llama-64x2"}, 2, "-shape needs -tokenizer"},
		{[]string{"serve", "-model", stories, "-clients", "0"}, 2, "must be positive"},
		{[]string{"serve", "-model", stories, "-formats", "dense-int4"}, 2, "dense-int4"},
	} {
		if code, _, errOut := runCmd(c.args...); code != c.code || !strings.Contains(errOut, c.in) {
			t.Errorf("%q: exit %d, stderr %q", c.args, code, errOut)
		}
	}
}
