package tokenizer

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/salr-go/salr/datasets/assets"
)

// assetPath returns the path of an asset file in the shared assets directory
// (assets.ForTest: $SALR_ASSETS, relative to the repository root, else
// ../shared/assets beside it); it skips the test when the directory is absent.
func assetPath(t testing.TB, rel string) string {
	t.Helper()
	path := filepath.Join(assets.ForTest(t), rel)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("asset %s: %v", rel, err)
	}
	return path
}

// gsm8kTexts returns the questions and answers of the first n GSM8K training problems.
func gsm8kTexts(t testing.TB, n int) []string {
	t.Helper()
	f, err := os.Open(assetPath(t, "gsm8k/train.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var texts []string
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for len(texts) < 2*n && scanner.Scan() {
		var problem struct{ Question, Answer string }
		if err := json.Unmarshal(scanner.Bytes(), &problem); err != nil {
			t.Fatal(err)
		}
		texts = append(texts, problem.Question, problem.Answer)
	}
	if err := scanner.Err(); err != nil {
		t.Fatal(err)
	}
	if len(texts) < 2*n {
		t.Fatalf("gsm8k/train.jsonl has fewer than %d problems", n)
	}
	return texts
}
