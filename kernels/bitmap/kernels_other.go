//go:build !amd64 || purego

package bitmap

// kernelPaths lists every implementation of this build: pure Go only.
var kernelPaths = []kernelPath{{goKernels, true, ""}}
