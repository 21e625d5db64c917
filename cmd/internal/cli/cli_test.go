package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"testing"
)

func TestStringListRepeats(t *testing.T) {
	var sets StringList
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(&sets, "set", "")
	if err := fs.Parse([]string{"-set", "a=1", "-set", "b=2,3"}); err != nil {
		t.Fatal(err)
	}
	if len(sets) != 2 || sets[0] != "a=1" || sets[1] != "b=2,3" {
		t.Fatalf("sets = %q, want [a=1 b=2,3]", sets)
	}
}

func TestIsUsage(t *testing.T) {
	if !IsUsage(fmt.Errorf("parsing: %w", UsageError("-x is required"))) {
		t.Error("a wrapped UsageError is not recognised")
	}
	if IsUsage(errors.New("disk full")) || IsUsage(nil) {
		t.Error("an ordinary error or nil counted as a usage error")
	}
}
