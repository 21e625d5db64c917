package gguf

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/salr-go/salr/internal/ggufbuild"
	"github.com/salr-go/salr/kernels"
)

// sampleBuilder holds every metadata value type, arrays and an array of
// arrays, and one tensor of each supported type.
func sampleBuilder(version uint32) *ggufbuild.Builder {
	b := &ggufbuild.Builder{Version: version, Alignment: 64}
	b.KV("general.architecture", "llama")
	b.KV("general.alignment", uint32(64))
	b.KV("t.u8", uint8(200))
	b.KV("t.i8", int8(-100))
	b.KV("t.u16", uint16(60000))
	b.KV("t.i16", int16(-30000))
	b.KV("t.u32", uint32(4000000000))
	b.KV("t.i32", int32(-2000000000))
	b.KV("t.f32", float32(1.5))
	b.KV("t.bool", true)
	b.KV("t.str", "héllo")
	b.KV("t.u64", uint64(1)<<60)
	b.KV("t.i64", int64(-1)<<60)
	b.KV("t.f64", 2.25)
	b.KV("t.strs", []string{"a", "", "▁b"})
	b.KV("t.i32s", []int32{1, -2, 3})
	b.KV("t.f32s", []float32{0.5, -1})
	b.KV("t.bools", []bool{true, false})
	b.KV("t.u8s", []uint8{})
	b.KV("t.nested", []any{[]uint32{1, 2}, []string{"x"}, []any{[]int8{-1}}})
	f32 := []float32{1, -2, 3.5, 0, 1e-3, 7, -8, 9}
	b.Add(ggufbuild.Tensor{Name: "f32", Dims: []uint64{4, 2}, Type: 0, Data: ggufbuild.F32(f32)})
	b.Add(ggufbuild.Tensor{Name: "f16", Dims: []uint64{3}, Type: 1, Data: ggufbuild.Halves([]uint16{0x3c00, 0xc000, 0x3800})}) // 1, -2, 0.5
	b.Add(ggufbuild.Tensor{Name: "bf16", Dims: []uint64{2}, Type: 30, Data: ggufbuild.Halves([]uint16{0x3f80, 0xc040})})       // 1, -3
	q := make([]float32, 64)
	for i := range q {
		q[i] = float32(i-30) / 8
	}
	b.Add(ggufbuild.Tensor{Name: "q8", Dims: []uint64{32, 2}, Type: 8, Data: ggufbuild.Q8_0(q, kernels.Float32ToF16, kernels.F16ToFloat32)})
	return b
}

func TestParseAllValueTypesAndTensors(t *testing.T) {
	for _, version := range []uint32{2, 3} {
		data := sampleBuilder(version).Bytes()
		f, err := Parse(data, "sample.gguf")
		if err != nil {
			t.Fatalf("version %d: %v", version, err)
		}
		if f.Version != version || f.Alignment != 64 || f.DataOffset%64 != 0 {
			t.Errorf("version %d alignment %d data offset %d", f.Version, f.Alignment, f.DataOffset)
		}
		want := map[string]any{
			"general.architecture": "llama", "general.alignment": uint32(64),
			"t.u8": uint8(200), "t.i8": int8(-100), "t.u16": uint16(60000), "t.i16": int16(-30000),
			"t.u32": uint32(4000000000), "t.i32": int32(-2000000000), "t.f32": float32(1.5), "t.bool": true,
			"t.str": "héllo", "t.u64": uint64(1) << 60, "t.i64": int64(-1) << 60, "t.f64": 2.25,
			"t.strs": []string{"a", "", "▁b"}, "t.i32s": []int32{1, -2, 3}, "t.f32s": []float32{0.5, -1},
			"t.bools": []bool{true, false}, "t.u8s": []uint8{},
			"t.nested": []Array{
				{Elem: TypeUint32, Values: []any{uint32(1), uint32(2)}},
				{Elem: TypeString, Values: []any{"x"}},
				{Elem: TypeArray, Values: []any{Array{Elem: TypeInt8, Values: []any{int8(-1)}}}},
			},
		}
		if len(f.KVs) != len(want) {
			t.Errorf("%d entries, want %d", len(f.KVs), len(want))
		}
		for key, w := range want {
			got, ok := f.Lookup(key)
			if !ok || !reflect.DeepEqual(got, w) {
				t.Errorf("version %d: %s = %#v, want %#v", version, key, got, w)
			}
		}
		if f.KVs[0].Key != "general.architecture" || f.KVs[len(f.KVs)-1].Key != "t.nested" {
			t.Error("entries are not in file order")
		}
		checkFloats := func(name string, want []float32) {
			t.Helper()
			got, err := f.Float32(name)
			if err != nil || !slices.Equal(got, want) {
				t.Errorf("%s = %v (%v), want %v", name, got, err, want)
			}
		}
		checkFloats("f32", []float32{1, -2, 3.5, 0, 1e-3, 7, -8, 9})
		checkFloats("f16", []float32{1, -2, 0.5})
		checkFloats("bf16", []float32{1, -3})
		// Q8_0, dequantized independently from the encoded blocks.
		raw, _ := f.TensorBytes("q8")
		var wantQ []float32
		for b := 0; b < 2; b++ {
			blk := raw[b*34 : (b+1)*34]
			d := kernels.F16ToFloat32(binary.LittleEndian.Uint16(blk))
			for _, q := range blk[2:] {
				wantQ = append(wantQ, d*float32(int8(q)))
			}
		}
		checkFloats("q8", wantQ)
		got, _ := f.Float32("q8")
		for i, v := range got { // and close to the quantized values
			if x := float32(i-30) / 8; math.Abs(float64(v-x)) > 0.02 {
				t.Fatalf("q8[%d] = %v, want about %v", i, v, x)
			}
		}
		if bits, err := f.BF16("bf16"); err != nil || !slices.Equal(bits, []uint16{0x3f80, 0xc040}) {
			t.Errorf("BF16 view %x %v", bits, err)
		}
		if _, err := f.BF16("f16"); err == nil || !strings.Contains(err.Error(), `"f16" is F16`) {
			t.Errorf("BF16 of an F16 tensor: %v", err)
		}
		if info, _ := f.Tensor("q8"); !slices.Equal(info.Dims, []uint64{32, 2}) || info.Type != Q8_0 || info.Size() != 68 {
			t.Errorf("q8 info %+v", info)
		}
	}
}

func TestOpenMapsTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := os.WriteFile(path, sampleBuilder(3).Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := f.Float32("f32")
	if err != nil || v[2] != 3.5 {
		t.Fatalf("%v %v", v, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Float32("f32"); err == nil || !strings.Contains(err.Error(), "after Close") {
		t.Errorf("reading after Close: %v", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing.gguf")); err == nil {
		t.Error("opening a missing file succeeded")
	}
}

func TestTypedGetters(t *testing.T) {
	f, err := Parse(sampleBuilder(3).Bytes(), "s.gguf")
	if err != nil {
		t.Fatal(err)
	}
	if v, ok, err := f.Uint("t.u16"); v != 60000 || !ok || err != nil {
		t.Errorf("Uint(t.u16) = %v %v %v", v, ok, err)
	}
	if _, _, err := f.Uint("t.i8"); err == nil || !strings.Contains(err.Error(), `"t.i8": -100 is negative`) {
		t.Errorf("Uint(t.i8): %v", err)
	}
	if _, _, err := f.Uint("t.str"); err == nil || !strings.Contains(err.Error(), `"t.str": want an integer, got a string`) {
		t.Errorf("Uint(t.str): %v", err)
	}
	if _, ok, err := f.Uint("absent"); ok || err != nil {
		t.Error("absent key found")
	}
	if v, _, err := f.Float("t.f32"); v != 1.5 || err != nil {
		t.Errorf("Float %v %v", v, err)
	}
	if _, _, err := f.Float("t.u8"); err == nil {
		t.Error("Float of a uint8 succeeded")
	}
	if v, _, err := f.String("t.str"); v != "héllo" || err != nil {
		t.Errorf("String %v %v", v, err)
	}
	if v, _, err := f.Bool("t.bool"); !v || err != nil {
		t.Errorf("Bool %v %v", v, err)
	}
}

// minimal is a valid file with one F32 tensor [32, 2] at offset 0.
func minimal() *ggufbuild.Builder {
	b := &ggufbuild.Builder{}
	b.KV("general.architecture", "llama")
	b.Add(ggufbuild.Tensor{Name: "w", Dims: []uint64{32, 2}, Type: 0, Data: make([]byte, 256)})
	return b
}

func TestParseRejectsMalformedFiles(t *testing.T) {
	u64 := func(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
	u32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	cases := []struct {
		name  string
		build func() []byte
		want  string
	}{
		{"bad magic", func() []byte { d := minimal().Bytes(); copy(d, "GGML"); return d }, `not a GGUF file (the first bytes are "GGML"`},
		{"empty", func() []byte { return nil }, "not a GGUF file"},
		{"version 1", func() []byte { b := minimal(); b.Version = 1; return b.Bytes() }, "version 1 is not supported"},
		{"version 4", func() []byte { b := minimal(); b.Version = 4; return b.Bytes() }, "version 4 is not supported"},
		{"big endian", func() []byte { b := minimal(); b.Version = 3 << 24; return b.Bytes() }, "big-endian"},
		{"huge metadata count", func() []byte {
			d := minimal().Bytes()
			binary.LittleEndian.PutUint64(d[16:], 1<<62)
			return d
		}, "metadata count 4611686018427387904 cannot fit"},
		{"huge tensor count", func() []byte {
			d := minimal().Bytes()
			binary.LittleEndian.PutUint64(d[8:], 1<<40)
			return d
		}, "tensor count 1099511627776 cannot fit"},
		{"huge string length", func() []byte {
			b := minimal()
			b.KV("k", ggufbuild.Raw{Type: 8, Payload: u64(1 << 50)})
			return b.Bytes()
		}, `metadata key "k": string at offset`},
		{"huge array", func() []byte {
			b := minimal()
			b.KV("tokenizer.ggml.tokens", ggufbuild.Raw{Type: 9, Payload: append(u32(8), u64(1<<59)...)})
			return b.Bytes()
		}, `metadata key "tokenizer.ggml.tokens": array of 576460752303423488 string values cannot fit`},
		{"duplicate key", func() []byte { b := minimal(); b.KV("general.architecture", "x"); return b.Bytes() }, `metadata key "general.architecture" appears twice`},
		{"unknown value type", func() []byte { b := minimal(); b.KV("k", ggufbuild.Raw{Type: 13}); return b.Bytes() }, `metadata key "k": unknown value type 13`},
		{"unknown array type", func() []byte {
			b := minimal()
			b.KV("k", ggufbuild.Raw{Type: 9, Payload: append(u32(99), u64(1)...)})
			return b.Bytes()
		}, `metadata key "k": array of unknown value type 99`},
		{"bad bool", func() []byte { b := minimal(); b.KV("k", ggufbuild.Raw{Type: 7, Payload: []byte{2}}); return b.Bytes() }, `metadata key "k": bool value 2`},
		{"bad utf8", func() []byte { b := minimal(); b.KV("k", string([]byte{0xff})); return b.Bytes() }, `metadata key "k": string at offset`},
		{"deep nesting", func() []byte {
			var v any = []uint8{1}
			for range 10 {
				v = []any{v}
			}
			b := minimal()
			b.KV("k", v)
			return b.Bytes()
		}, "nested more than 8 deep"},
		{"alignment type", func() []byte { b := minimal(); b.KV("general.alignment", uint64(32)); return b.Bytes() }, `"general.alignment": want a uint32, got a uint64`},
		{"alignment value", func() []byte { b := minimal(); b.KV("general.alignment", uint32(12)); return b.Bytes() }, "alignment 12 is not a positive multiple of 8"},
		{"duplicate tensor", func() []byte {
			b := minimal()
			b.Add(ggufbuild.Tensor{Name: "w", Dims: []uint64{8}, Type: 0, Data: make([]byte, 32)})
			return b.Bytes()
		}, `tensor "w" appears twice`},
		{"unknown tensor type", func() []byte {
			b := minimal()
			b.Add(ggufbuild.Tensor{Name: "blk.0.attn_q.weight", Dims: []uint64{256}, Type: 12, Data: make([]byte, 144)})
			return b.Bytes()
		}, `tensor "blk.0.attn_q.weight": tensor type Q4_K is not supported`},
		{"unnamed type", func() []byte {
			b := minimal()
			b.Add(ggufbuild.Tensor{Name: "x", Dims: []uint64{8}, Type: 77, Data: make([]byte, 32)})
			return b.Bytes()
		}, `tensor "x": tensor type ggml type 77 is not supported`},
		{"q8_0 partial block", func() []byte {
			b := minimal()
			b.Add(ggufbuild.Tensor{Name: "q", Dims: []uint64{16, 2}, Type: 8, Data: make([]byte, 34)})
			return b.Bytes()
		}, `tensor "q": Q8_0 rows of 16 values are not whole 32-value blocks`},
		{"zero dimension", func() []byte {
			b := minimal()
			b.Add(ggufbuild.Tensor{Name: "z", Dims: []uint64{4, 0}, Type: 0})
			return b.Bytes()
		}, `tensor "z": dimension 1 is 0`},
		{"five dimensions", func() []byte {
			b := minimal()
			b.Add(ggufbuild.Tensor{Name: "d5", Dims: []uint64{1, 1, 1, 1, 1}, Type: 0, Data: make([]byte, 4)})
			return b.Bytes()
		}, `tensor "d5": 5 dimensions`},
		{"dims overflow", func() []byte {
			b := minimal()
			b.Add(ggufbuild.Tensor{Name: "big", Dims: []uint64{1 << 32, 1 << 32, 1 << 32}, Type: 0})
			return b.Bytes()
		}, `tensor "big": dimensions [4294967296 4294967296]: too many elements`},
		{"long name", func() []byte {
			b := minimal()
			b.Add(ggufbuild.Tensor{Name: strings.Repeat("n", 65), Dims: []uint64{8}, Type: 0, Data: make([]byte, 32)})
			return b.Bytes()
		}, "has 65 bytes (want 1 to 64)"},
		{"misaligned offset", func() []byte {
			b := minimal()
			b.Add(ggufbuild.Tensor{Name: "m", Dims: []uint64{8}, Type: 0, Data: make([]byte, 32), Offset: 260, FixedOffset: true})
			return b.Bytes()
		}, `tensor "m": offset 260 is not a multiple of the alignment 32`},
		{"overlap", func() []byte {
			b := minimal()
			b.Add(ggufbuild.Tensor{Name: "o", Dims: []uint64{8}, Type: 0, Data: make([]byte, 32), Offset: 224, FixedOffset: true})
			return b.Bytes()
		}, `tensor "o": data at offset 224 overlaps tensor "w", which ends at 256`},
		{"past the end", func() []byte {
			b := minimal()
			b.Add(ggufbuild.Tensor{Name: "e", Dims: []uint64{8}, Type: 0, Offset: 1 << 40, FixedOffset: true})
			return b.Bytes()
		}, `tensor "e": data [1099511627776, 1099511627808) of the data section runs past the end`},
		{"truncated data", func() []byte { d := minimal().Bytes(); return d[:len(d)-1] }, `tensor "w": data [0, 256) of the data section runs past the end`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(c.build(), "bad.gguf")
			if err == nil {
				t.Fatal("parsed without error")
			}
			if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "gguf: bad.gguf: ") {
				t.Fatalf("error %q\nwant it to contain %q", err, c.want)
			}
		})
	}
}

// TestParseEveryTruncation: each proper prefix of a valid file is an error,
// never a panic.
func TestParseEveryTruncation(t *testing.T) {
	data := sampleBuilder(3).Bytes()
	for n := range len(data) {
		if _, err := Parse(data[:n], "cut.gguf"); err == nil {
			t.Fatalf("the first %d of %d bytes parsed without error", n, len(data))
		}
	}
}

func TestDequantizeQ8_0RejectsBadInput(t *testing.T) {
	if _, err := DequantizeQ8_0(make([]byte, 33)); err == nil {
		t.Error("33 bytes accepted")
	}
	blk := make([]byte, 34)
	binary.LittleEndian.PutUint16(blk, 0x7c00) // +Inf scale
	if _, err := DequantizeQ8_0(blk); err == nil || !strings.Contains(err.Error(), "scale +Inf") {
		t.Errorf("infinite scale: %v", err)
	}
}

// FuzzParse: no input panics the parser or the tensor readers, and a file
// that parses has every tensor inside the data and readable.
func FuzzParse(f *testing.F) {
	f.Add(sampleBuilder(3).Bytes())
	f.Add(sampleBuilder(2).Bytes())
	f.Add(minimal().Bytes())
	f.Add([]byte("GGUF"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data, "fuzz.gguf")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "gguf: fuzz.gguf: ") {
				t.Fatalf("error without the file name: %v", err)
			}
			return
		}
		for _, info := range file.Tensors {
			if file.DataOffset+info.Offset+info.Size() > uint64(len(data)) {
				t.Fatalf("tensor %q past the end", info.Name)
			}
			if _, err := file.Float32(info.Name); err != nil && !strings.Contains(err.Error(), info.Name) {
				t.Fatalf("error without the tensor name: %v", err)
			}
		}
	})
}

// BenchmarkDequantizeQ8_0 measures Q8_0 -> float32 on 4M values.
func BenchmarkDequantizeQ8_0(b *testing.B) {
	values := make([]float32, 1<<22)
	for i := range values {
		values[i] = float32(i%977) / 100
	}
	raw := ggufbuild.Q8_0(values, kernels.Float32ToF16, kernels.F16ToFloat32)
	b.SetBytes(int64(len(raw)))
	b.ResetTimer()
	for range b.N {
		if _, err := DequantizeQ8_0(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func TestHasExtension(t *testing.T) {
	for path, want := range map[string]bool{"m.gguf": true, "/x/M.GGUF": true, ".gguf": true, "gguf": false, "m.gguf.bin": false, "dir/": false, "": false} {
		if HasExtension(path) != want {
			t.Errorf("HasExtension(%q) = %v", path, !want)
		}
	}
}
