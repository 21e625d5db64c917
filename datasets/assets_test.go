package datasets

import (
	"os"
	"path/filepath"
	"testing"
)

// assetsDir finds the shared assets: $SALR_ASSETS (relative paths are taken
// from the repository root, as CI sets it), else ../shared/assets next to the
// repository root. It skips the test when the directory is absent.
func assetsDir(t testing.TB) string {
	t.Helper()
	root := repoRoot(t)
	dir := os.Getenv("SALR_ASSETS")
	if dir == "" {
		dir = filepath.Join(root, "..", "shared", "assets")
	} else if !filepath.IsAbs(dir) {
		dir = filepath.Join(root, dir)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Skipf("assets directory %s not found", dir)
	}
	return dir
}

// repoRoot walks up from the package directory to the directory with go.mod.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the package directory")
		}
		dir = parent
	}
}

// writeFile writes content to name inside dir, creating parent directories.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
