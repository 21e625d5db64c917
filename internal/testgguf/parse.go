// Package testgguf is a GGUF parser for tests only, written separately from
// package model/gguf straight from the GGUF specification (ggml's
// docs/gguf.md), so that tests of the writer do not read its output with its
// own code. It decodes a whole file held in memory and checks what the
// specification requires: the magic, version 3, the alignment of the data
// section and of every tensor, tensor data inside the file.
package testgguf

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Tensor is one tensor of a parsed file.
type Tensor struct {
	Name   string
	Dims   []uint64 // GGML order: Dims[0] is the row length
	Type   uint32   // ggml_type
	Offset uint64   // from the start of the data section
	Data   []byte   // the tensor's bytes
}

// File is a parsed GGUF file.
type File struct {
	Version   uint32
	Keys      []string       // metadata keys in file order
	KV        map[string]any // uint8 ... float64, string, bool; arrays as []any
	Types     map[string]uint32
	Tensors   []Tensor
	Alignment uint64
	DataStart uint64
}

// Tensor returns the tensor called name.
func (f *File) Tensor(name string) (Tensor, bool) {
	for _, t := range f.Tensors {
		if t.Name == name {
			return t, true
		}
	}
	return Tensor{}, false
}

type reader struct {
	b   []byte
	pos uint64
	err error
}

func (r *reader) take(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b))-r.pos {
		r.err = fmt.Errorf("truncated at byte %d (want %d more)", r.pos, n)
		return nil
	}
	s := r.b[r.pos : r.pos+n]
	r.pos += n
	return s
}

func (r *reader) u32() uint32 {
	s := r.take(4)
	if s == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(s)
}

func (r *reader) u64() uint64 {
	s := r.take(8)
	if s == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(s)
}

func (r *reader) str() string { return string(r.take(r.u64())) }

// scalar sizes by type tag (strings and arrays aside).
var scalarSize = map[uint32]uint64{0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

func (r *reader) value(typ uint32, depth int) any {
	switch typ {
	case 8:
		return r.str()
	case 9:
		if depth > 2 {
			r.err = fmt.Errorf("arrays nested too deep")
			return nil
		}
		elem, n := r.u32(), r.u64()
		if r.err != nil || n > uint64(len(r.b)) {
			r.err = fmt.Errorf("bad array of %d elements", n)
			return nil
		}
		out := make([]any, 0, n)
		for i := uint64(0); i < n && r.err == nil; i++ {
			out = append(out, r.value(elem, depth+1))
		}
		return out
	}
	size, ok := scalarSize[typ]
	if !ok {
		r.err = fmt.Errorf("unknown value type %d", typ)
		return nil
	}
	s := r.take(size)
	if s == nil {
		return nil
	}
	switch typ {
	case 0:
		return s[0]
	case 1:
		return int8(s[0])
	case 2:
		return binary.LittleEndian.Uint16(s)
	case 3:
		return int16(binary.LittleEndian.Uint16(s))
	case 4:
		return binary.LittleEndian.Uint32(s)
	case 5:
		return int32(binary.LittleEndian.Uint32(s))
	case 6:
		return math.Float32frombits(binary.LittleEndian.Uint32(s))
	case 7:
		if s[0] > 1 {
			r.err = fmt.Errorf("bool byte %d", s[0])
		}
		return s[0] == 1
	case 10:
		return binary.LittleEndian.Uint64(s)
	case 11:
		return int64(binary.LittleEndian.Uint64(s))
	default:
		return math.Float64frombits(binary.LittleEndian.Uint64(s))
	}
}

// blockBytes gives, per ggml type this parser knows, the values per block
// and the bytes per block.
var blockBytes = map[uint32][2]uint64{0: {1, 4}, 1: {1, 2}, 30: {1, 2}, 8: {32, 34}}

// Parse decodes a GGUF v3 file.
func Parse(b []byte) (*File, error) {
	r := &reader{b: b}
	if string(r.take(4)) != "GGUF" {
		return nil, fmt.Errorf("not a GGUF file")
	}
	f := &File{KV: map[string]any{}, Types: map[string]uint32{}, Alignment: 32}
	f.Version = r.u32()
	if f.Version != 3 {
		return nil, fmt.Errorf("version %d", f.Version)
	}
	nTensors, nKV := r.u64(), r.u64()
	for i := uint64(0); i < nKV && r.err == nil; i++ {
		key := r.str()
		typ := r.u32()
		v := r.value(typ, 0)
		if _, dup := f.KV[key]; dup {
			return nil, fmt.Errorf("key %q twice", key)
		}
		f.Keys = append(f.Keys, key)
		f.KV[key] = v
		f.Types[key] = typ
	}
	if a, ok := f.KV["general.alignment"]; ok {
		u, ok := a.(uint32)
		if !ok || u == 0 {
			return nil, fmt.Errorf("general.alignment %v", a)
		}
		f.Alignment = uint64(u)
	}
	for i := uint64(0); i < nTensors && r.err == nil; i++ {
		var t Tensor
		t.Name = r.str()
		nd := r.u32()
		if nd == 0 || nd > 4 {
			return nil, fmt.Errorf("tensor %q: %d dims", t.Name, nd)
		}
		for range nd {
			t.Dims = append(t.Dims, r.u64())
		}
		t.Type = r.u32()
		t.Offset = r.u64()
		f.Tensors = append(f.Tensors, t)
	}
	if r.err != nil {
		return nil, r.err
	}
	f.DataStart = (r.pos + f.Alignment - 1) / f.Alignment * f.Alignment
	for i := range f.Tensors {
		t := &f.Tensors[i]
		bb, ok := blockBytes[t.Type]
		if !ok {
			return nil, fmt.Errorf("tensor %q: type %d", t.Name, t.Type)
		}
		n := uint64(1)
		for _, d := range t.Dims {
			n *= d
		}
		if t.Dims[0]%bb[0] != 0 {
			return nil, fmt.Errorf("tensor %q: row of %d not whole blocks", t.Name, t.Dims[0])
		}
		size := n / bb[0] * bb[1]
		if t.Offset%f.Alignment != 0 {
			return nil, fmt.Errorf("tensor %q: offset %d not aligned to %d", t.Name, t.Offset, f.Alignment)
		}
		start := f.DataStart + t.Offset
		if start+size > uint64(len(b)) {
			return nil, fmt.Errorf("tensor %q: data past the end of the file", t.Name)
		}
		t.Data = b[start : start+size]
	}
	return f, nil
}

// Float32 decodes a tensor's data (F32, F16, BF16 or Q8_0) to float32.
func (t Tensor) Float32() ([]float32, error) {
	var out []float32
	switch t.Type {
	case 0:
		for i := 0; i+4 <= len(t.Data); i += 4 {
			out = append(out, math.Float32frombits(binary.LittleEndian.Uint32(t.Data[i:])))
		}
	case 1:
		for i := 0; i+2 <= len(t.Data); i += 2 {
			out = append(out, halfToFloat(binary.LittleEndian.Uint16(t.Data[i:])))
		}
	case 30:
		for i := 0; i+2 <= len(t.Data); i += 2 {
			out = append(out, math.Float32frombits(uint32(binary.LittleEndian.Uint16(t.Data[i:]))<<16))
		}
	case 8:
		for i := 0; i+34 <= len(t.Data); i += 34 {
			d := halfToFloat(binary.LittleEndian.Uint16(t.Data[i:]))
			for _, q := range t.Data[i+2 : i+34] {
				out = append(out, d*float32(int8(q)))
			}
		}
	default:
		return nil, fmt.Errorf("tensor %q: type %d", t.Name, t.Type)
	}
	return out, nil
}

// halfToFloat decodes an IEEE binary16 value.
func halfToFloat(h uint16) float32 {
	sign := float32(1)
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	frac := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * float32(math.Ldexp(frac, -24))
	case 31:
		if frac != 0 {
			return float32(math.NaN())
		}
		return sign * float32(math.Inf(1))
	}
	return sign * float32(math.Ldexp(1+frac/1024, exp-15))
}
