package kernels

import (
	"go/build"
	"testing"
)

// TestBackendBuildConstraints checks that exactly one BLAS backend file is
// compiled for every combination of cgo and the purego tag, so that
// CGO_ENABLED=0 builds pick the pure-Go backend without a tag.
func TestBackendBuildConstraints(t *testing.T) {
	t.Logf("this test binary uses the %s backend", BackendName())
	files := map[string]string{"backend_openblas.go": "openblas", "backend_purego.go": "gonum"}
	for _, tc := range []struct {
		cgo, purego bool
		want        string
	}{
		{cgo: true, purego: false, want: "openblas"},
		{cgo: true, purego: true, want: "gonum"},
		{cgo: false, purego: false, want: "gonum"},
		{cgo: false, purego: true, want: "gonum"},
	} {
		ctx := build.Default
		ctx.CgoEnabled = tc.cgo
		ctx.BuildTags = nil
		if tc.purego {
			ctx.BuildTags = []string{"purego"}
		}
		var chosen []string
		for file, backend := range files {
			ok, err := ctx.MatchFile(".", file)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				chosen = append(chosen, backend)
			}
		}
		if len(chosen) != 1 || chosen[0] != tc.want {
			t.Errorf("cgo=%v purego=%v: backends compiled %v, want [%s]", tc.cgo, tc.purego, chosen, tc.want)
		}
	}
}
