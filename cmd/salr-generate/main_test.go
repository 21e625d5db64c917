package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/salr-go/salr/datasets/assets"
)

// storiesDir is the stories260K directory of the shared assets.
func storiesDir(t *testing.T) string { return filepath.Join(assets.ForTest(t), "stories260K") }

// TestReferenceContinuation runs the command's code path on the llama2.c
// model: greedy decoding must print the assets README's reference text.
func TestReferenceContinuation(t *testing.T) {
	dir := storiesDir(t)
	var out bytes.Buffer
	err := run(options{model: filepath.Join(dir, "stories260K.bin"), prompt: "Once upon a time", maxNew: 56, topP: 1}, &out)
	if err != nil {
		t.Fatal(err)
	}
	want := "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high\n"
	if out.String() != want {
		t.Fatalf("got  %q\nwant %q", out.String(), want)
	}
}

func TestBadInputs(t *testing.T) {
	if err := run(options{model: "/nonexistent/model", prompt: "x", maxNew: 1, topP: 1}, &bytes.Buffer{}); err == nil {
		t.Error("missing model accepted")
	}
	dir := storiesDir(t)
	err := run(options{model: filepath.Join(dir, "stories260K.bin"), prompt: "x", maxNew: 1, temperature: 1, topP: 2}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "top-p") {
		t.Errorf("top-p 2: %v", err)
	}
	if err := run(options{run: t.TempDir(), prompt: "x", maxNew: 1, topP: 1}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "base") {
		t.Errorf("empty run directory: %v", err)
	}
}
