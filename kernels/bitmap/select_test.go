package bitmap

import (
	"strings"
	"testing"
)

// TestChooseDefault: SALR_KERNEL_PATH picks a runnable path; an unknown or
// unrunnable one warns and keeps the fastest runnable path.
func TestChooseDefault(t *testing.T) {
	a, b, c := &kernelSet{name: "go"}, &kernelSet{name: "fast"}, &kernelSet{name: "faster"}
	paths := []kernelPath{{a, true, ""}, {b, true, "X"}, {c, false, "Y and Z"}}
	for _, tc := range []struct {
		env, want, warn string
	}{
		{"", "fast", ""},
		{"go", "go", ""},
		{"fast", "fast", ""},
		{"faster", "fast", "SALR_KERNEL_PATH=faster: this CPU cannot run it (needs Y and Z); using kernel path fast"},
		{"avx9", "fast", `SALR_KERNEL_PATH="avx9" is not a kernel path of this build (go, fast, faster); using fast`},
	} {
		var warn strings.Builder
		if got := chooseDefault(paths, tc.env, &warn); got.name != tc.want {
			t.Errorf("env %q: chose %s, want %s", tc.env, got.name, tc.want)
		}
		if !strings.Contains(warn.String(), tc.warn) || (tc.warn == "") != (warn.Len() == 0) {
			t.Errorf("env %q: warning %q, want one containing %q", tc.env, warn.String(), tc.warn)
		}
	}
	if got := skippedPaths(paths); len(got) != 1 || got[0] != "faster (needs Y and Z)" {
		t.Errorf("skippedPaths = %q", got)
	}
}
