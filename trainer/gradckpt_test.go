package trainer

import (
	"context"
	"path/filepath"
	"testing"
)

// TestGradientCheckpointingKeepsResults trains the quickstart (LoRA dropout,
// gradient accumulation) with and without train.gradient_checkpointing: the
// adapter files are byte-identical and so are the held-out losses.
func TestGradientCheckpointingKeepsResults(t *testing.T) {
	root := t.TempDir()
	sets := []string{"train.max_steps=4", "adapters.lora_dropout=0.1", "train.grad_accum=2"}
	var sums [2]*Summary
	for i, on := range []string{"false", "true"} {
		dir := filepath.Join(root, on)
		sum, err := Train(context.Background(), Options{Config: tinyConfig(t, dir, append(sets, "train.gradient_checkpointing="+on)...)})
		if err != nil {
			t.Fatal(err)
		}
		sums[i] = sum
	}
	sameAdapters(t, filepath.Join(root, "false"), filepath.Join(root, "true"))
	if a, b := sums[0], sums[1]; a.InitialEvalLoss != b.InitialEvalLoss || a.EvalLoss != b.EvalLoss {
		t.Errorf("held-out loss %v -> %v with checkpointing, %v -> %v without", b.InitialEvalLoss, b.EvalLoss, a.InitialEvalLoss, a.EvalLoss)
	}
}
