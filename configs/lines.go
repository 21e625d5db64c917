package configs

import (
	"strings"
)

// KeyDef is one key definition found in a TOML text: a table header
// ("[train]", "[[runs]]") or a "key = value" line. Path is the full key it
// defines (the enclosing table's path plus the line's own dotted key), of
// which the first Table segments come from the enclosing table header.
type KeyDef struct {
	Path  []string
	Table int
	Line  int
}

// KeyDefs lists the key definitions of a TOML document in document order.
// The TOML decoder keeps key positions private, so errors about unknown keys,
// wrong types and bad values find their line here. The scanner only needs to
// be right for documents that already parsed: it follows table headers,
// dotted and quoted keys, strings (so '#', '[' and '=' inside them are
// ignored) and values spanning lines (multi-line strings and arrays). Keys
// inside inline tables are not listed; LineOf falls back to the enclosing
// key, which is on the same line.
func KeyDefs(src string) []KeyDef {
	var defs []KeyDef
	sc := lineScanner{}
	var table []string
	for i, line := range strings.Split(strings.TrimPrefix(src, "\ufeff"), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if sc.inValue() {
			sc.scanValue(line)
			continue
		}
		rest := strings.TrimLeft(line, " \t")
		switch {
		case rest == "" || rest[0] == '#':
			continue
		case rest[0] == '[':
			rest = strings.TrimPrefix(strings.TrimPrefix(rest, "["), "[")
			if key, _, ok := parseKey(rest); ok {
				table = key
				defs = append(defs, KeyDef{Path: key, Line: i + 1})
			}
		default:
			key, after, ok := parseKey(rest)
			if !ok || !strings.HasPrefix(after, "=") {
				continue
			}
			full := append(append([]string(nil), table...), key...)
			defs = append(defs, KeyDef{Path: full, Table: len(table), Line: i + 1})
			sc.scanValue(after[1:])
		}
	}
	return defs
}

// keyLines maps every dotted key defined in a TOML document to the 1-based
// line that defines it: "[train]" then "lr = 1" gives "train" -> 1 and
// "train.lr" -> 2; a.b.c = 1 also defines a.b.
func keyLines(src string) map[string]int {
	lines := map[string]int{}
	for _, d := range KeyDefs(src) {
		for n := d.Table + 1; n <= len(d.Path); n++ {
			k := strings.Join(d.Path[:n], ".")
			if _, seen := lines[k]; !seen {
				lines[k] = d.Line
			}
		}
	}
	return lines
}

// LineOf returns the line of key in lines, or of its nearest ancestor that
// has one, or 0.
func LineOf(lines map[string]int, key string) int {
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

// parseKey reads a possibly dotted, possibly quoted TOML key from the start
// of s and returns its segments and the rest of s after trailing blanks.
func parseKey(s string) (segments []string, rest string, ok bool) {
	for {
		s = strings.TrimLeft(s, " \t")
		var seg string
		switch {
		case strings.HasPrefix(s, `"`):
			end := closingQuote(s[1:], '"', true)
			if end < 0 {
				return nil, "", false
			}
			seg = unescapeKey(s[1 : 1+end])
			s = s[1+end+1:]
		case strings.HasPrefix(s, "'"):
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				return nil, "", false
			}
			seg = s[1 : 1+end]
			s = s[1+end+1:]
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
	return c == '_' || c == '-' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// unescapeKey undoes the two escapes that matter in quoted keys (\" and \\);
// other escapes are left as written, which only affects how an exotic
// unknown key is located.
func unescapeKey(s string) string {
	return strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(s)
}

// closingQuote returns the index in s of the first unescaped quote q, or -1.
func closingQuote(s string, q byte, escapes bool) int {
	for i := 0; i < len(s); i++ {
		switch {
		case escapes && s[i] == '\\':
			i++
		case s[i] == q:
			return i
		}
	}
	return -1
}

// lineScanner follows a TOML value across lines: open brackets/braces and an
// open multi-line string.
type lineScanner struct {
	depth     int    // open [ and { of the current value
	multiline string // `"""` or `'''` while inside a multi-line string
}

func (sc *lineScanner) inValue() bool { return sc.depth > 0 || sc.multiline != "" }

// scanValue consumes one line (or the part after '=') of a value.
func (sc *lineScanner) scanValue(s string) {
	for i := 0; i < len(s); i++ {
		if sc.multiline != "" {
			end := closingDelimiter(s[i:], sc.multiline)
			if end < 0 {
				return
			}
			i += end + len(sc.multiline) - 1
			sc.multiline = ""
			continue
		}
		switch c := s[i]; c {
		case '#':
			return
		case '"', '\'':
			delim := strings.Repeat(string(c), 3)
			if strings.HasPrefix(s[i:], delim) {
				sc.multiline = delim
				i += len(delim) - 1
				continue
			}
			end := closingQuote(s[i+1:], c, c == '"')
			if end < 0 {
				return
			}
			i += end + 1
		case '[', '{':
			sc.depth++
		case ']', '}':
			if sc.depth > 0 {
				sc.depth--
			}
		}
	}
}

// closingDelimiter finds the end of a multi-line string in s (backslash
// escapes apply to `"""` strings only), or -1.
func closingDelimiter(s, delim string) int {
	escapes := delim == `"""`
	for i := 0; i+len(delim) <= len(s); i++ {
		if escapes && s[i] == '\\' {
			i++
			continue
		}
		if strings.HasPrefix(s[i:], delim) {
			return i
		}
	}
	return -1
}
