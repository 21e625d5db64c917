package adapters

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/salr-go/salr/kernels"
	"gonum.org/v1/gonum/mat"
)

// capturedEnergy is ||E||² − ||E − B A||²: the squared Frobenius norm of the
// residual e (rows×cols) that the adapter l removes, computed in float64 from
// the float32 product B A.
func capturedEnergy(e []float32, l *LowRank) float64 {
	ba := make([]float32, len(e))
	kernels.Gemm(false, false, l.Out, l.In, l.Rank, 1, l.B, l.Rank, l.A, l.In, 0, ba, l.In)
	var total, left float64
	for i, v := range e {
		d := float64(v) - float64(ba[i])
		total += float64(v) * float64(v)
		left += d * d
	}
	return total - left
}

// optimalEnergy is the sum of the rank largest squared singular values of e:
// the largest eigenvalues of the Gram matrix of its shorter side, formed by a
// float32 GEMM and decomposed in float64 by gonum (independent of the SVD
// code under test).
func optimalEnergy(t testing.TB, e []float32, rows, cols, rank int) float64 {
	t.Helper()
	n := min(rows, cols)
	g32 := make([]float32, n*n)
	if rows <= cols {
		kernels.Gemm(false, true, n, n, cols, 1, e, cols, e, cols, 0, g32, n) // e eᵀ
	} else {
		kernels.Gemm(true, false, n, n, rows, 1, e, cols, e, cols, 0, g32, n) // eᵀ e
	}
	g := mat.NewSymDense(n, nil)
	for i := 0; i < n; i++ {
		for j := i; j < n; j++ {
			g.SetSym(i, j, (float64(g32[i*n+j])+float64(g32[j*n+i]))/2)
		}
	}
	var eig mat.EigenSym
	if !eig.Factorize(g, false) {
		t.Fatalf("eigenvalues of the %d×%d Gram matrix did not converge", n, n)
	}
	v := eig.Values(nil) // ascending
	var s float64
	for _, x := range v[len(v)-rank:] {
		s += x
	}
	return s
}

// TestSVDSettingsTable measures, on 50% magnitude-pruning residuals of
// Gaussian matrices (flat spectra, the hard case), the energy the SVD adapter
// captures relative to the exact rank-r optimum and the seconds per matrix,
// for the SVD methods and randomized settings (oversample p, power iterations
// q). Slow; it runs only when SALR_SVD_TABLE lists shapes, e.g.
//
//	SALR_SVD_TABLE=4096x4096,4096x11008 SALR_SVD_RANK=64 \
//	SALR_SVD_SETTINGS=8:2,64:16,64:24 go test ./adapters -run TestSVDSettingsTable -v -timeout 1h
//
// The exact SVD is timed only up to min(rows, cols) <= 1024 (SALR_SVD_EXACT_MAX
// changes it); the optimum always comes from the Gram matrix's eigenvalues.
func TestSVDSettingsTable(t *testing.T) {
	shapes := os.Getenv("SALR_SVD_TABLE")
	if shapes == "" {
		t.Skip("set SALR_SVD_TABLE=ROWSxCOLS,... to measure")
	}
	rank := envInt(t, "SALR_SVD_RANK", 64)
	exactMax := envInt(t, "SALR_SVD_EXACT_MAX", 1024)
	settings := os.Getenv("SALR_SVD_SETTINGS")
	if settings == "" { // the old preset settings and the defaults
		settings = fmt.Sprintf("8:2,%d:%d", DefaultSVDOversample, DefaultSVDPowerIters)
	}
	var table strings.Builder
	fmt.Fprintf(&table, "\nrank %d; CPU shared, seconds are one run each\n\n", rank)
	table.WriteString("| shape | method | p | q | captured/optimal | seconds |\n|---|---|---|---|---|---|\n")
	for i, shape := range strings.Split(shapes, ",") {
		var rows, cols int
		if _, err := fmt.Sscanf(shape, "%dx%d", &rows, &cols); err != nil {
			t.Fatalf("SALR_SVD_TABLE: shape %q: want ROWSxCOLS", shape)
		}
		e, _ := prunedResidual(t, rows, cols, uint64(100+i))
		start := time.Now()
		best := optimalEnergy(t, e, rows, cols, rank)
		fmt.Fprintf(&table, "| %d×%d | optimum (Gram eigenvalues) | | | 1 | %.2f |\n", rows, cols, time.Since(start).Seconds())
		if min(rows, cols) <= exactMax {
			start = time.Now()
			ex, err := ExactSVD(e, rows, cols, rank)
			if err != nil {
				t.Fatal(err)
			}
			sec := time.Since(start).Seconds()
			fmt.Fprintf(&table, "| %d×%d | exact | | | %.5f | %.2f |\n", rows, cols, capturedEnergy(e, NewSVDAdapter(ex, true))/best, sec)
		}
		for _, pq := range strings.Split(settings, ",") {
			var p, q int
			if _, err := fmt.Sscanf(pq, "%d:%d", &p, &q); err != nil {
				t.Fatalf("SALR_SVD_SETTINGS: %q: want P:Q", pq)
			}
			start = time.Now()
			rs, err := RandomizedSVD(e, rows, cols, SVDConfig{Rank: rank, Oversample: p, PowerIters: q, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			sec := time.Since(start).Seconds()
			fmt.Fprintf(&table, "| %d×%d | randomized | %d | %d | %.5f | %.2f |\n", rows, cols, p, q, capturedEnergy(e, NewSVDAdapter(rs, true))/best, sec)
		}
		t.Log(table.String()) // after every shape, so a long run shows progress
	}
}

func envInt(t *testing.T, key string, def int) int {
	t.Helper()
	s := os.Getenv(key)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a non-negative integer", key, s)
	}
	return n
}
