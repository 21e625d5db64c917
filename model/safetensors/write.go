package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
// WriteAtomic). metadata becomes the header's __metadata__; "format": "pt" is
// added unless metadata sets "format" (transformers checks it).
func Write(path string, tensors []Tensor, metadata map[string]string) error {
	plan, err := planFile(tensors, metadata)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return WriteAtomic(path, plan.writeTo)
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

// WriteAtomic creates or replaces the file at path with what write produces,
// so that readers see either the old file or the complete new one: it
// writes a temporary file path.tmp-* in the same directory, fsyncs it,
// renames it over path and fsyncs the directory. On error the temporary
// file is removed and path is untouched. The file gets mode 0644.
func WriteAtomic(path string, write func(w io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	buf := bufio.NewWriterSize(tmp, 1<<20)
	if err = write(buf); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = buf.Flush(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = tmp.Chmod(0o644); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable. File systems that cannot sync a
// directory (EINVAL) are not an error.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) && !isSyncUnsupported(err) {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}
