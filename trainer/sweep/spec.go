package sweep

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/salr-go/salr/configs"
	"github.com/salr-go/salr/trainer"
)

// DefaultRoot is the output root of a sweep whose file sets no root.
const DefaultRoot = "runs/sweeps"

// MaxRuns bounds the runs of one sweep; a larger grid or count is taken
// for a mistake.
const MaxRuns = 100000

// Objective directions.
const (
	Minimize = "minimize"
	Maximize = "maximize"
)

// Objective is the metric a sweep optimises: a numeric summary.json field
// ("eval_loss", "final_train_loss", ...) or an evaluation metric written
// "eval.<name>" ("eval.acc", "eval.exact_match,strict-match").
type Objective struct {
	Metric    string `json:"metric"`
	Direction string `json:"direction"`
}

// PlotAxes chooses the objective plot's axes (the sweep file's [plot]
// table); empty fields keep the defaults (the first varied key on x, the
// second as lines).
type PlotAxes struct {
	// X is a varied key or a numeric summary.json field
	// ("trainable_params"): a group's or run's value of it places it.
	X string `json:"x,omitempty"`
	// Lines is a varied key: one line per value.
	Lines string `json:"lines,omitempty"`
}

// Better reports whether objective value a beats b.
func (o Objective) Better(a, b float64) bool {
	if o.Direction == Maximize {
		return a > b
	}
	return a < b
}

// Sweep is a parsed sweep file: a base config, fixed overrides, and the
// values of the keys that vary from run to run (a grid, a random search or
// an explicit list of runs). Expand turns it into numbered, fully resolved
// runs.
type Sweep struct {
	// Name names the sweep's directory, Root/Name.
	Name string
	// File is the sweep file as given (a path or an embedded preset such as
	// "sweeps/sparsity.toml"); workers are started with it.
	File string
	// Base is the base config: a file path or an embedded preset name.
	Base string
	// Root is the output root (environment variables expanded).
	Root string
	// Sets are the fixed overrides of every run, in order: the file's set
	// list, its [eval] table, then Extra.
	Sets []string
	// Extra are the -set overrides given on the command line; workers get
	// them again.
	Extra []string
	// Objective is the metric the results table ranks runs by.
	Objective Objective
	// Axes chooses the axes of the objective plot.
	Axes PlotAxes
	// Varied lists the keys that vary, in the order the file writes them.
	Varied []string

	points  [][]assignment    // the varied assignments of each run
	origins map[string]string // override text -> where it was written
}

// Dir is the sweep's directory, Root/Name, holding one directory per run.
func (s *Sweep) Dir() string { return filepath.Join(s.Root, s.Name) }

// Len is the number of runs the sweep expands to.
func (s *Sweep) Len() int { return len(s.points) }

// WorkerArgs are the salr-sweep arguments that execute run index of this
// sweep: index is a number or a variable reference such as
// "$SLURM_ARRAY_TASK_ID"; threads is left out when empty.
func (s *Sweep) WorkerArgs(index, threads string) []string {
	args := []string{"-config", s.File}
	for _, set := range s.Extra {
		args = append(args, "-set", set)
	}
	args = append(args, "-index", index)
	if threads != "" {
		args = append(args, "-threads", threads)
	}
	return args
}

// assignment is one key's value in one run, with where it was written.
type assignment struct {
	key    string
	value  any
	origin string
}

// Load reads a sweep file (a path, or an embedded preset such as
// "sweeps/sparsity.toml"; a file on disk wins) and parses it; extra are
// -set overrides applied to every run after the file's own.
func Load(nameOrPath string, extra []string) (*Sweep, error) {
	data, dir, err := readSweep(nameOrPath)
	if err != nil {
		return nil, err
	}
	return Parse(nameOrPath, data, dir, extra)
}

// readSweep returns a sweep file's text and the directory its relative base
// path is resolved against ("" for an embedded preset).
func readSweep(nameOrPath string) (data []byte, dir string, err error) {
	info, statErr := os.Stat(nameOrPath)
	if statErr == nil && !info.IsDir() {
		data, err := os.ReadFile(nameOrPath)
		if err != nil {
			return nil, "", fmt.Errorf("sweep: %w", err)
		}
		return data, filepath.Dir(nameOrPath), nil
	}
	// Only the embedded sweeps directory holds sweep presets: "sparsity",
	// "sweeps/sparsity" and "sweeps/sparsity.toml" name the same file.
	preset := path.Clean(filepath.ToSlash(nameOrPath))
	if !strings.HasPrefix(preset, "sweeps/") {
		preset = "sweeps/" + preset
	}
	if data, _, ok := configs.ReadPreset(preset); ok {
		return data, "", nil
	}
	if statErr == nil {
		return nil, "", fmt.Errorf("sweep %s: is a directory, not a TOML file", nameOrPath)
	}
	if !errors.Is(statErr, os.ErrNotExist) {
		return nil, "", fmt.Errorf("sweep: %w", statErr)
	}
	return nil, "", fmt.Errorf("sweep %s: no such file, and no embedded sweep of that name (sweeps/sparsity.toml, sweeps/rank.toml, ...)", nameOrPath)
}

// Parse reads a sweep from memory. name is the file name used in errors
// and by workers; dir is the directory a relative base path is resolved
// against (a base that is no file there is a preset name or a path
// relative to the working directory). All problems are returned together as
// configs.Errors, each naming the file and line.
func Parse(name string, data []byte, dir string, extra []string) (*Sweep, error) {
	p := parser{name: name, sweep: &Sweep{File: name, Root: DefaultRoot, Extra: extra,
		Objective: Objective{Metric: "eval_loss", Direction: Minimize}, origins: map[string]string{}}}
	md, err := toml.Decode(string(data), &p.doc)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, configs.Errors{{Origin: fmt.Sprintf("%s:%d", name, pe.Position.Line), Msg: "syntax error: " + pe.Message}}
		}
		return nil, configs.Errors{{Origin: name, Msg: err.Error()}}
	}
	p.md, p.lines = md, keyLines(string(data), md)
	p.parse(dir)
	if len(p.errs) > 0 {
		sortByLine(p.errs, name)
		return nil, p.errs
	}
	return p.sweep, nil
}

// sortByLine orders errors as the user reads the file: errors at lines of
// file first, by line, then the others (file-wide, -set flags, the base
// config) in the order found.
func sortByLine(errs configs.Errors, file string) {
	line := func(e *configs.FieldError) int {
		if rest, ok := strings.CutPrefix(e.Origin, file+":"); ok {
			if n, err := strconv.Atoi(rest); err == nil {
				return n
			}
		}
		return math.MaxInt
	}
	slices.SortStableFunc(errs, func(a, b *configs.FieldError) int { return cmp.Compare(line(a), line(b)) })
}

// parser holds the state of one Parse.
type parser struct {
	name  string
	doc   map[string]any
	md    toml.MetaData
	lines map[string]int
	errs  configs.Errors
	sweep *Sweep
}

func (p *parser) origin(key string) string {
	if n := configs.LineOf(p.lines, key); n > 0 {
		return fmt.Sprintf("%s:%d", p.name, n)
	}
	return p.name
}

func (p *parser) fail(key, format string, a ...any) {
	p.errs = append(p.errs, &configs.FieldError{Origin: p.origin(key), Key: key, Msg: fmt.Sprintf(format, a...)})
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// topLevel are the keys a sweep file may hold.
var topLevel = []string{"name", "base", "root", "set", "objective", "eval", "plot", "grid", "random", "runs"}

func (p *parser) parse(dir string) {
	s := p.sweep
	for _, k := range slices.Sorted(maps.Keys(p.doc)) {
		if !slices.Contains(topLevel, k) {
			p.fail(k, "unknown key (a sweep file has %s)", strings.Join(topLevel, ", "))
		}
	}
	if s.Name = p.str("name", true); s.Name != "" && !namePattern.MatchString(s.Name) {
		p.fail("name", "%q is not a usable directory name (letters, digits, '.', '_', '-')", s.Name)
	}
	if s.Base = p.str("base", true); s.Base != "" && dir != "" && !filepath.IsAbs(s.Base) {
		if _, err := os.Stat(filepath.Join(dir, s.Base)); err == nil {
			s.Base = filepath.Join(dir, s.Base)
		}
	}
	if root := p.str("root", false); root != "" {
		expanded, err := expandEnv(root)
		if err != nil {
			p.fail("root", "%v", err)
		}
		s.Root = expanded
	}
	p.parseSets()
	p.parseObjective()
	p.parseEval()
	for _, set := range s.Extra {
		key, _, _ := strings.Cut(set, "=")
		p.checkSetKey(key, "-set "+set)
		s.Sets = append(s.Sets, set)
		s.origins[set] = "-set " + set
	}
	p.parseVaried()
	p.parsePlot()
}

// parsePlot reads the [plot] table: x names a varied key or a numeric
// summary.json field, lines a varied key.
func (p *parser) parsePlot() {
	t := p.table("plot", "x", "lines")
	a := &p.sweep.Axes
	for key, dst := range map[string]*string{"x": &a.X, "lines": &a.Lines} {
		v, ok := t[key]
		if !ok {
			continue
		}
		s, ok := v.(string)
		switch {
		case !ok:
			p.fail("plot."+key, "expected a string, got %s", describe(v))
		case s == SeedKey && len(p.sweep.Varied) > 1:
			p.fail("plot."+key, "the plot averages over %s when other keys vary too; name another key", SeedKey)
		case slices.Contains(p.sweep.Varied, s):
			*dst = s
		case key == "x" && slices.Contains(SummaryMetrics(), s):
			*dst = s
		case key == "x":
			p.fail("plot.x", "%q is neither a varied key (%s) nor a numeric summary.json field", s, strings.Join(p.sweep.Varied, ", "))
		default:
			p.fail("plot.lines", "%q is not a varied key (%s)", s, strings.Join(p.sweep.Varied, ", "))
		}
	}
}

// str returns the string at a top-level key.
func (p *parser) str(key string, required bool) string {
	v, ok := p.doc[key]
	if !ok {
		if required {
			p.errs = append(p.errs, &configs.FieldError{Origin: p.name, Key: key, Msg: "missing (required)"})
		}
		return ""
	}
	s, ok := v.(string)
	if !ok {
		p.fail(key, "expected a string, got %s", describe(v))
	}
	return s
}

// table returns the table at a top-level key (nil when absent), checking
// that it holds only the allowed keys.
func (p *parser) table(key string, allowed ...string) map[string]any {
	v, ok := p.doc[key]
	if !ok {
		return nil
	}
	t, ok := v.(map[string]any)
	if !ok {
		p.fail(key, "expected a table, got %s", describe(v))
		return nil
	}
	if allowed != nil {
		for _, k := range slices.Sorted(maps.Keys(t)) {
			if !slices.Contains(allowed, k) {
				p.fail(key+"."+k, "unknown key (allowed: %s)", strings.Join(allowed, ", "))
			}
		}
	}
	return t
}

func (p *parser) parseSets() {
	v, ok := p.doc["set"]
	if !ok {
		return
	}
	items, ok := v.([]any)
	if !ok {
		p.fail("set", `expected an array of "KEY=VALUE" strings, got %s`, describe(v))
		return
	}
	for _, item := range items {
		set, ok := item.(string)
		key, _, hasEq := strings.Cut(set, "=")
		if !ok || !hasEq {
			p.fail("set", `expected "KEY=VALUE", got %s`, describe(item))
			continue
		}
		if p.checkSetKey(strings.TrimSpace(key), p.origin("set")) {
			p.sweep.Sets = append(p.sweep.Sets, set)
			p.sweep.origins[set] = p.origin("set")
		}
	}
}

// checkSetKey reports whether key is a config key a sweep may set.
func (p *parser) checkSetKey(key, origin string) bool {
	msg := configKeyProblem(key)
	if msg != "" {
		p.errs = append(p.errs, &configs.FieldError{Origin: origin, Key: key, Msg: msg})
	}
	return msg == ""
}

// configKeyProblem says what is wrong with key as a key a sweep sets, or
// returns "".
func configKeyProblem(key string) string {
	switch {
	case key == "output.dir":
		return "the sweep sets output.dir of every run (<root>/<name>/<index>-<hash>); set root instead"
	case !slices.Contains(configs.Keys(), key):
		return "unknown config key (see configs/REFERENCE.md)"
	}
	return ""
}

func (p *parser) parseObjective() {
	t := p.table("objective", "metric", "direction")
	if t == nil {
		return
	}
	o := &p.sweep.Objective
	if v, ok := t["metric"]; ok {
		if m, ok := v.(string); ok {
			o.Metric = m
		} else {
			p.fail("objective.metric", "expected a string, got %s", describe(v))
		}
	}
	if v, ok := t["direction"]; ok {
		d, _ := v.(string)
		if d != Minimize && d != Maximize {
			p.fail("objective.direction", "expected %q or %q, got %s", Minimize, Maximize, describe(v))
		}
		o.Direction = d
	}
	if name, isEval := strings.CutPrefix(o.Metric, evalPrefix); isEval {
		if name == "" {
			p.fail("objective.metric", `"eval." needs a metric name, e.g. "eval.acc"`)
		}
	} else if !slices.Contains(SummaryMetrics(), o.Metric) {
		p.fail("objective.metric", "%q is not a numeric summary.json field (%s) or an eval metric (eval.acc, eval.exact_match,strict-match)",
			o.Metric, strings.Join(SummaryMetrics(), ", "))
	}
}

// parseEval turns the [eval] table into eval.* overrides.
func (p *parser) parseEval() {
	t := p.table("eval")
	for _, k := range slices.Sorted(maps.Keys(t)) {
		key := "eval." + k
		if msg := configKeyProblem(key); msg != "" {
			p.fail(key, "%s", msg)
			continue
		}
		set, err := configs.FormatSet(key, t[k])
		if err != nil {
			p.fail(key, "%v", err)
			continue
		}
		p.sweep.Sets = append(p.sweep.Sets, set)
		p.sweep.origins[set] = p.origin(key)
	}
}

// SummaryMetrics lists the numeric fields of summary.json, the metrics an
// objective may name besides eval.<name>.
func SummaryMetrics() []string {
	b, err := json.Marshal(trainer.Summary{})
	if err != nil {
		panic("sweep: encoding a summary: " + err.Error())
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		panic("sweep: decoding a summary: " + err.Error())
	}
	var names []string
	for k, v := range m {
		if _, ok := v.(float64); ok {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	return names
}

// parseVaried reads the one table of [grid], [random] and [[runs]] the file
// has and computes the assignments of every run.
func (p *parser) parseVaried() {
	var present []string
	for _, k := range []string{"grid", "random", "runs"} {
		if _, ok := p.doc[k]; ok {
			present = append(present, k)
		}
	}
	crossed := slices.Equal(present, []string{"grid", "runs"})
	switch {
	case len(present) == 0:
		p.errs = append(p.errs, &configs.FieldError{Origin: p.name, Msg: "nothing to sweep: add a [grid], [random] or [[runs]] table"})
		return
	case len(present) > 1 && !crossed:
		p.fail(present[1], "a sweep has one of [grid], [random] and [[runs]] (or [[runs]] crossed with a [grid]); this file also has [%s]", present[0])
		return
	}
	before := len(p.errs)
	switch {
	case crossed:
		p.parseRunsTimesGrid()
	case present[0] == "grid":
		p.parseGrid()
	case present[0] == "random":
		p.parseRandom()
	case present[0] == "runs":
		p.parseRuns()
	}
	if len(p.errs) > before {
		return
	}
	fixed := map[string]string{}
	for _, set := range p.sweep.Sets {
		key, _, _ := strings.Cut(set, "=")
		fixed[strings.TrimSpace(key)] = p.sweep.origins[set]
	}
	for _, key := range p.sweep.Varied {
		if o, ok := fixed[key]; ok {
			p.fail(present[0]+"."+key, "%s is varied here and fixed at %s; keep one", key, o)
		}
	}
}

// leaves returns the keys under section (in document order, as the
// decoder lists them) that hold a value rather than a table, and their
// values. Dotted and quoted keys give the same name: [grid] with
// sparsity.ratio = [...] or "sparsity.ratio" = [...] is "sparsity.ratio".
// Tables for which isValue is true are leaves too.
func (p *parser) leaves(section string, isValue func(any) bool) (keys []string, values map[string]any) {
	values = map[string]any{}
	for _, k := range p.md.Keys() {
		if len(k) < 2 || k[0] != section {
			continue
		}
		v := lookup(p.doc, k)
		if _, isTable := v.(map[string]any); isTable && (isValue == nil || !isValue(v)) {
			continue
		}
		if parentIsValue(p.doc, k, isValue) {
			continue
		}
		key := strings.Join(k[1:], ".")
		keys = append(keys, key)
		values[key] = v
	}
	return keys, values
}

// parentIsValue reports whether a proper prefix of k (below its section) is
// a table that isValue accepts, i.e. k is a field of a leaf's table.
func parentIsValue(doc map[string]any, k toml.Key, isValue func(any) bool) bool {
	if isValue == nil {
		return false
	}
	for n := 2; n < len(k); n++ {
		if isValue(lookup(doc, k[:n])) {
			return true
		}
	}
	return false
}

// lookup returns the value at key path k of a decoded document.
func lookup(doc map[string]any, k toml.Key) any {
	var cur any = doc
	for _, seg := range k {
		t, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = t[seg]
	}
	return cur
}

func (p *parser) parseGrid() {
	keys, values := p.leaves("grid", nil)
	if len(keys) == 0 {
		p.fail("grid", "empty grid: add keys with lists of values, e.g. \"sparsity.ratio\" = [0.3, 0.5]")
		return
	}
	var axes [][]any
	for _, key := range keys {
		where := "grid." + key
		list, ok := values[key].([]any)
		switch {
		case !p.checkVariedKey(key, where):
			continue
		case !ok:
			p.fail(where, "expected a list of values, got %s (a value every run shares belongs in set)", describe(values[key]))
			continue
		case len(list) == 0:
			p.fail(where, "empty list of values")
			continue
		}
		axes = append(axes, list)
		p.sweep.Varied = append(p.sweep.Varied, key)
	}
	if len(p.errs) > 0 {
		return
	}
	// Cartesian product, the first key outermost (its value changes least
	// often), as nested loops in the order the file writes the keys.
	total := 1
	for _, a := range axes {
		if total *= len(a); total > MaxRuns {
			p.fail("grid", "the grid has more than %d runs", MaxRuns)
			return
		}
	}
	for i := range total {
		point := make([]assignment, len(axes))
		rest := i
		for j := len(axes) - 1; j >= 0; j-- {
			key := p.sweep.Varied[j]
			point[j] = assignment{key: key, value: axes[j][rest%len(axes[j])], origin: p.origin("grid." + key)}
			rest /= len(axes[j])
		}
		p.sweep.points = append(p.sweep.points, point)
	}
}

// checkVariedKey reports whether key may be varied; where names it in the
// file.
func (p *parser) checkVariedKey(key, where string) bool {
	if msg := configKeyProblem(key); msg != "" {
		p.fail(where, "%s", msg)
		return false
	}
	return true
}

func (p *parser) parseRuns() {
	tables, ok := p.doc["runs"].([]map[string]any)
	if !ok {
		p.fail("runs", "expected [[runs]] tables, got %s", describe(p.doc["runs"]))
		return
	}
	points := make([][]assignment, len(tables))
	element := -1
	for _, k := range p.md.Keys() {
		if k[0] != "runs" {
			continue
		}
		if len(k) == 1 {
			element++
			continue
		}
		v := lookup(tables[element], k[1:])
		if _, isTable := v.(map[string]any); isTable {
			continue
		}
		key := strings.Join(k[1:], ".")
		where := fmt.Sprintf("runs.%d.%s", element, key)
		if !p.checkVariedKey(key, where) {
			continue
		}
		points[element] = append(points[element], assignment{key: key, value: v, origin: p.origin(where)})
		if !slices.Contains(p.sweep.Varied, key) {
			p.sweep.Varied = append(p.sweep.Varied, key)
		}
	}
	p.sweep.points = points
}

// parseRunsTimesGrid crosses every [[runs]] table with every point of the
// [grid] (the runs outermost: run i of the file is sweep runs
// i*G .. i*G+G-1 for a grid of G points), e.g. each method of a table
// under several seeds. A key may not be varied in both.
func (p *parser) parseRunsTimesGrid() {
	p.parseRuns()
	runs, runKeys := p.sweep.points, p.sweep.Varied
	p.sweep.points, p.sweep.Varied = nil, nil
	p.parseGrid()
	grid, gridKeys := p.sweep.points, p.sweep.Varied
	p.sweep.points, p.sweep.Varied = nil, append(slices.Clone(runKeys), gridKeys...)
	for _, key := range gridKeys {
		if slices.Contains(runKeys, key) {
			p.fail("grid."+key, "%s is varied in both [[runs]] and [grid]; keep one", key)
		}
	}
	if len(p.errs) > 0 {
		return
	}
	if len(runs)*len(grid) > MaxRuns {
		p.fail("grid", "[[runs]] times the grid has more than %d runs", MaxRuns)
		return
	}
	for _, r := range runs {
		for _, g := range grid {
			p.sweep.points = append(p.sweep.points, append(slices.Clone(r), g...))
		}
	}
}

// describe names the TOML type of a decoded value for messages.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("string %q", x)
	case int64:
		return fmt.Sprintf("integer %d", x)
	case float64:
		return fmt.Sprintf("float %v", x)
	case bool:
		return fmt.Sprintf("boolean %v", x)
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	case nil:
		return "nothing"
	}
	return fmt.Sprintf("%T", v)
}

// expandEnv expands ${VAR} and $VAR in s ("$$" is a literal '$'); an unset
// variable is an error.
func expandEnv(s string) (string, error) {
	var missing []string
	out := os.Expand(s, func(name string) string {
		if name == "$" {
			return "$"
		}
		v, ok := os.LookupEnv(name)
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("environment variable %s is not set (used in %q)", missing[0], s)
	}
	return out, nil
}

// asFloat returns a TOML number as a float64.
func asFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, !math.IsNaN(x) && !math.IsInf(x, 0)
	}
	return 0, false
}
