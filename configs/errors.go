package configs

import (
	"strings"
)

// FieldError is one problem with a config: where the offending value came
// from, the key, and what is wrong. Its text reads
// "gsm8k.toml:12: train.lr: must be > 0" or
// "-set train.lr=0: train.lr: must be > 0".
type FieldError struct {
	// Origin is "file:line" (or "file:line:col" for syntax errors), the
	// "-set KEY=VALUE" flag that set the value, or empty when unknown.
	Origin string
	// Key is the dotted key, e.g. "train.lr"; empty for syntax errors.
	Key string
	// Msg says what is wrong.
	Msg string
}

// Error formats the error as "origin: key: msg", leaving out empty parts.
func (e *FieldError) Error() string {
	parts := make([]string, 0, 3)
	for _, p := range []string{e.Origin, e.Key, e.Msg} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, ": ")
}

// Errors is every problem found in one config, one per line of its text.
// Load and Validate return it so that a user fixes all problems in one pass.
type Errors []*FieldError

// Error joins the errors, one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes the individual errors to errors.As and errors.Is.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// errOrNil returns nil for an empty list, so callers can write
// "return errs.errOrNil()" without a typed-nil interface.
func (es Errors) errOrNil() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// add appends a FieldError.
func (es *Errors) add(origin, key, msg string) {
	*es = append(*es, &FieldError{Origin: origin, Key: key, Msg: msg})
}
