package model

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// BenchmarkGraphStepBench60M times one forward+backward of the training graph
// at the bench-60M shape (batch 4, sequence 256, random weights), with the
// RMSNorm weights trainable so that the backward pass runs through every
// layer; the base projections are frozen.
//
//	go test ./model -run '^$' -bench GraphStep -benchtime 5x
func BenchmarkGraphStepBench60M(b *testing.B) {
	ck, err := RandomCheckpoint(Bench60M(), 1)
	if err != nil {
		b.Fatal(err)
	}
	p, err := NewParams(ck)
	if err != nil {
		b.Fatal(err)
	}
	const batch, seq = 4, 256
	g, err := BuildGraph(p, GraphOptions[float32]{Batch: batch, Seq: seq,
		Trainable: func(name string) bool { return strings.HasSuffix(name, "norm.weight") }})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	ids, targets, mask := make([]int, batch*seq), make([]int, batch*seq), make([]float32, batch*seq)
	for i := range ids {
		ids[i], targets[i], mask[i] = rng.IntN(32000), rng.IntN(32000), 1
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := g.Step(ids, targets, mask); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(batch*seq*b.N)/b.Elapsed().Seconds(), "tokens/s")
}
