//go:build amd64 && !purego

package bitmap

import (
	"reflect"
	"slices"
	"testing"
)

// overriddenKernels lists the kernels of ks that are not those of base.
func overriddenKernels(ks, base *kernelSet) []string {
	var names []string
	v, b := reflect.ValueOf(ks).Elem(), reflect.ValueOf(base).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.Func && f.Pointer() != b.Field(i).Pointer() {
			names = append(names, v.Type().Field(i).Name)
		}
	}
	return names
}

// TestAVX512BF16Set checks how the avx512bf16 set is built on every amd64
// machine, and where the CPU has AVX512-BF16 that it is offered, tested by the
// shared suite (TestKernelSuite runs every set in kernelSets) and passes its
// self-check. Elsewhere it reports the set as skipped.
func TestAVX512BF16Set(t *testing.T) {
	for _, vbmi2 := range []bool{true, false} {
		ks := newAVX512BF16Kernels(vbmi2)
		want := []string{"denseDot", "denseDotBatch"}
		if vbmi2 {
			want = []string{"bitmapDot", "bitmapDotBatch", "denseDot", "denseDotBatch"}
		}
		if got := overriddenKernels(ks, avx512Kernels); !slices.Equal(got, want) {
			t.Errorf("vbmi2 %v: overrides %v of avx512, want %v", vbmi2, got, want)
		}
		if ks.name != "avx512bf16" || ks.fallback != avx512Kernels || !ks.denseBF16X || ks.bitmapBF16X != vbmi2 {
			t.Errorf("vbmi2 %v: name %q, fallback %v, denseBF16X %v, bitmapBF16X %v", vbmi2, ks.name, ks.fallback, ks.denseBF16X, ks.bitmapBF16X)
		}
	}
	if !hasAVX512BF16() {
		if slices.ContainsFunc(kernelSets, func(ks *kernelSet) bool { return ks.name == "avx512bf16" }) {
			t.Fatal("the avx512bf16 set is offered on a CPU without AVX512-BF16")
		}
		t.Skip("skipped: this CPU lacks AVX-512 F+BW+BF16, so the avx512bf16 kernels (denseDot, denseDotBatch, and with VBMI2 bitmapDot, bitmapDotBatch for bf16) are not run; " +
			"where they run, the suite checks them within productBound with relX = 2⁻⁸")
	}
	if !slices.Contains(kernelSets, avx512BF16Kernels) || kernelSets[len(kernelSets)-1] != avx512BF16Kernels {
		t.Fatal("the CPU has AVX512-BF16 but avx512bf16 is not the last (preferred) set in kernelSets")
	}
	t.Logf("avx512bf16 overrides %v of avx512", overriddenKernels(avx512BF16Kernels, avx512Kernels))
	if err := selfCheck(avx512BF16Kernels, avx512Kernels); err != nil {
		t.Fatalf("self-check: %v", err)
	}
}
