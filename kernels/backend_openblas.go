//go:build !purego

package kernels

// #cgo LDFLAGS: -lopenblas
// void openblas_set_num_threads(int num_threads);
import "C"

import "gonum.org/v1/netlib/blas/netlib"

// The default backend: OpenBLAS through cgo (Debian: libopenblas-dev).
var backend BLAS = netlib.Implementation{}

const backendName = "openblas"

// setBLASThreads sets OpenBLAS's thread count.
func setBLASThreads(n int) { C.openblas_set_num_threads(C.int(n)) }
