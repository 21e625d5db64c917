package eval

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/salr-go/salr/datasets/assets"
)

// TestBadInputs checks that bad data and options end the run with an error
// that names the problem (and the file and line where there is one).
func TestBadInputs(t *testing.T) {
	m := loadStories(t)
	row := mmluCSVRow("What?", [4]string{"a", "b", "c", "d"}, "A")
	mmluDir := func(files map[string]string) string {
		dir := t.TempDir()
		for name, content := range files {
			writeFile(t, dir, name, content)
		}
		return dir
	}
	okDev := strings.Repeat(row, 5)
	cases := []struct {
		name string
		opt  Options
		want []string // substrings of the error
	}{
		{"missing test split", Options{Task: TaskMMLU, DataDir: mmluDir(map[string]string{"dev/anatomy_dev.csv": okDev})},
			[]string{"test", "does not exist"}},
		{"missing dev split", Options{Task: TaskMMLU, Shots: 1, DataDir: mmluDir(map[string]string{"test/anatomy_test.csv": row})},
			[]string{"dev", "does not exist"}},
		{"subject without dev file", Options{Task: TaskMMLU, Shots: 1, DataDir: mmluDir(map[string]string{
			"test/anatomy_test.csv": row, "test/virology_test.csv": row, "dev/anatomy_dev.csv": okDev})},
			[]string{"virology", "virology_dev.csv"}},
		{"requested subject missing", Options{Task: TaskMMLU, Subjects: []string{"nutrition"},
			DataDir: mmluDir(map[string]string{"test/anatomy_test.csv": row})},
			[]string{"nutrition", "nutrition_test.csv"}},
		{"malformed CSV", Options{Task: TaskMMLU, DataDir: mmluDir(map[string]string{
			"test/anatomy_test.csv": row + row + "\"unterminated,a,b,c,d,A\n"})},
			[]string{"anatomy_test.csv:3", "malformed CSV"}},
		{"three choices", Options{Task: TaskMMLU, DataDir: mmluDir(map[string]string{
			"test/anatomy_test.csv": row + "Why?,a,b,c,B\n"})},
			[]string{"anatomy_test.csv:2", "only 3 choices"}},
		{"empty answer", Options{Task: TaskMMLU, DataDir: mmluDir(map[string]string{
			"test/anatomy_test.csv": "Why?,a,b,c,d,\n"})},
			[]string{"anatomy_test.csv:1", "empty answer"}},
		{"not an MMLU subject", Options{Task: TaskMMLU, DataDir: mmluDir(map[string]string{"test/cooking_test.csv": row})},
			[]string{"cooking", "57 subjects"}},
		{"empty test file", Options{Task: TaskMMLU, DataDir: mmluDir(map[string]string{
			"test/anatomy_test.csv": row, "test/astronomy_test.csv": ""})},
			[]string{"astronomy_test.csv", "no questions"}},
		{"only test file empty, with shots", Options{Task: TaskMMLU, Shots: 1, DataDir: mmluDir(map[string]string{
			"test/anatomy_test.csv": "question,A,B,C,D,answer\n", "dev/anatomy_dev.csv": okDev, "dev/astronomy_dev.csv": okDev})},
			[]string{"anatomy_test.csv", "no questions"}},
		{"missing GSM8K test file", Options{Task: TaskGSM8K, DataDir: t.TempDir()},
			[]string{"test.jsonl"}},
		{"GSM8K empty answer", Options{Task: TaskGSM8K, DataDir: mmluDir(map[string]string{
			"test.jsonl": `{"question": "1+1?", "answer": "#### 2"}` + "\n" + `{"question": "2+2?", "answer": ""}` + "\n"})},
			[]string{"test.jsonl:2", "answer", "empty"}},
		{"GSM8K malformed line", Options{Task: TaskGSM8K, DataDir: mmluDir(map[string]string{
			"test.jsonl": `{"question": "1+1?", "answer": "#### 2"` + "\n"})},
			[]string{"test.jsonl:1", "invalid JSON"}},
		{"GSM8K too few train problems", Options{Task: TaskGSM8K, Shots: 3, DataDir: mmluDir(map[string]string{
			"test.jsonl":  `{"question": "1+1?", "answer": "#### 2"}` + "\n",
			"train.jsonl": `{"question": "1+2?", "answer": "#### 3"}` + "\n"})},
			[]string{"train.jsonl", "1 problems", "3 shots"}},
		{"unknown task", Options{Task: "hellaswag", DataDir: "x"}, []string{"unknown task", "hellaswag"}},
		{"negative shots", Options{Task: TaskMMLU, DataDir: "x", Shots: -1}, []string{"shots -1"}},
		{"negative limit", Options{Task: TaskMMLU, DataDir: "x", Limit: -2}, []string{"limit -2"}},
		{"subjects for GSM8K", Options{Task: TaskGSM8K, DataDir: "x", Subjects: []string{"anatomy"}}, []string{"subjects", "MMLU"}},
		{"negative max new tokens", Options{Task: TaskGSM8K, DataDir: "x", MaxNewTokens: -1}, []string{"max new tokens -1"}},
		{"metamath for MMLU", Options{Task: TaskMMLU, DataDir: "x", Template: TemplateMetaMath}, []string{"metamath template", "gsm8k", "mmlu"}},
		{"metamath with shots", Options{Task: TaskGSM8K, DataDir: "x", Template: TemplateMetaMath, Shots: 5}, []string{"zero-shot", "5 shots"}},
		{"unknown template", Options{Task: TaskGSM8K, DataDir: "x", Template: "alpaca"}, []string{"unknown template", "alpaca"}},
		{"metamath gold not an integer", Options{Task: TaskGSM8K, Template: TemplateMetaMath, DataDir: mmluDir(map[string]string{
			"test.jsonl": `{"question": "1+1?", "answer": "#### 2"}` + "\n" + `{"question": "1/2?", "answer": "#### 0.5"}` + "\n"})},
			[]string{"test.jsonl", "document 1", "not an integer"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opt.Batch == 0 {
				tc.opt.Batch = 2
			}
			_, err := Run(context.Background(), m, tc.opt)
			if err == nil {
				t.Fatal("no error")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
	if _, err := Run(context.Background(), m, Options{Task: TaskGSM8K, DataDir: "x", Batch: 0}); err == nil ||
		!strings.Contains(err.Error(), "batch 0") {
		t.Errorf("batch 0: %v", err)
	}
}

func TestDataDir(t *testing.T) {
	t.Setenv(assets.Env, "/assets")
	if got, err := DataDir(TaskMMLU, ""); err != nil || got != filepath.Join("/assets", "mmlu") {
		t.Errorf("default = %q, %v", got, err)
	}
	if got, err := DataDir(TaskMMLU, "/data/m"); err != nil || got != "/data/m" {
		t.Errorf("override = %q, %v", got, err)
	}
	t.Setenv(assets.Env, "")
	if _, err := DataDir(TaskGSM8K, ""); err == nil || !strings.Contains(err.Error(), "-data") {
		t.Errorf("no assets: %v", err)
	}
}

func TestBOSNeedsToken(t *testing.T) {
	m := loadStories(t)
	enc, err := newEncoder(m.Tokenizer, true)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := enc.modelInput("Once upon a time")
	if err != nil || len(ids) != 5 || ids[0] != 1 {
		t.Errorf("model input with BOS: %v, %v (the stories260K reference is [1 403 407 261 378])", ids, err)
	}
	if got, _ := enc.truncating(3).modelInput("Once upon a time"); len(got) != 3 || got[0] != 1 || got[2] != 378 {
		t.Errorf("truncated to 3 with BOS: %v", got)
	}
	if _, err := newEncoder(noBOS{m.Tokenizer}, true); err == nil {
		t.Error("BOS accepted for a tokenizer without one")
	}
}
