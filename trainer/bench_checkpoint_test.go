package trainer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/salr-go/salr/model/safetensors"
)

// TestWriteRandomCheckpointInterrupted: a cancelled write leaves neither
// the output directory nor its temporary one.
func TestWriteRandomCheckpointInterrupted(t *testing.T) {
	parent := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := WriteRandomCheckpoint(ctx, RandomCheckpointOptions{Shape: "llama-64x2", Out: filepath.Join(parent, "m"), DType: safetensors.BF16}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 0 {
		t.Errorf("%d entries left, e.g. %s", len(entries), entries[0].Name())
	}
}

// TestBytesProgressLines: without a terminal, progress is a line per
// interval, none at the end (the command prints its summary).
func TestBytesProgressLines(t *testing.T) {
	var buf bytes.Buffer
	p := newBytesProgress(&buf, "writing m")
	p.update(1e9, 4e9) // before the first interval: nothing
	p.last = p.last.Add(-progressLogEvery)
	p.start = p.last
	p.update(2e9, 4e9)
	p.last = p.last.Add(-progressLogEvery)
	p.update(4e9, 4e9)
	p.finish(true)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "writing m: 2.00 of 4.00 GB (50%), 10s, about 10s left") {
		t.Errorf("progress lines %q", lines)
	}
	var none *bytesProgress
	none.update(1, 2)
	none.finish(false)
}
