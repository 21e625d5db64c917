package sweep

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/salr-go/salr/configs"
)

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func TestGridExpansion(t *testing.T) {
	assetsDir(t)
	dir := t.TempDir()
	// Dotted and quoted keys, a nested grid table: all the same spelling.
	path := writeSweep(t, dir, "g", `[grid]
"sparsity.ratio" = [0.1, 0.3, 0.5]
method = ["lora", "salr"]
[grid.adapters]
lora_rank = [2, 4]
`)
	s, runs := mustExpand(t, path)
	if want := []string{"sparsity.ratio", "method", "adapters.lora_rank"}; !slices.Equal(s.Varied, want) {
		t.Fatalf("varied %q, want %q", s.Varied, want)
	}
	if len(runs) != 12 || s.Len() != 12 {
		t.Fatalf("%d runs, want 3*2*2 = 12", len(runs))
	}
	// The first key is outermost, the last varies fastest.
	ratios := []float64{0.1, 0.3, 0.5}
	methods := []string{"lora", "salr"}
	ranks := []int{2, 4}
	for i, r := range runs {
		c := r.Config
		wantRatio, wantMethod, wantRank := ratios[i/4], methods[i/2%2], ranks[i%2]
		if c.Sparsity.Ratio != wantRatio || c.Method != wantMethod || c.Adapters.LoRARank != wantRank {
			t.Errorf("run %d: ratio %v method %s rank %d, want %v %s %d", i, c.Sparsity.Ratio, c.Method,
				c.Adapters.LoRARank, wantRatio, wantMethod, wantRank)
		}
		// The fixed overrides apply to every run; the rest is the base.
		if c.Data.SeqLen != 160 || c.Adapters.SVDRank != 2 || c.Train.LR != 1e-3 {
			t.Errorf("run %d: fixed sets or base lost: %+v", i, c)
		}
		if r.Index != i || r.Hash != c.Hash() || r.Name != strconv.Itoa(i)+"-"+r.Hash ||
			r.Dir != filepath.Join(dir, "out", "g", r.Name) || c.Output.Dir != r.Dir {
			t.Errorf("run %d: index %d name %s dir %s output.dir %s", i, r.Index, r.Name, r.Dir, c.Output.Dir)
		}
		want := []Value{{"sparsity.ratio", strconv.FormatFloat(wantRatio, 'f', -1, 64)}, {"method", wantMethod},
			{"adapters.lora_rank", strconv.Itoa(wantRank)}}
		if !slices.Equal(r.Values, want) {
			t.Errorf("run %d values %v, want %v", i, r.Values, want)
		}
	}
	// Hashes differ between runs that differ (lora at different ratios
	// included: the ratio is part of the config even where it is ignored).
	seen := map[string]int{}
	for _, r := range runs {
		if j, dup := seen[r.Hash]; dup {
			t.Errorf("runs %d and %d share hash %s", j, r.Index, r.Hash)
		}
		seen[r.Hash] = r.Index
	}
	// A second expansion is identical.
	_, again := mustExpand(t, path)
	if expansionText(again) != expansionText(runs) {
		t.Error("a second expansion differs")
	}
}

// TestExpansionIsStableAcrossProcesses expands grid, random and runs
// sweeps in another process and compares the resolved configs' hashes.
func TestExpansionIsStableAcrossProcesses(t *testing.T) {
	assetsDir(t)
	dir := t.TempDir()
	bodies := map[string]string{
		"grid": "[grid]\n\"train.lr\" = [1e-3, 3e-3]\n\"adapters.target_modules\" = [[\"q_proj\", \"v_proj\"], [\"all-linear\"]]\n",
		"random": "[random]\ncount = 5\nseed = 7\n\"train.lr\" = {min = 1e-4, max = 1e-2, log = true}\n" +
			"\"adapters.lora_rank\" = {min = 1, max = 8}\nmethod = [\"lora\", \"salr\"]\n",
		"runs": "[[runs]]\nmethod = \"lora\"\n[[runs]]\nmethod = \"salr\"\n\"sparsity.ratio\" = 0.3\n",
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range bodies {
		path := writeSweep(t, dir, name, body)
		_, runs := mustExpand(t, path)
		cmd := exec.Command(exe, "-config", path)
		cmd.Env = append(os.Environ(), testModeEnv+"=expand")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: child: %v\n%s", name, err, out)
		}
		if string(out) != expansionText(runs) {
			t.Errorf("%s: another process expands to\n%s\nthis one to\n%s", name, out, expansionText(runs))
		}
	}
}

func TestRandomExpansion(t *testing.T) {
	assetsDir(t)
	dir := t.TempDir()
	body := func(count, seed int) string {
		return "[random]\ncount = " + strconv.Itoa(count) + "\nseed = " + strconv.Itoa(seed) + `
"train.lr" = {min = 1e-4, max = 1e-2, log = true}
"adapters.lora_rank" = {min = 2, max = 16}
"adapters.lora_dropout" = {min = 0.0, max = 0.2}
method = ["lora", "salr"]
`
	}
	s, runs := mustExpand(t, writeSweep(t, dir, "r", body(6, 3)))
	if len(runs) != 6 || len(s.Varied) != 4 {
		t.Fatalf("%d runs varying %q", len(runs), s.Varied)
	}
	for _, r := range runs {
		c := r.Config
		if c.Train.LR < 1e-4 || c.Train.LR > 1e-2 || c.Adapters.LoRARank < 2 || c.Adapters.LoRARank > 16 ||
			c.Adapters.LoRADropout < 0 || c.Adapters.LoRADropout > 0.2 || (c.Method != "lora" && c.Method != "salr") {
			t.Errorf("run %d out of range: %s", r.Index, r.Describe())
		}
		// Floats are rounded to 4 significant digits.
		if text := r.Values[0].Text; len(strings.TrimLeft(strings.Split(strings.ReplaceAll(text, "0.", ""), "e")[0], "0")) > 4 {
			t.Errorf("run %d: lr %s has more than 4 significant digits", r.Index, text)
		}
	}
	// Raising count keeps the earlier runs; another seed changes them.
	_, more := mustExpand(t, writeSweep(t, dir, "r", body(9, 3)))
	if len(more) != 9 || expansionText(more[:6]) != expansionText(runs) {
		t.Errorf("count 9 changed the first 6 runs:\n%s\nvs\n%s", expansionText(more[:6]), expansionText(runs))
	}
	_, other := mustExpand(t, writeSweep(t, dir, "r", body(6, 4)))
	if expansionText(other) == expansionText(runs) {
		t.Error("seed 4 draws the same runs as seed 3")
	}
}

// TestRandomDistributions checks the draws against the distributions'
// quantiles over many draws (deterministic: fixed seeds).
func TestRandomDistributions(t *testing.T) {
	const n = 4000
	params := []randomParam{
		{key: "log", min: 1e-4, max: 1e-2, log: true},
		{key: "lin", min: 2, max: 4},
		{key: "int", min: 1, max: 4, isInt: true},
		{key: "logint", min: 1, max: 15, isInt: true, log: true},
		{key: "choice", values: []any{"a", "b"}},
	}
	var belowMid [2]int
	ints := map[int64]int{}
	logInts := map[int64]int{}
	choices := map[any]int{}
	for i := range n {
		p := drawRandom(params, 1, i)
		if x := p[0].value.(float64); x < 1e-3 {
			belowMid[0]++
		}
		if x := p[1].value.(float64); x < 3 {
			belowMid[1]++
		}
		ints[p[2].value.(int64)]++
		logInts[p[3].value.(int64)]++
		choices[p[4].value]++
	}
	// log-uniform on [1e-4, 1e-2]: half below the geometric mean 1e-3;
	// uniform on [2, 4]: half below 3.
	for j, c := range belowMid {
		if f := float64(c) / n; math.Abs(f-0.5) > 0.04 {
			t.Errorf("param %s: %.3f of draws below the median, want 0.5", params[j].key, f)
		}
	}
	for k := int64(1); k <= 4; k++ {
		if f := float64(ints[k]) / n; math.Abs(f-0.25) > 0.04 {
			t.Errorf("int %d drawn %.3f of the time, want 0.25", k, f)
		}
	}
	// Log-uniform integers in [1, 15]: k has mass log((k+1)/k)/log(16), so
	// 1 is drawn 25% of the time and 8..15 together also 25%.
	hi := 0
	for k := int64(8); k <= 15; k++ {
		hi += logInts[k]
	}
	if f1, fh := float64(logInts[1])/n, float64(hi)/n; math.Abs(f1-0.25) > 0.04 || math.Abs(fh-0.25) > 0.04 {
		t.Errorf("log int: P(1) = %.3f, P(8..15) = %.3f, want 0.25 each", f1, fh)
	}
	if len(logInts) != 15 {
		t.Errorf("log int drew %d distinct values, want all 15", len(logInts))
	}
	if f := float64(choices["a"]) / n; math.Abs(f-0.5) > 0.04 {
		t.Errorf("choice a drawn %.3f of the time", f)
	}
}

func TestExplicitRuns(t *testing.T) {
	assetsDir(t)
	dir := t.TempDir()
	_, runs := mustExpand(t, writeSweep(t, dir, "x", `[[runs]]
method = "lora"

[[runs]]
method = "salr"
sparsity.ratio = 0.3

[[runs]]
"train.lr" = 0.005
`))
	if len(runs) != 3 {
		t.Fatalf("%d runs, want 3", len(runs))
	}
	// Keys a run does not set show the effective (base) value.
	want := []string{
		"method=lora sparsity.ratio=0.5 train.lr=0.001",
		"method=salr sparsity.ratio=0.3 train.lr=0.001",
		"method=salr sparsity.ratio=0.5 train.lr=0.005",
	}
	for i, r := range runs {
		if r.Describe() != want[i] {
			t.Errorf("run %d: %s, want %s", i, r.Describe(), want[i])
		}
	}
}

// TestRunsCrossedWithGrid checks that every [[runs]] table runs at every
// grid point, the runs outermost, and that the seeds are what they say.
func TestRunsCrossedWithGrid(t *testing.T) {
	assetsDir(t)
	dir := t.TempDir()
	_, runs := mustExpand(t, writeSweep(t, dir, "x", `[[runs]]
method = "lora"

[[runs]]
method = "salr"
"adapters.svd_trainable" = false

[grid]
"train.seed" = [42, 7, 1234]
`))
	want := []string{
		"method=lora adapters.svd_trainable=true train.seed=42",
		"method=lora adapters.svd_trainable=true train.seed=7",
		"method=lora adapters.svd_trainable=true train.seed=1234",
		"method=salr adapters.svd_trainable=false train.seed=42",
		"method=salr adapters.svd_trainable=false train.seed=7",
		"method=salr adapters.svd_trainable=false train.seed=1234",
	}
	if len(runs) != len(want) {
		t.Fatalf("%d runs, want %d", len(runs), len(want))
	}
	for i, r := range runs {
		if r.Describe() != want[i] {
			t.Errorf("run %d: %s, want %s", i, r.Describe(), want[i])
		}
	}
	if runs[4].Config.Train.Seed != 7 || runs[4].Config.Adapters.SVDTrainable || runs[4].Config.Method != "salr" {
		t.Errorf("run 4 config: seed %d, svd_trainable %v, method %s", runs[4].Config.Train.Seed,
			runs[4].Config.Adapters.SVDTrainable, runs[4].Config.Method)
	}
}

// TestErrorsNameFileAndLine checks that problems are reported with the
// sweep file's line, the key and what is wrong, all at once.
func TestErrorsNameFileAndLine(t *testing.T) {
	assetsDir(t)
	cases := []struct {
		name, text string
		want       []string
	}{
		{"layout", `name = "bad name"
base = "quickstart"
colour = "red"
[objective]
metric = "accuracy"
direction = "up"
`, []string{
			`f.toml:1: name: "bad name" is not a usable directory name`,
			"f.toml:3: colour: unknown key",
			`f.toml:5: objective.metric: "accuracy" is not a numeric summary.json field`,
			`f.toml:6: objective.direction: expected "minimize" or "maximize"`,
			"f.toml: nothing to sweep",
		}},
		{"grid", `name = "g"
base = "quickstart"
set = ["train.max_steps=10", "output.dir=/tmp/x", "train.nope=1"]
[grid]
method = "lora"
"train.lrr" = [1, 2]
"train.max_steps" = [1, 2]
"sparsity.ratio" = []
`, []string{
			"f.toml:3: output.dir: the sweep sets output.dir",
			"f.toml:3: train.nope: unknown config key",
			"f.toml:5: grid.method: expected a list of values, got string \"lora\"",
			"f.toml:6: grid.train.lrr: unknown config key",
			"f.toml:8: grid.sparsity.ratio: empty list of values",
		}},
		{"conflict", `name = "g"
base = "quickstart"
set = ["train.max_steps=10"]
[grid]
"train.max_steps" = [1, 2]
`, []string{"f.toml:5: grid.train.max_steps: train.max_steps is varied here and fixed at f.toml:3"}},
		{"values", `name = "v"
base = "quickstart"
[grid]
method = ["lora", "dense"]
"sparsity.ratio" = [0.5,
  1.5]
`, []string{
			`f.toml:4: method: must be one of "lora", "prune-lora", "salr", "prune", "prune-svd"`,
			"f.toml:5: sparsity.ratio: must be in (0, 1), got 1.5",
		}},
		{"random", `name = "r"
base = "quickstart"
[random]
count = 0
"train.lr" = {min = 1e-2, max = 1e-4}
"adapters.lora_rank" = {min = 0, max = 8, log = true}
"train.seed" = {values = []}
"train.warmup_steps" = {min = 1, max = 3, step = 1}
`, []string{
			"f.toml:4: random.count: a random search needs 1 to 100000 runs, got 0",
			"f.toml:5: random.train.lr: min 0.01 is above max 0.0001",
			"f.toml:6: random.adapters.lora_rank: log needs min > 0",
			"f.toml:7: random.train.seed: values must be a non-empty list",
			`f.toml:8: random.train.warmup_steps: unknown field "step"`,
		}},
		{"runs", `name = "x"
base = "quickstart"
[[runs]]
method = "lora"
[[runs]]
method = "salr"
"adapters.lora_rnk" = 4
`, []string{"f.toml:7: runs.1.adapters.lora_rnk: unknown config key"}},
		{"syntax", "name = \"x\"\nbase = = 1\n", []string{"f.toml:2: syntax error"}},
		{"both", "name = \"x\"\nbase = \"quickstart\"\n[grid]\nmethod = [\"lora\"]\n[random]\ncount = 2\nmethod = [\"salr\"]\n",
			[]string{"f.toml:5: random: a sweep has one of [grid], [random] and [[runs]] (or [[runs]] crossed with a [grid]); this file also has [grid]"}},
		{"crossed-twice", "name = \"x\"\nbase = \"quickstart\"\n[grid]\nmethod = [\"lora\"]\n[[runs]]\nmethod = \"salr\"\n",
			[]string{"f.toml:4: grid.method: method is varied in both [[runs]] and [grid]; keep one"}},
		{"eval", "name = \"e\"\nbase = \"quickstart\"\n[objective]\nmetric = \"eval.acc\"\n[eval]\ntasks = \"mmlu\"\n[grid]\nmethod = [\"lora\"]\n",
			[]string{"f.toml:6: eval.tasks: unknown config key"}},
		{"eval-missing", "name = \"e\"\nbase = \"quickstart\"\n[objective]\nmetric = \"eval.acc\"\n[grid]\nmethod = [\"lora\"]\n",
			[]string{"f.toml: objective.metric: eval.acc needs an evaluation after training"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Parse("f.toml", []byte(c.text), "", nil)
			if err == nil {
				_, err = s.Expand()
			}
			if err == nil {
				t.Fatal("no error")
			}
			var ce configs.Errors
			if !asErrors(err, &ce) {
				t.Fatalf("error %T is not configs.Errors: %v", err, err)
			}
			// Every expected error, in the file's line order.
			last := -1
			for _, w := range c.want {
				at := strings.Index(err.Error(), w)
				switch {
				case at < 0:
					t.Errorf("error lacks %q:\n%v", w, err)
				case at < last:
					t.Errorf("%q is out of line order:\n%v", w, err)
				}
				last = max(last, at)
			}
			if len(ce) != len(c.want) {
				t.Errorf("%d errors, want %d:\n%v", len(ce), len(c.want), err)
			}
		})
	}
}

func asErrors(err error, target *configs.Errors) bool {
	ce, ok := err.(configs.Errors)
	*target = ce
	return ok
}

func TestScanKeyDefsFollowsValuesAcrossLines(t *testing.T) {
	src := `# comment
name = "x # not a comment"
set = [
  "a=1",   # comment ] with bracket
  'b = [',
]
text = """
fake = 1
"""
[grid]
"sparsity.ratio" = [0.1,
  0.2]
train.lr = [1]
[[runs]]
x = {min = 1, max = 2}
`
	var got []string
	for _, d := range configs.KeyDefs(src) {
		got = append(got, strings.Join(d.Path, "/")+":"+strconv.Itoa(d.Line))
	}
	want := []string{"name:2", "set:3", "text:7", "grid:10", "grid/sparsity.ratio:11", "grid/train/lr:13", "runs:14", "runs/x:15"}
	if !slices.Equal(got, want) {
		t.Errorf("defs %q, want %q", got, want)
	}
}

// TestPresets expands the embedded sweeps: the sparsity sweep is 5 ratios
// x 3 methods on the quickstart model, the rank sweep 3 x 3 SALR ranks.
func TestPresets(t *testing.T) {
	assetsDir(t)
	for _, c := range []struct {
		name   string
		runs   int
		varied []string
	}{
		{"sweeps/sparsity.toml", 15, []string{"sparsity.ratio", "method"}},
		{"sparsity", 15, []string{"sparsity.ratio", "method"}},
		{"sweeps/rank", 9, []string{"adapters.lora_rank", "adapters.svd_rank"}},
	} {
		s, runs := mustExpand(t, c.name)
		if len(runs) != c.runs || !slices.Equal(s.Varied, c.varied) || s.Dir() != filepath.Join(DefaultRoot, s.Name) {
			t.Errorf("%s: %d runs varying %q in %s", c.name, len(runs), s.Varied, s.Dir())
		}
		for _, r := range runs {
			if r.Config.Data.Format != "gsm8k" || r.Config.Train.MaxSteps == 0 || r.Config.Train.MaxSteps > 100 {
				t.Errorf("%s run %d: %s, %d steps", c.name, r.Index, r.Config.Data.Format, r.Config.Train.MaxSteps)
			}
		}
	}
	if _, err := Load("quickstart.toml", nil); err == nil || !strings.Contains(err.Error(), "no embedded sweep") {
		t.Errorf("a run preset loads as a sweep: %v", err)
	}
}

// TestHashIgnoresAssetsSpelling expands one sweep with SALR_ASSETS written
// as an absolute and as a relative path: the runs keep their hashes and
// names, so a resumed sweep finds its run directories. Another assets
// directory gives other hashes.
func TestHashIgnoresAssetsSpelling(t *testing.T) {
	abs := assetsDir(t)
	dir := t.TempDir()
	path := writeSweep(t, dir, "s", "[grid]\n\"sparsity.ratio\" = [0.3, 0.5]\n")
	_, runs := mustExpand(t, path)
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, abs)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SALR_ASSETS", rel+string(filepath.Separator))
	_, relRuns := mustExpand(t, path)
	if relRuns[0].Config.Model.Path == runs[0].Config.Model.Path {
		t.Fatalf("both expansions read model.path %s; the test needs two spellings", runs[0].Config.Model.Path)
	}
	t.Setenv("SALR_ASSETS", t.TempDir())
	_, otherRuns := mustExpand(t, path)
	for i, r := range runs {
		if relRuns[i].Hash != r.Hash || relRuns[i].Dir != r.Dir {
			t.Errorf("run %d: SALR_ASSETS=%s gives %s, SALR_ASSETS=%s gives %s", i, abs, r.Name, rel, relRuns[i].Name)
		}
		if otherRuns[i].Hash == r.Hash {
			t.Errorf("run %d: another assets directory gives the same hash %s", i, r.Hash)
		}
	}
}

// TestMethodsPreset checks that sweeps/methods.toml compares at equal
// budgets: three settings train rank-8 adapters and three rank-16 (LoRA
// rank plus, for salr with svd_trainable, the SVD rank), alpha = 2r, each
// under the same three seeds, all scored on the GSM8K test file.
func TestMethodsPreset(t *testing.T) {
	assetsDir(t)
	_, runs := mustExpand(t, "sweeps/methods.toml")
	if len(runs) != 18 {
		t.Fatalf("%d runs, want 18", len(runs))
	}
	seeds := map[string][]int64{}
	budgets := map[int]int{}
	for _, r := range runs {
		c := r.Config
		a := c.Adapters
		trained := a.LoRARank
		if c.Method == "salr" && a.SVDTrainable {
			trained += a.SVDRank
		}
		setting := fmt.Sprintf("%s r%d svd_trainable=%v", c.Method, a.LoRARank, a.SVDTrainable)
		if len(seeds[setting]) == 0 {
			budgets[trained]++
		}
		seeds[setting] = append(seeds[setting], c.Train.Seed)
		if a.LoRAAlpha != 2*float64(a.LoRARank) || c.Train.MaxSteps != 300 || !strings.HasSuffix(c.Data.EvalPath, "gsm8k/test.jsonl") {
			t.Errorf("run %d (%s): alpha %v, %d steps, held out %s", r.Index, setting, a.LoRAAlpha, c.Train.MaxSteps, c.Data.EvalPath)
		}
	}
	if len(seeds) != 6 || budgets[8] != 3 || budgets[16] != 3 {
		t.Errorf("settings %v, budgets %v", seeds, budgets)
	}
	for setting, s := range seeds {
		if !slices.Equal(s, []int64{42, 7, 1}) {
			t.Errorf("%s: seeds %v", setting, s)
		}
	}
}

// TestPlotTable checks that [plot] reaches sweep.json (and that a sweep
// without it writes no "plot" field), and its errors.
func TestPlotTable(t *testing.T) {
	assetsDir(t)
	dir := t.TempDir()
	for _, c := range []struct {
		body, want string
	}{
		{"[plot]\nx = \"trainable_params\"\nlines = \"method\"\n", `"plot": {
    "x": "trainable_params",
    "lines": "method"
  }`},
		{"", ""},
	} {
		s, runs := mustExpand(t, writeSweep(t, dir, "p", c.body+"[grid]\nmethod = [\"lora\", \"salr\"]\n\"train.seed\" = [1, 2]\n"))
		if err := WriteManifest(s, runs); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(s.Dir(), ManifestFile))
		if err != nil {
			t.Fatal(err)
		}
		if c.want != "" && !strings.Contains(string(b), c.want) || c.want == "" && strings.Contains(string(b), `"plot"`) {
			t.Errorf("sweep.json for %q:\n%s", c.body, b)
		}
		if m, err := readManifest(s.Dir()); err != nil || c.want != "" && *m.Plot != (PlotAxes{X: "trainable_params", Lines: "method"}) {
			t.Errorf("read back: %+v %v", m, err)
		}
	}
	for body, want := range map[string]string{
		"[plot]\nx = \"colour\"\n":        `f.toml:7: plot.x: "colour" is neither a varied key (method, train.seed) nor a numeric summary.json field`,
		"[plot]\nlines = \"eval_loss\"\n": `f.toml:7: plot.lines: "eval_loss" is not a varied key (method, train.seed)`,
		"[plot]\nx = \"train.seed\"\n":    "f.toml:7: plot.x: the plot averages over train.seed when other keys vary too",
		"[plot]\nx = 3\n":                 "f.toml:7: plot.x: expected a string, got integer 3",
		"[plot]\ny = \"eval_loss\"\n":     "f.toml:7: plot.y: unknown key (allowed: x, lines)",
	} {
		text := "name = \"x\"\nbase = \"quickstart\"\n[grid]\nmethod = [\"lora\"]\n\"train.seed\" = [1, 2]\n" + body
		_, err := Parse("f.toml", []byte(text), "", nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
	}
}
