//go:build !unix

package atomicfile

// isSyncUnsupported: directories cannot be synced on these systems.
func isSyncUnsupported(error) bool { return true }
