package adapters

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/salr-go/salr/datasets/assets"

	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/sparsity"
)

// testAssets is the shared assets directory (assets.ForTest).
func testAssets(t *testing.T) string { return assets.ForTest(t) }

// residualMSE is ||E − B A||²/(rows·cols) for an adapter approximating e.
func residualMSE(e []float32, l *LowRank) float64 {
	approx := make([]float32, len(e))
	l.MergeInto(approx)
	var s float64
	for i, v := range e {
		d := float64(v) - float64(approx[i])
		s += d * d
	}
	return s / float64(len(e))
}

// TestScienceReport prunes every projection of stories260K to 50% (magnitude,
// per matrix), prints the pruning MSE, the MSE after rank-r SVD correction
// (SVD with DefaultSVDConfig, as SALR initialises its adapter: the exact SVD
// on these small matrices) for r = 4, 8, 16 and the Eckart–Young bound
// (1 − r/min(d,k))·pruning MSE, and asserts, for every matrix and rank, that
// the exact-SVD MSE equals the closed form Σ_{i>r} σ_i²/(d·k), that both the
// exact and the randomized corrections respect the bound, and that the
// randomized SVD with the default oversampling and power iterations captures
// at least 99% of the optimal energy (Σ S_i² over Σ_{i<=r} σ_i²).
// Run: go test ./adapters -run TestScienceReport -v
func TestScienceReport(t *testing.T) {
	ck, err := model.Load(filepath.Join(testAssets(t), "stories260K", "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	targets, err := sparsity.ParseTargets([]string{sparsity.AllLinear})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := sparsity.ParseSpec("magnitude", "matrix", 0.5)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for name := range ck.Tensors {
		if targets.Match(name) {
			names = append(names, name)
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		pa, _ := sparsity.ParseProjection(a)
		pb, _ := sparsity.ParseProjection(b)
		if pa.Layer != pb.Layer {
			return pa.Layer - pb.Layer
		}
		return slices.Index(sparsity.ModuleNames(), pa.Module) - slices.Index(sparsity.ModuleNames(), pb.Module)
	})
	if want := ck.Config.Layers * len(sparsity.ModuleNames()); len(names) != want {
		t.Fatalf("%d target matrices, want %d", len(names), want)
	}
	ranks := []int{4, 8, 16}
	var table strings.Builder
	fmt.Fprintf(&table, "\n| matrix | shape | pruning MSE |")
	for _, r := range ranks {
		fmt.Fprintf(&table, " MSE r=%d | bound r=%d |", r, r)
	}
	fmt.Fprintf(&table, "\n|---|---|---|%s\n", strings.Repeat("---|---|", len(ranks)))
	sumRatio := make([]float64, len(ranks))
	worstEnergy := 1.0 // min over matrices and ranks of randomized/exact captured energy
	for _, name := range names {
		w := ck.Tensors[name]
		rows, cols := w.Shape[0], w.Shape[1]
		mask, err := spec.Mask(w.Data, rows, cols, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, e, st := sparsity.Split(w.Data, mask)
		if st.Pruned != spec.Pattern.PrunedCount(rows, cols) {
			t.Fatalf("%s: pruned %d", name, st.Pruned)
		}
		full, err := ExactSVD(e, rows, cols, min(rows, cols))
		if err != nil {
			t.Fatal(err)
		}
		p, _ := sparsity.ParseProjection(name)
		fmt.Fprintf(&table, "| %d.%s | %d×%d | %.4g |", p.Layer, p.Module, rows, cols, st.MSE)
		for ri, r := range ranks {
			var tail float64
			for _, s := range full.S[r:] {
				tail += s * s
			}
			closed := tail / float64(rows*cols)
			exact, err := ExactSVD(e, rows, cols, r)
			if err != nil {
				t.Fatal(err)
			}
			exactMSE := residualMSE(e, NewSVDAdapter(exact, true))
			if math.Abs(exactMSE-closed) > 1e-4*closed {
				t.Errorf("%s r=%d: exact-SVD MSE %.8g, closed form Σσ²_{i>r}/(dk) = %.8g", name, r, exactMSE, closed)
			}
			def, err := SVD(e, rows, cols, DefaultSVDConfig(r, SeedFor(1, name)))
			if err != nil {
				t.Fatal(err)
			}
			defMSE := residualMSE(e, NewSVDAdapter(def, true))
			rc := DefaultSVDConfig(r, SeedFor(1, name))
			rc.Method = SVDRandomized
			rnd, err := SVD(e, rows, cols, rc)
			if err != nil {
				t.Fatal(err)
			}
			rndMSE := residualMSE(e, NewSVDAdapter(rnd, true))
			energy := rnd.Energy() / exact.Energy()
			worstEnergy = min(worstEnergy, energy)
			if energy < 0.99 {
				t.Errorf("%s r=%d: randomized SVD captures %.4f of the optimal energy, want >= 0.99", name, r, energy)
			}
			bound := (1 - float64(r)/float64(min(rows, cols))) * st.MSE
			if exactMSE > bound || rndMSE > bound || defMSE > bound {
				t.Errorf("%s r=%d: MSE exact %.6g / randomized %.6g / default %.6g exceeds the bound %.6g", name, r, exactMSE, rndMSE, defMSE, bound)
			}
			sumRatio[ri] += defMSE / st.MSE
			fmt.Fprintf(&table, " %.4g | %.4g |", defMSE, bound)
		}
		table.WriteString("\n")
	}
	fmt.Fprintf(&table, "\nmean MSE after correction / pruning MSE over %d matrices:", len(names))
	for ri, r := range ranks {
		fmt.Fprintf(&table, " r=%d: %.3f", r, sumRatio[ri]/float64(len(names)))
	}
	fmt.Fprintf(&table, "\nrandomized SVD (p=%d, q=%d) captured energy / exact, worst case: %.5f", DefaultSVDOversample, DefaultSVDPowerIters, worstEnergy)
	t.Log(table.String())
}
