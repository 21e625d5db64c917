package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/salr-go/salr/cmd/internal/cli"
	"github.com/salr-go/salr/datasets/assets"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConfigErrors checks that bad configs fail before anything is written,
// with the file, line and key in the message.
func TestConfigErrors(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	cases := []struct{ name, text, want string }{
		{"malformed", "method = \"salr\"\n[train\nlr = 1\n", "syntax error"},
		{"unknown key", "method = \"salr\"\n[train]\nlearning_rate = 1e-4\n", "bad.toml:3: train.learning_rate: unknown key"},
		{"wrong type", "[train]\nmax_steps = \"many\"\n", "bad.toml:2: train.max_steps"},
		{"out of range", "[sparsity]\nratio = 1.5\n", "bad.toml:2: sparsity.ratio"},
	}
	for _, c := range cases {
		o := options{ConfigFlags: cli.ConfigFlags{Path: writeConfig(t, c.text+"[output]\ndir = \""+out+"\"\n")}, quiet: true}
		err := run(context.Background(), o, nil, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.name, err, c.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%s: a run directory was created", c.name)
		}
	}
}

// TestParseArgs checks the usage errors and the help text.
func TestParseArgs(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-config", "quickstart.toml", "extra", "-set", "output.dir=/tmp/x"}, `unexpected argument "extra" (flags after it are not read)`},
		{[]string{"-resume", "runs/r", "-set", "train.lr=0.5"}, "-set and -overwrite cannot be used with -resume: a run's config cannot change on resume"},
		{[]string{"-resume", "runs/r", "-overwrite"}, "-set and -overwrite cannot be used with -resume"},
		{[]string{"-resume", "runs/r", "-print-config"}, "-print-config needs -config"},
	} {
		if _, err := parseArgs(c.args, io.Discard); !cli.IsUsage(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want a usage error with %q", c.args, err, c.want)
		}
	}
	if o, err := parseArgs([]string{"-resume", "runs/r", "-quiet"}, io.Discard); err != nil || o.resume != "runs/r" || !o.quiet {
		t.Errorf("-resume -quiet: %+v, %v", o, err)
	}
	var help bytes.Buffer
	if _, err := parseArgs([]string{"-h"}, &help); err != flag.ErrHelp {
		t.Fatalf("-h: %v", err)
	}
	h := help.String()
	if !strings.HasPrefix(h, "usage: salr-train -config NAME|FILE ") || !strings.Contains(h, "\n       salr-train -resume RUN_DIR") ||
		!strings.Contains(h, "(required unless -resume)") || !strings.Contains(h, "quickstart.toml") || !strings.Contains(h, "-cpuprofile file") {
		t.Errorf("-h:\n%s", h)
	}
}

func TestPrintConfig(t *testing.T) {
	t.Setenv("SALR_ASSETS", "/assets")
	var out bytes.Buffer
	o := options{ConfigFlags: cli.ConfigFlags{Path: "quickstart.toml", Sets: cli.StringList{"train.lr=1e-4"}, Print: true}}
	if err := run(context.Background(), o, nil, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"lr = 0.0001", `path = "/assets/stories260K/stories260K.bin"`, `method = "salr"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("-print-config output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestCPUProfile: -cpuprofile writes its file whole, beside the run.
func TestCPUProfile(t *testing.T) {
	assets.ForTest(t)
	dir := t.TempDir()
	o := options{ConfigFlags: cli.ConfigFlags{Path: "quickstart.toml", Sets: cli.StringList{"output.dir=" + filepath.Join(dir, "run"), "train.max_steps=0", "data.seq_len=160", "data.max_examples=16", "data.eval_examples=2"}}, quiet: true, cpuProfile: filepath.Join(dir, "cpu.pprof")}
	if err := run(context.Background(), o, nil, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(o.cpuProfile); err != nil || info.Size() == 0 {
		t.Fatalf("profile: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("%d entries beside the profile and the run, want none", len(entries)-2)
	}
}

// TestPrintConfigWithoutVariables prints a preset whose variables are not
// set: they show as written. An old spelling is read with a note.
func TestPrintConfigWithoutVariables(t *testing.T) {
	for _, name := range []string{"SALR_MODEL", "SALR_ASSETS", "SALR_METAMATHQA"} {
		t.Setenv(name, "")
		os.Unsetenv(name)
	}
	var out, errs bytes.Buffer
	o := options{ConfigFlags: cli.ConfigFlags{Path: "gsm8k.toml", Sets: cli.StringList{"output.base_format=dense-f32"}, Print: true}}
	if err := run(context.Background(), o, nil, &out, &errs); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`path = "${SALR_MODEL}"`, `train_path = "${SALR_METAMATHQA}/MetaMathQA-395K.json"`, `base_format = "dense-fp32"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("-print-config output lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(errs.String(), `note: -set output.base_format=dense-f32: output.base_format: "dense-f32" is the old spelling of "dense-fp32"`) {
		t.Errorf("no note on the old spelling: %q", errs.String())
	}
}

// TestSummaryLineWithoutHeldOutSet: a run with data.eval_examples = 0 says
// it had no held-out set instead of printing a held-out loss of 0.
func TestSummaryLineWithoutHeldOutSet(t *testing.T) {
	assets.ForTest(t)
	dir := t.TempDir()
	var out bytes.Buffer
	o := options{ConfigFlags: cli.ConfigFlags{Path: "quickstart.toml", Sets: cli.StringList{"output.dir=" + filepath.Join(dir, "run"), "train.max_steps=2", "data.seq_len=160", "data.max_examples=16", "data.eval_examples=0"}}, quiet: true}
	if err := run(context.Background(), o, nil, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.HasPrefix(got, "no held-out set, final training loss ") || strings.Contains(got, "held-out loss") {
		t.Errorf("summary line %q", got)
	}
}
