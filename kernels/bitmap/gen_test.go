package bitmap

import (
	"os"
	"testing"

	"github.com/salr-go/salr/kernels/bitmap/internal/batchgen"
)

// TestGeneratedKernelsUpToDate compares kernels_batch_amd64.s with what the
// generator writes now.
func TestGeneratedKernelsUpToDate(t *testing.T) {
	got, err := os.ReadFile("kernels_batch_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != batchgen.Generate() {
		t.Fatal("kernels_batch_amd64.s is stale: run go generate ./kernels/bitmap")
	}
}
