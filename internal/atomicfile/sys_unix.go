//go:build unix

package atomicfile

import (
	"errors"

	"golang.org/x/sys/unix"
)

// isSyncUnsupported reports a file system that cannot fsync a directory.
func isSyncUnsupported(err error) bool { return errors.Is(err, unix.EINVAL) }
