package trainer

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/salr-go/salr/datasets"
)

// refAdamW is an independent float64 AdamW written from the paper's
// algorithm (decoupled decay, bias-corrected moments).
type refAdamW struct {
	b1, b2, eps, wd float64
	t               int
	m, v            []float64
}

func (r *refAdamW) step(theta, g []float64, lr float64) {
	r.t++
	for i := range theta {
		r.m[i] = r.b1*r.m[i] + (1-r.b1)*g[i]
		r.v[i] = r.b2*r.v[i] + (1-r.b2)*g[i]*g[i]
		mh := r.m[i] / (1 - math.Pow(r.b1, float64(r.t)))
		vh := r.v[i] / (1 - math.Pow(r.b2, float64(r.t)))
		theta[i] -= lr * (mh/(math.Sqrt(vh)+r.eps) + r.wd*theta[i])
	}
}

func TestAdamWMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 50
	data := make([]float32, n)
	theta := make([]float64, n)
	for i := range data {
		data[i] = float32(rng.NormFloat64())
		theta[i] = float64(data[i])
	}
	params := []Param{{Name: "w", Data: data, Grad: make([]float32, n)}}
	opt := NewAdamW(params, 0.9, 0.999, 1e-8, 0.01)
	ref := &refAdamW{b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.01, m: make([]float64, n), v: make([]float64, n)}
	for step := 0; step < 20; step++ {
		g := make([]float64, n)
		for i := range g {
			params[0].Grad[i] = float32(rng.NormFloat64())
			g[i] = float64(params[0].Grad[i])
		}
		lr := 1e-2 * float64(step+1) / 20
		if err := opt.Update(params, lr); err != nil {
			t.Fatal(err)
		}
		ref.step(theta, g, lr)
	}
	for i := range theta {
		if math.Abs(float64(data[i])-theta[i]) > 1e-5 {
			t.Fatalf("θ[%d] = %v, reference %v", i, data[i], theta[i])
		}
	}
	// First step of Adam moves every coordinate by ~lr·sign(g) (bias correction).
	p := []Param{{Name: "x", Data: []float32{0, 0}, Grad: []float32{3, -0.01}}}
	o := NewAdamW(p, 0.9, 0.999, 1e-8, 0)
	o.Update(p, 0.1)
	if math.Abs(float64(p[0].Data[0])+0.1) > 1e-6 || math.Abs(float64(p[0].Data[1])-0.1) > 1e-5 {
		t.Errorf("first step %v, want [-0.1 0.1]", p[0].Data)
	}
}

func TestAdamWTrainableMask(t *testing.T) {
	p := []Param{{Name: "cat", Data: []float32{1, 1, 1}, Grad: []float32{1, 1, 1}, Trainable: []bool{true, false, true}}}
	o := NewAdamW(p, 0.9, 0.999, 1e-8, 0.1)
	o.Update(p, 0.1)
	if p[0].Data[1] != 1 || p[0].Data[0] == 1 || p[0].Data[2] == 1 {
		t.Fatalf("masked entries changed or trainable ones did not: %v", p[0].Data)
	}
	if o.M[0][1] != 0 || o.V[0][1] != 0 {
		t.Fatal("frozen entry got optimizer state")
	}
	if n := GradNorm(p); math.Abs(n-math.Sqrt(2)) > 1e-9 {
		t.Fatalf("grad norm %v counts frozen entries", n)
	}
}

func TestClipGrads(t *testing.T) {
	p := []Param{{Grad: []float32{3, 0}}, {Grad: []float32{4}}}
	if n := ClipGrads(p, 1); math.Abs(n-5) > 1e-9 {
		t.Fatalf("norm %v, want 5", n)
	}
	if n := GradNorm(p); math.Abs(n-1) > 1e-5 {
		t.Fatalf("clipped norm %v, want 1", n)
	}
	q := []Param{{Grad: []float32{0.3, 0.4}}}
	ClipGrads(q, 1)
	if q[0].Grad[0] != 0.3 || q[0].Grad[1] != 0.4 {
		t.Fatal("gradients under the limit were changed")
	}
}

func TestSchedule(t *testing.T) {
	s := Schedule{Kind: "cosine", Peak: 1, Warmup: 4, Total: 14, MinRatio: 0.1}
	want := map[int]float64{0: 0.2, 3: 0.8, 4: 1, 9: 0.55, 14: 0.1, 20: 0.1}
	for step, w := range want {
		if got := s.LR(step); math.Abs(got-w) > 1e-12 {
			t.Errorf("cosine LR(%d) = %v, want %v", step, got, w)
		}
	}
	l := Schedule{Kind: "linear", Peak: 2, Warmup: 0, Total: 10}
	if got := l.LR(5); math.Abs(got-1) > 1e-12 {
		t.Errorf("linear LR(5) = %v, want 1", got)
	}
	c := Schedule{Kind: "constant", Peak: 3, Warmup: 2, Total: 10}
	if c.LR(1) != 2 || c.LR(9) != 3 {
		t.Errorf("constant: %v %v", c.LR(1), c.LR(9))
	}
}

func TestCheckpointRoundTripAndPruning(t *testing.T) {
	dir := t.TempDir()
	params := []Param{
		{Name: "a", Data: []float32{1, 2, 3}, Grad: make([]float32, 3)},
		{Name: "b", Data: []float32{4, 5}, Grad: make([]float32, 2)},
	}
	opt := NewAdamW(params, 0.9, 0.999, 1e-8, 0)
	for step := 1; step <= 4; step++ {
		params[0].Grad[0] = float32(step)
		opt.Update(params, 0.1)
		st := TrainState{Step: step, AdamSteps: opt.Steps, Loader: datasets.LoaderState{Epoch: 1, Cursor: step}, ConfigHash: "h"}
		if err := saveCheckpoint(dir, params, opt, st); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(dir, checkpointsDir))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"latest", "step-0000003", "step-0000004"}) {
		t.Fatalf("checkpoint dir holds %v", names)
	}
	ck, err := latestCheckpoint(dir)
	if err != nil || filepath.Base(ck) != "step-0000004" {
		t.Fatalf("latest = %q, %v", ck, err)
	}
	fresh := []Param{
		{Name: "a", Data: make([]float32, 3), Grad: make([]float32, 3)},
		{Name: "b", Data: make([]float32, 2), Grad: make([]float32, 2)},
	}
	opt2 := NewAdamW(fresh, 0.9, 0.999, 1e-8, 0)
	st, err := loadCheckpoint(ck, fresh, opt2, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if st.Step != 4 || st.Loader.Cursor != 4 || opt2.Steps != 4 {
		t.Fatalf("state %+v, adam steps %d", st, opt2.Steps)
	}
	for i := range params {
		if !slices.Equal(fresh[i].Data, params[i].Data) || !slices.Equal(opt2.M[i], opt.M[i]) || !slices.Equal(opt2.V[i], opt.V[i]) {
			t.Fatalf("tensor %d not restored exactly", i)
		}
	}
	// A checkpoint whose tensors do not fit the run is an error.
	wrong := []Param{{Name: "a", Data: make([]float32, 4), Grad: make([]float32, 4)}}
	if _, err := loadCheckpoint(ck, wrong, NewAdamW(wrong, 0.9, 0.999, 1e-8, 0), t.Logf); err == nil {
		t.Fatal("mismatched checkpoint accepted")
	}
}

func TestPrepareRunDirRefusesFinishedAndUnfinishedRuns(t *testing.T) {
	root := t.TempDir()
	prepareRunDir := func(dir string, overwrite bool) error {
		unlock, err := openNewRunDir(dir, overwrite)
		if err == nil {
			unlock()
		}
		return err
	}
	fresh := filepath.Join(root, "new")
	if err := prepareRunDir(fresh, false); err != nil {
		t.Fatal(err)
	}
	finished := filepath.Join(root, "done")
	os.MkdirAll(finished, 0o755)
	writeJSON(filepath.Join(finished, SummaryFile), Summary{Finished: true})
	if err := prepareRunDir(finished, false); err == nil {
		t.Fatal("a finished run directory was accepted without -overwrite")
	}
	if err := prepareRunDir(finished, true); err != nil {
		t.Fatal(err)
	}
	if IsFinished(finished) {
		t.Fatal("-overwrite left the old summary behind")
	}
	other := filepath.Join(root, "other")
	os.MkdirAll(other, 0o755)
	os.WriteFile(filepath.Join(other, "notes.txt"), []byte("mine"), 0o644)
	if err := prepareRunDir(other, false); err == nil {
		t.Fatal("a non-empty directory was accepted")
	}
}
