// Package theorem2 measures the SALR paper's Theorem 2 on trained runs: the
// pruning error of three ways of combining magnitude pruning with LoRA —
// pruning the frozen base before training (salr; prune-lora is the same
// without the SVD residual adapter), pruning during training
// (lora-prune-dynamic) and pruning after it (lora-prune) — against the
// dense fine-tuned weights of a lora run of the same steps, seed and data,
// and whether the stated order salr <= during <= after holds.
//
// Two errors are computed per projection matrix, in float64:
//
//	vs dense: ||W_served − W_ft||²_F / ||W_ft||²_F, W_ft = W0 + s·B A of the
//	          lora run (the dense fine-tuned weight), W_served the weight the
//	          strategy's run serves: salr W0⊙M + B_cat A_cat (LoRA and SVD
//	          adapters merged), prune-lora W0⊙M + s·B A, lora-prune-dynamic
//	          and lora-prune their pruned merged base;
//	own:      ||W_served − W_own||²_F / ||W_own||²_F, W_own = W0 + s·B A of the
//	          strategy's own LoRA (what it would serve unpruned): salr
//	          ||W0⊙(1−M) − B_svd A_svd||², prune-lora ||W0⊙(1−M)||², the merged
//	          methods ||(W0 + s·B A)⊙(1−M)||² (their trained adapters are in
//	          merged-adapter/).
//
// With the per-matrix pattern no sparse matrix with the same number of
// nonzeros is closer to W_ft than W_ft's own magnitude pruning, so under
// "vs dense" lora-prune is a lower bound for every strategy whose served
// weight is that sparse (lora-prune-dynamic included); only the salr family,
// which serves dense low-rank factors beside its sparse base, can go below
// it.
package theorem2

import (
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/salr-go/salr/adapters"
	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/trainer"
	"github.com/salr-go/salr/trainer/export"
)

// Strategies are the methods of a table's columns, in order; the order
// checked is Strategies[i] <= lora-prune-dynamic <= lora-prune for i = 0
// (salr) and i = 1 (prune-lora).
var Strategies = []string{configs.MethodSALR, configs.MethodPruneLoRA, configs.MethodLoRAPruneDynamic, configs.MethodLoRAPrune}

// Labels name the strategies in tables.
var Labels = map[string]string{
	configs.MethodSALR:             "salr (prune base before)",
	configs.MethodPruneLoRA:        "prune-lora (prune base before, no SVD)",
	configs.MethodLoRAPruneDynamic: "lora-prune-dynamic (during)",
	configs.MethodLoRAPrune:        "lora-prune (after)",
}

// Matrix is one projection's errors, per strategy in Strategies order (NaN
// where not measured).
type Matrix struct {
	Module     string
	Rows, Cols int
	VsDense    []float64
	Own        []float64
	// numerators and denominators of the two errors, for the overall ones.
	numD, denD, numO, denO []float64
}

// Table is the comparison at one sparsity ratio.
type Table struct {
	Ratio float64
	// NLL is each strategy's held-out loss (summary.json eval_loss), NaN
	// when not measured; DenseNLL the lora run's.
	NLL      []float64
	DenseNLL float64
	Matrices []Matrix
	// OverallVsDense and OverallOwn sum the numerators and denominators
	// over the matrices.
	OverallVsDense, OverallOwn []float64
}

// newMatrix returns a Matrix with NaN errors.
func newMatrix(module string, rows, cols int) Matrix {
	n := len(Strategies)
	nan := func() []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = math.NaN()
		}
		return v
	}
	return Matrix{Module: module, Rows: rows, Cols: cols, VsDense: nan(), Own: nan(),
		numD: make([]float64, n), denD: make([]float64, n), numO: make([]float64, n), denO: make([]float64, n)}
}

// set records strategy i's served, fine-tuned and own weights (own nil:
// not measured).
func (m *Matrix) set(i int, served, ft, own []float32) {
	m.numD[i], m.denD[i] = sqDiff(served, ft), sqNorm(ft)
	m.VsDense[i] = m.numD[i] / m.denD[i]
	if own != nil {
		m.numO[i], m.denO[i] = sqDiff(served, own), sqNorm(own)
		m.Own[i] = m.numO[i] / m.denO[i]
	}
}

func sqNorm(a []float32) float64 {
	var s float64
	for _, v := range a {
		s += float64(v) * float64(v)
	}
	return s
}

func sqDiff(a, b []float32) float64 {
	var s float64
	for i, v := range a {
		d := float64(v) - float64(b[i])
		s += d * d
	}
	return s
}

// overall computes the overall errors of t from its matrices.
func (t *Table) overall() {
	n := len(Strategies)
	t.OverallVsDense, t.OverallOwn = make([]float64, n), make([]float64, n)
	for i := range n {
		var nd, dd, no, do float64
		for _, m := range t.Matrices {
			nd, dd, no, do = nd+m.numD[i], dd+m.denD[i], no+m.numO[i], do+m.denO[i]
		}
		t.OverallVsDense[i], t.OverallOwn[i] = nd/dd, no/do
		if dd == 0 {
			t.OverallVsDense[i] = math.NaN()
		}
		if do == 0 {
			t.OverallOwn[i] = math.NaN()
		}
	}
}

// projections lists p's projections in layer order.
func projections(p *model.Params[float32]) []*model.Linear[float32] {
	var out []*model.Linear[float32]
	for _, L := range p.Layers {
		out = append(out, L.Linears()...)
	}
	return out
}

// baseOf is lin's base weight as a new dense slice (adapter not added).
func baseOf(lin *model.Linear[float32]) ([]float32, error) {
	return export.Merged(&model.Linear[float32]{Module: lin.Module, Base: lin.Base})
}

// FromRuns compares the strategy runs in dirs (any of Strategies, one run
// each, all at one sparsity ratio) with the lora run denseDir. The runs
// must share steps, seed, data and LoRA settings, and store their bases
// densely in fp32 (output.base_format = dense-fp32) so that the weights
// compared are the trained ones.
func FromRuns(denseDir string, dirs []string) (*Table, error) {
	dcfg, err := runConfig(denseDir)
	if err != nil {
		return nil, err
	}
	if dcfg.Method != configs.MethodLoRA {
		return nil, fmt.Errorf("theorem2: %s is a %s run, want lora (the dense fine-tuned weights)", denseDir, dcfg.Method)
	}
	dsum, err := trainer.ReadSummary(denseDir)
	if err != nil {
		return nil, err
	}
	dense, err := trainer.OpenRun(denseDir)
	if err != nil {
		return nil, err
	}
	defer dense.Close()
	t := &Table{Ratio: math.NaN(), DenseNLL: dsum.EvalLoss, NLL: make([]float64, len(Strategies))}
	for i := range t.NLL {
		t.NLL[i] = math.NaN()
	}
	lins := projections(dense.Params)
	w0 := make([][]float32, len(lins))
	ft := make([][]float32, len(lins))
	for j, lin := range lins {
		if w0[j], err = baseOf(lin); err != nil {
			return nil, err
		}
		if ft[j], err = export.Merged(lin); err != nil {
			return nil, err
		}
		t.Matrices = append(t.Matrices, newMatrix(lin.Module, lin.Base.Rows(), lin.Base.Cols()))
	}
	seen := map[string]string{}
	for _, dir := range dirs {
		cfg, err := runConfig(dir)
		if err != nil {
			return nil, err
		}
		i := slices.Index(Strategies, cfg.Method)
		if i < 0 {
			return nil, fmt.Errorf("theorem2: %s is a %s run, want one of %s", dir, cfg.Method, strings.Join(Strategies, ", "))
		}
		if prev, dup := seen[cfg.Method]; dup {
			return nil, fmt.Errorf("theorem2: %s and %s are both %s runs", prev, dir, cfg.Method)
		}
		seen[cfg.Method] = dir
		if err := sameTraining(dcfg, cfg, denseDir, dir); err != nil {
			return nil, err
		}
		if math.IsNaN(t.Ratio) {
			t.Ratio = cfg.Sparsity.Ratio
		} else if cfg.Sparsity.Ratio != t.Ratio {
			return nil, fmt.Errorf("theorem2: %s: sparsity.ratio %g, the other runs %g", dir, cfg.Sparsity.Ratio, t.Ratio)
		}
		sum, err := trainer.ReadSummary(dir)
		if err != nil {
			return nil, err
		}
		if !sum.Finished {
			return nil, fmt.Errorf("theorem2: %s is not finished", dir)
		}
		t.NLL[i] = sum.EvalLoss
		if err := t.addRun(i, dir, cfg, w0, ft); err != nil {
			return nil, err
		}
	}
	t.overall()
	return t, nil
}

// addRun measures strategy i's run dir.
func (t *Table) addRun(i int, dir string, cfg *configs.Config, w0, ft [][]float32) error {
	l, err := trainer.OpenRun(dir)
	if err != nil {
		return err
	}
	defer l.Close()
	// The adapters of the strategy's own unpruned weight: its LoRA parts.
	path := filepath.Join(dir, trainer.AdapterDir, adapters.NativeFile)
	if cfg.PrunesMerged() {
		path = filepath.Join(dir, trainer.MergedAdapterDir, adapters.NativeFile)
	}
	mods, err := adapters.ReadNative(path)
	if err != nil {
		return fmt.Errorf("theorem2: %w", err)
	}
	lins := projections(l.Params)
	if len(lins) != len(t.Matrices) {
		return fmt.Errorf("theorem2: %s has %d projections, the lora run %d", dir, len(lins), len(t.Matrices))
	}
	for j, lin := range lins {
		m := &t.Matrices[j]
		if lin.Module != m.Module || lin.Base.Rows() != m.Rows || lin.Base.Cols() != m.Cols {
			return fmt.Errorf("theorem2: %s: projection %d is %s %d×%d, the lora run's %s %d×%d", dir, j, lin.Module, lin.Base.Rows(), lin.Base.Cols(), m.Module, m.Rows, m.Cols)
		}
		served, err := export.Merged(lin)
		if err != nil {
			return err
		}
		own := slices.Clone(w0[j])
		if f := mods[lin.Module]; f != nil {
			for p, part := range f.Parts {
				if part.Kind == adapters.KindLoRA {
					f.Adapter(p).MergeInto(own)
				}
			}
		}
		m.set(i, served, ft[j], own)
	}
	return nil
}

// runConfig reads a run directory's config.toml.
func runConfig(dir string) (*configs.Config, error) {
	cfg, err := configs.Load(filepath.Join(dir, trainer.ConfigFile), nil)
	if err != nil {
		return nil, fmt.Errorf("theorem2: %w", err)
	}
	return cfg, nil
}

// sameTraining reports settings that make run b's training not comparable
// with run a's.
func sameTraining(a, b *configs.Config, da, db string) error {
	type field struct {
		name string
		x, y any
	}
	for _, f := range []field{
		{"train.max_steps", a.Train.MaxSteps, b.Train.MaxSteps},
		{"train.seed", a.Train.Seed, b.Train.Seed},
		{"train.batch_size", a.Train.BatchSize, b.Train.BatchSize},
		{"train.lr", a.Train.LR, b.Train.LR},
		{"data.train_path", a.Data.TrainPath, b.Data.TrainPath},
		{"data.eval_path", a.Data.EvalPath, b.Data.EvalPath},
		{"data.eval_examples", a.Data.EvalExamples, b.Data.EvalExamples},
		{"data.max_examples", a.Data.MaxExamples, b.Data.MaxExamples},
		{"data.seq_len", a.Data.SeqLen, b.Data.SeqLen},
		{"adapters.lora_rank", a.Adapters.LoRARank, b.Adapters.LoRARank},
		{"adapters.lora_alpha", a.Adapters.LoRAAlpha, b.Adapters.LoRAAlpha},
		{"model.path", a.Model.Path, b.Model.Path},
	} {
		if f.x != f.y {
			return fmt.Errorf("theorem2: %s: %s = %v, but %v in the lora run %s", db, f.name, f.y, f.x, da)
		}
	}
	for _, d := range []string{da, db} {
		cfg := a
		if d == db {
			cfg = b
		}
		if cfg.Output.BaseFormat != string(model.BaseDenseFP32) {
			return fmt.Errorf("theorem2: %s stores its base as %s; the comparison needs output.base_format = %s (the trained weights exactly)", d, cfg.Output.BaseFormat, model.BaseDenseFP32)
		}
	}
	return nil
}

// Order reports, for errors e in Strategies order, whether e[first] <=
// e[during] <= e[after] (first: salr or prune-lora), and which inequality
// fails ("" when it holds).
func Order(e []float64, first int) (ok bool, fails string) {
	during, after := slices.Index(Strategies, configs.MethodLoRAPruneDynamic), slices.Index(Strategies, configs.MethodLoRAPrune)
	if math.IsNaN(e[first]) || math.IsNaN(e[during]) || math.IsNaN(e[after]) {
		return false, "not measured"
	}
	var f []string
	if !(e[first] <= e[during]) {
		f = append(f, "before > during")
	}
	if !(e[during] <= e[after]) {
		f = append(f, "during > after")
	}
	return len(f) == 0, strings.Join(f, ", ")
}

// Markdown writes t's rows of the summary table (see Header): one row per
// strategy.
func (t *Table) Markdown(w io.Writer) {
	for i, s := range Strategies {
		fmt.Fprintf(w, "| %.0f%% | %s | %s | %s | %s | %s | %s |\n", 100*t.Ratio, Labels[s],
			num(t.OverallVsDense[i]), num(median(t.Matrices, i, false)), num(t.OverallOwn[i]), num(median(t.Matrices, i, true)), nll(t.NLL[i]))
	}
}

// Header is the summary table's header (its rows: Table.Markdown).
func Header(w io.Writer, denseNLL float64) {
	fmt.Fprintf(w, "| sparsity | strategy | error vs dense fine-tuned, overall | median over matrices | own pruning error, overall | median over matrices | held-out NLL (dense LoRA: %s) |\n", nll(denseNLL))
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|")
}

// OrderLines writes, for t, how often the order holds matrix by matrix
// and overall, under both errors and for the held-out NLL.
func (t *Table) OrderLines(w io.Writer) {
	t.orderLine(w, 0, "salr")
	t.orderLine(w, 1, "prune-lora")
}

// Detail writes t's per-matrix errors as a Markdown table.
func (t *Table) Detail(w io.Writer) {
	fmt.Fprintf(w, "| %.0f%%: matrix | shape |", 100*t.Ratio)
	for _, s := range Strategies {
		fmt.Fprintf(w, " %s vs dense / own |", s)
	}
	fmt.Fprintln(w, " order (salr) |")
	fmt.Fprint(w, "|---|---|")
	for range Strategies {
		fmt.Fprint(w, "---:|")
	}
	fmt.Fprintln(w, "---|")
	for _, m := range t.Matrices {
		fmt.Fprintf(w, "| %s | %d×%d |", short(m.Module), m.Rows, m.Cols)
		for i := range Strategies {
			fmt.Fprintf(w, " %s / %s |", num(m.VsDense[i]), num(m.Own[i]))
		}
		_, a := Order(m.VsDense, 0)
		_, b := Order(m.Own, 0)
		fmt.Fprintf(w, " vs dense: %s; own: %s |\n", orDash(a), orDash(b))
	}
}

func orDash(why string) string {
	if why == "" {
		return "holds"
	}
	return why
}

func (t *Table) orderLine(w io.Writer, first int, name string) {
	fmt.Fprintf(w, "- %.0f%%, %s <= during <= after:", 100*t.Ratio, name)
	for _, own := range []bool{false, true} {
		overall := t.OverallVsDense
		what := "vs dense"
		if own {
			overall, what = t.OverallOwn, "own"
		}
		ok, why := Order(overall, first)
		if why == "not measured" {
			fmt.Fprintf(w, " %s: not measured;", what)
			continue
		}
		holds := 0
		fails := map[string][]string{}
		for _, m := range t.Matrices {
			e := m.VsDense
			if own {
				e = m.Own
			}
			if ok, why := Order(e, first); ok {
				holds++
			} else {
				fails[why] = append(fails[why], short(m.Module))
			}
		}
		fmt.Fprintf(w, " %s: %d of %d matrices, overall %s", what, holds, len(t.Matrices), verdict(ok, why))
		keys := make([]string, 0, len(fails))
		for k := range fails {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, " [%s: %s]", k, list(fails[k]))
		}
		fmt.Fprint(w, ";")
	}
	if ok, why := Order(t.NLL, first); why != "not measured" {
		fmt.Fprintf(w, " held-out NLL %s.", verdict(ok, why))
	}
	fmt.Fprintln(w)
}

func verdict(ok bool, why string) string {
	if ok {
		return "holds"
	}
	if why == "not measured" {
		return why
	}
	return "fails (" + why + ")"
}

// list names up to 6 matrices, then counts the rest.
func list(names []string) string {
	if len(names) <= 6 {
		return strings.Join(names, " ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:6], " "), len(names)-6)
}

// short is "L3.q_proj" for "model.layers.3.self_attn.q_proj".
func short(module string) string {
	var l int
	if _, err := fmt.Sscanf(module, "model.layers.%d.", &l); err != nil {
		return module
	}
	return fmt.Sprintf("L%d.%s", l, module[strings.LastIndex(module, ".")+1:])
}

func median(ms []Matrix, i int, own bool) float64 {
	var v []float64
	for _, m := range ms {
		e := m.VsDense[i]
		if own {
			e = m.Own[i]
		}
		if !math.IsNaN(e) {
			v = append(v, e)
		}
	}
	if len(v) == 0 {
		return math.NaN()
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func num(x float64) string {
	if math.IsNaN(x) {
		return "-"
	}
	return fmt.Sprintf("%.5f", x)
}

func nll(x float64) string {
	if math.IsNaN(x) {
		return "-"
	}
	return fmt.Sprintf("%.4f", x)
}
