// Package atomicfile writes output files so that readers see either the old
// content or the whole new content, never a mix, and a crash leaves at most a
// temporary file of a recognisable name behind.
//
// Every writer in the project goes through it: a temporary file beside the
// target (named "." + base + ".tmp-" + random, see IsTemp), written, made
// 0644, fsynced, renamed over the target, and the directory fsynced (file
// systems that cannot fsync a directory are tolerated).
package atomicfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Mode is the permission of every file written here: outputs are for sharing.
const Mode fs.FileMode = 0o644

// tempInfix sits between a target's base name and CreateTemp's random suffix.
const tempInfix = ".tmp-"

// Write creates or replaces the file at path with what write produces.
func Write(path string, write func(w io.Writer) error) error {
	f, err := Create(path, true)
	if err != nil {
		return err
	}
	buf := bufio.NewWriterSize(f, 1<<20)
	if err := write(buf); err != nil {
		f.Abort()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := buf.Flush(); err != nil {
		f.Abort()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Commit()
}

// WriteBytes creates or replaces the file at path with data.
func WriteBytes(path string, data []byte) error {
	return Write(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// File is an output file that appears at its path only when Commit succeeds.
type File struct {
	*os.File
	path      string
	overwrite bool
}

// Create starts writing path. Unless overwrite is set, an existing file at
// path is an error, now and again at Commit.
func Create(path string, overwrite bool) (*File, error) {
	if !overwrite {
		if err := refuseExisting(path); err != nil {
			return nil, err
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+tempInfix+"*")
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", path, err)
	}
	// CreateTemp makes the file private (0600).
	if err := tmp.Chmod(Mode); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("creating %s: %w", path, err)
	}
	return &File{File: tmp, path: path, overwrite: overwrite}, nil
}

// ErrExists is wrapped by the error for a target that exists when Create or
// Commit was told not to overwrite it.
var ErrExists = errors.New("already exists (pass -overwrite to replace it)")

func refuseExisting(path string) error {
	_, err := os.Lstat(path)
	if err == nil {
		return fmt.Errorf("%s %w", path, ErrExists)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Commit flushes the temporary file to disk and moves it to the path. Without
// overwrite the move is a hard link, which fails if the path appeared in the
// meantime.
func (f *File) Commit() error {
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after a rename; drops the temporary name after a link
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", f.path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", f.path, err)
	}
	dir := filepath.Dir(f.path)
	if f.overwrite {
		if err := os.Rename(tmp, f.path); err != nil {
			return err
		}
		return SyncDir(dir)
	}
	err := os.Link(tmp, f.path)
	switch {
	case err == nil:
		return SyncDir(dir)
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("%s %w", f.path, ErrExists)
	}
	// A file system without hard links: check, then rename.
	if err := refuseExisting(f.path); err != nil {
		return err
	}
	if err := os.Rename(tmp, f.path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// Abort discards the temporary file; the path is left untouched.
func (f *File) Abort() {
	f.Close()
	os.Remove(f.Name())
}

// SyncDir makes a rename in dir durable. File systems that cannot fsync a
// directory (EINVAL, or no directory sync at all) are not an error.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) && !isSyncUnsupported(err) {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// IsTemp reports whether name (a base name) is a temporary file of this
// package's naming, as a crash between Create and Commit leaves behind.
func IsTemp(name string) bool {
	if !strings.HasPrefix(name, ".") {
		return false
	}
	i := strings.LastIndex(name, tempInfix)
	return i > 1 && i+len(tempInfix) < len(name)
}

// RemoveStale deletes the temporaries of this package's naming directly in
// dir (not below it) and returns their names. A missing dir is not an error.
func RemoveStale(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range entries {
		if e.Type().IsRegular() && IsTemp(e.Name()) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return removed, err
			}
			removed = append(removed, e.Name())
		}
	}
	return removed, nil
}
