package trainer

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStatusLinesWithoutTerminal: without a bar, Log gets a status line per
// interval (here every step).
func TestStatusLinesWithoutTerminal(t *testing.T) {
	var log bytes.Buffer
	cfg := tinyConfig(t, filepath.Join(t.TempDir(), "run"), "train.max_steps=3")
	if _, err := Train(context.Background(), Options{Config: cfg, Log: &log, StatusEvery: time.Nanosecond}); err != nil {
		t.Fatal(err)
	}
	for step := 1; step <= 3; step++ {
		if want := fmt.Sprintf("step %d/3: loss ", step); !strings.Contains(log.String(), want) {
			t.Errorf("no line %q in:\n%s", want, log.String())
		}
	}
	if !strings.Contains(log.String(), "tokens/s, about ") {
		t.Errorf("status lines lack rate and time left:\n%s", log.String())
	}
}

// TestProgressBarEndsFullAndLogLinesStartALine: the bar's last state is
// 3/3, and the evaluation lines written while it is shown start at the left
// margin.
func TestProgressBarEndsFullAndLogLinesStartALine(t *testing.T) {
	var out bytes.Buffer
	cfg := tinyConfig(t, filepath.Join(t.TempDir(), "run"), "train.max_steps=3", "train.eval_every=2")
	if _, err := Train(context.Background(), Options{Config: cfg, Log: &out, Progress: &out}); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if !strings.Contains(s, "100%") || !strings.Contains(s, "(3/3") {
		t.Errorf("the bar does not end at 3/3:\n%q", s)
	}
	for _, line := range []string{"step 2: held-out loss", "step 3: held-out loss", "finished:"} {
		i := strings.Index(s, line)
		if i <= 0 || (s[i-1] != '\n' && s[i-1] != '\r') {
			t.Errorf("%q does not start a line:\n%q", line, s)
		}
	}
}

// TestStatusLinesToANonTerminalFile: a Progress file that is not a terminal
// gets status lines, not a bar.
func TestStatusLinesToANonTerminalFile(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg := tinyConfig(t, filepath.Join(t.TempDir(), "run"), "train.max_steps=2")
	if _, err := Train(context.Background(), Options{Config: cfg, Progress: f, StatusEvery: time.Nanosecond}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(f.Name())
	if !strings.Contains(string(b), "step 2/2: loss ") || strings.Contains(string(b), "\r") {
		t.Errorf("the file holds:\n%q", b)
	}
}
