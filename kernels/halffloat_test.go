package kernels

import (
	"math"
	"testing"
)

// TestF16RoundTripAllValues widens every binary16 bit pattern and narrows it
// back: the round trip must be the identity on every non-NaN value.
func TestF16RoundTripAllValues(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := F16ToFloat32(uint16(h))
		if math.IsNaN(float64(f)) {
			if !math.IsNaN(float64(F16ToFloat32(Float32ToF16(f)))) {
				t.Fatalf("NaN %#04x did not stay NaN", h)
			}
			continue
		}
		if got := Float32ToF16(f); got != uint16(h) {
			t.Fatalf("F16 %#04x -> %v -> %#04x", h, f, got)
		}
	}
}

func TestF16KnownValues(t *testing.T) {
	cases := []struct {
		h uint16
		f float32
	}{
		{0x3c00, 1}, {0xc000, -2}, {0x7bff, 65504}, {0x0001, 5.960464477539063e-08},
		{0x0400, 6.103515625e-05}, {0x3555, 0.333251953125}, {0x7c00, float32(math.Inf(1))},
	}
	for _, c := range cases {
		if got := F16ToFloat32(c.h); got != c.f {
			t.Errorf("F16ToFloat32(%#04x) = %v, want %v", c.h, got, c.f)
		}
		if got := Float32ToF16(c.f); got != c.h {
			t.Errorf("Float32ToF16(%v) = %#04x, want %#04x", c.f, got, c.h)
		}
	}
	// Ties to even: 1 + 2^-11 lies halfway between 1 and 1 + 2^-10.
	if got := Float32ToF16(1 + 1.0/2048); got != 0x3c00 {
		t.Errorf("tie rounding: got %#04x, want 0x3c00", got)
	}
	if got := Float32ToF16(70000); got != 0x7c00 {
		t.Errorf("overflow: got %#04x, want +Inf", got)
	}
}

func TestBF16RoundTripAndRounding(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := BF16ToFloat32(uint16(h))
		if math.IsNaN(float64(f)) {
			continue
		}
		if got := Float32ToBF16(f); got != uint16(h) {
			t.Fatalf("BF16 %#04x -> %v -> %#04x", h, f, got)
		}
	}
	// 1 + 2^-8 is halfway between 1 (0x3f80) and 1 + 2^-7 (0x3f81): ties to even.
	if got := Float32ToBF16(1 + 1.0/256); got != 0x3f80 {
		t.Errorf("tie to even: got %#04x", got)
	}
	if got := Float32ToBF16(1 + 3.0/512); got != 0x3f81 {
		t.Errorf("round up: got %#04x", got)
	}
	if !math.IsNaN(float64(BF16ToFloat32(Float32ToBF16(float32(math.NaN()))))) {
		t.Error("NaN lost")
	}
}
