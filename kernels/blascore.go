package kernels

import (
	"os"
	"strings"

	"golang.org/x/sys/cpu"
)

// OpenBLAS reads OPENBLAS_CORETYPE once, in its library constructor, before
// Go's main runs: a better core can only be chosen by running the binary
// again with the variable set (package cli does it for every command).
const (
	// CoreTypeEnv is OpenBLAS's own variable naming the core it runs.
	CoreTypeEnv = "OPENBLAS_CORETYPE"
	// CoreFixedEnv marks a process whose CoreTypeEnv was set by
	// BLASCoreCorrection's caller, not by the user: it is never corrected
	// again, which guards against a loop.
	CoreFixedEnv = "SALR_BLAS_CORE_FIXED"
	// TestForceCoreEnv is a test hook: when set to 1, a CoreTypeEnv without
	// CoreFixedEnv counts as OpenBLAS's own choice instead of the user's, so
	// a test can start a process on a generic core and see it corrected.
	TestForceCoreEnv = "SALR_TEST_BLAS_CORE_NOT_USER"
)

// CPUFeatures are the CPU features that decide the OpenBLAS core.
type CPUFeatures struct {
	AVX2, FMA                   bool
	AVX512F, AVX512BW, AVX512VL bool
	AVX512BF16                  bool
}

// HostFeatures returns this CPU's features as the OS lets programs use them.
func HostFeatures() CPUFeatures {
	x := cpu.X86
	return CPUFeatures{
		AVX2: x.HasAVX2, FMA: x.HasFMA,
		AVX512F: x.HasAVX512F, AVX512BW: x.HasAVX512BW, AVX512VL: x.HasAVX512VL,
		AVX512BF16: x.HasAVX512BF16,
	}
}

// coreLevels ranks the x86 cores of OpenBLAS's DYNAMIC_ARCH builds by the
// widest vectors their kernels use: 0 before AVX2, 1 AVX2 + FMA, 2 AVX-512,
// 3 AVX-512 with BF16. Names are lower case. Zen is absent on purpose: it is
// OpenBLAS's own choice for AMD CPUs and is kept. Unknown names (newer
// cores, other architectures) are kept too.
var coreLevels = map[string]int{
	"katmai": 0, "coppermine": 0, "northwood": 0, "prescott": 0, "banias": 0,
	"atom": 0, "core2": 0, "penryn": 0, "dunnington": 0, "nehalem": 0,
	"athlon": 0, "opteron": 0, "opteron(sse3)": 0, "barcelona": 0, "nano": 0,
	"bobcat": 0, "bulldozer": 0, "piledriver": 0, "steamroller": 0,
	"sandybridge": 0, "generic": 0,
	"haswell": 1, "excavator": 1,
	"skylakex":   2,
	"cooperlake": 3, "sapphirerapids": 3,
}

// cpuCores names the core for each level of CPU (see coreLevels).
var cpuCores = [...]string{1: "Haswell", 2: "SkylakeX", 3: "Cooperlake"}

// BetterCore returns the OpenBLAS core to run instead of core on a CPU with
// features f: Cooperlake with AVX512-BF16, SkylakeX with AVX-512F/BW/VL,
// Haswell with AVX2 + FMA. ok is false when core is already right (or newer,
// or not a generic x86 core this table knows).
func BetterCore(core string, f CPUFeatures) (better string, ok bool) {
	have, known := coreLevels[strings.ToLower(core)]
	if !known {
		return "", false
	}
	level := 0
	switch {
	case f.AVX512F && f.AVX512BW && f.AVX512VL && f.AVX512BF16:
		level = 3
	case f.AVX512F && f.AVX512BW && f.AVX512VL:
		level = 2
	case f.AVX2 && f.FMA:
		level = 1
	}
	if have >= level {
		return "", false
	}
	return cpuCores[level], true
}

// BLASCoreCorrection reports the OpenBLAS core this process should run
// instead of BLASCore(), if any: never when the user set OPENBLAS_CORETYPE,
// nor once it was corrected (CoreFixedEnv), nor in the pure-Go build.
func BLASCoreCorrection() (better string, ok bool) {
	if os.Getenv(CoreFixedEnv) != "" {
		return "", false
	}
	if _, set := os.LookupEnv(CoreTypeEnv); set && os.Getenv(TestForceCoreEnv) != "1" {
		return "", false
	}
	return BetterCore(BLASCore(), HostFeatures())
}
