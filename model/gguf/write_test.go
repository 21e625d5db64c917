package gguf

import (
	"bytes"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/salr-go/salr/internal/testgguf"
)

// TestStreamIsReadByAnIndependentParser writes metadata of every value
// type and tensors of every type and reads them back with a parser written
// separately from the specification.
func TestStreamIsReadByAnIndependentParser(t *testing.T) {
	kvs := []KV{
		{"general.architecture", "llama"},
		{AlignmentKey, uint32(64)},
		{"u8", uint8(200)}, {"i8", int8(-3)}, {"u16", uint16(60000)}, {"i16", int16(-300)},
		{"u32", uint32(1 << 31)}, {"i32", int32(-70000)}, {"f32", float32(1.5)}, {"b", true},
		{"u64", uint64(1 << 40)}, {"i64", int64(-1 << 40)}, {"f64", 0.125},
		{"tokens", []string{"a", "", "ü"}}, {"scores", []float32{-1, 0.5}}, {"types", []int32{1, 6}},
		{"nested", []Array{{Elem: TypeUint32, Values: []any{uint32(1), uint32(2)}}}},
	}
	vals := make([]float32, 64*3)
	for i := range vals {
		vals[i] = float32(math.Sin(float64(i))) * 3
	}
	infos := []TensorInfo{
		{Name: "a", Dims: []uint64{5}, Type: F32},
		{Name: "b", Dims: []uint64{64, 3}, Type: F16},
		{Name: "c", Dims: []uint64{64, 3}, Type: BF16},
		{Name: "d", Dims: []uint64{64, 3}, Type: Q8_0},
	}
	l, err := NewLayout(kvs, infos)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	err = l.Stream(&buf, func(ti TensorInfo, w io.Writer) error {
		n := 1
		for _, d := range ti.Dims {
			n *= int(d)
		}
		b, err := AppendTensorData(nil, vals[:n], ti.Type)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := testgguf.Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if uint64(buf.Len())%64 != 0 || f.Alignment != 64 {
		t.Errorf("file of %d bytes, alignment %d: want a multiple of 64", buf.Len(), f.Alignment)
	}
	for i, kv := range kvs {
		if f.Keys[i] != kv.Key {
			t.Fatalf("key %d is %q, want %q", i, f.Keys[i], kv.Key)
		}
	}
	want := map[string]any{"u8": uint8(200), "i8": int8(-3), "u16": uint16(60000), "i16": int16(-300),
		"u32": uint32(1 << 31), "i32": int32(-70000), "f32": float32(1.5), "b": true, "u64": uint64(1 << 40),
		"i64": int64(-1 << 40), "f64": 0.125, "tokens": []any{"a", "", "ü"}, "scores": []any{float32(-1), float32(0.5)},
		"types": []any{int32(1), int32(6)}, "nested": []any{[]any{uint32(1), uint32(2)}}}
	for k, v := range want {
		if !reflect.DeepEqual(f.KV[k], v) {
			t.Errorf("%s = %#v, want %#v", k, f.KV[k], v)
		}
	}
	if f.Types["nested"] != 9 || f.Types["f64"] != 12 {
		t.Errorf("types %v", f.Types)
	}
	for _, ti := range l.Tensors() {
		pt, ok := f.Tensor(ti.Name)
		if !ok || !reflect.DeepEqual(pt.Dims, ti.Dims) || pt.Type != uint32(ti.Type) || pt.Offset != ti.Offset {
			t.Fatalf("tensor %s: parsed %+v, written %+v", ti.Name, pt, ti)
		}
		got, err := pt.Float32()
		if err != nil {
			t.Fatal(err)
		}
		tol := map[TensorType]float64{F32: 0, F16: 1e-3, BF16: 8e-3, Q8_0: 0.6 / 127}[ti.Type] // Q8_0: half a step, plus the f16 rounding of the scale
		for i, g := range got {
			if d := math.Abs(float64(g - vals[i])); d > tol*3.01 {
				t.Fatalf("tensor %s[%d] = %v, want %v", ti.Name, i, g, vals[i])
			}
		}
	}
}

// TestQ8_0Block checks one block against its closed form: the largest
// magnitude maps to ±127 and the scale is max|x|/127.
func TestQ8_0Block(t *testing.T) {
	block := make([]float32, 32)
	for i := range block {
		block[i] = float32(i-16) / 4 // -4 ... 3.75
	}
	b, err := AppendTensorData(nil, block, Q8_0)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 34 || b[0] != 0x08 || b[1] != 0x28 { // f16(4/127) = 0x2808
		t.Fatalf("block % x", b[:2])
	}
	if int8(b[2]) != -127 || int8(b[2+16]) != 0 || int8(b[2+31]) != int8(math.Round(3.75*127/4)) {
		t.Errorf("quants %d %d %d", int8(b[2]), int8(b[18]), int8(b[33]))
	}
	zero, _ := AppendTensorData(nil, make([]float32, 32), Q8_0)
	if !bytes.Equal(zero, make([]byte, 34)) {
		t.Errorf("zero block % x", zero)
	}
	if _, err := AppendTensorData(nil, block[:31], Q8_0); err == nil {
		t.Error("31 values encoded as Q8_0")
	}
}

func TestLayoutRefusesBadInput(t *testing.T) {
	cases := []struct {
		kvs     []KV
		tensors []TensorInfo
		want    string
	}{
		{[]KV{{"k", 1}}, nil, `"k"`}, // int is not a GGUF type
		{[]KV{{"k", uint8(1)}, {"k", uint8(2)}}, nil, `"k" given twice`},
		{[]KV{{AlignmentKey, uint32(12)}}, nil, "multiple of 8"},
		{nil, []TensorInfo{{Name: "w", Dims: []uint64{31, 2}, Type: Q8_0}}, `"w"`},
		{nil, []TensorInfo{{Name: "w", Dims: []uint64{}, Type: F32}}, `"w" has 0 dimensions`},
		{nil, []TensorInfo{{Name: "w", Dims: []uint64{2}, Type: 2}}, "Q4_0"},
		{nil, []TensorInfo{{Name: "w", Dims: []uint64{2}, Type: F32}, {Name: "w", Dims: []uint64{2}, Type: F32}}, `"w" given twice`},
	}
	for _, c := range cases {
		_, err := NewLayout(c.kvs, c.tensors)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewLayout(%v, %v) = %v, want an error with %s", c.kvs, c.tensors, err, c.want)
		}
	}
	l, err := NewLayout(nil, []TensorInfo{{Name: "w", Dims: []uint64{3}, Type: F32}})
	if err != nil {
		t.Fatal(err)
	}
	err = l.Stream(io.Discard, func(TensorInfo, io.Writer) error { return nil })
	if err == nil || !strings.Contains(err.Error(), `"w": 0 bytes of data written`) {
		t.Errorf("short tensor data: %v", err)
	}
	err = l.Stream(io.Discard, func(_ TensorInfo, w io.Writer) error { _, err := w.Write(make([]byte, 16)); return err })
	if err == nil || !strings.Contains(err.Error(), `"w"`) {
		t.Errorf("long tensor data: %v", err)
	}
}
