package assets

import (
	"os"
	"path/filepath"
	"testing"
)

func TestForTestResolvesRelativeToTheRepository(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatal("repoRoot did not find go.mod")
	}
	want := filepath.Join(root, "datasets")
	t.Setenv(Env, "datasets") // relative: from the repository root, not this package
	if got := ForTest(t); got != want {
		t.Fatalf("ForTest = %s, want %s", got, want)
	}
	if os.Getenv(Env) != want {
		t.Fatal("ForTest did not export the absolute path")
	}
	if d, err := Dir(); err != nil || d != want {
		t.Fatalf("Dir = %s, %v", d, err)
	}
	t.Setenv(Env, "")
	if _, err := Dir(); err == nil {
		t.Fatal("Dir accepted an unset variable")
	}
}
