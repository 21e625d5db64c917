package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCreateCommitAbort(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "results.json")
	listing := func() []string {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}

	f, err := Create(path, false)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("first")
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file visible before Commit: %v", err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := listing(); len(got) != 1 || got[0] != "results.json" {
		t.Errorf("directory after commit: %v", got)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("committed file mode %v, %v; want -rw-r--r--", st.Mode(), err)
	}

	if _, err := Create(path, false); err == nil || !strings.Contains(err.Error(), "-overwrite") {
		t.Errorf("existing file not refused: %v", err)
	}
	// A file that appears while the run writes is not clobbered either.
	other := filepath.Join(dir, "late.json")
	f, err = Create(other, false)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(other, []byte("someone else's"), 0o644)
	f.WriteString("mine")
	if err := f.Commit(); err == nil {
		t.Error("Commit replaced a file created meanwhile")
	}
	if b, _ := os.ReadFile(other); string(b) != "someone else's" {
		t.Errorf("late file now holds %q", b)
	}

	f, err = Create(path, true)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("second")
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "second" {
		t.Errorf("overwritten file holds %q", b)
	}

	f, err = Create(filepath.Join(dir, "aborted.json"), false)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("partial")
	f.Abort()
	if got := listing(); len(got) != 2 {
		t.Errorf("directory after abort: %v", got)
	}
}

func TestWriteReplacesAndLeavesNoTemporary(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.json")
	for _, content := range []string{"one", "two"} {
		if err := WriteBytes(path, []byte(content)); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(path); string(b) != content {
			t.Errorf("file holds %q, want %q", b, content)
		}
	}
	failed := errors.New("disk on fire")
	if err := Write(path, func(w io.Writer) error { w.Write([]byte("half")); return failed }); !errors.Is(err, failed) {
		t.Errorf("Write returned %v, want the writer's error", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "two" {
		t.Errorf("a failed write changed the file to %q", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after writes, want 1", len(entries))
	}
}

func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	f, err := Create(filepath.Join(dir, "model.safetensors"), true)
	if err != nil {
		t.Fatal(err)
	}
	f.Close() // a crash before Commit
	keep := []string{"model.safetensors.tmp", ".hidden", "x.tmp-1", ".tmp-", "notes.txt"}
	for _, name := range keep {
		os.WriteFile(filepath.Join(dir, name), nil, 0o644)
	}
	removed, err := RemoveStale(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != filepath.Base(f.Name()) {
		t.Errorf("removed %v, want only %s", removed, filepath.Base(f.Name()))
	}
	for _, name := range keep {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s removed: %v", name, err)
		}
	}
	if removed, err := RemoveStale(filepath.Join(dir, "missing")); err != nil || removed != nil {
		t.Errorf("missing directory: %v, %v", removed, err)
	}
}
