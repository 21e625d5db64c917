package bitmap

import (
	"fmt"

	"github.com/salr-go/salr/kernels"
)

// DenseBF16 is an uncompressed row-major Rows × Cols matrix of bf16 values: the
// dense baseline run by the same engine as Matrix (own vector GEMV, same
// panel pipeline for batches). It implements kernels.Matrix[float32].
type DenseBF16 struct {
	rows, cols int
	w          []uint16
	kern       *kernelSet
}

var _ kernels.Matrix[float32] = (*DenseBF16)(nil)

// NewDenseBF16 rounds the row-major rows × cols matrix w to bf16 (nearest
// even). It panics when len(w) != rows*cols or a dimension is not positive.
func NewDenseBF16(w []float32, rows, cols int) *DenseBF16 {
	if err := checkShape(rows, cols); err != nil || len(w) != rows*cols {
		panic(fmt.Sprintf("bitmap: NewDenseBF16: len(w) = %d for shape %d×%d", len(w), rows, cols))
	}
	h := make([]uint16, len(w))
	for i, v := range w {
		h[i] = kernels.Float32ToBF16(v)
	}
	return &DenseBF16{rows: rows, cols: cols, w: h, kern: defaultKernels}
}

// DenseBF16FromBits wraps the row-major rows × cols bf16 bit patterns w
// (e.g. a BF16 safetensors tensor) without copying.
func DenseBF16FromBits(w []uint16, rows, cols int) (*DenseBF16, error) {
	if err := checkShape(rows, cols); err != nil {
		return nil, err
	}
	if len(w) != rows*cols {
		return nil, fmt.Errorf("bitmap: DenseBF16FromBits: %d values for shape %d×%d", len(w), rows, cols)
	}
	return &DenseBF16{rows: rows, cols: cols, w: w, kern: defaultKernels}, nil
}

// Rows implements kernels.Matrix: the number of output features.
func (d *DenseBF16) Rows() int { return d.rows }

// Cols implements kernels.Matrix: the number of input features.
func (d *DenseBF16) Cols() int { return d.cols }

// Bits returns the bf16 bit patterns (row-major, aliased, not to be modified).
func (d *DenseBF16) Bits() []uint16 { return d.w }

// Bytes is the storage size: 2 bytes per weight.
func (d *DenseBF16) Bytes() int64 { return int64(len(d.w)) * 2 }

// Decode writes the matrix widened to float32 into dst (len >= Rows*Cols).
func (d *DenseBF16) Decode(dst []float32) {
	if len(dst) < d.rows*d.cols {
		panic("bitmap: DenseBF16.Decode: dst shorter than Rows*Cols")
	}
	decodeAll(d, dst)
}

// MulT implements kernels.Matrix: y (n×Rows) = x (n×Cols) Wᵀ.
func (d *DenseBF16) MulT(y, x []float32, n int) { mulT(d, "DenseBF16.MulT", y, x, n) }

// Mul implements kernels.Matrix: dx (n×Cols) = dy (n×Rows) W.
func (d *DenseBF16) Mul(dx, dy []float32, n int) { mul(d, "DenseBF16.Mul", dx, dy, n) }

func (d *DenseBF16) dims() (int, int) { return d.rows, d.cols }

func (d *DenseBF16) dot(y, x []float32, r0, r1 int) { d.kern.denseDot(d, y, x, r0, r1) }

func (d *DenseBF16) axpy(dx, dy []float32, r0, r1 int) { d.kern.denseAxpy(d, dx, dy, r0, r1) }

func (d *DenseBF16) decode(dst []float32, r0, r1 int) { d.kern.denseDecode(d, dst, r0, r1) }

func (d *DenseBF16) dotBatch(yT, xT []float32, nb, r0, r1 int) {
	d.kern.denseDotBatch(d, yT, xT, nb, r0, r1)
}

func (d *DenseBF16) mulTBatch(y, x []float32, n int) bool {
	if d.kern.denseMulT == nil {
		return false
	}
	d.kern.denseMulT(d, y, x, n)
	return true
}

func (d *DenseBF16) mulBatch(dx, dy []float32, n int) bool {
	if d.kern.denseMul == nil {
		return false
	}
	d.kern.denseMul(d, dx, dy, n)
	return true
}

// MulT implements kernels.Matrix: y (n×Rows) = x (n×Cols) Wᵀ.
func (m *Matrix) MulT(y, x []float32, n int) { mulT(m, "Matrix.MulT", y, x, n) }

// Mul implements kernels.Matrix: dx (n×Cols) = dy (n×Rows) W.
func (m *Matrix) Mul(dx, dy []float32, n int) { mul(m, "Matrix.Mul", dx, dy, n) }

func (m *Matrix) dims() (int, int) { return m.rows, m.cols }

func (m *Matrix) dot(y, x []float32, r0, r1 int) { m.kern.bitmapDot(m, y, x, r0, r1) }

func (m *Matrix) axpy(dx, dy []float32, r0, r1 int) { m.kern.bitmapAxpy(m, dx, dy, r0, r1) }

func (m *Matrix) decode(dst []float32, r0, r1 int) { m.kern.bitmapDecode(m, dst, r0, r1) }

func (m *Matrix) dotBatch(yT, xT []float32, nb, r0, r1 int) {
	m.kern.bitmapDotBatch(m, yT, xT, nb, r0, r1)
}

func (m *Matrix) mulTBatch(y, x []float32, n int) bool {
	return m.kern.bitmapMulT != nil && m.kern.bitmapMulT(m, y, x, n)
}

func (m *Matrix) mulBatch(dx, dy []float32, n int) bool {
	return m.kern.bitmapMul != nil && m.kern.bitmapMul(m, dx, dy, n)
}

// GatherRows implements kernels.RowGatherer: row ids[r] widened to float32
// into dst[r*Cols():(r+1)*Cols()]. It panics on an id outside [0, Rows()).
func (d *DenseBF16) GatherRows(dst []float32, ids []int) {
	if len(dst) < len(ids)*d.cols {
		panic("bitmap: DenseBF16.GatherRows: dst shorter than len(ids)*Cols")
	}
	for r, id := range ids {
		if id < 0 || id >= d.rows {
			panic(fmt.Sprintf("bitmap: DenseBF16.GatherRows: id %d of row %d outside [0, %d)", id, r, d.rows))
		}
		d.decode(dst[r*d.cols:(r+1)*d.cols], id, id+1)
	}
}
