package model

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/salr-go/salr/kernels"
)

// TestGraphPrecisionBF16 builds the same graph in fp32 and bf16: the bf16
// one multiplies bf16 copies of the dense weights (CastBytes), its loss is
// close to fp32's but not equal, and a trainable base weight is refused.
func TestGraphPrecisionBF16(t *testing.T) {
	cfg := tinyQwen2Config(false)
	p, err := NewParams(tinyRandomCheckpoint(cfg, 12))
	if err != nil {
		t.Fatal(err)
	}
	const batch, seq = 2, 6
	rng := rand.New(rand.NewPCG(7, 8))
	ids, targets := make([]int, batch*seq), make([]int, batch*seq)
	mask := make([]float32, batch*seq)
	for i := range ids {
		ids[i], targets[i], mask[i] = rng.IntN(cfg.Vocab), rng.IntN(cfg.Vocab), 1
	}
	norm := func(name string) bool { return strings.HasSuffix(name, "norm.weight") }
	var losses [2]float32
	for i, prec := range []kernels.Precision{kernels.FP32, kernels.BF16} {
		g, err := BuildGraph(p, GraphOptions[float32]{Batch: batch, Seq: seq, Trainable: norm, Precision: prec})
		if err != nil {
			t.Fatal(err)
		}
		if (g.CastBytes() > 0) != (prec == kernels.BF16) {
			t.Errorf("%s: %d bytes of bf16 copies", prec, g.CastBytes())
		}
		if losses[i], err = g.Step(ids, targets, mask); err != nil {
			t.Fatal(err)
		}
		g.Close()
	}
	if losses[0] == losses[1] || math.Abs(float64(losses[1]-losses[0])) > 1e-2*math.Abs(float64(losses[0])) {
		t.Errorf("loss %v in fp32, %v in bf16: want close but not equal", losses[0], losses[1])
	}
	_, err = BuildGraph(p, GraphOptions[float32]{Batch: batch, Seq: seq, Precision: kernels.BF16,
		Trainable: func(name string) bool { return name == "model.layers.0.self_attn.q_proj.weight" }})
	if err == nil || !strings.Contains(err.Error(), "q_proj.weight is trainable, which needs precision fp32") {
		t.Errorf("a trainable weight in bf16: %v", err)
	}
}
