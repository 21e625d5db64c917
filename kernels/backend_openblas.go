//go:build !purego

package kernels

// #cgo LDFLAGS: -lopenblas
import "C"

import "gonum.org/v1/netlib/blas/netlib"

// The default backend: OpenBLAS through cgo (Debian: libopenblas-dev).
var backend BLAS = netlib.Implementation{}

const backendName = "openblas"
