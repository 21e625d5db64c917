package sweep

import (
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/salr-go/salr/configs"
)

// keyLines maps the keys the decoder reports (md.Keys(), in document order)
// to the lines of src that define them. Keys are written by joining their
// segments with "."; an element of an array of tables is numbered, so the
// second [[runs]] table's method is "runs.1.method". A key without its own
// definition (inside an inline table) gets the line of its nearest ancestor.
func keyLines(src string, md toml.MetaData) map[string]int {
	defs := configs.KeyDefs(src)
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
			if slices.Equal(defs[j].Path, []string(k)) {
				lines[name] = defs[j].Line
				next = j + 1
				break
			}
		}
		if _, found := lines[name]; !found {
			lines[name] = configs.LineOf(lines, name)
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
