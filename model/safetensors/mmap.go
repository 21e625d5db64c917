package safetensors

import (
	"fmt"
	"math"
	"os"
)

// Mapping is a whole file mapped into memory. On Unix it is a private
// copy-on-write memory map of a file opened read-only: the file is never
// modified, pages are read lazily, and callers may even write to slices of
// Data (the writes stay in this process). Elsewhere the file is read into
// memory.
type Mapping struct {
	// Data holds the file's bytes; it must not be used after Close.
	Data  []byte
	path  string
	unmap func([]byte) error
}

// MapFile maps the whole file at path. An empty file is an error naming the
// path. It serves safetensors files and other checkpoint formats alike.
func MapFile(path string) (*Mapping, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	size := st.Size()
	if size == 0 {
		return nil, fmt.Errorf("%s: empty file", path)
	}
	if size > math.MaxInt {
		return nil, fmt.Errorf("%s: %d bytes is too large to map on this platform", path, size)
	}
	data, unmap, err := mapWholeFile(f, int(size))
	if err != nil {
		return nil, fmt.Errorf("%s: mapping into memory: %w", path, err)
	}
	return &Mapping{Data: data, path: path, unmap: unmap}, nil
}

// Path is the path the mapping was made from.
func (m *Mapping) Path() string { return m.path }

// Close unmaps the file. Closing twice does nothing.
func (m *Mapping) Close() error {
	if m == nil || m.Data == nil {
		return nil
	}
	data := m.Data
	m.Data = nil
	if m.unmap == nil {
		return nil
	}
	if err := m.unmap(data); err != nil {
		return fmt.Errorf("%s: unmapping: %w", m.path, err)
	}
	return nil
}
