//go:build !unix

package safetensors

import (
	"io"
	"os"
)

// mapWholeFile reads the file into memory where mmap is not available.
func mapWholeFile(f *os.File, size int) ([]byte, func([]byte) error, error) {
	data := make([]byte, size)
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, nil, err
	}
	return data, nil, nil
}

// releasePages does nothing where files are read rather than mapped.
func releasePages([]byte) {}
