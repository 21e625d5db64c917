package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/salr-go/salr/internal/atomicfile"
	"github.com/salr-go/salr/kernels"
)

// Layout is a GGUF file planned before any tensor data exists: its metadata
// and its tensor infos with their offsets. Stream then writes the header and
// asks for each tensor's data in turn, so a file larger than memory is
// written one tensor at a time.
type Layout struct {
	kvs       []KV
	tensors   []TensorInfo
	alignment uint64
	dataSize  uint64 // the data section, padding included
}

// NewLayout checks the metadata and the tensors (dimensions in GGML order,
// Offset ignored) and places each tensor's data at the next multiple of the
// alignment (general.alignment when kvs has it, else DefaultAlignment).
// Keys and tensor names must be unique; a value must be one of the Go types
// of the package's data model; a tensor must have 1 to 4 dimensions, a
// supported type, and for Q8_0 a row length that is a multiple of 32.
func NewLayout(kvs []KV, tensors []TensorInfo) (*Layout, error) {
	l := &Layout{alignment: DefaultAlignment}
	seen := map[string]bool{}
	for _, kv := range kvs {
		if seen[kv.Key] {
			return nil, fmt.Errorf("gguf: metadata key %q given twice", kv.Key)
		}
		seen[kv.Key] = true
		if err := checkValue(kv.Value); err != nil {
			return nil, fmt.Errorf("gguf: metadata key %q: %w", kv.Key, err)
		}
		if kv.Key == AlignmentKey {
			a, ok := kv.Value.(uint32)
			if !ok || a == 0 || a%8 != 0 {
				return nil, fmt.Errorf("gguf: metadata key %q: want a uint32 multiple of 8, got %v (%T)", kv.Key, kv.Value, kv.Value)
			}
			l.alignment = uint64(a)
		}
	}
	l.kvs = append([]KV(nil), kvs...)
	names := map[string]bool{}
	var offset uint64
	for _, t := range tensors {
		if names[t.Name] {
			return nil, fmt.Errorf("gguf: tensor %q given twice", t.Name)
		}
		names[t.Name] = true
		size, err := dataBytes(t)
		if err != nil {
			return nil, err
		}
		offset = AlignUp(offset, l.alignment)
		t.Dims = append([]uint64(nil), t.Dims...)
		t.Offset = offset
		l.tensors = append(l.tensors, t)
		offset += size
	}
	l.dataSize = AlignUp(offset, l.alignment)
	return l, nil
}

// dataBytes is the size of t's data, or an error naming the tensor.
func dataBytes(t TensorInfo) (uint64, error) {
	if t.Name == "" {
		return 0, errors.New("gguf: a tensor has no name")
	}
	if len(t.Dims) == 0 || len(t.Dims) > 4 {
		return 0, fmt.Errorf("gguf: tensor %q has %d dimensions, want 1 to 4", t.Name, len(t.Dims))
	}
	n := uint64(1)
	for _, d := range t.Dims {
		if d == 0 || n > math.MaxUint64/d {
			return 0, fmt.Errorf("gguf: tensor %q has dimensions %v", t.Name, t.Dims)
		}
		n *= d
	}
	if !t.Type.Supported() {
		return 0, fmt.Errorf("gguf: tensor %q: type %v is not one this package writes (F32, F16, BF16, Q8_0)", t.Name, t.Type)
	}
	if _, ok := t.Type.RowBytes(t.Dims[0]); !ok {
		return 0, fmt.Errorf("gguf: tensor %q: rows of %d values are not whole %v blocks of %d", t.Name, t.Dims[0], t.Type, Q8_0BlockSize)
	}
	size, _ := t.Type.RowBytes(n)
	return size, nil
}

// Tensors returns the tensor infos with their offsets.
func (l *Layout) Tensors() []TensorInfo { return append([]TensorInfo(nil), l.tensors...) }

// Alignment is the alignment of the tensor data.
func (l *Layout) Alignment() uint64 { return l.alignment }

// Stream writes the file to w: the header, the metadata, the tensor infos,
// padding, then the data of each tensor in the layout's order, which data
// writes to the writer it is given (exactly the tensor's size in bytes, or
// Stream fails naming the tensor), followed by zero padding to the next
// tensor.
func (l *Layout) Stream(w io.Writer, data func(t TensorInfo, w io.Writer) error) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	e := &encoder{w: bw}
	e.bytes([]byte(Magic))
	e.u32(Version)
	e.u64(uint64(len(l.tensors)))
	e.u64(uint64(len(l.kvs)))
	for _, kv := range l.kvs {
		e.str(kv.Key)
		e.value(kv.Value, true)
	}
	for _, t := range l.tensors {
		e.str(t.Name)
		e.u32(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			e.u64(d)
		}
		e.u32(uint32(t.Type))
		e.u64(t.Offset)
	}
	e.pad(AlignUp(e.n, l.alignment) - e.n)
	if e.err != nil {
		return e.err
	}
	var pos uint64
	for _, t := range l.tensors {
		e.pad(t.Offset - pos)
		size, _ := dataBytes(t)
		cw := &countingWriter{w: bw, limit: size}
		if e.err == nil {
			e.err = data(t, cw)
		}
		if e.err != nil {
			return fmt.Errorf("gguf: tensor %q: %w", t.Name, e.err)
		}
		if cw.n != size {
			return fmt.Errorf("gguf: tensor %q: %d bytes of data written, its type and dimensions need %d", t.Name, cw.n, size)
		}
		pos = t.Offset + size
	}
	e.pad(l.dataSize - pos)
	if e.err != nil {
		return e.err
	}
	return bw.Flush()
}

// WriteFile writes the file at path atomically (see Stream); an existing
// file is refused unless overwrite is set.
func (l *Layout) WriteFile(path string, overwrite bool, data func(t TensorInfo, w io.Writer) error) error {
	f, err := atomicfile.Create(path, overwrite)
	if err != nil {
		return err
	}
	if err := l.Stream(f, data); err != nil {
		f.Abort()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Commit()
}

// countingWriter passes at most limit bytes on and counts what it was given.
type countingWriter struct {
	w     io.Writer
	n     uint64
	limit uint64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.n+uint64(len(p)) > c.limit {
		return 0, fmt.Errorf("more than the tensor's %d bytes of data", c.limit)
	}
	n, err := c.w.Write(p)
	c.n += uint64(n)
	return n, err
}

// encoder writes little-endian GGUF values, keeping the first error.
type encoder struct {
	w   io.Writer
	n   uint64
	err error
	buf [8]byte
}

func (e *encoder) bytes(b []byte) {
	if e.err != nil {
		return
	}
	n, err := e.w.Write(b)
	e.n += uint64(n)
	e.err = err
}

func (e *encoder) pad(n uint64) {
	var zeros [64]byte
	for n > 0 {
		k := min(n, uint64(len(zeros)))
		e.bytes(zeros[:k])
		n -= k
	}
}

func (e *encoder) u8(v uint8) { e.bytes([]byte{v}) }
func (e *encoder) u16(v uint16) {
	binary.LittleEndian.PutUint16(e.buf[:], v)
	e.bytes(e.buf[:2])
}
func (e *encoder) u32(v uint32) {
	binary.LittleEndian.PutUint32(e.buf[:], v)
	e.bytes(e.buf[:4])
}
func (e *encoder) u64(v uint64) {
	binary.LittleEndian.PutUint64(e.buf[:], v)
	e.bytes(e.buf[:8])
}
func (e *encoder) str(s string) {
	e.u64(uint64(len(s)))
	e.bytes([]byte(s))
}

// value writes v, preceded by its type tag when tagged (array elements carry
// none).
func (e *encoder) value(v any, tagged bool) {
	if tagged {
		t, _ := typeOf(v)
		e.u32(uint32(t))
	}
	switch x := v.(type) {
	case uint8:
		e.u8(x)
	case int8:
		e.u8(uint8(x))
	case uint16:
		e.u16(x)
	case int16:
		e.u16(uint16(x))
	case uint32:
		e.u32(x)
	case int32:
		e.u32(uint32(x))
	case float32:
		e.u32(math.Float32bits(x))
	case bool:
		if x {
			e.u8(1)
		} else {
			e.u8(0)
		}
	case string:
		e.str(x)
	case uint64:
		e.u64(x)
	case int64:
		e.u64(uint64(x))
	case float64:
		e.u64(math.Float64bits(x))
	case Array:
		e.u32(uint32(x.Elem))
		e.u64(uint64(len(x.Values)))
		for _, el := range x.Values {
			e.value(el, false)
		}
	default:
		elem, values := sliceElems(v)
		e.u32(uint32(elem))
		e.u64(uint64(len(values)))
		for _, el := range values {
			e.value(el, false)
		}
	}
}

// typeOf is the GGUF type of a Go value of the data model.
func typeOf(v any) (ValueType, bool) {
	switch v.(type) {
	case uint8:
		return TypeUint8, true
	case int8:
		return TypeInt8, true
	case uint16:
		return TypeUint16, true
	case int16:
		return TypeInt16, true
	case uint32:
		return TypeUint32, true
	case int32:
		return TypeInt32, true
	case float32:
		return TypeFloat32, true
	case bool:
		return TypeBool, true
	case string:
		return TypeString, true
	case uint64:
		return TypeUint64, true
	case int64:
		return TypeInt64, true
	case float64:
		return TypeFloat64, true
	case Array, []Array:
		return TypeArray, true
	}
	if elem, _ := sliceElems(v); elem != TypeArray {
		return TypeArray, true
	}
	return 0, false
}

// sliceElems returns the element type and the elements of a slice of the
// data model ([]uint32, []string, ...; []Array for arrays of arrays); the
// type is TypeArray for anything else.
func sliceElems(v any) (ValueType, []any) {
	switch x := v.(type) {
	case []uint8:
		return TypeUint8, anys(x)
	case []int8:
		return TypeInt8, anys(x)
	case []uint16:
		return TypeUint16, anys(x)
	case []int16:
		return TypeInt16, anys(x)
	case []uint32:
		return TypeUint32, anys(x)
	case []int32:
		return TypeInt32, anys(x)
	case []float32:
		return TypeFloat32, anys(x)
	case []bool:
		return TypeBool, anys(x)
	case []string:
		return TypeString, anys(x)
	case []uint64:
		return TypeUint64, anys(x)
	case []int64:
		return TypeInt64, anys(x)
	case []float64:
		return TypeFloat64, anys(x)
	case []Array:
		out := make([]any, len(x))
		for i := range x {
			out[i] = x[i]
		}
		return TypeArray, out
	}
	return TypeArray, nil
}

func anys[T any](s []T) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// checkValue reports a value that is not of the data model, or an Array
// whose elements do not match its Elem.
func checkValue(v any) error {
	if a, ok := v.(Array); ok {
		for i, el := range a.Values {
			t, ok := typeOf(el)
			if !ok || t != a.Elem {
				return fmt.Errorf("array element %d is %T, the array holds %v", i, el, a.Elem)
			}
			if err := checkValue(el); err != nil {
				return err
			}
		}
		return nil
	}
	if _, ok := v.([]Array); ok {
		for _, el := range v.([]Array) {
			if err := checkValue(el); err != nil {
				return err
			}
		}
		return nil
	}
	if _, ok := typeOf(v); !ok {
		return fmt.Errorf("a %T is not a GGUF value", v)
	}
	return nil
}

// AppendTensorData appends values encoded as type t to dst: little-endian
// F32, F16 or BF16 (rounded to nearest, ties to even), or Q8_0 blocks (the
// largest magnitude of each block of 32 maps to ±127: d = max|x|/127 stored
// as F16, q[i] = round(x[i]/d)). For Q8_0 len(values) must be a multiple of
// 32.
func AppendTensorData(dst []byte, values []float32, t TensorType) ([]byte, error) {
	if size, ok := t.RowBytes(uint64(len(values))); ok {
		dst = slices.Grow(dst, int(size))
	}
	switch t {
	case F32:
		for _, v := range values {
			dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
		}
	case F16:
		for _, v := range values {
			dst = binary.LittleEndian.AppendUint16(dst, kernels.Float32ToF16(v))
		}
	case BF16:
		for _, v := range values {
			dst = binary.LittleEndian.AppendUint16(dst, kernels.Float32ToBF16(v))
		}
	case Q8_0:
		if len(values)%Q8_0BlockSize != 0 {
			return nil, fmt.Errorf("gguf: %d values are not whole Q8_0 blocks of %d", len(values), Q8_0BlockSize)
		}
		for b := 0; b < len(values); b += Q8_0BlockSize {
			dst = appendQ8_0Block(dst, values[b:b+Q8_0BlockSize])
		}
	default:
		return nil, fmt.Errorf("gguf: cannot encode values as %v", t)
	}
	return dst, nil
}

// appendQ8_0Block appends one Q8_0 block of 32 values.
func appendQ8_0Block(dst []byte, block []float32) []byte {
	var amax float32
	for _, v := range block {
		amax = max(amax, float32(math.Abs(float64(v))))
	}
	d := amax / 127
	var inv float32
	if d != 0 {
		inv = 1 / d
	}
	dst = binary.LittleEndian.AppendUint16(dst, kernels.Float32ToF16(d))
	for _, v := range block {
		dst = append(dst, byte(int8(math.Round(float64(v*inv)))))
	}
	return dst
}
