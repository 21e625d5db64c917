package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/salr-go/salr/cmd/internal/cli"
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
		o := options{config: writeConfig(t, c.text+"[output]\ndir = \""+out+"\"\n"), quiet: true}
		err := run(context.Background(), o, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.name, err, c.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%s: a run directory was created", c.name)
		}
	}
}

// TestExitCodes runs the binary's main in a child process.
func TestExitCodes(t *testing.T) {
	if os.Getenv("SALR_TRAIN_CHILD") == "1" {
		os.Args = append([]string{"salr-train"}, strings.Fields(os.Getenv("SALR_TRAIN_MAIN"))...)
		main()
		return
	}
	bad := writeConfig(t, "[train]\nlr = -1\n")
	for args, want := range map[string]int{
		"-config " + bad:                    1,
		"-nosuchflag":                       2,
		"":                                  2,
		"-config quickstart.toml -resume x": 2,
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestExitCodes$")
		cmd.Env = append(os.Environ(), "SALR_TRAIN_CHILD=1", "SALR_TRAIN_MAIN="+args)
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != want {
			t.Errorf("salr-train %s: exit %d, want %d", args, code, want)
		}
	}
}

func TestPrintConfig(t *testing.T) {
	t.Setenv("SALR_ASSETS", "/assets")
	var out bytes.Buffer
	o := options{config: "quickstart.toml", sets: cli.StringList{"train.lr=1e-4"}, printConfig: true}
	if err := run(context.Background(), o, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"lr = 0.0001", `path = "/assets/stories260K/stories260K.bin"`, `method = "salr"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("-print-config output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestPrintConfigWithoutVariables prints a preset whose variables are not
// set: they show as written. An old spelling is read with a note.
func TestPrintConfigWithoutVariables(t *testing.T) {
	for _, name := range []string{"SALR_MODEL", "SALR_ASSETS"} {
		t.Setenv(name, "")
		os.Unsetenv(name)
	}
	var out, errs bytes.Buffer
	o := options{config: "gsm8k.toml", sets: cli.StringList{"output.base_format=dense-f32"}, printConfig: true}
	if err := run(context.Background(), o, &out, &errs); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`path = "${SALR_MODEL}"`, `train_path = "${SALR_ASSETS}/gsm8k/train.jsonl"`, `base_format = "dense-fp32"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("-print-config output lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(errs.String(), `note: -set output.base_format=dense-f32: output.base_format: "dense-f32" is the old spelling of "dense-fp32"`) {
		t.Errorf("no note on the old spelling: %q", errs.String())
	}
}
