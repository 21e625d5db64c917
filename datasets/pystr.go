package datasets

import (
	"strings"
	"unicode"
)

// pyIsSpace reports whether r is whitespace for Python's str.isspace, which
// str.strip() and str.rstrip() use without arguments. It is Go's
// unicode.IsSpace plus the four ASCII information separators U+001C..U+001F
// (Python counts characters of bidirectional class B and S as whitespace).
func pyIsSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// pyStrip is Python's s.strip().
func pyStrip(s string) string { return strings.TrimFunc(s, pyIsSpace) }

// pyRStrip is Python's s.rstrip().
func pyRStrip(s string) string { return strings.TrimRightFunc(s, pyIsSpace) }
