package safetensors

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// streamTestTensors are tensors of mixed item sizes and odd lengths, so that
// the data order and the header padding both matter.
func streamTestTensors() []Tensor {
	var out []Tensor
	for i, spec := range []struct {
		name  string
		dtype DType
		shape []int
	}{
		{"b.weight", BF16, []int{3, 5}},
		{"a.weight", F32, []int{7}},
		{"c.bias", F16, []int{1}},
		{"d.count", I64, []int{2, 1}},
		{"e.mask", U8, []int{3}},
		{"z.empty", F32, []int{0, 4}},
	} {
		n := int(TensorInfo{DType: spec.dtype, Shape: spec.shape}.Bytes())
		data := make([]byte, n)
		for j := range data {
			data[j] = byte(31*i + 7*j + 1)
		}
		out = append(out, Tensor{Name: spec.name, DType: spec.dtype, Shape: spec.shape, Data: data})
	}
	return out
}

// TestStreamMatchesWrite: the same tensors written by Write and produced in
// pieces through a Layout give the same bytes.
func TestStreamMatchesWrite(t *testing.T) {
	tensors := streamTestTensors()
	meta := map[string]string{"note": "x"}
	dir := t.TempDir()
	whole := filepath.Join(dir, "whole.safetensors")
	if err := Write(whole, tensors, meta); err != nil {
		t.Fatal(err)
	}
	infos := make([]TensorInfo, len(tensors))
	byName := map[string][]byte{}
	for i, x := range tensors {
		infos[i] = x.Info()
		byName[x.Name] = x.Data
	}
	l, err := NewLayout(infos, meta)
	if err != nil {
		t.Fatal(err)
	}
	var asked []string
	streamed := filepath.Join(dir, "streamed.safetensors")
	err = WriteStream(streamed, l, func(ti TensorInfo, w io.Writer) error {
		asked = append(asked, ti.Name)
		data := byName[ti.Name]
		for len(data) > 0 { // one byte at a time: the writer must not care
			if _, err := w.Write(data[:1]); err != nil {
				return err
			}
			data = data[1:]
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(whole)
	b, _ := os.ReadFile(streamed)
	if !bytes.Equal(a, b) {
		t.Fatalf("streamed file differs from Write's (%d vs %d bytes)", len(b), len(a))
	}
	if int64(len(a)) != l.FileSize() {
		t.Errorf("FileSize %d, file has %d bytes", l.FileSize(), len(a))
	}
	// Data order: item size descending, then name.
	if want := "d.count a.weight z.empty b.weight c.bias e.mask"; strings.Join(asked, " ") != want {
		t.Errorf("data asked for in order %v, want %s", asked, want)
	}
	f, err := Open(streamed)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var total int64
	for _, ti := range l.Order() {
		got, ok := f.Info(ti.Name)
		if !ok || got.Begin != ti.Begin || got.End != ti.End {
			t.Errorf("%s: file offsets %d..%d, layout %d..%d", ti.Name, got.Begin, got.End, ti.Begin, ti.End)
		}
		total += ti.Bytes()
	}
	if total != l.DataSize() {
		t.Errorf("DataSize %d, tensors hold %d", l.DataSize(), total)
	}
}

// TestStreamChecksTheDataSize: a callback writing too much or too little
// fails, naming the tensor, and leaves no file.
func TestStreamChecksTheDataSize(t *testing.T) {
	l, err := NewLayout([]TensorInfo{{Name: "w", DType: F32, Shape: []int{2}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{7, 9} {
		path := filepath.Join(t.TempDir(), "x.safetensors")
		err := WriteStream(path, l, func(_ TensorInfo, w io.Writer) error {
			_, err := w.Write(make([]byte, n))
			return err
		})
		if err == nil || !strings.Contains(err.Error(), `tensor "w"`) {
			t.Errorf("%d bytes for 8: error %v", n, err)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("%d bytes for 8: the file exists (%v)", n, err)
		}
	}
}

func TestPlanShards(t *testing.T) {
	mk := func(sizes ...int) []TensorInfo {
		var out []TensorInfo
		for i, s := range sizes {
			out = append(out, TensorInfo{Name: string(rune('a' + i)), DType: U8, Shape: []int{s}})
		}
		return out
	}
	for _, c := range []struct {
		sizes []int
		max   int64
		want  string
	}{
		{[]int{4, 4, 4}, 0, "abc"},
		{[]int{4, 4, 4}, 8, "ab|c"},
		{[]int{4, 5, 3, 9, 1}, 8, "a|d|bc|e"},
		{[]int{20, 1}, 8, "a|b"},
		{[]int{4, 20, 1}, 8, "b|ac"},
		{[]int{4, 3, 20, 2, 9}, 8, "c|ab|e|d"},
		{nil, 8, ""},
	} {
		var parts []string
		for _, shard := range PlanShards(mk(c.sizes...), c.max) {
			var s string
			for _, ti := range shard {
				s += ti.Name
			}
			parts = append(parts, s)
		}
		if got := strings.Join(parts, "|"); got != c.want {
			t.Errorf("sizes %v, max %d: shards %q, want %q", c.sizes, c.max, got, c.want)
		}
	}
	if got := ShardFileName(2, 3); got != "model-00002-of-00003.safetensors" {
		t.Errorf("ShardFileName(2, 3) = %q", got)
	}
}

func TestWriteIndexReadsBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), IndexFileName)
	wm := map[string]string{"b": "model-00002-of-00002.safetensors", "a": "model-00001-of-00002.safetensors"}
	if err := WriteIndex(path, wm, 1234); err != nil {
		t.Fatal(err)
	}
	text, _ := os.ReadFile(path)
	want := `{
  "metadata": {
    "total_size": 1234
  },
  "weight_map": {
    "a": "model-00001-of-00002.safetensors",
    "b": "model-00002-of-00002.safetensors"
  }
}
`
	if string(text) != want {
		t.Errorf("index:\n%s\nwant:\n%s", text, want)
	}
	got, err := ReadIndex(path)
	if err != nil || len(got) != 2 || got["a"] != wm["a"] {
		t.Errorf("ReadIndex: %v, %v", got, err)
	}
	var doc map[string]any
	if err := json.Unmarshal(text, &doc); err != nil {
		t.Fatal(err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"5GB": 5e9, "5gb": 5e9, "10GiB": 10 << 30, "200MB": 200e6, "1KiB": 1024, "123": 123, "64B": 64, " 2 TB ": 2e12,
	} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GB", "0", "-1GB", "1.5GB", "5XB", "99999999999TB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q): no error", in)
		}
	}
}
