package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/salr-go/salr/model"
	"github.com/salr-go/salr/model/safetensors"
	"github.com/salr-go/salr/model/tokenizer"
)

// convertTestAssets finds the shared assets ($SALR_ASSETS relative to the
// repository root, else ../shared/assets beside it), skipping when absent.
func convertTestAssets(t *testing.T) string {
	t.Helper()
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	dir := os.Getenv("SALR_ASSETS")
	if dir == "" {
		dir = filepath.Join("..", "shared", "assets")
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(root, dir)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("assets directory %s absent", dir)
	}
	return filepath.Join(dir, "stories260K")
}

func TestParseArgs(t *testing.T) {
	got, err := parseArgs([]string{"-in", "m.bin", "-tokenizer", "t.bin", "-out", "d", "-dtype", "bf16", "-force"}, io.Discard)
	want := options{from: "llama2c", in: "m.bin", tokenizer: "t.bin", out: "d", dtype: safetensors.BF16, force: true}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("parseArgs = %+v, %v", got, err)
	}
	for _, args := range [][]string{
		{"-out", "d"},
		{"-in", "m.bin"},
		{"-in", "m.bin", "-out", "d", "-dtype", "i8"},
		{"-in", "m.bin", "-out", "d", "-from", "gguf"},
		{"-in", "m.bin", "-out", "d", "extra"},
		{"-bogus"},
	} {
		_, err := parseArgs(args, io.Discard)
		var usage usageError
		if !errors.As(err, &usage) {
			t.Errorf("%v: err = %v, want a usage error", args, err)
		}
	}
	if _, err := parseArgs([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: err = %v", err)
	}
}

func TestRunConvertsStories260K(t *testing.T) {
	assets := convertTestAssets(t)
	out := filepath.Join(t.TempDir(), "hf")
	opts := options{from: "llama2c", in: filepath.Join(assets, "stories260K.bin"), tokenizer: filepath.Join(assets, "tok512.bin"), out: out, dtype: safetensors.BF16}
	var stdout bytes.Buffer
	if err := run(opts, &stdout); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "5 layers") {
		t.Errorf("stdout %q", stdout.String())
	}
	for _, name := range []string{"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Errorf("missing %s", name)
		}
	}
	ck, err := model.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if c := ck.Config; c.Vocab != 512 || c.TorchDtype != "bfloat16" || c.BOSTokenID != 1 || !reflect.DeepEqual(c.EOSTokenIDs, []int{2}) {
		t.Errorf("config %+v", c)
	}
	tok, err := tokenizer.Load(out)
	if err != nil {
		t.Fatalf("converted tokenizer does not load: %v", err)
	}
	if ids, err := tok.Encode("Once upon a time"); err != nil || !reflect.DeepEqual(ids, []int{403, 407, 261, 378}) {
		t.Errorf("converted tokenizer encodes %v, %v", ids, err)
	}
	// A second conversion into the same directory needs -force.
	if err := run(opts, io.Discard); err == nil || !strings.Contains(err.Error(), "force") {
		t.Errorf("second run: err = %v", err)
	}
	opts.force = true
	if err := run(opts, io.Discard); err != nil {
		t.Errorf("forced run: %v", err)
	}
}

func TestRunRejectsMismatchedTokenizer(t *testing.T) {
	assets := convertTestAssets(t)
	// A vocabulary of 3 tokens cannot belong to a 512-token model.
	tok := filepath.Join(t.TempDir(), "tok3.bin")
	var buf bytes.Buffer
	buf.Write([]byte{5, 0, 0, 0})
	for _, piece := range []string{"<unk>", "\n<s>\n", "\n</s>\n"} {
		buf.Write([]byte{0, 0, 0, 0})
		buf.Write([]byte{byte(len(piece)), 0, 0, 0})
		buf.WriteString(piece)
	}
	os.WriteFile(tok, buf.Bytes(), 0o644)
	opts := options{from: "llama2c", in: filepath.Join(assets, "stories260K.bin"), tokenizer: tok, out: t.TempDir(), dtype: safetensors.F32}
	err := run(opts, io.Discard)
	if err == nil {
		t.Fatal("accepted a 3-token tokenizer for a 512-token model")
	}
	if entries, _ := os.ReadDir(opts.out); len(entries) != 0 {
		t.Errorf("failed run wrote %d files", len(entries))
	}
}

// TestMainExitCodes runs the real main in a child process (this test binary,
// built by the same Go toolchain, so start-up panics would show here too).
func TestMainExitCodes(t *testing.T) {
	if os.Getenv("SALR_CONVERT_RUN_MAIN") == "1" {
		os.Args = append([]string{"salr-convert"}, strings.Fields(os.Getenv("SALR_CONVERT_ARGS"))...)
		main()
		os.Exit(0)
	}
	missing := filepath.Join(t.TempDir(), "absent.bin")
	for _, c := range []struct {
		args   string
		code   int
		stderr string
	}{
		{"-h", 0, "usage: salr-convert"},
		{"-out d", 2, "salr-convert: -in is required"},
		{"-in " + missing + " -out " + t.TempDir(), 1, "salr-convert: "},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMainExitCodes$")
		cmd.Env = append(os.Environ(), "SALR_CONVERT_RUN_MAIN=1", "SALR_CONVERT_ARGS="+c.args)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := 0
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			code = exitErr.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != c.code || !strings.Contains(stderr.String(), c.stderr) {
			t.Errorf("salr-convert %s: exit %d, stderr %q; want exit %d and %q", c.args, code, stderr.String(), c.code, c.stderr)
		}
	}
}
