package datasets

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/salr-go/salr/datasets/assets"
)

// assetsDir is the shared assets directory (assets.ForTest).
func assetsDir(t testing.TB) string { return assets.ForTest(t) }

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
