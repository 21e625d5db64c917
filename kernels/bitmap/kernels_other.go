//go:build !amd64 || purego

package bitmap

// kernelSets lists every implementation available here (for the tests).
var kernelSets = []*kernelSet{goKernels}

// defaultKernels is the pure-Go implementation on this build.
var defaultKernels = goKernels
