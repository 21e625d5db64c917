package main

import (
	"bytes"
	"flag"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/salr-go/salr/cmd/internal/cli"
	"github.com/salr-go/salr/datasets/assets"
)

// storiesDir is the stories260K directory of the shared assets.
func storiesDir(t *testing.T) string { return filepath.Join(assets.ForTest(t), "stories260K") }

// TestReferenceContinuation runs the command's code path on the llama2.c
// model: greedy decoding must print the assets README's reference text.
func TestReferenceContinuation(t *testing.T) {
	dir := storiesDir(t)
	var out bytes.Buffer
	err := run(options{ModelFlags: cli.ModelFlags{Model: filepath.Join(dir, "stories260K.bin")}, prompt: "Once upon a time", maxNew: 56, topP: 1}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high\n"
	if out.String() != want {
		t.Fatalf("got  %q\nwant %q", out.String(), want)
	}
}

func TestBadInputs(t *testing.T) {
	if err := run(options{ModelFlags: cli.ModelFlags{Model: "/nonexistent/model"}, prompt: "x", maxNew: 1, topP: 1}, &bytes.Buffer{}, io.Discard); err == nil {
		t.Error("missing model accepted")
	}
	dir := storiesDir(t)
	err := run(options{ModelFlags: cli.ModelFlags{Model: filepath.Join(dir, "stories260K.bin")}, prompt: "x", maxNew: 1, temperature: 1, topP: 2}, &bytes.Buffer{}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "top-p") {
		t.Errorf("top-p 2: %v", err)
	}
	if err := run(options{ModelFlags: cli.ModelFlags{Run: t.TempDir()}, prompt: "x", maxNew: 1, topP: 1}, &bytes.Buffer{}, io.Discard); err == nil || !strings.Contains(err.Error(), "base") {
		t.Errorf("empty run directory: %v", err)
	}
}

// TestContextNote: asking for more tokens than the context holds is said on
// stderr, before generating.
func TestContextNote(t *testing.T) {
	bin := filepath.Join(storiesDir(t), "stories260K.bin")
	var out, errOut bytes.Buffer
	if err := run(options{ModelFlags: cli.ModelFlags{Model: bin}, prompt: "Once upon a time", maxNew: 56, topP: 1}, &out, &errOut); err != nil || errOut.Len() != 0 {
		t.Fatalf("56 tokens: %v, stderr %q", err, errOut.String())
	}
	if err := run(options{ModelFlags: cli.ModelFlags{Model: bin}, prompt: "Once upon a time", maxNew: 1000, topP: 1}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	want := "salr-generate: note: the prompt (5 tokens) and -max-new-tokens 1000 exceed the model's context; generation will stop at the context length (512 tokens)\n"
	if errOut.String() != want {
		t.Errorf("stderr %q, want %q", errOut.String(), want)
	}
}

func TestParseArgs(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-model", "m", "extra", "-prompt", "x"}, `unexpected argument "extra"`},
		{[]string{"-model", "m", "-max-new-tokens", "-1"}, "-max-new-tokens -1: want 0 or more"},
		{[]string{"-prompt", "x"}, "exactly one of -model and -run"},
		{[]string{"-run", "r", "-tokenizer", "t"}, "-tokenizer applies to -model only"},
		{[]string{"-model", "m", "-top-p", "x"}, `invalid value "x" for flag -top-p`},
	} {
		if _, err := parseArgs(c.args, io.Discard); !cli.IsUsage(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want a usage error with %q", c.args, err, c.want)
		}
	}
	if o, err := parseArgs([]string{"-run", "r", "-max-new-tokens", "0"}, io.Discard); err != nil || o.Run != "r" || o.maxNew != 0 || o.temperature != 0.8 {
		t.Errorf("-run r -max-new-tokens 0: %+v, %v", o, err)
	}
	var help bytes.Buffer
	if _, err := parseArgs([]string{"-h"}, &help); err != flag.ErrHelp {
		t.Fatalf("-h: %v", err)
	}
	h := help.String()
	if !strings.HasPrefix(h, "usage: salr-generate -model PATH ") || !strings.Contains(h, "\n       salr-generate -run RUN_DIR -prompt TEXT") ||
		!strings.Contains(h, "(required unless -run)") || !strings.Contains(h, "-max-new-tokens int") {
		t.Errorf("-h:\n%s", h)
	}
}
