package eval

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// AtomicFile is an output file that appears at its path only when Commit
// succeeds: it is written to a temporary file in the same directory, then
// moved into place, so readers never see half a file and an interrupted run
// leaves nothing behind.
type AtomicFile struct {
	*os.File
	path      string
	overwrite bool
}

// CreateAtomic starts writing path. Unless overwrite is set, an existing
// file at path is an error, now and again at Commit.
func CreateAtomic(path string, overwrite bool) (*AtomicFile, error) {
	if !overwrite {
		if err := refuseExisting(path); err != nil {
			return nil, err
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("eval: creating %s: %w", path, err)
	}
	// CreateTemp makes the file private (0600); results are for sharing.
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("eval: creating %s: %w", path, err)
	}
	return &AtomicFile{File: tmp, path: path, overwrite: overwrite}, nil
}

// refuseExisting returns an error when path exists.
func refuseExisting(path string) error {
	_, err := os.Lstat(path)
	if err == nil {
		return fmt.Errorf("eval: %s already exists (pass -overwrite to replace it)", path)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("eval: %w", err)
	}
	return nil
}

// Commit flushes the temporary file and moves it to the path. Without
// overwrite the move is a hard link, which fails if the path appeared in the
// meantime.
func (f *AtomicFile) Commit() error {
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after a rename; drops the temporary name after a link
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("eval: writing %s: %w", f.path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("eval: writing %s: %w", f.path, err)
	}
	if f.overwrite {
		if err := os.Rename(tmp, f.path); err != nil {
			return fmt.Errorf("eval: %w", err)
		}
		return nil
	}
	err := os.Link(tmp, f.path)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("eval: %s already exists (pass -overwrite to replace it)", f.path)
	}
	// A file system without hard links: check, then rename.
	if err := refuseExisting(f.path); err != nil {
		return err
	}
	if err := os.Rename(tmp, f.path); err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	return nil
}

// Abort discards the temporary file; the path is left untouched.
func (f *AtomicFile) Abort() {
	f.Close()
	os.Remove(f.Name())
}
