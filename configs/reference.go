package configs

import (
	"fmt"
	"strings"
)

// Reference renders the Markdown reference of every key: one table row with
// the key, its TOML type, its default (as Default returns it), the allowed
// values (from the same rules Validate applies) and the description (the
// field's doc comment). The README's config reference is this text.
func Reference() string { return renderReference(fieldDocs) }

// renderReference renders the reference with the given key descriptions.
func renderReference(docs map[string]string) string {
	var b strings.Builder
	b.WriteString("| key | type | default | allowed | description |\n")
	b.WriteString("| --- | --- | --- | --- | --- |\n")
	def := Default()
	for _, f := range loadSchema().fields {
		value, err := encodeValue(f.value(&def))
		if err != nil {
			panic("configs: default of " + f.key + ": " + err.Error())
		}
		fmt.Fprintf(&b, "| `%s` | %s | `%s` | %s | %s |\n",
			f.key, f.typeName(), markdownCell(value), markdownCell(rules[f.key].allowed), markdownCell(docs[f.key]))
	}
	return b.String()
}

// markdownCell escapes the characters that would end a table cell.
func markdownCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}
