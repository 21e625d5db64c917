package datasets

import "fmt"

// InputError reports bad user input at a position in a file: a malformed
// JSONL or CSV line, a missing field, an unknown answer letter. Line is
// 1-based (0 when the problem concerns the whole file).
type InputError struct {
	File string
	Line int
	Msg  string
}

// Error formats the error as "datasets: FILE:LINE: MSG".
func (e *InputError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("datasets: %s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("datasets: %s: %s", e.File, e.Msg)
}

// inputErrorf builds an *InputError with a formatted message.
func inputErrorf(file string, line int, format string, args ...any) *InputError {
	return &InputError{File: file, Line: line, Msg: fmt.Sprintf(format, args...)}
}
