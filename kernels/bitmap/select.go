package bitmap

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// KernelPathEnv names the environment variable that picks the kernel
// implementation instead of the fastest one the CPU runs ("go", "avx2",
// "avx512", "avx512bf16"), to compare paths on one machine. An unknown value,
// or one the CPU cannot run, prints a warning on stderr and keeps the default.
const KernelPathEnv = "SALR_KERNEL_PATH"

// kernelPath is one implementation with whether this CPU can run it.
type kernelPath struct {
	set   *kernelSet
	ok    bool   // the CPU has the features the set needs
	needs string // those features, for messages
}

// kernelSets lists every implementation this CPU can run, slowest first (for
// the tests).
var kernelSets = runnable(kernelPaths)

// defaultKernels is the implementation new matrices use: the fastest this
// CPU runs, or the one KernelPathEnv names.
var defaultKernels = chooseDefault(kernelPaths, os.Getenv(KernelPathEnv), os.Stderr)

func runnable(paths []kernelPath) []*kernelSet {
	var sets []*kernelSet
	for _, p := range paths {
		if p.ok {
			sets = append(sets, p.set)
		}
	}
	return sets
}

// chooseDefault returns the set named by env when the CPU runs it, else the
// last runnable one; a non-empty env that cannot be honoured is reported on
// warn.
func chooseDefault(paths []kernelPath, env string, warn io.Writer) *kernelSet {
	sets := runnable(paths)
	best := sets[len(sets)-1]
	if env == "" {
		return best
	}
	var names []string
	for _, p := range paths {
		names = append(names, p.set.name)
		if p.set.name != env {
			continue
		}
		if p.ok {
			return p.set
		}
		fmt.Fprintf(warn, "bitmap: %s=%s: this CPU cannot run it (needs %s); using kernel path %s\n", KernelPathEnv, env, p.needs, best.name)
		return best
	}
	fmt.Fprintf(warn, "bitmap: %s=%q is not a kernel path of this build (%s); using %s\n",
		KernelPathEnv, env, strings.Join(names, ", "), best.name)
	return best
}

// skippedPaths describes the implementations of this build that the CPU
// cannot run, e.g. "avx512 (needs AVX512F and POPCNT)".
func skippedPaths(paths []kernelPath) []string {
	var out []string
	for _, p := range paths {
		if !p.ok {
			out = append(out, fmt.Sprintf("%s (needs %s)", p.set.name, p.needs))
		}
	}
	return out
}
