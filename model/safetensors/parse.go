package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"
)

// MaxHeaderLen is the largest JSON header accepted (the reference
// implementation's limit, 100 MB).
const MaxHeaderLen = 100_000_000

// metadataKey is the reserved header key holding the free-form string map.
const metadataKey = "__metadata__"

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	Name  string
	DType DType
	Shape []int
	// Begin and End are the byte offsets of the tensor's data, relative to
	// the start of the data section (after the header).
	Begin, End int64
}

// NumElements is the product of the shape (1 for a scalar).
func (t TensorInfo) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is a parsed safetensors file over a byte slice (usually a memory map).
// Its accessors return views into that slice.
type File struct {
	name     string
	data     []byte // the data section
	tensors  map[string]TensorInfo
	names    []string
	metadata map[string]string
	mapping  *Mapping // non-nil when opened from disk
}

// Parse validates a whole safetensors file held in data. name is used in
// error messages (usually the path). The returned File refers to data
// without copying it.
func Parse(data []byte, name string) (*File, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("%s: %d bytes is too short for a safetensors file (the 8-byte header length is missing)", name, len(data))
	}
	headerLen := binary.LittleEndian.Uint64(data)
	if headerLen > MaxHeaderLen {
		return nil, fmt.Errorf("%s: header length %d exceeds the limit of %d bytes", name, headerLen, MaxHeaderLen)
	}
	if headerLen > uint64(len(data)-8) {
		return nil, fmt.Errorf("%s: header length %d runs past the end of the file (%d bytes after the length field)", name, headerLen, len(data)-8)
	}
	header := data[8 : 8+headerLen]
	f := &File{name: name, data: data[8+headerLen:], tensors: map[string]TensorInfo{}, metadata: map[string]string{}}
	if err := f.parseHeader(header); err != nil {
		return nil, err
	}
	if err := f.checkLayout(); err != nil {
		return nil, err
	}
	f.names = make([]string, 0, len(f.tensors))
	for n := range f.tensors {
		f.names = append(f.names, n)
	}
	sort.Strings(f.names)
	return f, nil
}

// parseHeader decodes the JSON header object key by key, so that duplicate
// keys and trailing garbage are detected (encoding/json would silently keep
// the last duplicate).
func (f *File) parseHeader(header []byte) error {
	if !utf8.Valid(header) {
		return fmt.Errorf("%s: header is not valid UTF-8", f.name)
	}
	dec := json.NewDecoder(bytes.NewReader(header))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return fmt.Errorf("%s: header is not a JSON object%s", f.name, jsonErrSuffix(err))
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%s: header JSON: %v", f.name, err)
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("%s: header JSON: object key expected", f.name)
		}
		if seen[key] {
			return fmt.Errorf("%s: header lists %q twice", f.name, key)
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("%s: header JSON at %q: %v", f.name, key, err)
		}
		if key == metadataKey {
			if err := f.parseMetadata(raw); err != nil {
				return err
			}
			continue
		}
		info, err := parseTensorEntry(key, raw)
		if err != nil {
			return fmt.Errorf("%s: tensor %q: %v", f.name, key, err)
		}
		f.tensors[key] = info
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return fmt.Errorf("%s: header JSON: %v", f.name, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%s: header has data after the JSON object", f.name)
	}
	return nil
}

func jsonErrSuffix(err error) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error()
}

func (f *File) parseMetadata(raw json.RawMessage) error {
	if string(raw) == "null" {
		return nil
	}
	var values map[string]any
	if err := json.Unmarshal(raw, &values); err != nil {
		return fmt.Errorf("%s: %s is not a JSON object", f.name, metadataKey)
	}
	for k, v := range values {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("%s: %s[%q] is not a string", f.name, metadataKey, k)
		}
		f.metadata[k] = s
	}
	return nil
}

// tensorEntry is the JSON form of one tensor; pointers detect missing keys.
// Unknown keys are ignored, as the reference implementation does.
type tensorEntry struct {
	DType       *string  `json:"dtype"`
	Shape       *[]int64 `json:"shape"`
	DataOffsets *[]int64 `json:"data_offsets"`
}

func parseTensorEntry(name string, raw json.RawMessage) (TensorInfo, error) {
	var e tensorEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return TensorInfo{}, fmt.Errorf("field %q: JSON %s where %s was expected", typeErr.Field, typeErr.Value, typeErr.Type)
		}
		return TensorInfo{}, fmt.Errorf("entry is not a valid JSON object: %v", err)
	}
	switch {
	case e.DType == nil:
		return TensorInfo{}, errors.New(`missing "dtype"`)
	case e.Shape == nil:
		return TensorInfo{}, errors.New(`missing "shape"`)
	case e.DataOffsets == nil:
		return TensorInfo{}, errors.New(`missing "data_offsets"`)
	}
	dtype := DType(*e.DType)
	if !dtype.Valid() {
		return TensorInfo{}, fmt.Errorf("unknown dtype %q", *e.DType)
	}
	offsets := *e.DataOffsets
	if len(offsets) != 2 {
		return TensorInfo{}, fmt.Errorf("data_offsets has %d values, want [begin, end]", len(offsets))
	}
	begin, end := offsets[0], offsets[1]
	if begin < 0 || end < begin {
		return TensorInfo{}, fmt.Errorf("data_offsets [%d, %d] are not an ordered pair of non-negative offsets", begin, end)
	}
	shape := make([]int, len(*e.Shape))
	elements := int64(1)
	overflow := false
	for i, d := range *e.Shape {
		if d < 0 {
			return TensorInfo{}, fmt.Errorf("shape %v has a negative dimension", *e.Shape)
		}
		if int64(int(d)) != d { // only possible where int is 32 bits
			overflow = true
		}
		shape[i] = int(d)
		if d != 0 && elements > math.MaxInt64/d {
			overflow = true
		}
		elements *= d
	}
	if overflow || elements > math.MaxInt64/int64(dtype.Size()) {
		return TensorInfo{}, fmt.Errorf("shape %v is too large", *e.Shape)
	}
	if want := elements * int64(dtype.Size()); end-begin != want {
		return TensorInfo{}, fmt.Errorf("data_offsets [%d, %d] hold %d bytes, but shape %v of %s needs %d", begin, end, end-begin, *e.Shape, dtype, want)
	}
	return TensorInfo{Name: name, DType: dtype, Shape: shape, Begin: begin, End: end}, nil
}

// checkLayout verifies that the tensors tile the data section exactly, as
// the reference implementation requires: no tensor past the end, no overlap,
// no gap, no trailing bytes.
func (f *File) checkLayout() error {
	size := int64(len(f.data))
	byOffset := make([]TensorInfo, 0, len(f.tensors))
	for _, t := range f.tensors {
		if t.End > size {
			return fmt.Errorf("%s: tensor %q: data_offsets [%d, %d] run past the end of the data section (%d bytes)", f.name, t.Name, t.Begin, t.End, size)
		}
		byOffset = append(byOffset, t)
	}
	slices.SortFunc(byOffset, func(a, b TensorInfo) int {
		if a.Begin != b.Begin {
			return compareInt64(a.Begin, b.Begin)
		}
		if a.End != b.End {
			return compareInt64(a.End, b.End)
		}
		return strings.Compare(a.Name, b.Name)
	})
	var pos int64
	prev := ""
	for _, t := range byOffset {
		switch {
		case t.Begin < pos:
			return fmt.Errorf("%s: tensor %q (bytes %d-%d) overlaps tensor %q (ending at %d)", f.name, t.Name, t.Begin, t.End, prev, pos)
		case t.Begin > pos:
			return fmt.Errorf("%s: tensor %q begins at %d, leaving bytes %d-%d of the data section unused", f.name, t.Name, t.Begin, pos, t.Begin)
		}
		pos = t.End
		prev = t.Name
	}
	if pos != size {
		return fmt.Errorf("%s: the tensors cover %d bytes but the data section has %d", f.name, pos, size)
	}
	return nil
}

func compareInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Name is the name the file was parsed under (its path when opened from disk).
func (f *File) Name() string { return f.name }

// Names lists the tensor names, sorted.
func (f *File) Names() []string { return slices.Clone(f.names) }

// Info describes the tensor called name.
func (f *File) Info(name string) (TensorInfo, bool) {
	t, ok := f.tensors[name]
	if ok {
		t.Shape = slices.Clone(t.Shape)
	}
	return t, ok
}

// Metadata returns a copy of the header's __metadata__ map (empty when absent).
func (f *File) Metadata() map[string]string {
	out := make(map[string]string, len(f.metadata))
	for k, v := range f.metadata {
		out[k] = v
	}
	return out
}

// Bytes returns the raw little-endian bytes of a tensor, a view into the
// file's memory: valid until Close.
func (f *File) Bytes(name string) ([]byte, error) {
	t, ok := f.tensors[name]
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %q", f.name, name)
	}
	return f.data[t.Begin:t.End:t.End], nil
}

// BF16 returns a BF16 tensor's values as bit patterns, a view of the file's
// memory where possible (see BF16View; valid until Close). Another dtype, or
// a NaN or infinite value, is an error naming the file and the tensor.
func (f *File) BF16(name string) ([]uint16, error) {
	raw, err := f.Bytes(name)
	if err != nil {
		return nil, err
	}
	if dt := f.tensors[name].DType; dt != BF16 {
		return nil, fmt.Errorf("%s: tensor %q is %s, not BF16", f.name, name, dt)
	}
	v, err := BF16View(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: tensor %q: %w", f.name, name, err)
	}
	return v, nil
}

// Release tells the operating system that the mapped pages of a tensor will
// not be needed soon: they leave this process's resident memory (the page
// cache may keep them) and are read again from the file if used. Only
// tensors never written to may be released (a private mapping's modified
// pages would be lost). A file not opened from disk ignores it.
func (f *File) Release(name string) {
	t, ok := f.tensors[name]
	if !ok || f.mapping == nil {
		return
	}
	releasePages(f.data[t.Begin:t.End])
}

// ReleasePages tells the operating system that the whole pages inside b, a
// range of a file mapping (see MapFile) never written to, will not be
// needed soon, as File.Release does for a tensor.
func ReleasePages(b []byte) { releasePages(b) }

// Float32 returns a floating-point tensor as float32 values: F32 data as a
// view of the file's memory when it is 4-byte aligned (valid until Close),
// F64/F16/BF16 converted into a new slice. Integer and bool tensors are an
// error, and so is a NaN or infinite value (see Float32FromBytes).
func (f *File) Float32(name string) ([]float32, error) {
	raw, err := f.Bytes(name)
	if err != nil {
		return nil, err
	}
	v, err := Float32FromBytes(raw, f.tensors[name].DType)
	if err != nil {
		return nil, fmt.Errorf("%s: tensor %q: %w", f.name, name, err)
	}
	return v, nil
}

// Close releases the memory map of a file opened with Open; views returned
// by Bytes and Float32 must not be used afterwards. Closing a parsed byte
// slice, or closing twice, does nothing.
func (f *File) Close() error {
	if f.mapping == nil {
		return nil
	}
	err := f.mapping.Close()
	f.mapping = nil
	return err
}
