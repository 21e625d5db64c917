package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/salr-go/salr/kernels"
	"github.com/salr-go/salr/model/safetensors"
)

// Limits the reader enforces beyond the specification's layout.
const (
	// MaxDims is GGML's largest number of tensor dimensions.
	MaxDims = 4
	// MaxTensorName is the longest tensor name GGML accepts, in bytes.
	MaxTensorName = 64
	// maxKeyLength is the longest metadata key, in bytes.
	maxKeyLength = 65535
	// maxArrayDepth bounds the nesting of arrays of arrays.
	maxArrayDepth = 8
	// maxTensorElements bounds one tensor's number of values so that sizes
	// and offsets never overflow.
	maxTensorElements = 1 << 50
)

// File is a parsed GGUF file: its metadata and tensor infos, and the whole
// file's bytes (a memory map when opened with Open). Tensor data is read
// with TensorBytes, Float32 or BF16.
type File struct {
	Version   uint32
	KVs       []KV         // in file order; keys are unique
	Tensors   []TensorInfo // in file order; names are unique
	Alignment uint64       // general.alignment, or DefaultAlignment
	// DataOffset is where the data section starts in the file; tensor
	// offsets are relative to it.
	DataOffset uint64

	name    string
	data    []byte
	mapping *safetensors.Mapping
	keys    map[string]int
	tensors map[string]int
}

// FileExtension is the file name extension of GGUF files.
const FileExtension = ".gguf"

// HasExtension reports whether path ends in .gguf (in any case): how the
// commands tell a GGUF model file from other model paths.
func HasExtension(path string) bool {
	return len(path) >= len(FileExtension) && strings.EqualFold(path[len(path)-len(FileExtension):], FileExtension)
}

// Open memory-maps and parses the GGUF file at path (see Parse). Close the
// File when its tensors are no longer used.
func Open(path string) (*File, error) {
	m, err := safetensors.MapFile(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	f, err := Parse(m.Data, path)
	if err != nil {
		m.Close()
		return nil, err
	}
	f.mapping = m
	return f, nil
}

// Close unmaps the file; slices returned by TensorBytes, Float32 and BF16
// that view it must not be used afterwards.
func (f *File) Close() error {
	f.data = nil
	return f.mapping.Close()
}

// Name is the name the file was parsed under (its path for Open).
func (f *File) Name() string { return f.name }

// Parse reads a GGUF file (version 2 or 3, little-endian) from data; name
// identifies it in errors. Everything is checked before it is used: counts
// and lengths against the bytes left (before anything is allocated), UTF-8
// keys and strings, unique keys and tensor names, bool values, the
// alignment, tensor ranks, dimensions and their product, supported tensor
// types, and tensor offsets (aligned, inside the file, not overlapping).
// Errors name the metadata key or the tensor at fault. data is retained.
func Parse(data []byte, name string) (*File, error) {
	r := &reader{data: data}
	f := &File{name: name, data: data, Alignment: DefaultAlignment}
	fail := func(format string, args ...any) (*File, error) {
		return nil, fmt.Errorf("gguf: %s: %s", name, fmt.Sprintf(format, args...))
	}
	if len(data) < 4 || string(data[:4]) != Magic {
		return fail("not a GGUF file (the first bytes are %q, want %q)", data[:min(4, len(data))], Magic)
	}
	r.off = 4
	version, err := r.u32()
	if err != nil {
		return fail("header: version: %v", err)
	}
	switch {
	case version == 2 || version == 3:
	case version == 1:
		return fail("GGUF version 1 is not supported (only 2 and 3): convert the file again with a current llama.cpp")
	case version&0xffff == 0 && version>>16 != 0:
		return fail("version field %#x: a big-endian GGUF file, which is not supported", version)
	default:
		return fail("GGUF version %d is not supported (only 2 and 3)", version)
	}
	f.Version = version
	tensorCount, err := r.u64()
	if err != nil {
		return fail("header: tensor count: %v", err)
	}
	kvCount, err := r.u64()
	if err != nil {
		return fail("header: metadata count: %v", err)
	}
	// A metadata entry takes at least 8 (key length) + 4 (type) + 1 bytes, a
	// tensor info at least 8 + 4 + 8 + 4 + 8 bytes.
	const minKV, minTensorInfo = 13, 32
	if kvCount > uint64(r.left())/minKV {
		return fail("header: metadata count %d cannot fit in the %d bytes that follow", kvCount, r.left())
	}
	if tensorCount > uint64(r.left())/minTensorInfo {
		return fail("header: tensor count %d cannot fit in the %d bytes that follow", tensorCount, r.left())
	}

	f.KVs = make([]KV, 0, kvCount)
	f.keys = make(map[string]int, kvCount)
	for i := range kvCount {
		start := r.off
		key, err := r.str()
		if err != nil {
			return fail("metadata entry %d (offset %d): key: %v", i, start, err)
		}
		if key == "" || len(key) > maxKeyLength {
			return fail("metadata entry %d (offset %d): key of %d bytes (want 1 to %d)", i, start, len(key), maxKeyLength)
		}
		if _, dup := f.keys[key]; dup {
			return fail("metadata key %q appears twice", key)
		}
		vt, err := r.u32()
		if err != nil {
			return fail("metadata key %q: value type: %v", key, err)
		}
		value, err := r.value(ValueType(vt), 0)
		if err != nil {
			return fail("metadata key %q: %v", key, err)
		}
		f.keys[key] = len(f.KVs)
		f.KVs = append(f.KVs, KV{Key: key, Value: value})
	}
	if v, ok := f.keys[AlignmentKey]; ok {
		a, isU32 := f.KVs[v].Value.(uint32)
		if !isU32 {
			return fail("metadata key %q: want a uint32, got %s", AlignmentKey, describe(f.KVs[v].Value))
		}
		if a == 0 || a%8 != 0 {
			return fail("metadata key %q: alignment %d is not a positive multiple of 8", AlignmentKey, a)
		}
		f.Alignment = uint64(a)
	}

	f.Tensors = make([]TensorInfo, 0, tensorCount)
	f.tensors = make(map[string]int, tensorCount)
	sizes := make([]uint64, 0, tensorCount)
	for i := range tensorCount {
		start := r.off
		t, size, err := r.tensorInfo()
		if err != nil {
			if t.Name != "" {
				return fail("tensor %q: %v", t.Name, err)
			}
			return fail("tensor info %d (offset %d): %v", i, start, err)
		}
		if _, dup := f.tensors[t.Name]; dup {
			return fail("tensor %q appears twice", t.Name)
		}
		if t.Offset%f.Alignment != 0 {
			return fail("tensor %q: offset %d is not a multiple of the alignment %d", t.Name, t.Offset, f.Alignment)
		}
		f.tensors[t.Name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, t)
		sizes = append(sizes, size)
	}
	f.DataOffset = AlignUp(uint64(r.off), f.Alignment)
	if len(f.Tensors) == 0 {
		return f, nil
	}
	if f.DataOffset > uint64(len(data)) {
		return fail("the data section would start at offset %d, past the end of the file (%d bytes): truncated?", f.DataOffset, len(data))
	}
	dataLen := uint64(len(data)) - f.DataOffset
	order := make([]int, len(f.Tensors))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		if f.Tensors[a].Offset != f.Tensors[b].Offset {
			if f.Tensors[a].Offset < f.Tensors[b].Offset {
				return -1
			}
			return 1
		}
		return a - b
	})
	var prevEnd uint64
	prev := -1
	for _, i := range order {
		t := f.Tensors[i]
		if t.Offset > dataLen || sizes[i] > dataLen-t.Offset {
			return fail("tensor %q: data [%d, %d) of the data section runs past the end of the file (the section has %d bytes): truncated?", t.Name, t.Offset, t.Offset+sizes[i], dataLen)
		}
		if prev >= 0 && t.Offset < prevEnd {
			return fail("tensor %q: data at offset %d overlaps tensor %q, which ends at %d", t.Name, t.Offset, f.Tensors[prev].Name, prevEnd)
		}
		prevEnd, prev = t.Offset+sizes[i], i
	}
	return f, nil
}

// Lookup returns the value of a metadata key.
func (f *File) Lookup(key string) (any, bool) {
	i, ok := f.keys[key]
	if !ok {
		return nil, false
	}
	return f.KVs[i].Value, true
}

// Tensor returns the info of the named tensor.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := f.tensors[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Tensors[i], true
}

// NumElements is the number of values of a tensor (the product of Dims).
func (t TensorInfo) NumElements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// Size is the number of bytes of a tensor's data (Parse checked that it
// does not overflow).
func (t TensorInfo) Size() uint64 {
	size, _ := t.Type.RowBytes(t.NumElements())
	return size
}

// TensorBytes returns the raw data of the named tensor, a view of the file.
func (f *File) TensorBytes(name string) ([]byte, error) {
	t, ok := f.Tensor(name)
	switch {
	case !ok:
		return nil, fmt.Errorf("gguf: %s: no tensor %q", f.name, name)
	case f.data == nil:
		return nil, fmt.Errorf("gguf: %s: tensor %q read after Close", f.name, name)
	}
	start := f.DataOffset + t.Offset
	return f.data[start : start+t.Size()], nil
}

// Float32 returns the values of the named tensor as float32: F32 data as a
// view of the file (when aligned), F16, BF16 and Q8_0 data converted into a
// new slice. A NaN or infinite value is an error naming the tensor.
func (f *File) Float32(name string) ([]float32, error) {
	raw, err := f.TensorBytes(name)
	if err != nil {
		return nil, err
	}
	t, _ := f.Tensor(name)
	var out []float32
	switch t.Type {
	case F32:
		out, err = safetensors.Float32FromBytes(raw, safetensors.F32)
	case F16:
		out, err = safetensors.Float32FromBytes(raw, safetensors.F16)
	case BF16:
		out, err = safetensors.Float32FromBytes(raw, safetensors.BF16)
	case Q8_0:
		out, err = DequantizeQ8_0(raw)
	default:
		err = fmt.Errorf("type %s is not supported", t.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("gguf: %s: tensor %q: %w", f.name, name, err)
	}
	return out, nil
}

// BF16 returns the bf16 bit patterns of a BF16 tensor, a view of the file
// when aligned. A NaN or infinite value is an error naming the tensor.
func (f *File) BF16(name string) ([]uint16, error) {
	raw, err := f.TensorBytes(name)
	if err != nil {
		return nil, err
	}
	if t, _ := f.Tensor(name); t.Type != BF16 {
		return nil, fmt.Errorf("gguf: %s: tensor %q is %s, not BF16", f.name, name, t.Type)
	}
	out, err := safetensors.BF16View(raw)
	if err != nil {
		return nil, fmt.Errorf("gguf: %s: tensor %q: %w", f.name, name, err)
	}
	return out, nil
}

// DequantizeQ8_0 expands Q8_0 blocks (an fp16 scale d, then 32 int8 quants
// q; value i is d·q[i]) into float32. A scale that is NaN or infinite is an
// error.
func DequantizeQ8_0(raw []byte) ([]float32, error) {
	const block = 2 + Q8_0BlockSize
	if len(raw)%block != 0 {
		return nil, fmt.Errorf("%d bytes is not a whole number of %d-byte Q8_0 blocks", len(raw), block)
	}
	out := make([]float32, len(raw)/block*Q8_0BlockSize)
	for b := 0; b < len(raw)/block; b++ {
		blk := raw[b*block : (b+1)*block]
		d := kernels.F16ToFloat32(binary.LittleEndian.Uint16(blk))
		if math.IsNaN(float64(d)) || math.IsInf(float64(d), 0) {
			return nil, fmt.Errorf("Q8_0 block %d has scale %v", b, d)
		}
		dst := out[b*Q8_0BlockSize : (b+1)*Q8_0BlockSize]
		for i, q := range blk[2:] {
			dst[i] = d * float32(int8(q))
		}
	}
	return out, nil
}

// describe names a metadata value's type for messages.
func describe(v any) string {
	switch v := v.(type) {
	case []Array:
		return "an array of arrays"
	case string:
		return "a string"
	default:
		if t, ok := goTypeNames[fmt.Sprintf("%T", v)]; ok {
			return t
		}
		return fmt.Sprintf("%T", v)
	}
}

var goTypeNames = map[string]string{
	"uint8": "a uint8", "int8": "an int8", "uint16": "a uint16", "int16": "an int16",
	"uint32": "a uint32", "int32": "an int32", "float32": "a float32", "bool": "a bool",
	"uint64": "a uint64", "int64": "an int64", "float64": "a float64",
	"[]uint8": "an array of uint8", "[]int8": "an array of int8", "[]uint16": "an array of uint16",
	"[]int16": "an array of int16", "[]uint32": "an array of uint32", "[]int32": "an array of int32",
	"[]float32": "an array of float32", "[]bool": "an array of bool", "[]string": "an array of string",
	"[]uint64": "an array of uint64", "[]int64": "an array of int64", "[]float64": "an array of float64",
}

// reader walks the bytes of a GGUF file; every read checks the bytes left.
type reader struct {
	data []byte
	off  int
}

func (r *reader) left() int { return len(r.data) - r.off }

func (r *reader) take(n uint64) ([]byte, error) {
	if n > uint64(r.left()) {
		return nil, fmt.Errorf("needs %d bytes at offset %d but the file has %d left: truncated?", n, r.off, r.left())
	}
	b := r.data[r.off : r.off+int(n)]
	r.off += int(n)
	return b, nil
}

func (r *reader) u32() (uint32, error) {
	b, err := r.take(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (r *reader) u64() (uint64, error) {
	b, err := r.take(8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// str reads a string: a uint64 length, then that many bytes of UTF-8.
func (r *reader) str() (string, error) {
	start := r.off
	n, err := r.u64()
	if err != nil {
		return "", err
	}
	if n > uint64(r.left()) {
		return "", fmt.Errorf("string at offset %d has length %d but the file has %d bytes left", start, n, r.left())
	}
	b, _ := r.take(n)
	if !utf8.Valid(b) {
		return "", fmt.Errorf("string at offset %d is not valid UTF-8", start)
	}
	return string(b), nil
}

// scalarSize is the size of one value of a fixed-size type, 0 for string
// and array.
func scalarSize(t ValueType) uint64 {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64:
		return 8
	}
	return 0
}

// value reads one value of type t (depth counts enclosing arrays).
func (r *reader) value(t ValueType, depth int) (any, error) {
	switch t {
	case TypeString:
		return r.str()
	case TypeArray:
		_, v, err := r.array(depth)
		return v, err
	}
	size := scalarSize(t)
	if size == 0 {
		return nil, fmt.Errorf("unknown value type %d", uint32(t))
	}
	b, err := r.take(size)
	if err != nil {
		return nil, err
	}
	return scalarFrom(t, b)
}

// scalarFrom decodes a fixed-size value of type t from b.
func scalarFrom(t ValueType, b []byte) (any, error) {
	switch t {
	case TypeUint8:
		return b[0], nil
	case TypeInt8:
		return int8(b[0]), nil
	case TypeBool:
		if b[0] > 1 {
			return nil, fmt.Errorf("bool value %d (want 0 or 1)", b[0])
		}
		return b[0] == 1, nil
	case TypeUint16:
		return binary.LittleEndian.Uint16(b), nil
	case TypeInt16:
		return int16(binary.LittleEndian.Uint16(b)), nil
	case TypeUint32:
		return binary.LittleEndian.Uint32(b), nil
	case TypeInt32:
		return int32(binary.LittleEndian.Uint32(b)), nil
	case TypeFloat32:
		return math.Float32frombits(binary.LittleEndian.Uint32(b)), nil
	case TypeUint64:
		return binary.LittleEndian.Uint64(b), nil
	case TypeInt64:
		return int64(binary.LittleEndian.Uint64(b)), nil
	case TypeFloat64:
		return math.Float64frombits(binary.LittleEndian.Uint64(b)), nil
	}
	return nil, fmt.Errorf("unknown value type %d", uint32(t))
}

// array reads an array: its element type, a uint64 count, the elements.
// It returns the element type and the elements as a typed slice.
func (r *reader) array(depth int) (ValueType, any, error) {
	if depth >= maxArrayDepth {
		return 0, nil, fmt.Errorf("arrays nested more than %d deep", maxArrayDepth)
	}
	et, err := r.u32()
	if err != nil {
		return 0, nil, fmt.Errorf("array element type: %w", err)
	}
	elem := ValueType(et)
	n, err := r.u64()
	if err != nil {
		return 0, nil, fmt.Errorf("array length: %w", err)
	}
	v, err := r.elements(elem, n, depth)
	return elem, v, err
}

// elements reads n array elements of type elem.
func (r *reader) elements(elem ValueType, n uint64, depth int) (v any, err error) {
	// The smallest encoding of an element bounds the count before any
	// allocation: 8 bytes for a string, 12 for an array.
	minSize := scalarSize(elem)
	switch elem {
	case TypeString:
		minSize = 8
	case TypeArray:
		minSize = 12
	}
	if minSize == 0 {
		return nil, fmt.Errorf("array of unknown value type %d", uint32(elem))
	}
	if n > uint64(r.left())/minSize {
		return nil, fmt.Errorf("array of %d %s values cannot fit in the %d bytes left", n, elem, r.left())
	}
	switch elem {
	case TypeString:
		out := make([]string, n)
		for i := range out {
			if out[i], err = r.str(); err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
		}
		return out, nil
	case TypeArray:
		out := make([]Array, n)
		for i := range out {
			inner, v, err := r.array(depth + 1)
			if err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
			out[i] = Array{Elem: inner, Values: toAnySlice(v)}
		}
		return out, nil
	}
	raw, _ := r.take(n * minSize)
	switch elem {
	case TypeUint8:
		return slices.Clone(raw), nil
	case TypeInt8:
		return decodeSlice(raw, 1, func(b []byte) int8 { return int8(b[0]) }), nil
	case TypeBool:
		for i, b := range raw {
			if b > 1 {
				return nil, fmt.Errorf("element %d: bool value %d (want 0 or 1)", i, b)
			}
		}
		return decodeSlice(raw, 1, func(b []byte) bool { return b[0] == 1 }), nil
	case TypeUint16:
		return decodeSlice(raw, 2, binary.LittleEndian.Uint16), nil
	case TypeInt16:
		return decodeSlice(raw, 2, func(b []byte) int16 { return int16(binary.LittleEndian.Uint16(b)) }), nil
	case TypeUint32:
		return decodeSlice(raw, 4, binary.LittleEndian.Uint32), nil
	case TypeInt32:
		return decodeSlice(raw, 4, func(b []byte) int32 { return int32(binary.LittleEndian.Uint32(b)) }), nil
	case TypeFloat32:
		return decodeSlice(raw, 4, func(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) }), nil
	case TypeUint64:
		return decodeSlice(raw, 8, binary.LittleEndian.Uint64), nil
	case TypeInt64:
		return decodeSlice(raw, 8, func(b []byte) int64 { return int64(binary.LittleEndian.Uint64(b)) }), nil
	default: // TypeFloat64
		return decodeSlice(raw, 8, func(b []byte) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(b)) }), nil
	}
}

// decodeSlice decodes consecutive size-byte values.
func decodeSlice[T any](raw []byte, size int, decode func([]byte) T) []T {
	out := make([]T, len(raw)/size)
	for i := range out {
		out[i] = decode(raw[i*size:])
	}
	return out
}

// toAnySlice turns an array value (a typed slice or []Array) into its
// elements as []any, the form of Array.Values.
func toAnySlice(v any) []any {
	switch v := v.(type) {
	case []Array:
		return anySlice(v)
	case []string:
		return anySlice(v)
	case []uint8:
		return anySlice(v)
	case []int8:
		return anySlice(v)
	case []bool:
		return anySlice(v)
	case []uint16:
		return anySlice(v)
	case []int16:
		return anySlice(v)
	case []uint32:
		return anySlice(v)
	case []int32:
		return anySlice(v)
	case []float32:
		return anySlice(v)
	case []uint64:
		return anySlice(v)
	case []int64:
		return anySlice(v)
	case []float64:
		return anySlice(v)
	}
	return nil
}

func anySlice[T any](s []T) []any {
	out := make([]any, len(s))
	for i, x := range s {
		out[i] = x
	}
	return out
}

// tensorInfo reads one tensor info and returns it with its data size. The
// returned info carries the name as soon as it is read, for messages.
func (r *reader) tensorInfo() (TensorInfo, uint64, error) {
	var t TensorInfo
	name, err := r.str()
	if err != nil {
		return t, 0, fmt.Errorf("name: %w", err)
	}
	if name == "" || len(name) > MaxTensorName {
		return t, 0, fmt.Errorf("name %q has %d bytes (want 1 to %d)", name, len(name), MaxTensorName)
	}
	t.Name = name
	nDims, err := r.u32()
	if err != nil {
		return t, 0, fmt.Errorf("rank: %w", err)
	}
	if nDims == 0 || nDims > MaxDims {
		return t, 0, fmt.Errorf("%d dimensions (want 1 to %d)", nDims, MaxDims)
	}
	t.Dims = make([]uint64, nDims)
	elements := uint64(1)
	for i := range t.Dims {
		if t.Dims[i], err = r.u64(); err != nil {
			return t, 0, fmt.Errorf("dimension %d: %w", i, err)
		}
		if t.Dims[i] == 0 {
			return t, 0, fmt.Errorf("dimension %d is 0", i)
		}
		if t.Dims[i] > maxTensorElements/elements {
			return t, 0, fmt.Errorf("dimensions %v: too many elements", t.Dims[:i+1])
		}
		elements *= t.Dims[i]
	}
	typ, err := r.u32()
	if err != nil {
		return t, 0, fmt.Errorf("type: %w", err)
	}
	t.Type = TensorType(typ)
	if !t.Type.Supported() {
		return t, 0, fmt.Errorf("tensor type %s is not supported (F32, F16, BF16 and Q8_0 are): requantize the model to one of them", t.Type)
	}
	if _, ok := t.Type.RowBytes(t.Dims[0]); !ok {
		return t, 0, fmt.Errorf("%s rows of %d values are not whole %d-value blocks", t.Type, t.Dims[0], Q8_0BlockSize)
	}
	size, _ := t.Type.RowBytes(elements)
	if t.Offset, err = r.u64(); err != nil {
		return t, 0, fmt.Errorf("offset: %w", err)
	}
	return t, size, nil
}

// Uint returns an integer metadata value of any integer type; ok is false
// when the key is absent. A negative value or a value of another type is an
// error naming the key.
func (f *File) Uint(key string) (value uint64, ok bool, err error) {
	v, ok := f.Lookup(key)
	if !ok {
		return 0, false, nil
	}
	var signed int64
	switch v := v.(type) {
	case uint8:
		return uint64(v), true, nil
	case uint16:
		return uint64(v), true, nil
	case uint32:
		return uint64(v), true, nil
	case uint64:
		return v, true, nil
	case int8:
		signed = int64(v)
	case int16:
		signed = int64(v)
	case int32:
		signed = int64(v)
	case int64:
		signed = v
	default:
		return 0, true, f.keyError(key, "want an integer, got %s", describe(v))
	}
	if signed < 0 {
		return 0, true, f.keyError(key, "%d is negative", signed)
	}
	return uint64(signed), true, nil
}

// Float returns a float32 or float64 metadata value; ok is false when the
// key is absent. A value of another type, NaN or an infinity is an error
// naming the key.
func (f *File) Float(key string) (value float64, ok bool, err error) {
	v, ok := f.Lookup(key)
	if !ok {
		return 0, false, nil
	}
	switch v := v.(type) {
	case float32:
		value = float64(v)
	case float64:
		value = v
	default:
		return 0, true, f.keyError(key, "want a float, got %s", describe(v))
	}
	if math.IsNaN(value) || math.IsInf(value, 0) {
		return 0, true, f.keyError(key, "%v is not finite", value)
	}
	return value, true, nil
}

// String returns a string metadata value; ok is false when the key is
// absent. A value of another type is an error naming the key.
func (f *File) String(key string) (value string, ok bool, err error) {
	v, ok := f.Lookup(key)
	if !ok {
		return "", false, nil
	}
	s, isString := v.(string)
	if !isString {
		return "", true, f.keyError(key, "want a string, got %s", describe(v))
	}
	return s, true, nil
}

// Bool returns a bool metadata value; ok is false when the key is absent.
// A value of another type is an error naming the key.
func (f *File) Bool(key string) (value bool, ok bool, err error) {
	v, ok := f.Lookup(key)
	if !ok {
		return false, false, nil
	}
	b, isBool := v.(bool)
	if !isBool {
		return false, true, f.keyError(key, "want a bool, got %s", describe(v))
	}
	return b, true, nil
}

// keyError is an error about a metadata key of the file.
func (f *File) keyError(key, format string, args ...any) error {
	return fmt.Errorf("gguf: %s: metadata key %q: %s", f.name, key, fmt.Sprintf(format, args...))
}
