package bitmap

import (
	"fmt"

	"github.com/salr-go/salr/kernels"
)

// Paths names the fast paths this process runs, chosen at run time from the
// CPU. The commands report them (run log, summary.json, eval results.json,
// salr-bench output) by embedding Paths, so the JSON fields are the same
// everywhere.
type Paths struct {
	// BLASCore is the core OpenBLAS runs for dense products
	// (kernels.BLASCore: e.g. "Haswell", "SkylakeX", "Zen"; "purego" without
	// OpenBLAS).
	BLASCore string `json:"blas_core"`
	// KernelPath is the implementation of this package's kernels
	// (Implementation: "go", "avx2", "avx512" or "avx512bf16").
	KernelPath string `json:"kernel_path"`
}

// CurrentPaths returns the paths this process runs.
func CurrentPaths() Paths {
	return Paths{BLASCore: kernels.BLASCore(), KernelPath: Implementation()}
}

// String is the phrase for headers: "BLAS core Haswell, kernel path go".
func (p Paths) String() string {
	return fmt.Sprintf("BLAS core %s, kernel path %s", p.BLASCore, p.KernelPath)
}
