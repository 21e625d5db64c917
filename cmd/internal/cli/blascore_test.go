package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/salr-go/salr/kernels"
)

// blasChildEnv makes the test binary run Main with a command that prints
// the OpenBLAS core, instead of the tests.
const blasChildEnv = "SALR_CLI_TEST_BLAS_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(blasChildEnv) == "1" {
		// Main re-executes the binary with its own arguments: this branch
		// runs again there.
		Main("blas-child", func(_ context.Context, _ []string, stdout, _ io.Writer) error {
			_, err := fmt.Fprintln(stdout, kernels.BLASCore())
			return err
		})
	}
	os.Exit(m.Run())
}

// runBLASChild runs Main in a child process with env added and returns the
// core it ended on and its stderr.
func runBLASChild(t *testing.T, env ...string) (core, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, kernels.CoreTypeEnv+"=") && !strings.HasPrefix(kv, kernels.CoreFixedEnv+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, append(env, blasChildEnv+"=1")...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\nstderr: %s", err, errOut.String())
	}
	return strings.TrimSpace(out.String()), errOut.String()
}

// needGenericCore skips unless this build runs OpenBLAS and this CPU
// deserves better than its generic Prescott core.
func needGenericCore(t *testing.T) string {
	if kernels.BLASCore() == "purego" {
		t.Skip("pure-Go build: no OpenBLAS core")
	}
	better, ok := kernels.BetterCore("Prescott", kernels.HostFeatures())
	if !ok {
		t.Skip("this CPU has neither AVX2 nor AVX-512")
	}
	return better
}

func TestBLASCoreCorrected(t *testing.T) {
	better := needGenericCore(t)
	// Forced onto Prescott as if OpenBLAS had chosen it.
	core, stderr := runBLASChild(t, kernels.CoreTypeEnv+"=Prescott", kernels.TestForceCoreEnv+"=1")
	if core != better {
		t.Errorf("child ended on core %q, want %q", core, better)
	}
	if stderr != "" {
		t.Errorf("stderr: %q, want nothing", stderr)
	}
}

func TestBLASCoreUserChoiceKept(t *testing.T) {
	needGenericCore(t)
	core, stderr := runBLASChild(t, kernels.CoreTypeEnv+"=Prescott")
	if core != "Prescott" || stderr != "" {
		t.Errorf("user's OPENBLAS_CORETYPE=Prescott: child ran %q, stderr %q; want Prescott and no message", core, stderr)
	}
}

func TestBLASCoreNoLoop(t *testing.T) {
	needGenericCore(t)
	// Marked as corrected already but still generic: warn, do not re-execute.
	core, stderr := runBLASChild(t, kernels.CoreTypeEnv+"=Prescott", kernels.TestForceCoreEnv+"=1", kernels.CoreFixedEnv+"=1")
	if core != "Prescott" {
		t.Errorf("child ran %q, want Prescott (no second correction)", core)
	}
	if !strings.Contains(stderr, "warning: OpenBLAS runs its generic Prescott core") {
		t.Errorf("stderr %q, want the still-generic warning", stderr)
	}
}

func TestBLASCoreDefaultSilent(t *testing.T) {
	if kernels.BLASCore() == "purego" {
		t.Skip("pure-Go build")
	}
	core, stderr := runBLASChild(t)
	if _, ok := kernels.BetterCore(core, kernels.HostFeatures()); ok || stderr != "" {
		t.Errorf("default run: core %q, stderr %q; want a core right for this CPU and no message", core, stderr)
	}
}
