package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/salr-go/salr/internal/atomicfile"
)

// Tensor is one tensor to write: Data holds prod(Shape) elements of DType,
// little-endian, row-major.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// Bytes is the size of the tensor's data: prod(Shape) elements of DType.
func (t TensorInfo) Bytes() int64 {
	n := int64(t.DType.Size())
	for _, d := range t.Shape {
		n *= int64(d)
	}
	return n
}

// Info is the tensor's name, dtype and shape (no offsets).
func (t Tensor) Info() TensorInfo { return TensorInfo{Name: t.Name, DType: t.DType, Shape: t.Shape} }

// Write stores tensors as a safetensors file at path, atomically (see
// atomicfile.Write). metadata becomes the header's __metadata__; "format": "pt" is
// added unless metadata sets "format" (transformers checks it).
func Write(path string, tensors []Tensor, metadata map[string]string) error {
	l, data, err := layoutOf(tensors, metadata)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return WriteStream(path, l, data)
}

// Encode writes the complete safetensors encoding of tensors to w, exactly
// as Write stores it.
func Encode(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	l, data, err := layoutOf(tensors, metadata)
	if err != nil {
		return err
	}
	return l.Stream(w, data)
}

// layoutOf checks that each tensor's data has the size of its shape and
// returns the file's layout with a callback that writes the data.
func layoutOf(tensors []Tensor, metadata map[string]string) (*Layout, func(TensorInfo, io.Writer) error, error) {
	infos := make([]TensorInfo, len(tensors))
	data := make(map[string][]byte, len(tensors))
	for i, t := range tensors {
		infos[i] = t.Info()
		data[t.Name] = t.Data
	}
	l, err := NewLayout(infos, metadata)
	if err != nil {
		return nil, nil, err
	}
	for _, t := range tensors {
		if want := t.Info().Bytes(); int64(len(t.Data)) != want {
			return nil, nil, fmt.Errorf("tensor %q: %d bytes of data, but shape %v of %s needs %d", t.Name, len(t.Data), t.Shape, t.DType, want)
		}
	}
	return l, func(t TensorInfo, w io.Writer) error {
		_, err := w.Write(data[t.Name])
		return err
	}, nil
}

// WriteStream writes the file laid out by l at path, atomically (see
// atomicfile.Write), taking each tensor's data from data in l.Order() (see
// Layout.Stream). Only one tensor need be in memory at a time.
func WriteStream(path string, l *Layout, data func(t TensorInfo, w io.Writer) error) error {
	return atomicfile.Write(path, func(w io.Writer) error { return l.Stream(w, data) })
}

// Layout is the header and data order of a safetensors file, fixed by the
// tensors' names, dtypes and shapes before any data exists.
type Layout struct {
	header   []byte
	order    []TensorInfo
	dataSize int64
}

// NewLayout validates the tensors (their Begin and End are ignored) and lays them out as the reference writer
// does: data ordered by item size (largest first), then by name, so that
// every tensor starts at a multiple of its item size; the header (keys
// sorted, __metadata__ first) is padded with spaces to a multiple of 8 bytes
// so that the data section starts 8-byte aligned.
func NewLayout(tensors []TensorInfo, metadata map[string]string) (*Layout, error) {
	seen := make(map[string]bool, len(tensors))
	for _, t := range tensors {
		if t.Name == "" || t.Name == metadataKey {
			return nil, fmt.Errorf("invalid tensor name %q", t.Name)
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("tensor %q given twice", t.Name)
		}
		seen[t.Name] = true
		if !t.DType.Valid() {
			return nil, fmt.Errorf("tensor %q: unknown dtype %q", t.Name, t.DType)
		}
		for _, d := range t.Shape {
			if d < 0 {
				return nil, fmt.Errorf("tensor %q: shape %v has a negative dimension", t.Name, t.Shape)
			}
		}
	}
	order := slices.Clone(tensors)
	slices.SortFunc(order, func(a, b TensorInfo) int {
		if a.DType.Size() != b.DType.Size() {
			return b.DType.Size() - a.DType.Size()
		}
		return strings.Compare(a.Name, b.Name)
	})
	var pos int64
	for i := range order {
		order[i].Begin, order[i].End = pos, pos+order[i].Bytes()
		pos = order[i].End
	}

	meta := map[string]string{"format": "pt"}
	for k, v := range metadata {
		meta[k] = v
	}
	var h bytes.Buffer
	h.WriteString(`{"` + metadataKey + `":`)
	metaJSON, err := json.Marshal(meta) // map keys come out sorted
	if err != nil {
		return nil, err
	}
	h.Write(metaJSON)
	byName := slices.Clone(order)
	slices.SortFunc(byName, func(a, b TensorInfo) int { return strings.Compare(a.Name, b.Name) })
	for _, t := range byName {
		name, err := json.Marshal(t.Name)
		if err != nil {
			return nil, err
		}
		h.WriteByte(',')
		h.Write(name)
		h.WriteString(`:{"dtype":"` + string(t.DType) + `","shape":[`)
		for i, d := range t.Shape {
			if i > 0 {
				h.WriteByte(',')
			}
			h.WriteString(strconv.Itoa(d))
		}
		fmt.Fprintf(&h, `],"data_offsets":[%d,%d]}`, t.Begin, t.End)
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}
	return &Layout{header: h.Bytes(), order: order, dataSize: pos}, nil
}

// Order lists the tensors in the order of their data in the file, with
// their offsets.
func (l *Layout) Order() []TensorInfo { return l.order }

// DataSize is the size of the data section: the sum of the tensors' bytes.
func (l *Layout) DataSize() int64 { return l.dataSize }

// FileSize is the size of the whole file: length prefix, header and data.
func (l *Layout) FileSize() int64 { return 8 + int64(len(l.header)) + l.dataSize }

// Stream writes the file to w: the header, then each tensor's data, which
// data writes to the writer it is given, one tensor at a time in Order().
// data must write exactly the tensor's Bytes(); more or fewer is an error
// naming the tensor.
func (l *Layout) Stream(w io.Writer, data func(t TensorInfo, w io.Writer) error) error {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(l.header)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	if _, err := w.Write(l.header); err != nil {
		return err
	}
	for _, t := range l.order {
		cw := &limitedWriter{w: w, left: t.Bytes()}
		if err := data(t, cw); err != nil {
			return fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		if cw.left != 0 {
			return fmt.Errorf("tensor %q: %d bytes of data written, but shape %v of %s needs %d", t.Name, t.Bytes()-cw.left, t.Shape, t.DType, t.Bytes())
		}
	}
	return nil
}

// limitedWriter passes at most left bytes on to w; writing more is an error.
type limitedWriter struct {
	w    io.Writer
	left int64
}

func (c *limitedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > c.left {
		return 0, fmt.Errorf("more data than the shape holds (%d bytes left, %d written)", c.left, len(p))
	}
	n, err := c.w.Write(p)
	c.left -= int64(n)
	return n, err
}
