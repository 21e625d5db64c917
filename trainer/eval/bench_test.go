package eval

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/salr-go/salr/model"
)

// BenchmarkMMLU scores 20 questions of two subjects 5-shot on stories260K
// (512-token context, so most prompts drop shots) and reports docs/s.
func BenchmarkMMLU(b *testing.B) {
	m := loadStories(b)
	opt := Options{Task: TaskMMLU, DataDir: filepath.Join(assetsDir(b), "mmlu"), Shots: 5, Limit: 10, Batch: 8,
		Subjects: []string{"high_school_biology", "philosophy"}}
	benchmarkRun(b, m, opt)
}

// BenchmarkGSM8K generates answers to 8 problems 5-shot on stories260K with
// lm-eval's 256-token budget and reports docs/s.
func BenchmarkGSM8K(b *testing.B) {
	m := loadStories(b)
	opt := Options{Task: TaskGSM8K, DataDir: filepath.Join(assetsDir(b), "gsm8k"), Shots: 5, Limit: 8, Batch: 8}
	benchmarkRun(b, m, opt)
}

// benchmarkRun runs an evaluation b.N times and reports documents per second.
func benchmarkRun(b *testing.B, m *model.Loaded, opt Options) {
	docs := 0
	for b.Loop() {
		res, err := Run(context.Background(), m, opt)
		if err != nil {
			b.Fatal(err)
		}
		docs += res.Docs
	}
	b.ReportMetric(float64(docs)/b.Elapsed().Seconds(), "docs/s")
}
