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

// Write stores tensors as a safetensors file at path, atomically (see
// atomicfile.Write). metadata becomes the header's __metadata__; "format": "pt" is
// added unless metadata sets "format" (transformers checks it).
func Write(path string, tensors []Tensor, metadata map[string]string) error {
	plan, err := planFile(tensors, metadata)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return atomicfile.Write(path, plan.writeTo)
}

// Encode writes the complete safetensors encoding of tensors to w, exactly
// as Write stores it.
func Encode(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	plan, err := planFile(tensors, metadata)
	if err != nil {
		return err
	}
	return plan.writeTo(w)
}

// filePlan is a validated header plus the tensors in data order.
type filePlan struct {
	header []byte
	order  []Tensor
}

// planFile validates the tensors and lays them out as the reference writer
// does: data ordered by item size (largest first), then by name, so that
// every tensor starts at a multiple of its item size; the header (keys
// sorted, __metadata__ first) is padded with spaces to a multiple of 8 bytes
// so that the data section starts 8-byte aligned.
func planFile(tensors []Tensor, metadata map[string]string) (*filePlan, error) {
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
		elements := 1
		for _, d := range t.Shape {
			if d < 0 {
				return nil, fmt.Errorf("tensor %q: shape %v has a negative dimension", t.Name, t.Shape)
			}
			elements *= d
		}
		if want := elements * t.DType.Size(); len(t.Data) != want {
			return nil, fmt.Errorf("tensor %q: %d bytes of data, but shape %v of %s needs %d", t.Name, len(t.Data), t.Shape, t.DType, want)
		}
	}
	order := slices.Clone(tensors)
	slices.SortFunc(order, func(a, b Tensor) int {
		if a.DType.Size() != b.DType.Size() {
			return b.DType.Size() - a.DType.Size()
		}
		return strings.Compare(a.Name, b.Name)
	})
	offsets := make(map[string][2]int, len(order))
	pos := 0
	for _, t := range order {
		offsets[t.Name] = [2]int{pos, pos + len(t.Data)}
		pos += len(t.Data)
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
	slices.SortFunc(byName, func(a, b Tensor) int { return strings.Compare(a.Name, b.Name) })
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
		off := offsets[t.Name]
		fmt.Fprintf(&h, `],"data_offsets":[%d,%d]}`, off[0], off[1])
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}
	return &filePlan{header: h.Bytes(), order: order}, nil
}

func (p *filePlan) writeTo(w io.Writer) error {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(p.header)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	if _, err := w.Write(p.header); err != nil {
		return err
	}
	for _, t := range p.order {
		if _, err := w.Write(t.Data); err != nil {
			return err
		}
	}
	return nil
}
