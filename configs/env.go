package configs

import (
	"fmt"
	"strings"
)

// expandEnv replaces ${NAME} and $NAME in s with the value of the environment
// variable NAME (looked up by lookup) and "$$" with a single '$'. An unset
// variable, an unterminated "${" or a '$' followed by anything else is an
// error: silently keeping a '$' would hide a mistyped path.
func expandEnv(s string, lookup func(string) (string, bool)) (string, error) {
	return substituteEnv(s, "$", func(name string) (string, error) {
		value, ok := lookup(name)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set (used in %q)", name, s)
		}
		return value, nil
	})
}

// expandSetEnv expands the variables of s that are set and keeps the others
// as ${NAME}. The result stays in the written form that expandEnv reads:
// '$' in values is doubled and "$$" is kept. Malformed references are errors
// as in expandEnv.
func expandSetEnv(s string, lookup func(string) (string, bool)) (string, error) {
	return substituteEnv(s, "$$", func(name string) (string, error) {
		if value, ok := lookup(name); ok {
			return escapeEnv(value), nil
		}
		return "${" + name + "}", nil
	})
}

// substituteEnv replaces each variable reference of s by value(NAME) and
// each "$$" by dollar.
func substituteEnv(s, dollar string, value func(name string) (string, error)) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '$' {
			b.WriteByte(s[i])
			i++
			continue
		}
		var name string
		switch rest := s[i+1:]; {
		case strings.HasPrefix(rest, "$"):
			b.WriteString(dollar)
			i += 2
			continue
		case strings.HasPrefix(rest, "{"):
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				return "", fmt.Errorf("unterminated ${ in %q", s)
			}
			name = rest[1:end]
			if !isEnvName(name) {
				return "", fmt.Errorf("bad variable name %q in %q", name, s)
			}
			i += 1 + end + 1
		default:
			n := 0
			for n < len(rest) && isEnvNameByte(rest[n], n == 0) {
				n++
			}
			if n == 0 {
				return "", fmt.Errorf("'$' not followed by a variable name in %q (write $$ for a literal '$')", s)
			}
			name = rest[:n]
			i += 1 + n
		}
		v, err := value(name)
		if err != nil {
			return "", err
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

// escapeEnv is the inverse of expandEnv for text without variables: it
// doubles every '$'.
func escapeEnv(s string) string { return strings.ReplaceAll(s, "$", "$$") }

func isEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isEnvNameByte(s[i], i == 0) {
			return false
		}
	}
	return true
}

func isEnvNameByte(c byte, first bool) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || !first && '0' <= c && c <= '9'
}
