package adapters

import (
	"math"
	"slices"
	"strings"
	"testing"
)

// moments returns the mean and variance of x.
func moments(x []float32) (mean, variance float64) {
	for _, v := range x {
		mean += float64(v)
	}
	mean /= float64(len(x))
	for _, v := range x {
		variance += (float64(v) - mean) * (float64(v) - mean)
	}
	return mean, variance / float64(len(x))
}

func TestLoRAKaimingUniformInit(t *testing.T) {
	const out, in, r = 64, 256, 16
	l, err := NewLoRA(out, in, LoRAConfig{Rank: r, Alpha: 32}, 1)
	if err != nil {
		t.Fatal(err)
	}
	bound := 1 / math.Sqrt(in)
	for i, v := range l.A {
		if math.Abs(float64(v)) > bound {
			t.Fatalf("A[%d] = %g outside ±1/√in = %g", i, v, bound)
		}
	}
	mean, variance := moments(l.A)
	if math.Abs(mean) > 0.05*bound || math.Abs(variance/(bound*bound/3)-1) > 0.06 {
		t.Fatalf("A mean %g variance %g; U(±%g) has mean 0, variance %g", mean, variance, bound, bound*bound/3)
	}
	for _, v := range l.B {
		if v != 0 {
			t.Fatal("B must start at zero")
		}
	}
	if l.Scale != 2 || l.Kind != KindLoRA || !l.Trainable || len(l.B) != out*r || l.Validate() != nil {
		t.Fatalf("adapter %+v", l)
	}
}

func TestLoRAGaussianInitIsPEFTs(t *testing.T) {
	const r = 8
	l, err := NewLoRA(16, 512, LoRAConfig{Rank: r, Alpha: 8, Init: Gaussian}, 2)
	if err != nil {
		t.Fatal(err)
	}
	// PEFT: nn.init.normal_(lora_A.weight, std=1/r).
	_, variance := moments(l.A)
	if std := math.Sqrt(variance); math.Abs(std*r-1) > 0.05 {
		t.Fatalf("A std %g, want 1/r = %g", std, 1.0/r)
	}
}

func TestLoRADeterministicAndScales(t *testing.T) {
	cfg := LoRAConfig{Rank: 4, Alpha: 16, Dropout: 0.1}
	a, _ := NewLoRA(3, 10, cfg, 7)
	b, _ := NewLoRA(3, 10, cfg, 7)
	c, _ := NewLoRA(3, 10, cfg, 8)
	if !slices.Equal(a.A, b.A) || slices.Equal(a.A, c.A) {
		t.Fatal("A must depend on the seed only")
	}
	if a.Scale != 4 || a.Dropout != 0.1 {
		t.Fatalf("scale %g dropout %g", a.Scale, a.Dropout)
	}
	cfg.RSLoRA = true
	if s := cfg.Scale(); s != 8 {
		t.Fatalf("rsLoRA scale %g, want 16/√4 = 8", s)
	}
	if SeedFor(1, "a") == SeedFor(1, "b") || SeedFor(1, "a") == SeedFor(2, "a") || SeedFor(1, "a") != SeedFor(1, "a") {
		t.Fatal("SeedFor must separate names and run seeds, deterministically")
	}
}

func TestLoRAConfigErrors(t *testing.T) {
	cases := map[string]LoRAConfig{
		"rank 0 must be positive":     {Rank: 0, Alpha: 1},
		"alpha 0 must be positive":    {Rank: 2},
		"dropout 1 must be in [0, 1)": {Rank: 2, Alpha: 1, Dropout: 1},
		`unknown lora init "xavier"`:  {Rank: 2, Alpha: 1, Init: "xavier"},
	}
	for want, cfg := range cases {
		if _, err := NewLoRA(2, 2, cfg, 1); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: error %v, want %q", cfg, err, want)
		}
	}
	if _, err := NewLoRA(0, 2, LoRAConfig{Rank: 1, Alpha: 1}, 1); err == nil {
		t.Error("a 0×2 projection was accepted")
	}
}
