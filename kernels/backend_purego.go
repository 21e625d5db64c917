//go:build !cgo || purego

package kernels

import "gonum.org/v1/gonum/blas/gonum"

// The pure-Go fallback backend: selected with -tags purego, and whenever cgo
// is off (CGO_ENABLED=0).
var backend BLAS = gonum.Implementation{}

const backendName = "gonum"

// BLASCore names the core OpenBLAS runs on this CPU; this build has no
// OpenBLAS.
func BLASCore() string { return "purego" }
