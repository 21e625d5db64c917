// Package gguf reads and writes GGUF files, the single-file model format of
// GGML and llama.cpp (version 3; the layout is the one of ggml's
// docs/gguf.md: a header, typed key-value metadata, tensor infos, then the
// tensor data, each tensor at a multiple of the file's alignment).
//
// # Data model
//
// A metadata value is held as the Go value of its GGUF type: uint8, int8,
// uint16, int16, uint32, int32, float32, bool, string, uint64, int64 or
// float64, an array of one of those as the matching slice ([]uint32,
// []string, ...), and an array of arrays as []Array. Tensor dimensions are
// in GGML order: Dims[0] is the length of a row (the fastest-varying index),
// so a PyTorch weight of shape [out, in] has Dims [in, out].
package gguf

import "fmt"

// Magic is the first four bytes of a GGUF file ("GGUF").
const Magic = "GGUF"

// Version is the GGUF version this package writes; it reads 2 and 3 (they
// differ from 1 in 64-bit counts and lengths).
const Version = 3

// DefaultAlignment is the alignment of tensor data when the metadata has no
// general.alignment.
const DefaultAlignment = 32

// AlignmentKey is the metadata key of the alignment (uint32, a multiple of 8).
const AlignmentKey = "general.alignment"

// ValueType is the type tag of a metadata value.
type ValueType uint32

// The metadata value types of the specification.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

var valueTypeNames = [...]string{"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool",
	"string", "array", "uint64", "int64", "float64"}

func (t ValueType) String() string {
	if int(t) < len(valueTypeNames) {
		return valueTypeNames[t]
	}
	return fmt.Sprintf("value type %d", uint32(t))
}

// Array is a metadata array whose elements are arrays (rare; llama.cpp's
// loader uses none): Elem is the element type, Values the elements, each
// a slice as described in the package documentation.
type Array struct {
	Elem   ValueType
	Values []any
}

// KV is one metadata entry.
type KV struct {
	Key   string
	Value any
}

// TensorType is a GGML tensor element type (ggml_type).
type TensorType uint32

// The tensor types this package reads and writes (others are listed by
// name in errors only).
const (
	F32  TensorType = 0
	F16  TensorType = 1
	Q8_0 TensorType = 8
	BF16 TensorType = 30
)

// tensorTypeNames are ggml's names of its types, for messages.
var tensorTypeNames = map[TensorType]string{
	0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
	10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS",
	17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS",
	24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16", 34: "TQ1_0",
	35: "TQ2_0", 39: "MXFP4",
}

func (t TensorType) String() string {
	if n, ok := tensorTypeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("ggml type %d", uint32(t))
}

// Q8_0BlockSize is the number of values in one Q8_0 block: an fp16 scale d
// followed by 32 int8 quants q, value i being d·q[i].
const Q8_0BlockSize = 32

// Supported reports whether this package reads and writes tensors of type t.
func (t TensorType) Supported() bool { return t == F32 || t == F16 || t == Q8_0 || t == BF16 }

// RowBytes is the size in bytes of n consecutive values of type t (n must be
// a multiple of the block size for Q8_0); ok is false for unsupported types
// and for an n that does not fill whole blocks.
func (t TensorType) RowBytes(n uint64) (size uint64, ok bool) {
	switch t {
	case F32:
		return 4 * n, true
	case F16, BF16:
		return 2 * n, true
	case Q8_0:
		if n%Q8_0BlockSize != 0 {
			return 0, false
		}
		return n / Q8_0BlockSize * (2 + Q8_0BlockSize), true
	}
	return 0, false
}

// TensorInfo describes one tensor: its name, dimensions in GGML order, type
// and the offset of its data from the start of the data section.
type TensorInfo struct {
	Name   string
	Dims   []uint64
	Type   TensorType
	Offset uint64
}

// AlignUp rounds offset up to a multiple of alignment.
func AlignUp(offset, alignment uint64) uint64 {
	return offset + (alignment-offset%alignment)%alignment
}
