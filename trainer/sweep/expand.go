package sweep

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/salr-go/salr/configs"
)

// evalPrefix marks an objective or results column taken from eval/results.json.
const evalPrefix = "eval."

// Run is one expanded run of a sweep.
type Run struct {
	// Index is the run's number, 0 to Len-1; run i is always the same
	// config for the same sweep file and environment.
	Index int
	// Name is the run directory's base name, "<index>-<hash>".
	Name string
	// Dir is the run directory, <root>/<name>/<Name>.
	Dir string
	// Hash is Config.Hash(): it covers the whole resolved config (with
	// expanded paths, made absolute) except output.dir, so it does not depend
	// on how SALR_ASSETS or a path is spelled.
	Hash string
	// Values are the varied keys' effective values, in Sweep.Varied order.
	Values []Value
	// Config is the resolved config, with Output.Dir = Dir.
	Config *configs.Config
}

// Value is a varied key and its value in one run, as text: strings as they
// are, other values in TOML syntax (0.3, true, ["q_proj", "v_proj"]).
type Value struct {
	Key, Text string
}

// Describe renders the varied values as "key=value key=value".
func (r Run) Describe() string {
	parts := make([]string, len(r.Values))
	for i, v := range r.Values {
		parts[i] = v.Key + "=" + v.Text
	}
	return strings.Join(parts, " ")
}

// Expand resolves every run of the sweep: the base config, then the fixed
// overrides, then the run's varied values, validated as configs.Load does.
// Problems are returned together, each naming the sweep file line (or -set
// flag, or base config line) it comes from.
func (s *Sweep) Expand() ([]Run, error) {
	runs := make([]Run, 0, len(s.points))
	var errs configs.Errors
	seen := map[string]bool{}
	addErr := func(e *configs.FieldError) {
		if !seen[e.Error()] {
			seen[e.Error()] = true
			errs = append(errs, e)
		}
	}
	for i, point := range s.points {
		r, err := s.expandRun(i, point)
		var ce configs.Errors
		switch {
		case errors.As(err, &ce):
			for _, e := range ce {
				addErr(e)
			}
			continue
		case err != nil:
			return nil, err
		}
		for _, e := range s.checkRun(r) {
			addErr(e)
		}
		runs = append(runs, r)
	}
	if len(errs) > 0 {
		sortByLine(errs, s.File)
		return nil, errs
	}
	return runs, nil
}

// expandRun resolves run i from its varied assignments.
func (s *Sweep) expandRun(i int, point []assignment) (Run, error) {
	sets := slices.Clone(s.Sets)
	origins := map[string]string{}
	for _, a := range point {
		set, err := configs.FormatSet(a.key, a.value)
		if err != nil {
			return Run{}, configs.Errors{{Origin: a.origin, Key: a.key, Msg: err.Error()}}
		}
		sets = append(sets, set)
		origins[set] = a.origin
	}
	cfg, err := configs.Load(s.Base, sets)
	var ce configs.Errors
	switch {
	case errors.As(err, &ce):
		// Point errors at the sweep file's lines rather than at the -set
		// flags the sweep generated.
		out := make(configs.Errors, len(ce))
		for j, e := range ce {
			fe := *e
			if set, ok := strings.CutPrefix(e.Origin, "-set "); ok {
				fe.Origin = cmp.Or(origins[set], s.origins[set], e.Origin)
			}
			out[j] = &fe
		}
		return Run{}, out
	case err != nil:
		return Run{}, fmt.Errorf("sweep %s: base %s: %w", s.File, s.Base, err)
	}
	hash := cfg.Hash()
	name := fmt.Sprintf("%d-%s", i, hash)
	cfg.Output.Dir = filepath.Join(s.Dir(), name)
	values, err := varied(cfg, s.Varied)
	if err != nil {
		return Run{}, err
	}
	return Run{Index: i, Name: name, Dir: cfg.Output.Dir, Hash: hash, Values: values, Config: cfg}, nil
}

// checkRun reports combinations a run cannot execute.
func (s *Sweep) checkRun(r Run) configs.Errors {
	var errs configs.Errors
	task := r.Config.Eval.Task
	if task != "" && !r.Config.Output.SaveBase {
		errs = append(errs, &configs.FieldError{Origin: s.File, Key: "output.save_base",
			Msg: fmt.Sprintf("eval.task = %q evaluates the run's saved pruned base; set output.save_base = true", task)})
	}
	if strings.HasPrefix(s.Objective.Metric, evalPrefix) && task == "" {
		errs = append(errs, &configs.FieldError{Origin: s.File, Key: "objective.metric",
			Msg: fmt.Sprintf("%s needs an evaluation after training: set eval.task (in [eval] or set)", s.Objective.Metric)})
	}
	return errs
}

// varied returns the effective values of keys in cfg.
func varied(cfg *configs.Config, keys []string) ([]Value, error) {
	text, err := cfg.MarshalTOML()
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if _, err := toml.Decode(string(text), &doc); err != nil {
		return nil, fmt.Errorf("sweep: reading back a config: %w", err)
	}
	values := make([]Value, len(keys))
	for i, key := range keys {
		v := lookup(doc, strings.Split(key, "."))
		values[i] = Value{Key: key, Text: valueText(key, v)}
	}
	return values, nil
}

// valueText renders a config value: a string as it is, anything else in
// TOML syntax.
func valueText(key string, v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	set, err := configs.FormatSet(key, v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimPrefix(set, key+"=")
}

// ManifestFile is the file in a sweep's directory that lists its runs, so
// that -collect needs only the directory.
const ManifestFile = "sweep.json"

// manifest is the content of sweep.json.
type manifest struct {
	Name      string          `json:"name"`
	Sweep     string          `json:"sweep"`
	Objective Objective       `json:"objective"`
	Plot      *PlotAxes       `json:"plot,omitempty"`
	Varied    []string        `json:"varied"`
	Runs      []manifestEntry `json:"runs"`
}

// manifestEntry is one run in sweep.json.
type manifestEntry struct {
	Index  int      `json:"index"`
	Dir    string   `json:"dir"` // relative to the sweep directory
	Hash   string   `json:"hash"`
	Values []string `json:"values"` // aligned with manifest.Varied
}

// WriteManifest writes sweep.json into the sweep's directory (creating it),
// atomically: concurrent workers writing the same sweep each replace it
// with the same content.
func WriteManifest(s *Sweep, runs []Run) error {
	m := manifest{Name: s.Name, Sweep: s.File, Objective: s.Objective, Varied: s.Varied}
	if s.Axes != (PlotAxes{}) {
		m.Plot = &s.Axes
	}
	for _, r := range runs {
		e := manifestEntry{Index: r.Index, Dir: r.Name, Hash: r.Hash, Values: make([]string, len(r.Values))}
		for i, v := range r.Values {
			e.Values[i] = v.Text
		}
		m.Runs = append(m.Runs, e)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	return writeAtomic(filepath.Join(s.Dir(), ManifestFile), append(b, '\n'))
}

// readManifest reads a sweep directory's sweep.json.
func readManifest(dir string) (*manifest, error) {
	path := filepath.Join(dir, ManifestFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("sweep: %s is not a sweep directory (no %s; it is written when a sweep runs or is emitted)", dir, ManifestFile)
	}
	if err != nil {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("sweep: %s: %w", path, err)
	}
	for _, r := range m.Runs {
		if len(r.Values) != len(m.Varied) || r.Dir == "" || strings.ContainsAny(r.Dir, `/\`) || r.Dir == ".." {
			return nil, fmt.Errorf("sweep: %s: run %d is malformed", path, r.Index)
		}
	}
	return &m, nil
}

// writeAtomic writes data to path through a temporary file in the same
// directory renamed into place, creating the directory.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("sweep: writing %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("sweep: %w", err)
	}
	return nil
}
