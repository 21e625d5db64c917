package configs

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
	"github.com/salr-go/salr/model"
)

// Load reads the config named by nameOrPath, a file path or an embedded
// preset name such as "quickstart", "gsm8k.toml" (a file that exists on disk
// wins over a preset of the same name). Keys the file leaves out keep their
// Default values. The sets are "-set KEY=VALUE" overrides applied in order
// after the file (see Parse). Path fields are then expanded (${VAR}, $VAR,
// $$ for a literal '$') and the result validated. The returned Config is the
// effective, expanded config; every problem found is reported at once as
// Errors, each naming its file and line or its -set flag. Old spellings of
// values (see OutputConfig.BaseFormat) are replaced by the current ones, with
// a line in Config.Notes.
func Load(nameOrPath string, sets []string) (*Config, error) {
	name, data, err := readSource(nameOrPath)
	if err != nil {
		return nil, err
	}
	return Parse(name, data, sets)
}

// LoadPrintable is Load for showing a config (salr-train -print-config):
// path fields expand the variables that are set and keep ${VAR} for those
// that are not, so that a preset prints without its environment. MarshalTOML
// writes such a config in a form Load reads back (once the variables are
// set); it is for printing, not for running.
func LoadPrintable(nameOrPath string, sets []string) (*Config, error) {
	name, data, err := readSource(nameOrPath)
	if err != nil {
		return nil, err
	}
	return parse(name, data, sets, false)
}

// Parse is Load on a document already in memory; name is used in error
// messages ("name:line: key: problem").
//
// A -set VALUE is read as a TOML value when it parses as one (1e-4, true,
// "text", ["q_proj","v_proj"]) and as the literal text otherwise
// (lora, /x/y, 2:4). For string keys a VALUE that parses as another TOML type
// is also taken literally. For list keys a VALUE that is not a TOML array is
// read as comma-separated names, with optional brackets: q_proj,v_proj or
// [q_proj,v_proj] (what a shell leaves of ["q_proj","v_proj"]).
func Parse(name string, data []byte, sets []string) (*Config, error) {
	return parse(name, data, sets, true)
}

// parse is Parse; with expand false, path fields are expanded as
// LoadPrintable does.
func parse(name string, data []byte, sets []string, expand bool) (*Config, error) {
	c := Default()
	ld := loader{cfg: &c, origins: map[string]string{}}
	var errs Errors
	ld.decodeFile(name, data, &errs)
	for _, s := range sets {
		ld.applySet(s, &errs)
	}
	decoded := len(errs)
	ld.replaceAliases()
	if expand {
		ld.expandPaths(expandEnv, &errs)
	} else {
		ld.expandPaths(expandSetEnv, &errs)
		c.written = true
	}
	if err := c.Validate(); err != nil {
		errs = append(errs, err.(Errors)...)
	}
	if len(errs) == 0 {
		return &c, nil
	}
	ld.locate(errs[decoded:])
	errs = dropRepeatedKeys(errs)
	sortByOrigin(errs, name, sets)
	return nil, errs
}

// sortByOrigin orders errors as the user reads their input: the file by
// line, then the -set flags in order, then built-in defaults.
func sortByOrigin(errs Errors, name string, sets []string) {
	rank := func(e *FieldError) (group, pos int) {
		if line, ok := strings.CutPrefix(e.Origin, name+":"); ok {
			n, _ := strconv.Atoi(line)
			return 0, n
		}
		if set, ok := strings.CutPrefix(e.Origin, "-set "); ok {
			return 1, slices.Index(sets, set)
		}
		if e.Origin == name {
			return 0, 0
		}
		return 2, 0
	}
	slices.SortStableFunc(errs, func(a, b *FieldError) int {
		ga, pa := rank(a)
		gb, pb := rank(b)
		return cmp.Or(cmp.Compare(ga, gb), cmp.Compare(pa, pb))
	})
}

// dropRepeatedKeys keeps the first error of each key: a value that failed to
// decode keeps its default, which later checks would report again.
func dropRepeatedKeys(errs Errors) Errors {
	seen := map[string]bool{}
	out := errs[:0:0]
	for _, e := range errs {
		if e.Key != "" && seen[e.Key] {
			continue
		}
		seen[e.Key] = true
		out = append(out, e)
	}
	return out
}

// readSource resolves nameOrPath to a file on disk or an embedded preset.
func readSource(nameOrPath string) (name string, data []byte, err error) {
	info, statErr := os.Stat(nameOrPath)
	if statErr == nil {
		if info.IsDir() {
			return "", nil, fmt.Errorf("config %s: is a directory, not a TOML file", nameOrPath)
		}
		data, err := os.ReadFile(nameOrPath)
		if err != nil {
			return "", nil, fmt.Errorf("config: %w", err)
		}
		return nameOrPath, data, nil
	}
	if data, canonical, ok := ReadPreset(nameOrPath); ok && slices.Contains(Presets(), canonical) {
		return canonical, data, nil
	}
	if !errors.Is(statErr, fs.ErrNotExist) {
		return "", nil, fmt.Errorf("config: %w", statErr)
	}
	return "", nil, fmt.Errorf("config %s: no such file, and no preset of that name (presets: %s)",
		nameOrPath, strings.Join(Presets(), ", "))
}

// loader decodes a document and overrides onto a Config, remembering where
// each key's value came from so that later errors can name it.
type loader struct {
	cfg     *Config
	origins map[string]string // leaf key -> "file:line" or "-set KEY=VALUE"
}

// source is where a batch of keys comes from: a file (with key lines) or one
// -set flag (lines nil).
type source struct {
	name  string
	lines map[string]int
}

func (s source) origin(key string) string {
	if n := LineOf(s.lines, key); n > 0 {
		return fmt.Sprintf("%s:%d", s.name, n)
	}
	return s.name
}

func (ld *loader) decodeFile(name string, data []byte, errs *Errors) {
	var table map[string]any
	if _, err := toml.Decode(string(data), &table); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			line, col := positionOf(data, pe.Position)
			errs.add(fmt.Sprintf("%s:%d:%d", name, line, col), "", "syntax error: "+pe.Message)
		} else {
			errs.add(name, "", err.Error())
		}
		return
	}
	ld.apply(table, "", source{name: name, lines: keyLines(string(data))}, errs)
}

// positionOf returns the 1-based line and column of a parse error.
func positionOf(data []byte, p toml.Position) (line, col int) {
	start := min(max(p.Start, 0), len(data))
	lineStart := strings.LastIndexByte(string(data[:start]), '\n') + 1
	return max(p.Line, 1), start - lineStart + 1
}

// apply assigns every key of table (the contents of section prefix, or of
// the whole document when prefix is "") to the config.
func (ld *loader) apply(table map[string]any, prefix string, src source, errs *Errors) {
	s := loadSchema()
	keys := slices.Collect(maps.Keys(table))
	join := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Or(cmp.Compare(LineOf(src.lines, join(a)), LineOf(src.lines, join(b))), cmp.Compare(a, b))
	})
	for _, k := range keys {
		key, v := join(k), table[k]
		if f := s.byKey[key]; f != nil {
			if msg := setField(f.value(ld.cfg), v); msg != "" {
				errs.add(src.origin(key), key, msg)
				continue
			}
			ld.origins[key] = src.origin(key)
			continue
		}
		if prefix != "" || !s.sections[key] {
			errs.add(src.origin(key), key, "unknown key"+suggestKey(key))
			continue
		}
		sub, ok := v.(map[string]any)
		if !ok {
			errs.add(src.origin(key), key, "expected a table, got "+describe(v))
			continue
		}
		ld.apply(sub, key, src, errs)
	}
}

// setField stores a decoded TOML value in a config field; it returns what is
// wrong when the types do not match.
func setField(dst reflect.Value, v any) string {
	mismatch := func(want string) string { return fmt.Sprintf("expected %s, got %s", want, describe(v)) }
	switch dst.Kind() {
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			return mismatch("a string")
		}
		dst.SetString(s)
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			return mismatch("a boolean")
		}
		dst.SetBool(b)
	case reflect.Int, reflect.Int64:
		i, ok := v.(int64)
		if !ok {
			return mismatch("an integer")
		}
		if dst.OverflowInt(i) {
			return fmt.Sprintf("integer %d is out of range", i)
		}
		dst.SetInt(i)
	case reflect.Float64:
		switch x := v.(type) {
		case float64:
			dst.SetFloat(x)
		case int64:
			dst.SetFloat(float64(x))
		default:
			return mismatch("a float")
		}
	case reflect.Slice:
		items, ok := v.([]any)
		if !ok {
			return mismatch("an array of strings")
		}
		list := make([]string, len(items))
		for i, item := range items {
			s, ok := item.(string)
			if !ok {
				return fmt.Sprintf("expected an array of strings, element %d is %s", i, describe(item))
			}
			list[i] = s
		}
		dst.Set(reflect.ValueOf(list))
	default:
		panic("configs: unsupported field kind " + dst.Kind().String())
	}
	return ""
}

// describe names the TOML type of a decoded value, with the value when short.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		if len(x) > 40 {
			x = x[:37] + "..."
		}
		return fmt.Sprintf("string %q", x)
	case int64:
		return fmt.Sprintf("integer %d", x)
	case float64:
		return "float " + formatFloat(x)
	case bool:
		return fmt.Sprintf("boolean %t", x)
	case []any:
		return "an array"
	case []map[string]any:
		return "an array of tables"
	case map[string]any:
		return "a table"
	default:
		return "a datetime"
	}
}

// applySet applies one "KEY=VALUE" override.
func (ld *loader) applySet(arg string, errs *Errors) {
	src := source{name: "-set " + arg}
	k, raw, found := strings.Cut(arg, "=")
	key := strings.TrimSpace(k)
	if !found || key == "" {
		errs.add(src.name, "", "expected KEY=VALUE, e.g. -set train.lr=1e-4")
		return
	}
	segments := strings.Split(key, ".")
	for _, seg := range segments {
		if seg == "" || strings.TrimLeftFunc(seg, func(r rune) bool { return r < utf8.RuneSelf && isBareKeyByte(byte(r)) }) != "" {
			errs.add(src.name, key, "malformed key (want dotted names such as train.lr)")
			return
		}
	}
	if !utf8.ValidString(raw) {
		errs.add(src.name, key, "VALUE is not valid UTF-8")
		return
	}
	v, err := setValue(key, raw)
	if err != nil {
		errs.add(src.name, key, err.Error())
		return
	}
	for i := len(segments) - 1; i >= 1; i-- {
		v = map[string]any{segments[i]: v}
	}
	ld.apply(map[string]any{segments[0]: v}, "", src, errs)
}

// setValue interprets the VALUE of -set KEY=VALUE (rules in Parse's doc).
// It fails only when KEY is a number or boolean key and VALUE is not a TOML
// value.
func setValue(key, raw string) (any, error) {
	var doc map[string]any
	_, err := toml.Decode("v = "+raw, &doc)
	parsed, isValue := doc["v"], err == nil && len(doc) == 1
	literal := strings.TrimSpace(raw)
	f := loadSchema().byKey[key]
	switch {
	case f != nil && f.typ.Kind() == reflect.String:
		if s, ok := parsed.(string); ok && isValue {
			return s, nil
		}
		return literal, nil
	case f != nil && f.typ.Kind() == reflect.Slice:
		switch p := parsed.(type) {
		case []any:
			if isValue {
				return p, nil
			}
		case string:
			if isValue {
				return []any{p}, nil
			}
		}
		return splitList(literal), nil
	case isValue:
		return parsed, nil
	case f != nil:
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%q is not a valid %s (%s)", literal, f.typeName(), pe.Message)
		}
		return nil, fmt.Errorf("%q is not a valid %s", literal, f.typeName())
	default:
		return literal, nil
	}
}

// splitList reads a list VALUE that is not a TOML array as comma-separated
// names with optional brackets and quotes: "q_proj,v_proj" and
// "[q_proj,v_proj]" (what a shell leaves of ["q_proj","v_proj"]).
func splitList(literal string) []any {
	if inner, ok := strings.CutPrefix(literal, "["); ok {
		if inner, ok = strings.CutSuffix(inner, "]"); ok {
			literal = inner
		}
	}
	items := []any{}
	for item := range strings.SplitSeq(literal, ",") {
		if item = strings.Trim(strings.TrimSpace(item), `"'`); item != "" {
			items = append(items, item)
		}
	}
	return items
}

// expandPaths expands environment variables in the path fields with expand
// (expandEnv or expandSetEnv).
func (ld *loader) expandPaths(expand func(string, func(string) (string, bool)) (string, error), errs *Errors) {
	for _, f := range loadSchema().fields {
		if !f.expandEnv {
			continue
		}
		v := f.value(ld.cfg)
		expanded, err := expand(v.String(), os.LookupEnv)
		if err != nil {
			errs.add("", f.key, err.Error())
			continue
		}
		v.SetString(expanded)
	}
}

// replaceAliases replaces old spellings of values by the current ones and
// notes each replacement in Config.Notes.
func (ld *loader) replaceAliases() {
	const key = "output.base_format"
	f := &ld.cfg.Output.BaseFormat
	format, err := model.ParseBaseFormat(*f)
	current := string(format)
	if err != nil || current == *f {
		return // validation reports an unknown format
	}
	ld.cfg.Notes = append(ld.cfg.Notes, fmt.Sprintf("%s: %s: %q is the old spelling of %q, read as %q",
		cmp.Or(ld.origins[key], "config"), key, *f, current, current))
	*f = current
}

// locate fills in the origin of errors found after decoding; keys never set
// by the file or a -set flag hold their built-in default.
func (ld *loader) locate(errs Errors) {
	for _, e := range errs {
		if e.Origin != "" || e.Key == "" {
			continue
		}
		if origin, ok := ld.origins[e.Key]; ok {
			e.Origin = origin
		} else {
			e.Msg += " (built-in default; set it in the config or with -set)"
		}
	}
}

// suggestKey proposes the known key the user probably meant: the same name
// in another section, or a key within two edits.
func suggestKey(key string) string {
	s := loadSchema()
	last := lastSegment(key)
	best, bestDist := "", 3
	candidates := append(Keys(), slices.Collect(maps.Keys(s.sections))...)
	slices.Sort(candidates)
	for _, cand := range candidates {
		if strings.Contains(key, ".") && lastSegment(cand) == last {
			return fmt.Sprintf(" (did you mean %s?)", cand)
		}
		if d := editDistance(key, cand); d < bestDist {
			best, bestDist = cand, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
