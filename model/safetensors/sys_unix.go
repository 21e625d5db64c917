//go:build unix

package safetensors

import (
	"os"

	"golang.org/x/sys/unix"
)

// mapWholeFile maps size bytes of f privately (copy-on-write): readable and
// writable in this process, never written back to the file.
func mapWholeFile(f *os.File, size int) ([]byte, func([]byte) error, error) {
	data, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	if err != nil {
		return nil, nil, err
	}
	return data, unix.Munmap, nil
}
