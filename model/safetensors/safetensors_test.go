package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/salr-go/salr/kernels"
)

// rawFile assembles a safetensors file by hand: the length prefix, the
// header text exactly as given, then data. Independent of the writer.
func rawFile(header string, data []byte) []byte {
	out := make([]byte, 8, 8+len(header)+len(data))
	binary.LittleEndian.PutUint64(out, uint64(len(header)))
	out = append(out, header...)
	return append(out, data...)
}

func le32(values ...float32) []byte {
	out := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
	}
	return out
}

func le16(values ...uint16) []byte {
	out := make([]byte, 2*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint16(out[2*i:], v)
	}
	return out
}

func TestParseHandWrittenFile(t *testing.T) {
	// Keys out of order, extra whitespace, an unknown field and the
	// metadata last: all accepted by the reference implementation.
	header := `{ "w" : {"shape":[2,2], "dtype":"F32", "data_offsets":[0,16], "extra": 1},
	  "b": {"dtype":"BF16","shape":[3],"data_offsets":[16,22]},
	  "e": {"dtype":"I64","shape":[0,5],"data_offsets":[22,22]},
	  "__metadata__": {"format":"pt","note":"hand made"} }   `
	data := append(le32(1, -2, 3.5, 0.25), le16(0x3f80, 0xc000, 0x3e80)...)
	f, err := Parse(rawFile(header, data), "hand.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.Names(), []string{"b", "e", "w"}; !slices.Equal(got, want) {
		t.Fatalf("Names = %v, want %v", got, want)
	}
	info, ok := f.Info("w")
	if !ok || info.DType != F32 || !slices.Equal(info.Shape, []int{2, 2}) || info.Begin != 0 || info.End != 16 || info.NumElements() != 4 {
		t.Fatalf("Info(w) = %+v, %v", info, ok)
	}
	w, err := f.Float32("w")
	if err != nil || !slices.Equal(w, []float32{1, -2, 3.5, 0.25}) {
		t.Fatalf("Float32(w) = %v, %v", w, err)
	}
	b, err := f.Float32("b")
	if err != nil || !slices.Equal(b, []float32{1, -2, 0.25}) {
		t.Fatalf("Float32(b) = %v, %v", b, err)
	}
	if raw, err := f.Bytes("e"); err != nil || len(raw) != 0 {
		t.Fatalf("Bytes(e) = %v, %v", raw, err)
	}
	if _, err := f.Float32("e"); err == nil || !strings.Contains(err.Error(), "I64") {
		t.Fatalf("Float32 of an I64 tensor: err = %v", err)
	}
	if _, err := f.Bytes("nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("Bytes(missing): err = %v", err)
	}
	if md := f.Metadata(); md["note"] != "hand made" || md["format"] != "pt" || len(md) != 2 {
		t.Fatalf("Metadata = %v", md)
	}
}

func TestParseRejectsCorruptFiles(t *testing.T) {
	valid := `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`
	cases := []struct {
		name string
		file []byte
		want string // substring of the error
	}{
		{"empty", nil, "too short"},
		{"seven bytes", []byte{1, 2, 3, 4, 5, 6, 7}, "too short"},
		{"header past end", func() []byte {
			f := rawFile(valid, le32(1, 2))
			binary.LittleEndian.PutUint64(f, 1000)
			return f
		}(), "runs past the end"},
		{"huge header length", func() []byte {
			f := rawFile(valid, le32(1, 2))
			binary.LittleEndian.PutUint64(f, math.MaxUint64)
			return f
		}(), "exceeds the limit"},
		{"bad json", rawFile(`{"a":{"dtype":"F32",`, nil), "JSON"},
		{"not an object", rawFile(`[1,2]`, nil), "not a JSON object"},
		{"trailing garbage", rawFile(valid+`x`, le32(1, 2)), "after the JSON object"},
		{"invalid utf8", rawFile("{\"\xff\":1}", nil), "UTF-8"},
		{"duplicate key", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, le32(1, 2)), `"a" twice`},
		{"unknown dtype", rawFile(`{"a":{"dtype":"F8","shape":[2],"data_offsets":[0,2]}}`, []byte{1, 2}), `unknown dtype "F8"`},
		{"missing dtype", rawFile(`{"a":{"shape":[2],"data_offsets":[0,8]}}`, le32(1, 2)), `missing "dtype"`},
		{"missing offsets", rawFile(`{"a":{"dtype":"F32","shape":[2]}}`, le32(1, 2)), `missing "data_offsets"`},
		{"shape not ints", rawFile(`{"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}}`, le32(1, 2)), `"shape"`},
		{"negative dim", rawFile(`{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, le32(1, 2)), "negative dimension"},
		{"shape overflow", rawFile(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, le32(1, 2)), "too large"},
		{"reversed offsets", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}`, le32(1, 2)), "ordered pair"},
		{"three offsets", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}}`, le32(1, 2)), "3 values"},
		{"wrong byte count", rawFile(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, le32(1, 2)), "needs 12"},
		{"offsets past data", rawFile(valid, le32(1)), "run past the end of the data section"},
		{"overlap", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, le32(1, 2)), "overlaps"},
		{"gap", rawFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, le32(1, 2)), "unused"},
		{"trailing bytes", rawFile(valid, le32(1, 2, 3)), "cover 8 bytes but the data section has 12"},
		{"metadata not strings", rawFile(`{"__metadata__":{"n":1}}`, nil), "not a string"},
		{"metadata not object", rawFile(`{"__metadata__":[1]}`, nil), "not a JSON object"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(c.file, "bad.safetensors")
			if err == nil {
				t.Fatalf("Parse accepted a corrupt file")
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "bad.safetensors") {
				t.Fatalf("error %q should name the file and contain %q", err, c.want)
			}
		})
	}
}

func TestParseErrorsNameTheTensor(t *testing.T) {
	_, err := Parse(rawFile(`{"layers.0.w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, le32(1, 2)), "x.safetensors")
	if err == nil || !strings.Contains(err.Error(), `"layers.0.w"`) {
		t.Fatalf("err = %v, want it to name the tensor", err)
	}
}

func TestEncodeWritesTheReferenceHeader(t *testing.T) {
	var buf bytes.Buffer
	err := Encode(&buf, []Tensor{{Name: "a", DType: F32, Shape: []int{2}, Data: le32(1, 2)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	header := `{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`
	for len(header)%8 != 0 {
		header += " "
	}
	if want := rawFile(header, le32(1, 2)); !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("Encode wrote\n%q\nwant\n%q", buf.Bytes(), want)
	}
}

func TestEncodeParseRoundTripAlignsData(t *testing.T) {
	in := []Tensor{
		{Name: "z.bf16", DType: BF16, Shape: []int{3}, Data: le16(1, 2, 3)},
		{Name: "a.u8", DType: U8, Shape: []int{5}, Data: []byte{1, 2, 3, 4, 5}},
		{Name: "m.f32", DType: F32, Shape: []int{2, 3}, Data: le32(1, 2, 3, 4, 5, 6)},
		{Name: "s.f64", DType: F64, Shape: []int{}, Data: make([]byte, 8)},
		{Name: "e.i32", DType: I32, Shape: []int{0}, Data: []byte{}},
		{Name: `quote"and\slash`, DType: Bool, Shape: []int{1}, Data: []byte{1}},
	}
	var buf bytes.Buffer
	if err := Encode(&buf, in, map[string]string{"who": "test"}); err != nil {
		t.Fatal(err)
	}
	headerLen := binary.LittleEndian.Uint64(buf.Bytes())
	if (8+headerLen)%8 != 0 {
		t.Errorf("data section starts at %d, not 8-byte aligned", 8+headerLen)
	}
	f, err := Parse(buf.Bytes(), "rt")
	if err != nil {
		t.Fatal(err)
	}
	if md := f.Metadata(); md["format"] != "pt" || md["who"] != "test" {
		t.Errorf("Metadata = %v", md)
	}
	for _, want := range in {
		info, ok := f.Info(want.Name)
		if !ok {
			t.Fatalf("tensor %q lost", want.Name)
		}
		if info.DType != want.DType || !slices.Equal(info.Shape, want.Shape) {
			t.Errorf("%q: got %s %v, want %s %v", want.Name, info.DType, info.Shape, want.DType, want.Shape)
		}
		if info.Begin%int64(want.DType.Size()) != 0 {
			t.Errorf("%q starts at %d, not aligned to its %d-byte items", want.Name, info.Begin, want.DType.Size())
		}
		got, _ := f.Bytes(want.Name)
		if !bytes.Equal(got, want.Data) {
			t.Errorf("%q: bytes %v, want %v", want.Name, got, want.Data)
		}
	}
}

func TestEncodeRejectsBadTensors(t *testing.T) {
	cases := map[string][]Tensor{
		"wrong length": {{Name: "a", DType: F32, Shape: []int{2}, Data: make([]byte, 4)}},
		"duplicate":    {{Name: "a", DType: U8, Shape: []int{1}, Data: []byte{1}}, {Name: "a", DType: U8, Shape: []int{1}, Data: []byte{1}}},
		"bad dtype":    {{Name: "a", DType: "F8", Shape: []int{1}, Data: []byte{1}}},
		"negative":     {{Name: "a", DType: U8, Shape: []int{-1}, Data: nil}},
		"reserved":     {{Name: "__metadata__", DType: U8, Shape: []int{1}, Data: []byte{1}}},
	}
	for name, tensors := range cases {
		if err := Encode(&bytes.Buffer{}, tensors, nil); err == nil {
			t.Errorf("%s: Encode accepted it", name)
		}
	}
}

func TestFloat32Conversions(t *testing.T) {
	values := []float32{0, 1, -2.5, 3.14159, 1e-3, 65504, -1e-7}
	for _, dt := range []DType{F32, F64, BF16, F16} {
		raw, err := EncodeFloat32(values, dt)
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) != len(values)*dt.Size() {
			t.Fatalf("%s: %d bytes", dt, len(raw))
		}
		got, err := Float32FromBytes(raw, dt)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range values {
			var want float32
			switch dt {
			case F32, F64:
				want = v
			case BF16:
				want = kernels.BF16ToFloat32(kernels.Float32ToBF16(v))
			case F16:
				want = kernels.F16ToFloat32(kernels.Float32ToF16(v))
			}
			if got[i] != want {
				t.Errorf("%s: value %d = %v, want %v", dt, i, got[i], want)
			}
		}
	}
	if _, err := Float32FromBytes(make([]byte, 6), F32); err == nil {
		t.Error("6 bytes accepted as F32")
	}
	if _, err := EncodeFloat32(values, I32); err == nil {
		t.Error("EncodeFloat32 to I32 accepted")
	}
	if got := Float32View([]float32{1, 2}); !bytes.Equal(got, le32(1, 2)) {
		t.Errorf("Float32View = %v", got)
	}
}

func TestFloat32IsZeroCopyOnlyWhenAligned(t *testing.T) {
	var buf bytes.Buffer
	if err := Encode(&buf, []Tensor{{Name: "w", DType: F32, Shape: []int{2}, Data: le32(7, 8)}}, nil); err != nil {
		t.Fatal(err)
	}
	// Aligned: the result must alias the file's bytes.
	aligned := make([]byte, buf.Len()) // fresh allocations are 8-byte aligned
	copy(aligned, buf.Bytes())
	f, err := Parse(aligned, "aligned")
	if err != nil {
		t.Fatal(err)
	}
	v, _ := f.Float32("w")
	raw, _ := f.Bytes("w")
	if hostLittleEndian && unsafe.Pointer(&v[0]) != unsafe.Pointer(&raw[0]) {
		t.Error("aligned F32 was copied")
	}
	// Misaligned by one byte: must be a correct copy.
	shifted := make([]byte, buf.Len()+1)
	copy(shifted[1:], buf.Bytes())
	f, err = Parse(shifted[1:], "shifted")
	if err != nil {
		t.Fatal(err)
	}
	v, _ = f.Float32("w")
	raw, _ = f.Bytes("w")
	if unsafe.Pointer(&v[0]) == unsafe.Pointer(&raw[0]) || !slices.Equal(v, []float32{7, 8}) {
		t.Errorf("misaligned F32: %v (aliased: %v)", v, unsafe.Pointer(&v[0]) == unsafe.Pointer(&raw[0]))
	}
}

func TestParseDType(t *testing.T) {
	for in, want := range map[string]DType{"bf16": BF16, "BF16": BF16, "float32": F32, "f16": F16, "fp16": F16, "I8": I8} {
		if got, err := ParseDType(in); err != nil || got != want {
			t.Errorf("ParseDType(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseDType("f8"); err == nil {
		t.Error("f8 accepted")
	}
}

func TestWriteOpenRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	bf, _ := EncodeFloat32([]float32{0.5, -1}, BF16)
	tensors := []Tensor{
		{Name: "w", DType: F32, Shape: []int{2, 2}, Data: Float32View([]float32{1, 2, 3, 4})},
		{Name: "h", DType: BF16, Shape: []int{2}, Data: bf},
	}
	if err := Write(path, tensors, map[string]string{"format": "np"}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries after Write, want 1 (temporary file left?)", len(entries))
	}
	data, _ := os.ReadFile(path)
	if _, err := Parse(data, path); err != nil {
		t.Fatalf("Parse of written file: %v", err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Metadata()["format"] != "np" {
		t.Errorf("caller's format not kept: %v", f.Metadata())
	}
	w, _ := f.Float32("w")
	h, _ := f.Float32("h")
	if !slices.Equal(w, []float32{1, 2, 3, 4}) || !slices.Equal(h, []float32{0.5, -1}) {
		t.Errorf("read back w=%v h=%v", w, h)
	}
	// A failed write leaves the old file alone and no temporary behind.
	bad := []Tensor{{Name: "x", DType: F32, Shape: []int{3}, Data: nil}}
	if err := Write(path, bad, nil); err == nil {
		t.Fatal("Write of an inconsistent tensor succeeded")
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, data) {
		t.Error("failed Write changed the existing file")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("failed Write left %d entries", len(entries))
	}
	if err := f.Close(); err != nil {
		t.Error(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestOpenRejectsEmptyAndShortFiles(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.safetensors")
	short := filepath.Join(dir, "short.safetensors")
	os.WriteFile(empty, nil, 0o644)
	os.WriteFile(short, []byte{1, 2, 3}, 0o644)
	for _, p := range []string{empty, short, filepath.Join(dir, "absent.safetensors"), dir} {
		if _, err := Open(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("Open(%s): err = %v, want an error naming the path", p, err)
		}
	}
}

func writeTestFile(t *testing.T, path string, tensors map[string][]float32) {
	t.Helper()
	var list []Tensor
	for name, v := range tensors {
		list = append(list, Tensor{Name: name, DType: F32, Shape: []int{len(v)}, Data: Float32View(v)})
	}
	if err := Write(path, list, nil); err != nil {
		t.Fatal(err)
	}
}

func TestOpenDirSingleAndSharded(t *testing.T) {
	single := t.TempDir()
	writeTestFile(t, filepath.Join(single, SingleFileName), map[string][]float32{"a": {1}, "b": {2, 3}})
	s, err := OpenDir(single)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Names(), []string{"a", "b"}) || s.Source() != filepath.Join(single, SingleFileName) {
		t.Errorf("single: names %v source %s", s.Names(), s.Source())
	}
	s.Close()

	sharded := t.TempDir()
	writeTestFile(t, filepath.Join(sharded, "model-00001-of-00002.safetensors"), map[string][]float32{"a": {1}, "unlisted": {9}})
	writeTestFile(t, filepath.Join(sharded, "model-00002-of-00002.safetensors"), map[string][]float32{"b": {2, 3}})
	index := `{"metadata":{"total_size":12},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}`
	os.WriteFile(filepath.Join(sharded, IndexFileName), []byte(index), 0o644)
	s, err = OpenDir(sharded)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !slices.Equal(s.Names(), []string{"a", "b"}) {
		t.Errorf("sharded names %v", s.Names())
	}
	b, err := s.Float32("b")
	if err != nil || !slices.Equal(b, []float32{2, 3}) {
		t.Errorf("b = %v, %v", b, err)
	}
	if info, ok := s.Info("b"); !ok || !slices.Equal(info.Shape, []int{2}) {
		t.Errorf("Info(b) = %+v", info)
	}
	if p := s.Path("b"); filepath.Base(p) != "model-00002-of-00002.safetensors" {
		t.Errorf("Path(b) = %s", p)
	}
	if _, err := s.Bytes("unlisted"); err == nil {
		t.Error("tensor outside the index is visible")
	}
	if md := s.Metadata(); md["format"] != "pt" {
		t.Errorf("Metadata = %v", md)
	}
}

func TestOpenDirErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenDir(dir); err == nil || !strings.Contains(err.Error(), IndexFileName) {
		t.Errorf("empty dir: err = %v", err)
	}
	writeTestFile(t, filepath.Join(dir, "shard.safetensors"), map[string][]float32{"a": {1}})
	for index, want := range map[string]string{
		`{"weight_map":{"a":"shard.safetensors","ghost":"shard.safetensors"}}`: `"ghost"`,
		`{"weight_map":{"a":"../shard.safetensors"}}`:                          "not a file name",
		`{"weight_map":{"a":"missing.safetensors"}}`:                           "missing.safetensors",
		`{"metadata":{}}`: "weight_map",
		`{"weight_map":`:  IndexFileName,
	} {
		os.WriteFile(filepath.Join(dir, IndexFileName), []byte(index), 0o644)
		_, err := OpenDir(dir)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("index %s: err = %v, want it to mention %s", index, err, want)
		}
		if want == `"ghost"` && (err == nil || !strings.Contains(err.Error(), "shard.safetensors")) {
			t.Errorf("missing tensor error should name the shard: %v", err)
		}
	}
}

// FuzzParse checks that Parse never panics, and that whatever it accepts is
// self-consistent and survives re-encoding.
func FuzzParse(f *testing.F) {
	var valid bytes.Buffer
	bf, _ := EncodeFloat32([]float32{1, 2, 3}, BF16)
	Encode(&valid, []Tensor{
		{Name: "w", DType: F32, Shape: []int{2, 2}, Data: le32(1, 2, 3, 4)},
		{Name: "b", DType: BF16, Shape: []int{3}, Data: bf},
	}, map[string]string{"k": "v"})
	f.Add(valid.Bytes())
	f.Add(valid.Bytes()[:len(valid.Bytes())-3])
	f.Add(rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[0],"data_offsets":[8,8]}}`, le32(1, 2)))
	f.Add(rawFile(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,8]}}`, le32(1, 2)))
	f.Add(rawFile(`{"a":{"dtype":"F16","shape":[1],"data_offsets":[2,4]}}`, le16(1, 2)))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'})
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data, "fuzz")
		if err != nil {
			return
		}
		var again []Tensor
		for _, name := range file.Names() {
			info, _ := file.Info(name)
			raw, err := file.Bytes(name)
			if err != nil {
				t.Fatalf("Bytes(%q): %v", name, err)
			}
			if len(raw) != info.NumElements()*info.DType.Size() {
				t.Fatalf("%q: %d bytes for %v %s", name, len(raw), info.Shape, info.DType)
			}
			if info.DType.IsFloat() {
				v, err := file.Float32(name)
				if err != nil || len(v) != info.NumElements() {
					t.Fatalf("Float32(%q): %d values, %v", name, len(v), err)
				}
			}
			again = append(again, Tensor{Name: name, DType: info.DType, Shape: info.Shape, Data: raw})
		}
		var buf bytes.Buffer
		if err := Encode(&buf, again, file.Metadata()); err != nil {
			t.Fatalf("re-encoding an accepted file: %v", err)
		}
		second, err := Parse(buf.Bytes(), "again")
		if err != nil {
			t.Fatalf("re-encoded file rejected: %v", err)
		}
		for _, name := range file.Names() {
			a, _ := file.Bytes(name)
			b, _ := second.Bytes(name)
			if !bytes.Equal(a, b) {
				t.Fatalf("%q changed in the round trip", name)
			}
		}
	})
}

func TestFloat32FromBytesRefusesNonFiniteValues(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, tc := range []struct {
		dtype DType
		raw   []byte
		index int
	}{
		{F32, le32(1, 2, nan, inf), 2},
		{F32, append([]byte{0}, le32(1, -inf)...)[1:], 1}, // unaligned: converted, not viewed
		{BF16, mustEncode(t, []float32{0, 1, 2, inf}, BF16), 3},
		{F16, mustEncode(t, []float32{nan, 1}, F16), 0},
		{F16, mustEncode(t, []float32{1, 70000}, F16), 1},                        // beyond fp16: Inf in the file
		{F64, binary.LittleEndian.AppendUint64(nil, math.Float64bits(1e300)), 0}, // beyond float32
	} {
		_, err := Float32FromBytes(tc.raw, tc.dtype)
		var nf *NonFiniteError
		if !errors.As(err, &nf) || nf.Index != tc.index || !strings.Contains(err.Error(), "index "+strconv.Itoa(tc.index)) {
			t.Errorf("%s %v: err = %v, want a NonFiniteError at index %d", tc.dtype, tc.raw, err, tc.index)
		}
	}
	if v, err := Float32FromBytes(mustEncode(t, []float32{65504, -3.4e38}, F32), F32); err != nil || v[1] != -3.4e38 {
		t.Errorf("finite extremes: %v, %v", v, err)
	}
}

func mustEncode(t *testing.T, values []float32, dtype DType) []byte {
	t.Helper()
	raw, err := EncodeFloat32(values, dtype)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestBF16View: finite values come back as their bit patterns (unaligned
// input too); the first NaN or infinity is named wherever it sits, in the
// word loop or in the tail.
func TestBF16View(t *testing.T) {
	const n = 37 // 18 words of 4 values in 16-byte steps, then a tail
	for _, bad := range []int{-1, 0, 5, 31, 32, 36} {
		for _, value := range []uint16{0x7fc0, 0x7f80, 0xff80} { // NaN, +Inf, -Inf
			raw := make([]byte, 1+2*n)[1:] // unaligned
			for i := range n {
				binary.LittleEndian.PutUint16(raw[2*i:], uint16(0x3f80+i)) // 1.0 and up
			}
			if bad >= 0 {
				binary.LittleEndian.PutUint16(raw[2*bad:], value)
			}
			got, err := BF16View(raw)
			var nf *NonFiniteError
			switch {
			case bad < 0 && (err != nil || len(got) != n || got[n-1] != 0x3f80+n-1):
				t.Fatalf("finite values: %v, %d values", err, len(got))
			case bad >= 0 && (!errors.As(err, &nf) || nf.Index != bad):
				t.Fatalf("%#04x at %d: %v", value, bad, err)
			}
		}
	}
}
