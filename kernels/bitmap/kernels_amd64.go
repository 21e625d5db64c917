//go:build amd64 && !purego

package bitmap

// defaultKernels is the pure-Go implementation until the assembly lands.
var defaultKernels = goKernels

// kernelSets lists every implementation available here (for the tests).
var kernelSets = []*kernelSet{goKernels}
