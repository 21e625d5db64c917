package bitmap

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strings"

	"github.com/salr-go/salr/kernels"
)

// ChunkCols is the number of columns described by one uint16 mask.
const ChunkCols = 16

// valuePad is the number of spare values kept after the last nonzero so that
// the vector kernels may load a whole chunk of 16 values at any position.
const valuePad = ChunkCols

// maxValues bounds the number of nonzeros so that RowPtr fits in uint32.
const maxValues = math.MaxUint32

// DType is the storage type of the packed nonzero values.
type DType uint8

// The value types of a Matrix.
const (
	BF16 DType = iota + 1 // bfloat16 bit patterns in []uint16
	F16                   // IEEE binary16 bit patterns in []uint16
	F32                   // float32
	// DTypeNF4 names the 4-bit NormalFloat values of the NF4 type
	// (bitmap-nf4, dense-nf4); it is not a value type of Matrix (Size 0,
	// and ParseDType does not accept it).
	DTypeNF4
)

// String returns "bf16", "fp16", "fp32" or "nf4".
func (d DType) String() string {
	switch d {
	case DTypeNF4:
		return "nf4"
	case BF16:
		return "bf16"
	case F16:
		return "fp16"
	case F32:
		return "fp32"
	}
	return fmt.Sprintf("DType(%d)", uint8(d))
}

// Size is the number of bytes of one stored value (0 for an unknown DType).
func (d DType) Size() int {
	switch d {
	case BF16, F16:
		return 2
	case F32:
		return 4
	}
	return 0
}

// ParseDType parses "bf16", "fp16"/"f16" or "fp32"/"f32" (case-insensitive).
func ParseDType(s string) (DType, error) {
	switch strings.ToLower(s) {
	case "bf16":
		return BF16, nil
	case "fp16", "f16":
		return F16, nil
	case "fp32", "f32":
		return F32, nil
	}
	return 0, fmt.Errorf("bitmap: unknown value dtype %q (want bf16, fp16 or fp32)", s)
}

// ChunksPerRow is the number of uint16 masks per row of a matrix with cols
// columns: ceil(cols/16).
func ChunksPerRow(cols int) int { return (cols + ChunkCols - 1) / ChunkCols }

// Matrix is a bitmap-compressed Rows × Cols weight matrix (see the package
// documentation for the layout). It implements kernels.Matrix[float32] and is
// safe for concurrent use by multiple goroutines (it is never modified).
type Matrix struct {
	rows, cols int
	chunks     int // masks per row
	dtype      DType
	masks      []uint16  // rows*chunks
	rowPtr     []uint32  // rows+1
	vals16     []uint16  // bf16/fp16 values, cap >= len+valuePad
	vals32     []float32 // fp32 values
	kern       *kernelSet
}

var _ kernels.Matrix[float32] = (*Matrix)(nil)

// Parts are the arrays of a Matrix as plain typed slices, for serialization
// (e.g. one safetensors tensor each; Rows, Cols and DType go to metadata).
// Exactly one of Values16 (BF16, F16) and Values32 (F32) is set.
type Parts struct {
	Rows, Cols int
	DType      DType
	Bitmap     []uint16  // shape [Rows, ChunksPerRow(Cols)]
	RowPtr     []uint32  // shape [Rows+1]
	Values16   []uint16  // shape [nnz], bf16 or fp16 bit patterns
	Values32   []float32 // shape [nnz]
}

// Encode compresses the dense row-major rows × cols matrix w; its zeros (±0)
// are the pruned positions. Nonzeros are rounded to dt (round to nearest
// even). A nonzero that would round to zero in bf16/fp16 is stored as the
// smallest subnormal of its sign instead, so the bitmap is exactly the
// nonzero pattern of w; values beyond the fp16 range become ±Inf; NaN stays NaN.
func Encode(w []float32, rows, cols int, dt DType) (*Matrix, error) {
	if err := checkShape(rows, cols); err != nil {
		return nil, err
	}
	if dt.Size() == 0 {
		return nil, fmt.Errorf("bitmap: Encode: unknown dtype %d", uint8(dt))
	}
	if len(w) != rows*cols {
		return nil, fmt.Errorf("bitmap: Encode: len(w) = %d, want rows*cols = %d*%d", len(w), rows, cols)
	}
	nnz := 0
	for _, v := range w {
		if v != 0 {
			nnz++
		}
	}
	if nnz > maxValues {
		return nil, fmt.Errorf("bitmap: Encode: %d nonzeros exceed the format's limit of %d", nnz, maxValues)
	}
	chunks := ChunksPerRow(cols)
	m := &Matrix{
		rows: rows, cols: cols, chunks: chunks, dtype: dt,
		masks:  make([]uint16, rows*chunks),
		rowPtr: make([]uint32, rows+1),
		kern:   defaultKernels,
	}
	if dt == F32 {
		m.vals32 = make([]float32, 0, nnz+valuePad)
	} else {
		m.vals16 = make([]uint16, 0, nnz+valuePad)
	}
	for r := 0; r < rows; r++ {
		row := w[r*cols : (r+1)*cols]
		rowMasks := m.masks[r*chunks : (r+1)*chunks]
		for j, v := range row {
			if v == 0 {
				continue
			}
			rowMasks[j/ChunkCols] |= 1 << (j % ChunkCols)
			switch dt {
			case BF16:
				m.vals16 = append(m.vals16, keepNonzero(kernels.Float32ToBF16(v), v))
			case F16:
				m.vals16 = append(m.vals16, keepNonzero(kernels.Float32ToF16(v), v))
			case F32:
				m.vals32 = append(m.vals32, v)
			}
		}
		m.rowPtr[r+1] = uint32(m.nnz())
	}
	return m, nil
}

// keepNonzero maps a 16-bit encoding of the nonzero v that rounded to ±0 to
// the smallest subnormal of v's sign (the magnitude bits are the low 15 bits
// in both bf16 and fp16).
func keepNonzero(h uint16, v float32) uint16 {
	if h&0x7fff != 0 {
		return h
	}
	if math.Signbit(float64(v)) {
		return 0x8001
	}
	return 0x0001
}

func checkShape(rows, cols int) error {
	if rows <= 0 || cols <= 0 {
		return fmt.Errorf("bitmap: shape %d×%d: rows and cols must be positive", rows, cols)
	}
	if rows > math.MaxInt32 || cols > math.MaxInt32 {
		// Keeps rows*cols and every byte offset far from overflowing int64.
		return fmt.Errorf("bitmap: shape %d×%d: dimensions must be below 2^31", rows, cols)
	}
	return nil
}

// Rows implements kernels.Matrix: the number of output features.
func (m *Matrix) Rows() int { return m.rows }

// Cols implements kernels.Matrix: the number of input features.
func (m *Matrix) Cols() int { return m.cols }

// DType is the storage type of the values.
func (m *Matrix) DType() DType { return m.dtype }

// NNZ is the number of stored (nonzero) values.
func (m *Matrix) NNZ() int { return m.nnz() }

func (m *Matrix) nnz() int {
	if m.dtype == F32 {
		return len(m.vals32)
	}
	return len(m.vals16)
}

// Bytes is the storage size of the compressed matrix: bitmap, row pointers
// and values (the few spare values kept for the vector loads not counted).
func (m *Matrix) Bytes() int64 {
	return int64(len(m.masks))*2 + int64(len(m.rowPtr))*4 + int64(m.nnz())*int64(m.dtype.Size())
}

// Decode writes the dense row-major Rows × Cols matrix into dst
// (len(dst) >= Rows*Cols): the encoded values widened to float32 exactly, 0 at
// pruned positions.
func (m *Matrix) Decode(dst []float32) {
	if len(dst) < m.rows*m.cols {
		panic("bitmap: Matrix.Decode: dst shorter than Rows*Cols")
	}
	decodeAll(m, dst)
}

// Parts returns the arrays of m for serialization. They alias m's storage and
// must not be modified.
func (m *Matrix) Parts() Parts {
	return Parts{
		Rows: m.rows, Cols: m.cols, DType: m.dtype,
		Bitmap: m.masks, RowPtr: m.rowPtr,
		Values16: m.vals16, Values32: m.vals32,
	}
}

// FromParts validates p and builds a Matrix on it. Every inconsistency that
// could make a kernel read out of bounds is an error: unknown dtype, slice
// lengths that disagree with the shape, a RowPtr that does not start at 0, is
// not monotonic or does not end at the number of values, a row whose bitmap
// popcount differs from its value count, and mask bits set past the last
// column. The slices are used without copying; the values are copied only
// when their slice's capacity has no room for 16 spare values after its length
// (the vector kernels load whole chunks of 16 values; the spare ones are
// never used).
func FromParts(p Parts) (*Matrix, error) {
	if err := checkShape(p.Rows, p.Cols); err != nil {
		return nil, err
	}
	chunks := ChunksPerRow(p.Cols)
	var nnz int
	switch p.DType {
	case BF16, F16:
		if p.Values32 != nil {
			return nil, fmt.Errorf("bitmap: FromParts: dtype %v stores Values16, but Values32 is set", p.DType)
		}
		nnz = len(p.Values16)
	case F32:
		if p.Values16 != nil {
			return nil, errors.New("bitmap: FromParts: dtype fp32 stores Values32, but Values16 is set")
		}
		nnz = len(p.Values32)
	default:
		return nil, fmt.Errorf("bitmap: FromParts: unknown dtype %d", uint8(p.DType))
	}
	if uint64(nnz) > maxValues {
		return nil, fmt.Errorf("bitmap: FromParts: %d values exceed the format's limit of %d", nnz, maxValues)
	}
	if err := checkMasks("FromParts", p.Rows, p.Cols, p.Bitmap, p.RowPtr, nnz); err != nil {
		return nil, err
	}
	m := &Matrix{
		rows: p.Rows, cols: p.Cols, chunks: chunks, dtype: p.DType,
		masks: p.Bitmap, rowPtr: p.RowPtr,
		kern: defaultKernels,
	}
	if p.DType == F32 {
		m.vals32 = withSpare(p.Values32)
	} else {
		m.vals16 = withSpare(p.Values16)
	}
	return m, nil
}

// checkMasks validates the bitmap and row pointers of a rows × cols matrix
// holding nnz values (what names the caller in errors): lengths, a RowPtr
// that starts at 0, is monotonic and ends at nnz, each row's popcount equal
// to its value count, and no mask bit past the last column.
func checkMasks(what string, rows, cols int, bitmap []uint16, rowPtr []uint32, nnz int) error {
	chunks := ChunksPerRow(cols)
	if len(bitmap) != rows*chunks {
		return fmt.Errorf("bitmap: %s: bitmap has %d masks, want rows*ceil(cols/16) = %d*%d", what, len(bitmap), rows, chunks)
	}
	if len(rowPtr) != rows+1 {
		return fmt.Errorf("bitmap: %s: row_ptr has %d entries, want rows+1 = %d", what, len(rowPtr), rows+1)
	}
	if rowPtr[0] != 0 {
		return fmt.Errorf("bitmap: %s: row_ptr[0] = %d, want 0", what, rowPtr[0])
	}
	if int(rowPtr[rows]) != nnz {
		return fmt.Errorf("bitmap: %s: row_ptr[%d] = %d, want the number of values %d", what, rows, rowPtr[rows], nnz)
	}
	tail := uint16(0xffff)
	if rem := cols % ChunkCols; rem != 0 {
		tail = 1<<rem - 1
	}
	for r := 0; r < rows; r++ {
		lo, hi := rowPtr[r], rowPtr[r+1]
		if hi < lo {
			return fmt.Errorf("bitmap: %s: row_ptr decreases at row %d (%d -> %d)", what, r, lo, hi)
		}
		rowMasks := bitmap[r*chunks : (r+1)*chunks]
		if last := rowMasks[chunks-1]; last&^tail != 0 {
			return fmt.Errorf("bitmap: %s: row %d: mask bits set past column %d", what, r, cols-1)
		}
		count := 0
		for _, mask := range rowMasks {
			count += bits.OnesCount16(mask)
		}
		if uint32(count) != hi-lo {
			return fmt.Errorf("bitmap: %s: row %d: bitmap has %d nonzeros but row_ptr gives %d values", what, r, count, hi-lo)
		}
	}
	return nil
}

// withSpare returns v itself when its capacity leaves room for valuePad spare
// values after its length, and a copy with that room otherwise.
func withSpare[V uint16 | float32](v []V) []V {
	if cap(v)-len(v) >= valuePad {
		return v
	}
	return append(make([]V, 0, len(v)+valuePad), v...)
}

// rowValues16 returns the 16-bit values of rows [r0, r1), with the spare
// capacity after them visible to the vector kernels.
func (m *Matrix) rowValues16(r0, r1 int) []uint16 {
	return m.vals16[m.rowPtr[r0]:m.rowPtr[r1]]
}

// rowValues32 returns the fp32 values of rows [r0, r1).
func (m *Matrix) rowValues32(r0, r1 int) []float32 {
	return m.vals32[m.rowPtr[r0]:m.rowPtr[r1]]
}

// rowMasks returns the masks of rows [r0, r1).
func (m *Matrix) rowMasks(r0, r1 int) []uint16 {
	return m.masks[r0*m.chunks : r1*m.chunks]
}
