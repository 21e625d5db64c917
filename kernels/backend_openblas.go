//go:build cgo && !purego

package kernels

// #cgo LDFLAGS: -lopenblas
// void openblas_set_num_threads(int num_threads);
// char* openblas_get_corename(void);
import "C"

import "gonum.org/v1/netlib/blas/netlib"

// The default backend: OpenBLAS through cgo (Debian: libopenblas-dev).
var backend BLAS = netlib.Implementation{}

const backendName = "openblas"

// OpenBLAS runs single-threaded: Gemm splits large products across
// goroutines itself (see Gemm for why).
func init() { C.openblas_set_num_threads(1) }

// BLASCore names the core OpenBLAS runs on this CPU (its kernels), e.g.
// "Haswell", "SkylakeX", "Zen" or a generic "Prescott"; "purego" in the
// pure-Go build.
func BLASCore() string { return C.GoString(C.openblas_get_corename()) }
