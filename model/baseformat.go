package model

import (
	"fmt"
	"slices"
	"strings"

	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/kernels/bitmap"
	"github.com/salr-go/salr/model/safetensors"
)

// BaseFormat is how a frozen (pruned) base is stored in memory: a value of
// output.base_format.
type BaseFormat string

// The base formats, in their canonical spelling.
const (
	BaseDenseFP32  BaseFormat = "dense-fp32"  // float32, kernels.Dense (BLAS)
	BaseDenseBF16  BaseFormat = "dense-bf16"  // bf16, bitmap.DenseBF16
	BaseBitmapBF16 BaseFormat = "bitmap-bf16" // bitmap.Matrix, bf16 values
	BaseBitmapFP16 BaseFormat = "bitmap-fp16" // bitmap.Matrix, fp16 values
	BaseBitmapFP32 BaseFormat = "bitmap-fp32" // bitmap.Matrix, fp32 values
	BaseBitmapNF4  BaseFormat = "bitmap-nf4"  // bitmap.NF4 with a bitmap: the kept values in NF4
	BaseDenseNF4   BaseFormat = "dense-nf4"   // bitmap.NF4 without a bitmap: every value in NF4 (QLoRA's base)
)

// NF4DoubleQuant is whether NewBaseMatrix double-quantizes the scales of the
// NF4 formats (QLoRA's default: 8-bit scales with a second level of fp32
// scales per 256 blocks, 4.127 bits per value instead of 4.5).
const NF4DoubleQuant = true

// baseFormats lists the canonical formats, in documentation order.
var baseFormats = []BaseFormat{BaseDenseFP32, BaseDenseBF16, BaseBitmapBF16, BaseBitmapFP16, BaseBitmapFP32, BaseBitmapNF4, BaseDenseNF4}

// BaseFormatNames returns the canonical format names, in documentation order.
func BaseFormatNames() []string {
	names := make([]string, len(baseFormats))
	for i, f := range baseFormats {
		names[i] = string(f)
	}
	return names
}

// baseFormatAliases are older spellings ParseBaseFormat still accepts.
var baseFormatAliases = map[string]BaseFormat{
	"dense-f32":  BaseDenseFP32,
	"bitmap-f32": BaseBitmapFP32,
	"bitmap-f16": BaseBitmapFP16,
}

// ParseBaseFormat returns the canonical format s names (an alias such as
// dense-f32 gives dense-fp32), or an error listing the canonical names.
func ParseBaseFormat(s string) (BaseFormat, error) {
	if f := BaseFormat(s).canonical(); slices.Contains(baseFormats, f) {
		return f, nil
	}
	return "", fmt.Errorf("model: unknown base format %q (want one of %s)", s, strings.Join(BaseFormatNames(), ", "))
}

// ParseBaseFormats parses a comma-separated list of base formats.
func ParseBaseFormats(list string) ([]BaseFormat, error) {
	var out []BaseFormat
	for _, s := range strings.Split(list, ",") {
		f, err := ParseBaseFormat(strings.TrimSpace(s))
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// canonical is f in its canonical spelling (f itself when it is not an
// alias).
func (f BaseFormat) canonical() BaseFormat {
	if c, ok := baseFormatAliases[string(f)]; ok {
		return c
	}
	return f
}

// BitmapDType returns the value type of a bitmap-* format (aliases
// included) and whether f is one.
func (f BaseFormat) BitmapDType() (bitmap.DType, bool) {
	switch f.canonical() {
	case BaseBitmapBF16:
		return bitmap.BF16, true
	case BaseBitmapFP16:
		return bitmap.F16, true
	case BaseBitmapFP32:
		return bitmap.F32, true
	}
	return 0, false
}

// IsNF4 reports whether f is bitmap-nf4 or dense-nf4.
func (f BaseFormat) IsNF4() bool {
	c := f.canonical()
	return c == BaseBitmapNF4 || c == BaseDenseNF4
}

// Compressed reports whether a run directory holds f's bases in a
// compressed model directory (compressed/): the bitmap-* and *-nf4 formats.
func (f BaseFormat) Compressed() bool {
	_, ok := f.BitmapDType()
	return ok || f.IsNF4()
}

// DType is the safetensors dtype of f's values: BF16 for dense-bf16,
// bitmap-bf16 and the NF4 formats (their dense copies), F16 for
// bitmap-fp16, F32 otherwise.
func (f BaseFormat) DType() safetensors.DType {
	if f.canonical() == BaseDenseBF16 || f.IsNF4() {
		return safetensors.BF16
	}
	if dt, ok := f.BitmapDType(); ok {
		return valueDTypeOf(dt)
	}
	return safetensors.F32
}

// NewBaseMatrix stores the pruned weight kept (rows × cols, row-major
// float32, zeros at the pruned positions) in format f (aliases accepted):
// dense-fp32 wraps kept itself, dense-bf16 rounds it into a
// bitmap.DenseBF16, the bitmap-* formats encode it as a bitmap.Matrix and
// the NF4 formats quantize it into a bitmap.NF4 (scales double-quantized,
// see NF4DoubleQuant); kept may then be dropped.
func NewBaseMatrix(kept []float32, rows, cols int, f BaseFormat) (kernels.Matrix[float32], error) {
	f, err := ParseBaseFormat(string(f))
	if err != nil {
		return nil, err
	}
	if dt, ok := f.BitmapDType(); ok {
		return bitmap.Encode(kept, rows, cols, dt)
	}
	if f == BaseDenseBF16 {
		return bitmap.NewDenseBF16(kept, rows, cols), nil
	}
	if f.IsNF4() {
		return bitmap.EncodeNF4(kept, rows, cols, f == BaseDenseNF4, NF4DoubleQuant)
	}
	return kernels.NewDense(kept, rows, cols), nil
}

// BaseFormatName names the storage of a base by its canonical format
// (dense-fp32, dense-bf16, bitmap-bf16, bitmap-fp16, bitmap-fp32,
// bitmap-nf4, dense-nf4), or by its Go type for anything else.
func BaseFormatName(m kernels.Matrix[float32]) string {
	switch w := m.(type) {
	case *kernels.Dense[float32]:
		return string(BaseDenseFP32)
	case *bitmap.DenseBF16:
		return string(BaseDenseBF16)
	case *bitmap.Matrix:
		return "bitmap-" + w.DType().String()
	case *bitmap.NF4:
		if w.Dense() {
			return string(BaseDenseNF4)
		}
		return string(BaseBitmapNF4)
	}
	return fmt.Sprintf("%T", m)
}

// BaseBytes is the storage size of a base in bytes (dense float32: 4 per
// weight).
func BaseBytes(m kernels.Matrix[float32]) int64 {
	if s, ok := m.(interface{ Bytes() int64 }); ok {
		return s.Bytes()
	}
	return int64(m.Rows()) * int64(m.Cols()) * 4
}

// DecodeBase returns the weights of a base as a new row-major float32
// matrix, whatever its storage (a compressed base decodes its zeros too).
func DecodeBase(m kernels.Matrix[float32]) []float32 {
	if d, ok := m.(*kernels.Dense[float32]); ok {
		return slices.Clone(d.W)
	}
	out := make([]float32, m.Rows()*m.Cols())
	dec, ok := m.(interface{ Decode(dst []float32) })
	if !ok {
		panic(fmt.Sprintf("model: DecodeBase: %T cannot be decoded", m))
	}
	dec.Decode(out)
	return out
}

// WithBaseFormat returns a copy of p whose projection bases are stored in
// format f (decoded and stored again); everything else, the adapters
// included, is shared with p.
func WithBaseFormat(p *Params[float32], f BaseFormat) (*Params[float32], error) {
	q := *p
	q.Layers = make([]Layer[float32], len(p.Layers))
	for l, L := range p.Layers {
		q.Layers[l] = L
		q.Layers[l].MoE = L.MoE.clone()
		for _, lin := range q.Layers[l].linearSlots() {
			c := **lin
			base, err := NewBaseMatrix(DecodeBase(c.Base), c.Base.Rows(), c.Base.Cols(), f)
			if err != nil {
				return nil, fmt.Errorf("model: storing %s as %s: %w", c.Module, f, err)
			}
			c.Base = base
			*lin = &c
		}
	}
	return &q, nil
}
