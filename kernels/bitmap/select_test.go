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

// TestRoundingSetsAreOptIn: a set that rounds activations to bf16 is never
// the default unless named, and is what BF16Activations' choice finds.
func TestRoundingSetsAreOptIn(t *testing.T) {
	exact, rounding := &kernelSet{name: "exact"}, &kernelSet{name: "rounding", denseBF16X: true}
	paths := []kernelPath{{goKernels, true, ""}, {exact, true, ""}, {rounding, true, ""}}
	var warn strings.Builder
	if got := chooseDefault(paths, "", &warn); got != exact {
		t.Errorf("default %s, want exact", got.name)
	}
	if got := chooseDefault(paths, "rounding", &warn); got != rounding {
		t.Errorf("named: %s, want rounding", got.name)
	}
	if got := fastestRoundingX(paths); got != rounding {
		t.Errorf("fastestRoundingX = %v, want rounding", got)
	}
	paths[2].ok = false
	if got := fastestRoundingX(paths); got != nil {
		t.Errorf("fastestRoundingX without a runnable one = %s", got.name)
	}
	if warn.Len() != 0 {
		t.Errorf("warnings: %q", warn.String())
	}
}

// TestBF16ActivationsView: where the CPU has a rounding set the view of a
// bf16 matrix uses it and leaves the matrix alone; elsewhere there is none.
func TestBF16ActivationsView(t *testing.T) {
	w := []float32{1, 0, -2, 0, 0.5, 3}
	m, err := Encode(w, 2, 3, BF16)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDenseBF16(w, 2, 3)
	v, ok := m.BF16Activations()
	dv, dok := d.BF16Activations()
	if want := bf16Kernels(); want == nil {
		if ok || dok {
			t.Error("a bf16-activation view on a CPU without a rounding kernel set")
		}
		t.Logf("no kernel set rounding activations on this CPU (avx512bf16 needs AVX512-BF16); views refused")
		return
	}
	if !ok || !dok || v.kern != bf16Kernels() || dv.kern != bf16Kernels() || m.kern == v.kern || d.kern == dv.kern {
		t.Errorf("views %v %v: kernels %s %s; originals %s %s", ok, dok, v.kern.name, dv.kern.name, m.kern.name, d.kern.name)
	}
	if f, err := Encode(w, 2, 3, F32); err == nil {
		if _, ok := f.BF16Activations(); ok {
			t.Error("an fp32 bitmap has a bf16-activation view")
		}
	}
}
