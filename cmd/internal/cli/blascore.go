package cli

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/salr-go/salr/kernels"
)

// startArgs are the process's arguments as it started (a test harness may
// rewrite os.Args before calling Main).
var startArgs = slices.Clone(os.Args)

// fixBLASCore makes sure OpenBLAS does not run a generic core on a CPU that
// has AVX2 or AVX-512 (an OpenBLAS too old to recognise the CPU falls back to
// e.g. Prescott, several times slower). OpenBLAS reads OPENBLAS_CORETYPE
// only when the library loads, so the process runs itself again with the
// better core set and kernels.CoreFixedEnv marking it as done; a user's own
// OPENBLAS_CORETYPE is left alone. When the core is still generic after
// that, it warns on stderr and carries on. It prints nothing otherwise.
func fixBLASCore(name string, stderr io.Writer) {
	if os.Getenv(kernels.CoreFixedEnv) != "" {
		core := kernels.BLASCore()
		if better, ok := kernels.BetterCore(core, kernels.HostFeatures()); ok {
			fmt.Fprintf(stderr, "%s: warning: OpenBLAS runs its generic %s core although %s=%s (an OpenBLAS built without DYNAMIC_ARCH?); dense products may be several times slower than with %s\n",
				name, core, kernels.CoreTypeEnv, os.Getenv(kernels.CoreTypeEnv), better)
		}
		return
	}
	better, ok := kernels.BLASCoreCorrection()
	if !ok {
		return
	}
	exe, err := os.Executable()
	if err == nil {
		err = syscall.Exec(exe, startArgs, coreEnv(os.Environ(), better)) // returns only on failure
	}
	fmt.Fprintf(stderr, "%s: warning: OpenBLAS runs its generic %s core; running again with %s=%s failed: %v\n",
		name, kernels.BLASCore(), kernels.CoreTypeEnv, better, err)
}

// coreEnv returns env with OPENBLAS_CORETYPE set to core and the marker of
// a corrected process.
func coreEnv(env []string, core string) []string {
	out := make([]string, 0, len(env)+2)
	for _, kv := range env {
		if !strings.HasPrefix(kv, kernels.CoreTypeEnv+"=") && !strings.HasPrefix(kv, kernels.CoreFixedEnv+"=") {
			out = append(out, kv)
		}
	}
	return append(out, kernels.CoreTypeEnv+"="+core, kernels.CoreFixedEnv+"=1")
}
