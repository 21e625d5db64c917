// Package safetensors reads and writes the HuggingFace safetensors format:
// an 8-byte little-endian header length N, N bytes of JSON header
// {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
// then the tensor bytes, row-major and little-endian, with offsets relative to
// the start of the data section.
//
// Parsing validates everything the reference implementation (huggingface/safetensors)
// validates and never panics on malformed input: the header must fit in the
// file, be UTF-8 JSON with no duplicate keys, name known dtypes and
// non-negative dimensions, and the tensors must tile the data section exactly
// (sorted by offset, each begins where the previous one ends, the last ends at
// the end of the file, and end-begin equals prod(shape)*itemsize).
//
// Files are memory-mapped (Open, OpenDir); sharded checkpoints are read
// through their model.safetensors.index.json. Write produces files that the
// reference implementation reads: keys sorted, data aligned, written atomically.
package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"unsafe"

	"github.com/salr-go/salr/kernels"
)

// DType names an element type as spelled in safetensors headers.
type DType string

// The element types of the safetensors format.
const (
	F64  DType = "F64"
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
	I32  DType = "I32"
	I16  DType = "I16"
	I8   DType = "I8"
	U64  DType = "U64"
	U32  DType = "U32"
	U16  DType = "U16"
	U8   DType = "U8"
	Bool DType = "BOOL"
)

var dtypeSizes = map[DType]int{
	F64: 8, F32: 4, F16: 2, BF16: 2,
	I64: 8, I32: 4, I16: 2, I8: 1,
	U64: 8, U32: 4, U16: 2, U8: 1,
	Bool: 1,
}

// Size is the number of bytes of one element, or 0 for an unknown dtype.
func (d DType) Size() int { return dtypeSizes[d] }

// Valid reports whether d is one of the dtypes this package knows.
func (d DType) Valid() bool { return d.Size() > 0 }

// IsFloat reports whether d is a floating-point dtype that Float32 converts
// (F64, F32, F16, BF16).
func (d DType) IsFloat() bool { return d == F64 || d == F32 || d == F16 || d == BF16 }

// TorchName is the PyTorch spelling used in config.json's torch_dtype
// ("float32", "bfloat16", ...), or "" for dtypes without one.
func (d DType) TorchName() string {
	switch d {
	case F64:
		return "float64"
	case F32:
		return "float32"
	case F16:
		return "float16"
	case BF16:
		return "bfloat16"
	}
	return ""
}

// ParseDType accepts a dtype as written in safetensors headers ("BF16") or on
// command lines ("bf16", "float32", "bfloat16", "fp16").
func ParseDType(s string) (DType, error) {
	switch s {
	case "F64", "f64", "float64", "fp64":
		return F64, nil
	case "F32", "f32", "float32", "fp32":
		return F32, nil
	case "F16", "f16", "float16", "fp16", "half":
		return F16, nil
	case "BF16", "bf16", "bfloat16":
		return BF16, nil
	}
	if d := DType(s); d.Valid() {
		return d, nil
	}
	return "", fmt.Errorf("unknown dtype %q", s)
}

// hostLittleEndian is true when float32 values in memory have the byte order
// of the file format, so F32 data can be viewed without conversion.
var hostLittleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// Float32FromBytes interprets raw (the little-endian bytes of a tensor of
// the given dtype) as float32 values. F32 data is returned as a view of raw,
// without copying, when the host is little-endian and raw is 4-byte aligned;
// otherwise, and for F64, F16 and BF16, the values are converted into a new
// slice. Other dtypes, and a length that is not a multiple of the item size,
// are errors. So is a value that is NaN or infinite as float32 (F64 values
// beyond float32's range included): a *NonFiniteError naming the first. The
// check rides on the conversion, in the same pass; a view is read once.
func Float32FromBytes(raw []byte, dtype DType) ([]float32, error) {
	if !dtype.IsFloat() {
		return nil, fmt.Errorf("dtype %s is not a floating-point type", dtype)
	}
	size := dtype.Size()
	if len(raw)%size != 0 {
		return nil, fmt.Errorf("%d bytes is not a whole number of %s elements", len(raw), dtype)
	}
	n := len(raw) / size
	if n == 0 {
		return []float32{}, nil
	}
	var out []float32
	var flags uint32 // 1 once a value is not finite (see nonFinite)
	if dtype == F32 && hostLittleEndian && uintptr(unsafe.Pointer(&raw[0]))%4 == 0 {
		out = unsafe.Slice((*float32)(unsafe.Pointer(&raw[0])), n)
		if anyNonFiniteF32(raw) {
			flags = 1
		}
	} else {
		out = make([]float32, n)
		switch dtype {
		case F32:
			for i := range out {
				v := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
				out[i], flags = v, flags|nonFinite(v)
			}
		case F64:
			for i := range out {
				v := float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
				out[i], flags = v, flags|nonFinite(v)
			}
		case BF16:
			for i := range out {
				v := kernels.BF16ToFloat32(binary.LittleEndian.Uint16(raw[2*i:]))
				out[i], flags = v, flags|nonFinite(v)
			}
		case F16:
			for i := range out {
				v := kernels.F16ToFloat32(binary.LittleEndian.Uint16(raw[2*i:]))
				out[i], flags = v, flags|nonFinite(v)
			}
		}
	}
	if flags != 0 {
		for i, v := range out {
			if nonFinite(v) != 0 {
				return nil, &NonFiniteError{Index: i, Value: v}
			}
		}
	}
	return out, nil
}

// nonFinite is 1 when v is NaN or infinite (exponent bits all ones), else 0,
// without a branch: adding one to the lowest exponent bit carries into bit 31
// only from an all-ones exponent.
func nonFinite(v float32) uint32 {
	return (math.Float32bits(v)&0x7f800000 + 0x00800000) >> 31
}

// anyNonFiniteF32 reports whether the little-endian float32 values of raw
// include a NaN or an infinity: nonFinite on two values at once, in 64-bit
// words (no carry crosses from the low value into the high one), with two
// accumulators to keep the loop short of a dependency chain.
func anyNonFiniteF32(raw []byte) bool {
	const mask, carry = 0x7f800000_7f800000, 0x00800000_00800000
	var a, b uint64
	i := 0
	for ; i+16 <= len(raw); i += 16 {
		a |= binary.LittleEndian.Uint64(raw[i:])&mask + carry
		b |= binary.LittleEndian.Uint64(raw[i+8:])&mask + carry
	}
	for ; i+4 <= len(raw); i += 4 {
		a |= uint64(binary.LittleEndian.Uint32(raw[i:])&0x7f800000 + 0x00800000)
	}
	return (a|b)&0x80000000_80000000 != 0
}

// NonFiniteError reports a tensor value that is NaN or infinite.
type NonFiniteError struct {
	Index int     // of the first such value, in row-major order
	Value float32 // NaN, +Inf or -Inf
}

func (e *NonFiniteError) Error() string {
	return fmt.Sprintf("non-finite value %v at index %d", e.Value, e.Index)
}

// EncodeFloat32 returns the little-endian bytes of values converted to dtype
// (F32, F64, BF16 or F16; BF16 and F16 round to nearest, ties to even). The
// result is always a new slice.
func EncodeFloat32(values []float32, dtype DType) ([]byte, error) {
	return AppendFloat32(make([]byte, 0, len(values)*dtype.Size()), values, dtype)
}

// AppendFloat32 appends the encoding of values in dtype (as EncodeFloat32)
// to dst and returns the extended slice.
func AppendFloat32(dst []byte, values []float32, dtype DType) ([]byte, error) {
	if !dtype.IsFloat() {
		return nil, fmt.Errorf("cannot encode float32 values as %s", dtype)
	}
	start := len(dst)
	dst = slices.Grow(dst, len(values)*dtype.Size())[:start+len(values)*dtype.Size()]
	out := dst[start:]
	switch dtype {
	case F32:
		for i, v := range values {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
		}
	case F64:
		for i, v := range values {
			binary.LittleEndian.PutUint64(out[8*i:], math.Float64bits(float64(v)))
		}
	case BF16:
		for i, v := range values {
			binary.LittleEndian.PutUint16(out[2*i:], kernels.Float32ToBF16(v))
		}
	case F16:
		for i, v := range values {
			binary.LittleEndian.PutUint16(out[2*i:], kernels.Float32ToF16(v))
		}
	}
	return dst, nil
}

// Float32View returns the F32 bytes of values for writing. On little-endian
// hosts it is a view of the same memory (no copy), so it must only be read
// and only while values is alive; elsewhere it is an encoded copy.
func Float32View(values []float32) []byte {
	if len(values) == 0 {
		return []byte{}
	}
	if !hostLittleEndian {
		out, _ := EncodeFloat32(values, F32)
		return out
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&values[0])), 4*len(values))
}

// BF16View returns little-endian bf16 values as their bit patterns: a view
// of raw when it is 2-byte aligned on a little-endian host (no copy), a new
// slice otherwise. A NaN or infinite value is a *NonFiniteError naming the
// first.
func BF16View(raw []byte) ([]uint16, error) {
	if len(raw)%2 != 0 {
		return nil, fmt.Errorf("%d bytes is not a whole number of BF16 elements", len(raw))
	}
	n := len(raw) / 2
	if n == 0 {
		return []uint16{}, nil
	}
	var out []uint16
	if hostLittleEndian && uintptr(unsafe.Pointer(&raw[0]))%2 == 0 {
		out = unsafe.Slice((*uint16)(unsafe.Pointer(&raw[0])), n)
	} else {
		out = make([]uint16, n)
		for i := range out {
			out[i] = binary.LittleEndian.Uint16(raw[2*i:])
		}
	}
	if anyNonFiniteBF16(raw) {
		for i, h := range out {
			if h&0x7f80 == 0x7f80 {
				return nil, &NonFiniteError{Index: i, Value: kernels.BF16ToFloat32(h)}
			}
		}
	}
	return out, nil
}

// anyNonFiniteBF16 reports whether the little-endian bf16 values of raw
// include a NaN or an infinity, four values per 64-bit word as
// anyNonFiniteF32 does two.
func anyNonFiniteBF16(raw []byte) bool {
	const mask, carry = 0x7f80_7f80_7f80_7f80, 0x0080_0080_0080_0080
	var a, b uint64
	i := 0
	for ; i+16 <= len(raw); i += 16 {
		a |= binary.LittleEndian.Uint64(raw[i:])&mask + carry
		b |= binary.LittleEndian.Uint64(raw[i+8:])&mask + carry
	}
	for ; i+2 <= len(raw); i += 2 {
		a |= uint64(binary.LittleEndian.Uint16(raw[i:])&0x7f80 + 0x0080)
	}
	return (a|b)&0x8000_8000_8000_8000 != 0
}
