// Package cli holds what the salr-* commands share on their command line:
// the repeatable string flag, the usage error and the exit statuses.
package cli

import (
	"errors"
	"strings"
)

// Exit statuses of the salr-* commands besides 0 (success) and 1 (failure).
const (
	// ExitUsage is the status of bad command-line usage (as package flag uses).
	ExitUsage = 2
	// ExitInterrupted is the status of a run stopped by SIGINT or SIGTERM
	// after saving its state (128 + SIGINT, as shells report).
	ExitInterrupted = 130
)

// StringList is a repeatable string flag (for example -set KEY=VALUE).
type StringList []string

// String joins the values with commas.
func (l *StringList) String() string { return strings.Join(*l, ",") }

// Set appends one value.
func (l *StringList) Set(v string) error { *l = append(*l, v); return nil }

// UsageError is bad command-line usage; commands exit with ExitUsage on it.
type UsageError string

func (e UsageError) Error() string { return string(e) }

// IsUsage reports whether err is, or wraps, a UsageError.
func IsUsage(err error) bool {
	var ue UsageError
	return errors.As(err, &ue)
}
