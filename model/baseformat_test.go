package model

import (
	"slices"
	"strings"
	"testing"

	"github.com/salr-go/salr/kernels/bitmap"
	"github.com/salr-go/salr/model/safetensors"
)

// TestBaseFormats: every spelling, canonical or alias, builds the right
// storage, which BaseFormatName names canonically; unknown names are errors
// listing the canonical ones.
func TestBaseFormats(t *testing.T) {
	w := []float32{0, 1.001, -2, 0, 0, 3.3e-3, 0, 0, 5}
	cases := []struct {
		format string
		want   BaseFormat
		values []float32
		dtype  safetensors.DType
	}{
		{"dense-fp32", BaseDenseFP32, w, safetensors.F32},
		{"dense-f32", BaseDenseFP32, w, safetensors.F32},
		{"dense-bf16", BaseDenseBF16, roundTo(w, safetensors.BF16), safetensors.BF16},
		{"bitmap-bf16", BaseBitmapBF16, roundTo(w, safetensors.BF16), safetensors.BF16},
		{"bitmap-fp16", BaseBitmapFP16, roundTo(w, safetensors.F16), safetensors.F16},
		{"bitmap-f16", BaseBitmapFP16, roundTo(w, safetensors.F16), safetensors.F16},
		{"bitmap-fp32", BaseBitmapFP32, w, safetensors.F32},
		{"bitmap-f32", BaseBitmapFP32, w, safetensors.F32},
	}
	for _, c := range cases {
		f, err := ParseBaseFormat(c.format)
		if err != nil || f != c.want {
			t.Fatalf("ParseBaseFormat(%q) = %q, %v; want %q", c.format, f, err, c.want)
		}
		m, err := NewBaseMatrix(slices.Clone(w), 3, 3, BaseFormat(c.format))
		if err != nil {
			t.Fatalf("%s: %v", c.format, err)
		}
		if got := BaseFormatName(m); got != string(c.want) {
			t.Errorf("%s: stored as %s", c.format, got)
		}
		if got := DecodeBase(m); !slices.Equal(got, c.values) {
			t.Errorf("%s: holds %v, want %v", c.format, got, c.values)
		}
		_, isBitmap := m.(*bitmap.Matrix)
		if _, ok := BaseFormat(c.format).BitmapDType(); ok != isBitmap {
			t.Errorf("%s: BitmapDType says bitmap %v, stored as %T", c.format, ok, m)
		}
		if got := BaseFormat(c.format).DType(); got != c.dtype {
			t.Errorf("%s: DType %s, want %s", c.format, got, c.dtype)
		}
	}
	for _, bad := range []string{"bitmap-int8", "dense-f16", "", "Dense-FP32"} {
		_, err := ParseBaseFormat(bad)
		if err == nil || !strings.Contains(err.Error(), `"`+bad+`"`) || !strings.Contains(err.Error(), "dense-fp32, dense-bf16, bitmap-bf16, bitmap-fp16, bitmap-fp32") {
			t.Errorf("ParseBaseFormat(%q): %v", bad, err)
		}
		if _, err := NewBaseMatrix(w, 3, 3, BaseFormat(bad)); err == nil {
			t.Errorf("NewBaseMatrix accepted %q", bad)
		}
	}
	list, err := ParseBaseFormats("dense-f32, bitmap-bf16,bitmap-f16")
	if err != nil || !slices.Equal(list, []BaseFormat{BaseDenseFP32, BaseBitmapBF16, BaseBitmapFP16}) {
		t.Errorf("ParseBaseFormats: %v, %v", list, err)
	}
	if _, err := ParseBaseFormats("dense-fp32, bitmap-bf16,nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("ParseBaseFormats: %v", err)
	}
}
