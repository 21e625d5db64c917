//go:build cgo && !purego

package kernels

// #cgo LDFLAGS: -lopenblas
// void openblas_set_num_threads(int num_threads);
import "C"

import "gonum.org/v1/netlib/blas/netlib"

// The default backend: OpenBLAS through cgo (Debian: libopenblas-dev).
var backend BLAS = netlib.Implementation{}

const backendName = "openblas"

// OpenBLAS runs single-threaded: Gemm splits large products across
// goroutines itself (see Gemm for why).
func init() { C.openblas_set_num_threads(1) }
