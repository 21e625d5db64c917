package bitmap

import (
	"errors"
	"fmt"
	"math"
	"unsafe"

	"github.com/salr-go/salr/kernels"
)

// NF4 storage: QLoRA's 4-bit NormalFloat. The stored values (the kept values
// of a bitmap, in the same row-by-row order as Matrix's packed values, or
// every value of a dense matrix row-major) are cut into blocks of
// NF4BlockSize consecutive values (a block may span rows; the last one may
// be short). Each block has an absmax scale a (the largest |v| of the block)
// and each value the 4-bit index of the code-book entry nearest to v/a; it
// decodes as bf16(NF4Code[index] · a): one fp32 multiply rounded to bf16
// (nearest even), as QLoRA dequantizes into its bf16 compute dtype, so that
// the products run the bf16 bitmap kernels. Two indices share a
// byte: value 2i in the low nibble of byte i, value 2i+1 in the high nibble
// (bitsandbytes puts the first value in the high nibble; the code book and
// the index of each entry are the same). An odd count leaves the last high
// nibble 0.
//
// The scales are stored as fp32 (Absmax), or double-quantized as QLoRA does
// (DoubleQuant): the mean of all absmax values is subtracted (Offset, fp32),
// the centred values are cut into blocks of NF4ScaleBlock and each block of
// scales has its own fp32 absmax (Absmax2); a centred scale c is stored as
// the int8 q = round(127 c / Absmax2) (round half away from zero) and
// decodes as float32(q) · (Absmax2/127) + Offset. QLoRA's bitsandbytes
// quantizes the centred scales with its 8-bit "dynamic" code book instead of
// this linear int8 code; the memory is the same: 8 bits per block of 64 plus
// 64 bits per 256 blocks (4.127 bits per value in all, 4.5 with fp32
// scales). As in bitsandbytes, the values are quantized against the exact
// absmax and the double quantization only changes the scale they decode with.

// NF4BlockSize is the number of values that share one absmax scale.
const NF4BlockSize = 64

// NF4ScaleBlock is the number of scales that share one second-level absmax
// under double quantization.
const NF4ScaleBlock = 256

// NF4Code is the NormalFloat-4 code book of QLoRA (bitsandbytes' NF4 table,
// the same 16 fp32 constants in the same order): index 7 is 0, 0 is -1 and
// 15 is 1.
var NF4Code = [16]float32{
	-1, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
	-0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0,
	0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
	0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1,
}

// nf4Zero is the index of the code 0.
const nf4Zero = 7

// nf4Mids are the midpoints between neighbouring codes, in float64.
var nf4Mids = func() (m [15]float64) {
	for i := range m {
		m[i] = (float64(NF4Code[i]) + float64(NF4Code[i+1])) / 2
	}
	return m
}()

// NF4Index is the index of the code nearest to r (r is v/absmax, in
// [-1, 1]); a tie, r exactly on a midpoint, takes the higher code.
func NF4Index(r float64) uint8 {
	// The number of midpoints <= r, by binary search over the 15.
	i := 0
	for step := 8; step > 0; step >>= 1 {
		if r >= nf4Mids[i+step-1] {
			i += step
		}
	}
	return uint8(i)
}

// NF4Parts are the arrays of an NF4 matrix for serialization. Bitmap and
// RowPtr are set for bitmap-nf4 and nil for dense-nf4. Exactly one of
// Absmax (fp32 scales) and QAbsmax (double quantization, with Absmax2 and
// Offset) is set.
type NF4Parts struct {
	Rows, Cols int
	Bitmap     []uint16  // [Rows, ChunksPerRow(Cols)] (bitmap-nf4)
	RowPtr     []uint32  // [Rows+1] (bitmap-nf4)
	Codes      []uint8   // [ceil(n/2)], two 4-bit indices per byte, low nibble first
	Absmax     []float32 // [ceil(n/64)] fp32 scales
	QAbsmax    []int8    // [ceil(n/64)] double-quantized scales
	Absmax2    []float32 // [ceil(blocks/256)] their absmax
	Offset     float32   // the mean subtracted from the scales
}

// Dense reports whether p stores every value (dense-nf4): it has no bitmap.
func (p NF4Parts) Dense() bool { return p.Bitmap == nil && p.RowPtr == nil }

// DoubleQuant reports whether the scales are double-quantized.
func (p NF4Parts) DoubleQuant() bool { return p.QAbsmax != nil }

// NF4 is a Rows × Cols weight matrix stored in NF4: bitmap-nf4 (the bitmap
// and row pointers of Matrix, the kept values in NF4) or dense-nf4 (every
// value in NF4). It implements kernels.Matrix[float32] and is safe for
// concurrent use (it is never modified). Its products decode groups of rows
// to bf16 in a small buffer (the kernel set's NF4 decoder: a 16-entry table
// lookup per value, times the block scale, rounded) and run the kernel set's
// bf16 bitmap kernels on them, every mask full for dense-nf4; a set's fused
// batch-1 product (nf4Dot), where it has one, takes the rows it handles
// first.
type NF4 struct {
	rows, cols, chunks int
	masks              []uint16 // nil for dense-nf4
	rowPtr             []uint32 // nil for dense-nf4
	codes              []uint8
	absmax             []float32
	qabsmax            []int8
	absmax2            []float32
	offset             float32
	kern               *kernelSet
}

var _ kernels.Matrix[float32] = (*NF4)(nil)

// EncodeNF4 quantizes the row-major rows × cols matrix w to NF4: its nonzero
// values in a bitmap (bitmap-nf4) or, when dense is set, all values
// (dense-nf4); doubleQuant double-quantizes the scales. A value that
// quantizes to the code 0 keeps its place in the bitmap (the bitmap is the
// nonzero pattern of w). NaN and ±Inf are errors.
func EncodeNF4(w []float32, rows, cols int, dense, doubleQuant bool) (*NF4, error) {
	if err := checkShape(rows, cols); err != nil {
		return nil, err
	}
	if len(w) != rows*cols {
		return nil, fmt.Errorf("bitmap: EncodeNF4: len(w) = %d, want rows*cols = %d*%d", len(w), rows, cols)
	}
	for i, v := range w {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("bitmap: EncodeNF4: weight (%d, %d) is %v; NF4 stores finite values only", i/cols, i%cols, v)
		}
	}
	var vals []float32
	var p NF4Parts
	p.Rows, p.Cols = rows, cols
	if dense {
		vals = w
	} else {
		m, err := Encode(w, rows, cols, F32)
		if err != nil {
			return nil, err
		}
		q := m.Parts()
		p.Bitmap, p.RowPtr, vals = q.Bitmap, q.RowPtr, q.Values32
	}
	p.Codes, p.Absmax = quantizeNF4(vals)
	if doubleQuant {
		p.QAbsmax, p.Absmax2, p.Offset = doubleQuantize(p.Absmax)
		p.Absmax = nil
	}
	return FromNF4Parts(p)
}

// quantizeNF4 returns the packed 4-bit indices and the fp32 absmax of each
// block of vals.
func quantizeNF4(vals []float32) (codes []uint8, absmax []float32) {
	n := len(vals)
	codes = make([]uint8, (n+1)/2)
	absmax = make([]float32, (n+NF4BlockSize-1)/NF4BlockSize)
	for b := range absmax {
		block := vals[b*NF4BlockSize : min(n, (b+1)*NF4BlockSize)]
		var a float32
		for _, v := range block {
			a = max(a, float32(math.Abs(float64(v))))
		}
		absmax[b] = a
		for i, v := range block {
			idx := uint8(nf4Zero)
			if a > 0 {
				idx = NF4Index(float64(v) / float64(a))
			}
			k := b*NF4BlockSize + i
			codes[k/2] |= idx << (4 * (k % 2))
		}
	}
	return codes, absmax
}

// doubleQuantize quantizes the scales a as described for NF4Parts.
func doubleQuantize(a []float32) (q []int8, absmax2 []float32, offset float32) {
	var sum float64
	for _, v := range a {
		sum += float64(v)
	}
	if len(a) > 0 {
		offset = float32(sum / float64(len(a)))
	}
	q = make([]int8, len(a))
	absmax2 = make([]float32, (len(a)+NF4ScaleBlock-1)/NF4ScaleBlock)
	for j := range absmax2 {
		block := a[j*NF4ScaleBlock : min(len(a), (j+1)*NF4ScaleBlock)]
		var m float32
		for _, v := range block {
			m = max(m, float32(math.Abs(float64(v-offset))))
		}
		absmax2[j] = m
		if m == 0 {
			continue
		}
		for i, v := range block {
			q[j*NF4ScaleBlock+i] = int8(math.Round(127 * float64(v-offset) / float64(m)))
		}
	}
	return q, absmax2, offset
}

// FromNF4Parts validates p and builds an NF4 matrix on it (the slices are
// used without copying). Every inconsistency is an error: the bitmap checks
// of FromParts, a bitmap without row pointers or the reverse, code and
// scale arrays whose lengths disagree with the number of values, both or
// neither scale form, and non-finite scales.
func FromNF4Parts(p NF4Parts) (*NF4, error) {
	if err := checkShape(p.Rows, p.Cols); err != nil {
		return nil, err
	}
	var n int
	switch {
	case p.Bitmap == nil && p.RowPtr == nil:
		n = p.Rows * p.Cols
	case p.Bitmap == nil || p.RowPtr == nil:
		return nil, errors.New("bitmap: FromNF4Parts: a bitmap-nf4 matrix needs both the bitmap and row_ptr (dense-nf4 neither)")
	default:
		if len(p.RowPtr) != p.Rows+1 {
			return nil, fmt.Errorf("bitmap: FromNF4Parts: row_ptr has %d entries, want rows+1 = %d", len(p.RowPtr), p.Rows+1)
		}
		n = int(p.RowPtr[p.Rows])
		if err := checkMasks("FromNF4Parts", p.Rows, p.Cols, p.Bitmap, p.RowPtr, n); err != nil {
			return nil, err
		}
	}
	if uint64(n) > maxValues {
		return nil, fmt.Errorf("bitmap: FromNF4Parts: %d values exceed the format's limit of %d", n, maxValues)
	}
	if len(p.Codes) != (n+1)/2 {
		return nil, fmt.Errorf("bitmap: FromNF4Parts: %d bytes of codes, want ceil(%d values / 2) = %d", len(p.Codes), n, (n+1)/2)
	}
	blocks := (n + NF4BlockSize - 1) / NF4BlockSize
	switch {
	case p.Absmax != nil && p.QAbsmax != nil:
		return nil, errors.New("bitmap: FromNF4Parts: both fp32 and double-quantized scales are set")
	case p.QAbsmax == nil:
		if p.Absmax2 != nil {
			return nil, errors.New("bitmap: FromNF4Parts: absmax2 is set without double-quantized scales")
		}
		if len(p.Absmax) != blocks {
			return nil, fmt.Errorf("bitmap: FromNF4Parts: %d scales, want one per block of %d values = %d", len(p.Absmax), NF4BlockSize, blocks)
		}
		if err := finite("absmax", p.Absmax); err != nil {
			return nil, err
		}
	default:
		if len(p.QAbsmax) != blocks {
			return nil, fmt.Errorf("bitmap: FromNF4Parts: %d quantized scales, want one per block of %d values = %d", len(p.QAbsmax), NF4BlockSize, blocks)
		}
		if want := (blocks + NF4ScaleBlock - 1) / NF4ScaleBlock; len(p.Absmax2) != want {
			return nil, fmt.Errorf("bitmap: FromNF4Parts: %d second-level scales, want one per %d blocks = %d", len(p.Absmax2), NF4ScaleBlock, want)
		}
		if err := finite("absmax2", append(p.Absmax2[:len(p.Absmax2):len(p.Absmax2)], p.Offset)); err != nil {
			return nil, err
		}
	}
	m := &NF4{
		rows: p.Rows, cols: p.Cols, chunks: ChunksPerRow(p.Cols),
		masks: p.Bitmap, rowPtr: p.RowPtr, codes: p.Codes,
		absmax: p.Absmax, qabsmax: p.QAbsmax, absmax2: p.Absmax2, offset: p.Offset,
		kern: defaultKernels,
	}
	return m, nil
}

// finite returns an error naming the first NaN or ±Inf of v.
func finite(what string, v []float32) error {
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("bitmap: FromNF4Parts: %s[%d] = %v is not finite", what, i, x)
		}
	}
	return nil
}

// Parts returns the arrays of m for serialization (aliased, not to be
// modified).
func (m *NF4) Parts() NF4Parts {
	return NF4Parts{Rows: m.rows, Cols: m.cols, Bitmap: m.masks, RowPtr: m.rowPtr, Codes: m.codes,
		Absmax: m.absmax, QAbsmax: m.qabsmax, Absmax2: m.absmax2, Offset: m.offset}
}

// Rows implements kernels.Matrix: the number of output features.
func (m *NF4) Rows() int { return m.rows }

// Cols implements kernels.Matrix: the number of input features.
func (m *NF4) Cols() int { return m.cols }

// Dense reports whether m is dense-nf4 (no bitmap).
func (m *NF4) Dense() bool { return m.masks == nil }

// DoubleQuant reports whether m's scales are double-quantized.
func (m *NF4) DoubleQuant() bool { return m.qabsmax != nil }

// NNZ is the number of stored values (Rows·Cols for dense-nf4).
func (m *NF4) NNZ() int { return m.n() }

func (m *NF4) n() int {
	if m.rowPtr == nil {
		return m.rows * m.cols
	}
	return int(m.rowPtr[m.rows])
}

// Bytes is the storage size: bitmap and row pointers (bitmap-nf4), the
// 4-bit codes and the scales in their stored form.
func (m *NF4) Bytes() int64 {
	return int64(len(m.masks))*2 + int64(len(m.rowPtr))*4 + int64(len(m.codes)) +
		int64(len(m.absmax))*4 + int64(len(m.qabsmax)) + int64(len(m.absmax2))*4 + m.offsetBytes()
}

func (m *NF4) offsetBytes() int64 {
	if m.qabsmax != nil {
		return 4
	}
	return 0
}

// Scale is the decoded absmax of block b.
func (m *NF4) Scale(b int) float32 {
	if m.qabsmax == nil {
		return m.absmax[b]
	}
	return float32(m.qabsmax[b])*(m.absmax2[b/NF4ScaleBlock]/127) + m.offset
}

// start is the index of the first stored value of row r.
func (m *NF4) start(r int) int {
	if m.rowPtr == nil {
		return r * m.cols
	}
	return int(m.rowPtr[r])
}

// scales writes the decoded scales of blocks [b0, b1) into dst.
func (m *NF4) scales(dst []float32, b0, b1 int) {
	if m.qabsmax == nil {
		copy(dst[:b1-b0], m.absmax[b0:b1])
		return
	}
	// Scale's expression, its factor computed once per group of scales.
	for g0 := b0; g0 < b1; {
		g1 := min(b1, (g0/NF4ScaleBlock+1)*NF4ScaleBlock)
		f, q, d := m.absmax2[g0/NF4ScaleBlock]/127, m.qabsmax[g0:g1], dst[g0-b0:g1-b0]
		for i, v := range q {
			d[i] = float32(v)*f + m.offset
		}
		g0 = g1
	}
}

// dequantGo writes the stored values [k0, k1) as bf16 into dst, with the
// decoded scales of blocks k0/64 onwards in sc: the Go reference of the
// kernel sets' nf4Dequant.
func dequantGo(dst []uint16, codes []uint8, sc []float32, k0, k1 int) {
	b0 := k0 / NF4BlockSize
	for k := k0; k < k1; k++ {
		dst[k-k0] = kernels.Float32ToBF16(NF4Code[codes[k/2]>>(4*(k%2))&15] * sc[k/NF4BlockSize-b0])
	}
}

// dequant writes the stored values [k0, k1) as bf16 into dst with the kernel
// set's decoder.
func (m *NF4) dequant(dst []uint16, k0, k1 int) {
	if k1 <= k0 {
		return
	}
	b0, b1 := k0/NF4BlockSize, (k1-1)/NF4BlockSize+1
	sc, buf := aligned(b1 - b0)
	m.scales(sc, b0, b1)
	if f := m.kern.nf4Dequant; f != nil {
		f(dst, m.codes, sc, k0, k1)
	} else {
		dequantGo(dst, m.codes, sc, k0, k1)
	}
	putBuffer(&vectors, buf)
}

// Decode writes the dense row-major Rows × Cols matrix into dst (len(dst)
// >= Rows*Cols): each stored value as bf16(NF4Code[index] · scale) widened
// to fp32, 0 at pruned positions.
func (m *NF4) Decode(dst []float32) {
	if len(dst) < m.rows*m.cols {
		panic("bitmap: NF4.Decode: dst shorter than Rows*Cols")
	}
	decodeAll(m, dst)
}

// MulT implements kernels.Matrix: y (n×Rows) = x (n×Cols) Wᵀ.
func (m *NF4) MulT(y, x []float32, n int) { mulT(m, "NF4.MulT", y, x, n) }

// Mul implements kernels.Matrix: dx (n×Cols) = dy (n×Rows) W.
func (m *NF4) Mul(dx, dy []float32, n int) { mul(m, "NF4.Mul", dx, dy, n) }

func (m *NF4) dims() (int, int) { return m.rows, m.cols }

// nf4GroupValues is about the number of values decoded at a time by the row
// kernels (a buffer of 32 KB, or 4 rows when they are longer, in L2).
const nf4GroupValues = 1 << 14

// groups calls f on the bf16 bitmap matrix of every group of rows of [r0,
// r1), g its first row relative to r0: the group's values decoded, its own
// masks (all full for dense-nf4) and row pointers from 0.
func (m *NF4) groups(r0, r1 int, f func(sub *Matrix, g int)) {
	// Whole groups of 4 rows: the bf16 GEMV does 4 rows at a time (a
	// shorter range repeats its last row).
	step := min(r1-r0, max(4, nf4GroupValues/m.cols/4*4))
	// Two bf16 values per float32 of the pooled buffer; valuePad spare ones.
	vbuf := getBuffer(&vectors, (step*m.cols+valuePad+1)/2)
	vals := unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(vbuf))), 2*len(vbuf))
	rowPtr := make([]uint32, step+1)
	var full []uint16
	if m.masks == nil {
		full = make([]uint16, step*m.chunks)
		for i := range full {
			full[i] = 0xffff
		}
		if rem := m.cols % ChunkCols; rem != 0 {
			for r := range step {
				full[r*m.chunks+m.chunks-1] = 1<<rem - 1
			}
		}
	}
	sub := &Matrix{cols: m.cols, chunks: m.chunks, dtype: BF16, kern: m.kern}
	for g0 := r0; g0 < r1; g0 += step {
		g1 := min(g0+step, r1)
		k0, k1 := m.start(g0), m.start(g1)
		m.dequant(vals, k0, k1)
		for r := g0; r <= g1; r++ {
			rowPtr[r-g0] = uint32(m.start(r) - k0)
		}
		sub.rows, sub.rowPtr, sub.vals16 = g1-g0, rowPtr[:g1-g0+1], vals[:k1-k0]
		if m.masks != nil {
			sub.masks = m.masks[g0*m.chunks : g1*m.chunks]
		} else {
			sub.masks = full[:(g1-g0)*m.chunks]
		}
		f(sub, g0-r0)
	}
	putBuffer(&vectors, vbuf)
}

func (m *NF4) dot(y, x []float32, r0, r1 int) {
	if f := m.kern.nf4Dot; f != nil {
		done := f(m, y, x, r0, r1)
		y, r0 = y[done-r0:], done
		if r0 >= r1 {
			return
		}
	}
	m.groups(r0, r1, func(sub *Matrix, g int) { m.kern.bitmapDot(sub, y[g:g+sub.rows], x, 0, sub.rows) })
}

func (m *NF4) axpy(dx, dy []float32, r0, r1 int) {
	m.groups(r0, r1, func(sub *Matrix, g int) { m.kern.bitmapAxpy(sub, dx, dy[g:g+sub.rows], 0, sub.rows) })
}

func (m *NF4) decode(dst []float32, r0, r1 int) {
	m.groups(r0, r1, func(sub *Matrix, g int) {
		m.kern.bitmapDecode(sub, dst[g*m.cols:(g+sub.rows)*m.cols], 0, sub.rows)
	})
}

func (m *NF4) dotBatch(yT, xT []float32, nb, r0, r1 int) {
	m.groups(r0, r1, func(sub *Matrix, g int) {
		m.kern.bitmapDotBatch(sub, yT[g*nb:(g+sub.rows)*nb], xT, nb, 0, sub.rows)
	})
}

// Large batches go through the panel pipeline (decoded panels, fp32 GEMM).
func (m *NF4) mulTBatch(y, x []float32, n int) bool { return false }

func (m *NF4) mulBatch(dx, dy []float32, n int) bool { return false }
