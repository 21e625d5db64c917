// Package ggufbuild encodes GGUF files for tests. It is written from the
// GGUF specification (ggml's docs/gguf.md) independently of model/gguf, with
// the type tags spelled as numbers, so that the reader's tests do not check
// the reader against itself. It builds malformed files on request: any
// field can be overridden after Layout, and Raw values are written as given.
package ggufbuild

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// Builder collects metadata and tensors and encodes them.
type Builder struct {
	Version   uint32 // 3 unless set
	Alignment uint64 // data alignment; 32 unless set (general.alignment is only written if added with KV)
	kvs       []kv
	tensors   []Tensor
}

type kv struct {
	key   string
	value any
}

// Tensor is one tensor to encode. Dims are in GGML order (row length
// first); Type is the ggml type number. Offset is computed by Bytes unless
// FixedOffset is set.
type Tensor struct {
	Name        string
	Dims        []uint64
	Type        uint32
	Data        []byte
	Offset      uint64
	FixedOffset bool
}

// Raw is a metadata value written with an explicit type tag and payload.
type Raw struct {
	Type    uint32
	Payload []byte
}

// KV appends a metadata entry. Values: uint8, int8, uint16, int16, uint32,
// int32, float32, bool, string, uint64, int64, float64, a slice of one of
// them, []any of slices (an array of arrays), or Raw.
func (b *Builder) KV(key string, value any) { b.kvs = append(b.kvs, kv{key, value}) }

// Set replaces the value of an entry added with KV, or appends one.
func (b *Builder) Set(key string, value any) {
	for i := range b.kvs {
		if b.kvs[i].key == key {
			b.kvs[i].value = value
			return
		}
	}
	b.KV(key, value)
}

// Get returns the value of an entry added with KV.
func (b *Builder) Get(key string) (any, bool) {
	for _, e := range b.kvs {
		if e.key == key {
			return e.value, true
		}
	}
	return nil, false
}

// Remove drops the entry or the tensor of that name.
func (b *Builder) Remove(name string) {
	b.kvs = slices.DeleteFunc(b.kvs, func(e kv) bool { return e.key == name })
	b.tensors = slices.DeleteFunc(b.tensors, func(t Tensor) bool { return t.Name == name })
}

// Add appends a tensor.
func (b *Builder) Add(t Tensor) { b.tensors = append(b.tensors, t) }

// Bytes encodes the file: header, metadata, tensor infos, padding, data.
func (b *Builder) Bytes() []byte {
	version := b.Version
	if version == 0 {
		version = 3
	}
	align := b.Alignment
	if align == 0 {
		align = 32
	}
	out := []byte("GGUF")
	out = binary.LittleEndian.AppendUint32(out, version)
	out = binary.LittleEndian.AppendUint64(out, uint64(len(b.tensors)))
	out = binary.LittleEndian.AppendUint64(out, uint64(len(b.kvs)))
	for _, e := range b.kvs {
		out = appendString(out, e.key)
		out = appendValue(out, e.value, true)
	}
	var offset uint64
	for i := range b.tensors {
		t := &b.tensors[i]
		if !t.FixedOffset {
			t.Offset = offset
			offset = pad(offset+uint64(len(t.Data)), align)
		}
		out = appendString(out, t.Name)
		out = binary.LittleEndian.AppendUint32(out, uint32(len(t.Dims)))
		for _, d := range t.Dims {
			out = binary.LittleEndian.AppendUint64(out, d)
		}
		out = binary.LittleEndian.AppendUint32(out, t.Type)
		out = binary.LittleEndian.AppendUint64(out, t.Offset)
	}
	dataStart := pad(uint64(len(out)), align)
	out = append(out, make([]byte, dataStart-uint64(len(out)))...)
	for _, t := range b.tensors {
		if len(t.Data) == 0 {
			continue
		}
		end := dataStart + t.Offset + uint64(len(t.Data))
		if uint64(len(out)) < end {
			out = append(out, make([]byte, end-uint64(len(out)))...)
		}
		copy(out[dataStart+t.Offset:], t.Data)
	}
	return out
}

func pad(n, align uint64) uint64 { return (n + align - 1) / align * align }

func appendString(out []byte, s string) []byte {
	out = binary.LittleEndian.AppendUint64(out, uint64(len(s)))
	return append(out, s...)
}

// appendValue writes a value, preceded by its type tag when tagged.
func appendValue(out []byte, v any, tagged bool) []byte {
	tag := func(t uint32) {
		if tagged {
			out = binary.LittleEndian.AppendUint32(out, t)
		}
	}
	le := binary.LittleEndian
	switch v := v.(type) {
	case Raw:
		tag(v.Type)
		return append(out, v.Payload...)
	case uint8:
		tag(0)
		return append(out, v)
	case int8:
		tag(1)
		return append(out, byte(v))
	case uint16:
		tag(2)
		return le.AppendUint16(out, v)
	case int16:
		tag(3)
		return le.AppendUint16(out, uint16(v))
	case uint32:
		tag(4)
		return le.AppendUint32(out, v)
	case int32:
		tag(5)
		return le.AppendUint32(out, uint32(v))
	case float32:
		tag(6)
		return le.AppendUint32(out, math.Float32bits(v))
	case bool:
		tag(7)
		if v {
			return append(out, 1)
		}
		return append(out, 0)
	case string:
		tag(8)
		return appendString(out, v)
	case uint64:
		tag(10)
		return le.AppendUint64(out, v)
	case int64:
		tag(11)
		return le.AppendUint64(out, uint64(v))
	case float64:
		tag(12)
		return le.AppendUint64(out, math.Float64bits(v))
	case []uint8:
		return appendArray(out, tagged, 0, v)
	case []int8:
		return appendArray(out, tagged, 1, v)
	case []uint16:
		return appendArray(out, tagged, 2, v)
	case []int16:
		return appendArray(out, tagged, 3, v)
	case []uint32:
		return appendArray(out, tagged, 4, v)
	case []int32:
		return appendArray(out, tagged, 5, v)
	case []float32:
		return appendArray(out, tagged, 6, v)
	case []bool:
		return appendArray(out, tagged, 7, v)
	case []string:
		return appendArray(out, tagged, 8, v)
	case []uint64:
		return appendArray(out, tagged, 10, v)
	case []int64:
		return appendArray(out, tagged, 11, v)
	case []float64:
		return appendArray(out, tagged, 12, v)
	case []any:
		return appendArray(out, tagged, 9, v)
	}
	panic(fmt.Sprintf("ggufbuild: unsupported value %T", v))
}

func appendArray[T any](out []byte, tagged bool, elem uint32, values []T) []byte {
	if tagged {
		out = binary.LittleEndian.AppendUint32(out, 9)
	}
	out = binary.LittleEndian.AppendUint32(out, elem)
	out = binary.LittleEndian.AppendUint64(out, uint64(len(values)))
	for _, x := range values {
		// Elements of an array of arrays carry their own element type and
		// count but no type tag of their own: the outer element type says
		// array.
		out = appendValue(out, x, false)
	}
	return out
}

// F32 encodes float32 values.
func F32(values []float32) []byte {
	out := make([]byte, 0, 4*len(values))
	for _, v := range values {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
	}
	return out
}

// Halves encodes 16-bit patterns (F16 or BF16 values).
func Halves(bits []uint16) []byte {
	out := make([]byte, 0, 2*len(bits))
	for _, h := range bits {
		out = binary.LittleEndian.AppendUint16(out, h)
	}
	return out
}

// Q8_0 quantizes values (a multiple of 32) as ggml does: per block of 32,
// d = max|x|/127 stored as fp16 (toF16), q = round(x/d).
func Q8_0(values []float32, toF16 func(float32) uint16, fromF16 func(uint16) float32) []byte {
	var out []byte
	for b := 0; b+32 <= len(values); b += 32 {
		blk := values[b : b+32]
		amax := float32(0)
		for _, v := range blk {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		d := amax / 127
		h := toF16(d)
		out = binary.LittleEndian.AppendUint16(out, h)
		inv := float32(0)
		if d != 0 {
			inv = 1 / d
		}
		for _, v := range blk {
			out = append(out, byte(int8(math.Round(float64(v*inv)))))
		}
	}
	return out
}

// PermuteQK reorders the rows of a [heads*headDim, cols] projection from
// HF's rotate-half order to llama.cpp's interleaved order, the way
// llama.cpp's converter does: view the rows as [heads, 2, headDim/2],
// swap the last two axes.
func PermuteQK[T any](w []T, heads, cols int) []T {
	rows := len(w) / cols
	headDim := rows / heads
	out := make([]T, 0, len(w))
	for h := range heads {
		for i := range headDim / 2 {
			for half := range 2 {
				src := h*headDim + half*headDim/2 + i
				out = append(out, w[src*cols:(src+1)*cols]...)
			}
		}
	}
	return slices.Clip(out)
}
