package eval

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestResultsJSONFields checks the fields of results.json for both tasks
// and that the JSON reads back to the same results.
func TestResultsJSONFields(t *testing.T) {
	m := loadStories(t)
	mmlu, _ := runWithSamples(t, m, Options{Task: TaskMMLU, DataDir: writeLawData(t), Shots: 5, Batch: 4})
	gsm8k, _ := runWithSamples(t, m, Options{Task: TaskGSM8K, DataDir: writeSumsData(t), Shots: 1, Limit: 2, Batch: 2, MaxNewTokens: 8})
	mmlu.Model = "/models/stories"
	adapters := "/runs/r1"
	gsm8k.Model, gsm8k.Adapters = adapters, &adapters

	for _, tc := range []struct {
		res     *Results
		want    map[string]any // top-level fields with exact values
		metrics []string
	}{
		{mmlu, map[string]any{"task": "mmlu", "model": "/models/stories", "adapters": nil, "shots": 5.0,
			"limit": nil, "bos": false, "context_length": 512.0, "n_docs": 3.0},
			[]string{"acc", "acc_stderr"}},
		{gsm8k, map[string]any{"task": "gsm8k", "model": adapters, "adapters": adapters, "shots": 1.0,
			"limit": 2.0, "bos": false, "max_new_tokens": 8.0, "fewshot_seed": 1234.0, "n_docs": 2.0},
			[]string{"exact_match,strict-match", "exact_match_stderr,strict-match",
				"exact_match,flexible-extract", "exact_match_stderr,flexible-extract"}},
	} {
		data, err := tc.res.JSON()
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(data, &got); err != nil {
			t.Fatal(err)
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%s: %s = %#v, want %#v", tc.res.Task, k, got[k], v)
			}
		}
		metrics, _ := got["metrics"].(map[string]any)
		if len(metrics) != len(tc.metrics) {
			t.Errorf("%s: metrics %v, want keys %v", tc.res.Task, metrics, tc.metrics)
		}
		for _, k := range tc.metrics {
			if _, ok := metrics[k]; !ok {
				t.Errorf("%s: metric %q missing", tc.res.Task, k)
			}
		}
		for _, k := range []string{"truncation", "timing", "date"} {
			if got[k] == nil {
				t.Errorf("%s: field %q missing", tc.res.Task, k)
			}
		}
		timing, _ := got["timing"].(map[string]any)
		if dps, _ := timing["docs_per_second"].(float64); !(dps > 0) {
			t.Errorf("%s: docs_per_second %v", tc.res.Task, timing["docs_per_second"])
		}
		var back Results
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatal(err)
		}
		if back.Markdown() != tc.res.Markdown() {
			t.Errorf("%s: Markdown after a JSON round trip differs:\n%s\n%s", tc.res.Task, back.Markdown(), tc.res.Markdown())
		}
	}

	subjects, _ := mustField(t, mmlu, "subjects").([]any)
	if len(subjects) != 1 {
		t.Fatalf("subjects %v", subjects)
	}
	s := subjects[0].(map[string]any)
	if s["name"] != "professional_law" || s["category"] != "humanities" || s["n"] != 3.0 {
		t.Errorf("subject row %v", s)
	}
	cats, _ := mustField(t, mmlu, "categories").([]any)
	if len(cats) != 1 || cats[0].(map[string]any)["name"] != "humanities" {
		t.Errorf("categories %v", cats)
	}
	md := mmlu.Markdown()
	for _, want := range []string{"| Task", "| mmlu ", "|  - humanities ", "|   - professional_law ", "docs/s"} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
	md = gsm8k.Markdown()
	for _, want := range []string{"| gsm8k | flexible-extract |", "| gsm8k | strict-match     |", "exact_match"} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
}

// mustField returns a top-level field of r's JSON.
func mustField(t *testing.T, r *Results, name string) any {
	t.Helper()
	data, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m[name]
}

func TestNumberJSON(t *testing.T) {
	type pair struct{ A, B Number }
	data, err := json.Marshal(pair{Number(0.25), Number(math.NaN())})
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != `{"A":0.25,"B":null}` {
		t.Errorf("got %s", data)
	}
	var back pair
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back.A != 0.25 || !math.IsNaN(float64(back.B)) {
		t.Errorf("read back %v", back)
	}
	if err := json.Unmarshal([]byte(`{"A":"x"}`), &back); err == nil {
		t.Error("a string read as a Number")
	}
}

func TestWriteResultsRefusesExisting(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "results.json")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &Results{Task: TaskGSM8K, Metrics: map[string]Number{}}
	if err := WriteResults(path, r, false); err == nil {
		t.Error("WriteResults overwrote without overwrite")
	}
	if err := WriteResults(filepath.Join(dir, "new.json"), r, false); err != nil {
		t.Fatal(err)
	}
	var back Results
	data, _ := os.ReadFile(filepath.Join(dir, "new.json"))
	if err := json.Unmarshal(data, &back); err != nil || back.Task != TaskGSM8K {
		t.Errorf("written results read back as %+v, %v", back, err)
	}
}

func TestRunStopsWhenCancelled(t *testing.T) {
	m := loadStories(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Run(ctx, m, Options{Task: TaskMMLU, DataDir: writeLawData(t), Shots: 1, Batch: 1})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestProgressBar(t *testing.T) {
	m := loadStories(t)
	var buf strings.Builder
	if _, err := Run(context.Background(), m, Options{Task: TaskMMLU, DataDir: writeLawData(t), Shots: 1, Batch: 2, Progress: &buf}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.Contains(out, "mmlu") || !strings.Contains(out, "3/3") || !strings.Contains(out, "docs/s") {
		t.Errorf("progress output %q lacks the task, the count or docs/s", out)
	}
}
