package bitmap

import (
	"encoding/json"
	"testing"

	"github.com/salr-go/salr/kernels"
)

func TestCurrentPaths(t *testing.T) {
	p := CurrentPaths()
	if p.BLASCore != kernels.BLASCore() || p.BLASCore == "" {
		t.Errorf("BLASCore = %q, want kernels.BLASCore() = %q", p.BLASCore, kernels.BLASCore())
	}
	if p.KernelPath != defaultKernels.name {
		t.Errorf("KernelPath = %q, want %q", p.KernelPath, defaultKernels.name)
	}
	b, err := json.Marshal(Paths{BLASCore: "Haswell", KernelPath: "go"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"blas_core":"Haswell","kernel_path":"go"}`; string(b) != want {
		t.Errorf("JSON %s, want %s", b, want)
	}
	if got, want := (Paths{"Haswell", "avx512"}).String(), "BLAS core Haswell, kernel path avx512"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
