package trainer

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/salr-go/salr/adapters"
	"github.com/salr-go/salr/kernels"
)

// TestTrainPrecisionBF16 trains the quickstart briefly in fp32 and in bf16
// (a dense fp32 base, so its weights are multiplied as a bf16 copy): the
// bf16 run says so in summary.json, holds the copies in its memory plan,
// trains different adapters (the products do round) and ends at nearly the
// same held-out loss.
func TestTrainPrecisionBF16(t *testing.T) {
	root := t.TempDir()
	sums := map[string]*Summary{}
	for _, p := range []string{"fp32", "bf16"} {
		dir := filepath.Join(root, p)
		var log bytes.Buffer
		sum, err := Train(context.Background(), Options{Config: tinyConfig(t, dir,
			"train.max_steps=4", "output.base_format=dense-fp32", "train.precision="+p), Log: &log})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"fp32": "precision: fp32\n", "bf16": "precision: bf16 (bf16 products: " + kernels.BF16GemmPath() + ")\n"}[p]
		if !strings.Contains(log.String(), want) {
			t.Errorf("run log lacks %q:\n%s", want, log.String())
		}
		sums[p] = sum
		b, err := os.ReadFile(filepath.Join(dir, SummaryFile))
		if err != nil {
			t.Fatal(err)
		}
		var fields map[string]any
		if err := json.Unmarshal(b, &fields); err != nil {
			t.Fatal(err)
		}
		if fields["precision"] != p {
			t.Errorf("summary.json says precision %v, want %s", fields["precision"], p)
		}
	}
	f32, b16 := sums["fp32"], sums["bf16"]
	if f32.Precision != "fp32" || b16.Precision != "bf16" {
		t.Errorf("summaries say %q and %q", f32.Precision, b16.Precision)
	}
	if d := b16.Memory.Plan.Frozen - f32.Memory.Plan.Frozen; d <= 0 {
		t.Errorf("the bf16 plan holds %d more frozen bytes, want the bf16 copies of the dense weights", d)
	}
	x, err1 := os.ReadFile(filepath.Join(root, "fp32", AdapterDir, adapters.NativeFile))
	y, err2 := os.ReadFile(filepath.Join(root, "bf16", AdapterDir, adapters.NativeFile))
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if bytes.Equal(x, y) {
		t.Error("bf16 trained the same adapters as fp32: nothing was rounded")
	}
	if f32.InitialEvalLoss != b16.InitialEvalLoss {
		t.Errorf("held-out loss before training %v (fp32) and %v (bf16): evaluation runs in fp32", f32.InitialEvalLoss, b16.InitialEvalLoss)
	}
	if rel := math.Abs(b16.EvalLoss-f32.EvalLoss) / f32.EvalLoss; rel > 0.01 {
		t.Errorf("held-out loss %v (bf16) vs %v (fp32): %.2g relative", b16.EvalLoss, f32.EvalLoss, rel)
	}
}
