package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/salr-go/salr/cmd/internal/cli/clitest"
	"github.com/salr-go/salr/kernels"
)

// TestExitCodes runs the command's main in a child process.
func TestExitCodes(t *testing.T) {
	clitest.Child("salr-bench", main)
	for _, c := range []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"-h"}, 0, "usage: salr-bench checkpoint|generate|kernels|serve|theorem2|train [flags]", ""},
		{[]string{"kernels", "-h"}, 0, "usage: salr-bench kernels [flags]", ""},
		{nil, 2, "", "salr-bench: missing subcommand (checkpoint, generate, kernels, serve, theorem2, train)\nrun 'salr-bench -h' for usage\n"},
		{[]string{"kernels", "extra", "-reps", "1"}, 2, "", `salr-bench: kernels: unexpected argument "extra"`},
		{[]string{"kernels", "-shapes", "1x2"}, 1, "", "salr-bench: kernels: "},
		{[]string{"checkpoint", "-h"}, 0, "usage: salr-bench checkpoint [flags]", ""},
		{[]string{"checkpoint", "-shape", "nosuch", "-out", "unused"}, 1, "", `salr-bench: checkpoint: -shape: model: unknown shape "nosuch"`},
		{[]string{"checkpoint", "-shape", "llama2-7b", "-dtype", "q4", "-out", "unused"}, 2, "", `salr-bench: checkpoint: -dtype "q4"`},
	} {
		code, stdout, stderr := clitest.Exec(t, "TestExitCodes", c.args...)
		if code != c.code || !strings.Contains(stdout, c.stdout) || !strings.Contains(stderr, c.stderr) {
			t.Errorf("salr-bench %q: exit %d, stdout %q, stderr %q; want exit %d, %q and %q", c.args, code, stdout, stderr, c.code, c.stdout, c.stderr)
		}
	}
}

// TestGenericBLASCoreCorrected starts salr-bench kernels on OpenBLAS's
// generic Prescott core, as if OpenBLAS had chosen it, and checks that the
// command re-ran itself on the better core and reports it.
func TestGenericBLASCoreCorrected(t *testing.T) {
	clitest.Child("salr-bench", main)
	better, ok := kernels.BetterCore("Prescott", kernels.HostFeatures())
	if kernels.BLASCore() == "purego" || !ok {
		t.Skip("no OpenBLAS, or a CPU without AVX2 and AVX-512")
	}
	t.Setenv(kernels.CoreFixedEnv, "")
	t.Setenv(kernels.CoreTypeEnv, "Prescott")
	t.Setenv(kernels.TestForceCoreEnv, "1")
	code, stdout, stderr := clitest.Exec(t, "TestGenericBLASCoreCorrected", "kernels", "-cases", "dense-fp32", "-shapes", "1x64x32", "-reps", "1", "-cold-mb", "1", "-json")
	var r struct {
		BLASCore string `json:"blas_core"`
	}
	// The first JSON line (the bandwidth row) names the paths like every other.
	if err := json.NewDecoder(strings.NewReader(stdout)).Decode(&r); code != 0 || err != nil || r.BLASCore != better || stderr != "" {
		t.Errorf("exit %d, blas_core %q (%v), stderr %q; want exit 0, %q, no message", code, r.BLASCore, err, stderr, better)
	}
}
