package bitmap

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
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

// defaultKernels is the implementation new matrices use: the fastest exact
// one this CPU runs (see roundsX), or the one KernelPathEnv names.
var defaultKernels = chooseDefault(kernelPaths, os.Getenv(KernelPathEnv), os.Stderr)

// bf16Kernels is the fastest set this CPU runs that rounds activations to
// bf16 in its products (avx512bf16), or nil: what BF16Activations switches a
// matrix to. Checked against its fallback on first use.
var bf16Kernels = sync.OnceValue(func() *kernelSet {
	ks := fastestRoundingX(kernelPaths)
	if ks == nil {
		return nil
	}
	if ks = verifiedKernels(ks, os.Stderr); ks.roundsX() {
		return ks
	}
	return nil
})

// fastestRoundingX is the last runnable set that rounds activations, or nil.
func fastestRoundingX(paths []kernelPath) *kernelSet {
	var best *kernelSet
	for _, ks := range runnable(paths) {
		if ks.roundsX() {
			best = ks
		}
	}
	return best
}

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
// last runnable one that computes in fp32 (a set that rounds activations to
// bf16 is used where asked for: by name, or through BF16Activations); a
// non-empty env that cannot be honoured is reported on warn.
func chooseDefault(paths []kernelPath, env string, warn io.Writer) *kernelSet {
	var best *kernelSet
	for _, ks := range runnable(paths) {
		if !ks.roundsX() {
			best = ks
		}
	}
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

// BF16Activations returns a view of m whose products round the activation
// operand (x of MulT, and dY of Mul above the small batches) to bf16 inside
// the kernels, as bf16 autocast does, with the avx512bf16 set's VDPBF16PS
// kernels; ok is false when this CPU has no such set (callers then round
// the operand themselves, see kernels.AutocastBF16). m is not changed.
func (m *Matrix) BF16Activations() (view *Matrix, ok bool) {
	ks := bf16Kernels()
	if ks == nil || m.dtype != BF16 {
		return nil, false
	}
	c := *m
	c.kern = ks
	return &c, true
}

// BF16Activations is Matrix.BF16Activations for the dense bf16 format.
func (d *DenseBF16) BF16Activations() (view *DenseBF16, ok bool) {
	ks := bf16Kernels()
	if ks == nil {
		return nil, false
	}
	c := *d
	c.kern = ks
	return &c, true
}

// BF16ActivationPath names the kernel set of BF16Activations views on this
// CPU ("avx512bf16"), or "" when there is none.
func BF16ActivationPath() string {
	if ks := bf16Kernels(); ks != nil {
		return ks.name
	}
	return ""
}
