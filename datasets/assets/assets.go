// Package assets locates the shared data and model files (GSM8K, MMLU,
// stories260K, tokenizers) that the quickstart, the evaluation defaults and
// the tests read: the directory named by $SALR_ASSETS. Fetch them with
// scripts/fetch_assets.sh.
package assets

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Env is the environment variable naming the assets directory.
const Env = "SALR_ASSETS"

// Dir returns the assets directory named by $SALR_ASSETS, as an absolute
// path; it is an error when the variable is unset or not a directory.
func Dir() (string, error) {
	d := os.Getenv(Env)
	if d == "" {
		return "", fmt.Errorf("$%s is not set (the directory with gsm8k/, mmlu/, stories260K/; see scripts/fetch_assets.sh)", Env)
	}
	abs, err := filepath.Abs(d)
	if err != nil {
		return "", err
	}
	if st, err := os.Stat(abs); err != nil || !st.IsDir() {
		return "", fmt.Errorf("$%s = %s is not a directory", Env, d)
	}
	return abs, nil
}

// ForTest returns the assets directory for a test and points $SALR_ASSETS at
// it (as an absolute path, for configs that expand it): $SALR_ASSETS, whose
// relative value is taken from the repository root as CI sets it, else
// ../shared/assets beside the repository root. It skips the test when the
// directory is absent.
func ForTest(t testing.TB) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv(Env)
	switch {
	case dir == "":
		dir = filepath.Join(root, "..", "shared", "assets")
	case !filepath.IsAbs(dir):
		dir = filepath.Join(root, dir)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Skipf("assets directory %s not found; set $%s (see scripts/fetch_assets.sh)", dir, Env)
	}
	dir = filepath.Clean(dir)
	t.Setenv(Env, dir)
	return dir
}

// repoRoot walks up from the working directory to the one holding go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("assets: no go.mod above the working directory")
		}
		dir = parent
	}
}
