package sweep

import (
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// keyDef is one key definition found in a TOML text: a table header
// ("[grid]", "[[runs]]") or a "key = value" line, with the full key path it
// defines (the enclosing table's path plus the line's own dotted key).
type keyDef struct {
	path []string
	line int
}

// scanKeyDefs lists the key definitions of a TOML document that already
// parsed, in document order. The TOML decoder keeps positions private, so the
// sweep's errors find their lines here. It follows table headers, dotted and
// quoted keys, strings (a '#', '[' or '=' inside them is ignored) and values
// spanning lines (multi-line arrays, inline tables and strings). Keys inside
// inline tables are not listed; they take the line of the enclosing key.
func scanKeyDefs(src string) []keyDef {
	var defs []keyDef
	var table []string
	var v valueScanner
	for i, line := range strings.Split(strings.TrimPrefix(src, "\ufeff"), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if v.open() {
			v.scan(line)
			continue
		}
		rest := strings.TrimLeft(line, " \t")
		switch {
		case rest == "" || rest[0] == '#':
		case rest[0] == '[':
			rest = strings.TrimPrefix(strings.TrimPrefix(rest, "["), "[")
			if key, _, ok := parseDottedKey(rest); ok {
				table = key
				defs = append(defs, keyDef{path: key, line: i + 1})
			}
		default:
			key, after, ok := parseDottedKey(rest)
			if !ok || !strings.HasPrefix(after, "=") {
				continue
			}
			full := append(append([]string(nil), table...), key...)
			defs = append(defs, keyDef{path: full, line: i + 1})
			v.scan(after[1:])
		}
	}
	return defs
}

// parseDottedKey reads a possibly dotted, possibly quoted key from the start
// of s and returns its segments and what follows it, blanks trimmed.
func parseDottedKey(s string) (segments []string, rest string, ok bool) {
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return nil, "", false
		}
		var seg string
		switch s[0] {
		case '"', '\'':
			end := closingQuote(s)
			if end < 0 {
				return nil, "", false
			}
			seg = s[1:end]
			if s[0] == '"' {
				if u, err := strconv.Unquote(s[:end+1]); err == nil {
					seg = u
				}
			}
			s = s[end+1:]
		default:
			n := 0
			for n < len(s) && isBareKeyByte(s[n]) {
				n++
			}
			if n == 0 {
				return nil, "", false
			}
			seg, s = s[:n], s[n:]
		}
		segments = append(segments, seg)
		s = strings.TrimLeft(s, " \t")
		if !strings.HasPrefix(s, ".") {
			return segments, s, true
		}
		s = s[1:]
	}
}

func isBareKeyByte(c byte) bool {
	return c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// closingQuote returns the index of the quote that closes the string
// starting at s[0] (a double quote honours backslash escapes, a single
// quote does not), or -1.
func closingQuote(s string) int {
	q := s[0]
	for i := 1; i < len(s); i++ {
		switch {
		case s[i] == '\\' && q == '"':
			i++
		case s[i] == q:
			return i
		}
	}
	return -1
}

// valueScanner follows a TOML value across lines: bracket and brace depth
// and multi-line strings, ignoring comments and the contents of strings.
type valueScanner struct {
	depth     int
	multiline string // `"""` or `'''` while inside a multi-line string
}

func (v *valueScanner) open() bool { return v.depth > 0 || v.multiline != "" }

func (v *valueScanner) scan(s string) {
	for i := 0; i < len(s); i++ {
		if v.multiline != "" {
			end := strings.Index(s[i:], v.multiline)
			if end < 0 {
				return
			}
			i += end + 2
			v.multiline = ""
			continue
		}
		switch c := s[i]; c {
		case '#':
			return
		case '[', '{':
			v.depth++
		case ']', '}':
			v.depth--
		case '"', '\'':
			if strings.HasPrefix(s[i:], strings.Repeat(string(c), 3)) {
				v.multiline = strings.Repeat(string(c), 3)
				i += 2
				continue
			}
			end := closingQuote(s[i:])
			if end < 0 {
				return
			}
			i += end
		}
	}
}

// keyLines maps the keys the decoder reports (md.Keys(), in document order)
// to the lines of src that define them. Keys are written by joining their
// segments with "."; an element of an array of tables is numbered, so the
// second [[runs]] table's method is "runs.1.method". A key without its own
// definition (inside an inline table) gets the line of its nearest ancestor.
func keyLines(src string, md toml.MetaData) map[string]int {
	defs := scanKeyDefs(src)
	lines := map[string]int{}
	arrayIndex := map[string]int{} // array-of-tables path -> current element
	next := 0
	for _, k := range md.Keys() {
		name := numberedKey(k, arrayIndex)
		if md.Type(k...) == "ArrayHash" {
			arrayIndex[strings.Join(k, ".")]++
			name = numberedKey(k, arrayIndex)
		}
		for j := next; j < len(defs); j++ {
			if slices.Equal(defs[j].path, []string(k)) {
				lines[name] = defs[j].line
				next = j + 1
				break
			}
		}
		if _, found := lines[name]; !found {
			lines[name] = lineOf(lines, name)
		}
		if plain := strings.Join(k, "."); plain != name && lines[plain] == 0 {
			lines[plain] = lines[name] // "runs" is where the first [[runs]] is
		}
	}
	return lines
}

// numberedKey joins k's segments, inserting the current element number
// (0-based) after each array-of-tables segment.
func numberedKey(k toml.Key, arrayIndex map[string]int) string {
	var b strings.Builder
	for i, seg := range k {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(seg)
		if n, ok := arrayIndex[strings.Join(k[:i+1], ".")]; ok && i < len(k)-1 {
			b.WriteString("." + strconv.Itoa(n-1))
		}
	}
	if n, ok := arrayIndex[strings.Join(k, ".")]; ok {
		b.WriteString("." + strconv.Itoa(n-1))
	}
	return b.String()
}

// lineOf returns the line of key, or of its nearest ancestor that has one,
// or 0.
func lineOf(lines map[string]int, key string) int {
	for {
		if n, ok := lines[key]; ok && n > 0 {
			return n
		}
		dot := strings.LastIndexByte(key, '.')
		if dot < 0 {
			return 0
		}
		key = key[:dot]
	}
}
