package configs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MarshalTOML renders the config as canonical TOML: every key, sections in
// schema order, no comments. Load reads it back to an equal Config; for
// that, the '$' of path fields is written as "$$" (the text is the effective,
// already expanded config, and Load expands path fields again). A config
// from LoadPrintable has its paths in that form already, ${VAR} of unset
// variables included.
func (c *Config) MarshalTOML() ([]byte, error) {
	var b bytes.Buffer
	section := ""
	for _, f := range loadSchema().fields {
		if f.section != section {
			section = f.section
			fmt.Fprintf(&b, "\n[%s]\n", section)
		}
		v := f.value(c)
		if f.expandEnv && !c.written {
			v = reflect.ValueOf(escapeEnv(v.String()))
		}
		text, err := encodeValue(v)
		if err != nil {
			return nil, fmt.Errorf("configs: %s: %w", f.key, err)
		}
		fmt.Fprintf(&b, "%s = %s\n", lastSegment(f.key), text)
	}
	return b.Bytes(), nil
}

// Hash is a short stable identifier of the experiment a config describes:
// the first 12 hex digits of the SHA-256 of its canonical TOML with
// output.dir left out, so a sweep can name a run directory after it. Two
// configs with the same hash train the same way; the hash changes when the
// schema gains a key. Paths are hashed as absolute, cleaned paths (relative
// ones taken from the working directory), so that two spellings of one file,
// such as SALR_ASSETS=../assets and SALR_ASSETS=/work/assets, give one hash.
func (c *Config) Hash() string {
	cp := *c
	cp.Output.Dir = ""
	if !cp.written {
		for _, f := range loadSchema().fields {
			if v := f.value(&cp); f.expandEnv && v.String() != "" {
				if abs, err := filepath.Abs(v.String()); err == nil {
					v.SetString(abs)
				}
			}
		}
	}
	text, err := cp.MarshalTOML()
	if err != nil {
		// Only invalid UTF-8 in a string can fail; hash the Go rendering then.
		text = fmt.Appendf(nil, "%#v", cp)
	}
	sum := sha256.Sum256(text)
	return hex.EncodeToString(sum[:6])
}

// FormatSet renders a key and a Go value (string, bool, integer, float or a
// slice of those) as a -set argument that Load parses back to that value,
// e.g. FormatSet("train.lr", 1e-4) == "train.lr=0.0001". Sweeps use it to
// turn grid points into overrides.
func FormatSet(key string, value any) (string, error) {
	text, err := encodeValue(reflect.ValueOf(value))
	if err != nil {
		return "", fmt.Errorf("configs: -set %s: %w", key, err)
	}
	return key + "=" + text, nil
}

// encodeValue renders a scalar or a slice of scalars as a TOML value.
func encodeValue(v reflect.Value) (string, error) {
	switch v.Kind() {
	case reflect.String:
		return quoteTOML(v.String())
	case reflect.Bool:
		return strconv.FormatBool(v.Bool()), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if v.Uint() > math.MaxInt64 {
			return "", fmt.Errorf("%d does not fit a TOML integer", v.Uint())
		}
		return strconv.FormatUint(v.Uint(), 10), nil
	case reflect.Float32, reflect.Float64:
		return formatFloat(v.Float()), nil
	case reflect.Slice, reflect.Array:
		items := make([]string, v.Len())
		for i := range items {
			s, err := encodeValue(v.Index(i))
			if err != nil {
				return "", err
			}
			items[i] = s
		}
		return "[" + strings.Join(items, ", ") + "]", nil
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			return "", fmt.Errorf("nil has no TOML form")
		}
		return encodeValue(v.Elem())
	default:
		return "", fmt.Errorf("%s has no TOML form", v.Kind())
	}
}

// formatFloat renders a float so that TOML reads it back as the same float
// (always with a '.' or an exponent, or as inf/nan).
func formatFloat(x float64) string {
	switch {
	case math.IsNaN(x):
		return "nan"
	case math.IsInf(x, 1):
		return "inf"
	case math.IsInf(x, -1):
		return "-inf"
	}
	s := strconv.FormatFloat(x, 'g', -1, 64)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return s
}

// quoteTOML renders s as a TOML basic string. TOML strings are UTF-8, so
// invalid UTF-8 is an error.
func quoteTOML(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("string %q is not valid UTF-8", s)
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String(), nil
}

func lastSegment(key string) string {
	return key[strings.LastIndexByte(key, '.')+1:]
}
