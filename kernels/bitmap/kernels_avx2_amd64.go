//go:build amd64 && !purego

package bitmap

import (
	"math/bits"
	"unsafe"

	"golang.org/x/sys/cpu"

	"github.com/salr-go/salr/kernels"
)

// The AVX2 kernels (kernels_avx2_amd64.s). They access x, dx and dst in
// whole chunks of 16 columns (dense: blocks of 16, permuted, see
// permuteBlocks); the wrappers below pad and finish partial ones.

//go:noescape
func dotBitmapF16AVX2(y []float32, masks []uint16, vals []uint16, x []float32, chunks int)

//go:noescape
func dotBitmapF32AVX2(y []float32, masks []uint16, vals []float32, x []float32, chunks int)

// dot4BitmapBF16AVX2 sets y[i] = the row whose masks and values start at
// masks[i] and vals[i] · x, over chunks whole chunks.
//
//go:noescape
func dot4BitmapBF16AVX2(y *[4]float32, masks, vals *[4]*uint16, x *float32, chunks int)

// dot2Bitmap*AVX2 do rows A_i = i-th row of masks/vals and B_i = i-th row of
// masksB/valsB together, y[i] = A_i · x and the float32 yb bytes after it =
// B_i · x, for y[i] up to the address yend.

//go:noescape
func dot2BitmapF16AVX2(y []float32, masks, masksB []uint16, vals, valsB []uint16, x []float32, yend, yb uintptr, chunks int)

//go:noescape
func dot2BitmapF32AVX2(y []float32, masks, masksB []uint16, vals, valsB []float32, x []float32, yend, yb uintptr, chunks int)

//go:noescape
func axpyBitmapBF16AVX2(dx []float32, masks []uint16, vals []uint16, dy []float32, chunks int)

//go:noescape
func axpyBitmapF16AVX2(dx []float32, masks []uint16, vals []uint16, dy []float32, chunks int)

//go:noescape
func axpyBitmapF32AVX2(dx []float32, masks []uint16, vals []float32, dy []float32, chunks int)

//go:noescape
func decodeBitmapBF16AVX2(dst []float32, masks []uint16, vals []uint16, rows, chunks, stride int)

//go:noescape
func decodeBitmapF16AVX2(dst []float32, masks []uint16, vals []uint16, rows, chunks, stride int)

//go:noescape
func decodeBitmapF32AVX2(dst []float32, masks []uint16, vals []float32, rows, chunks, stride int)

// dot4DenseBF16AVX2 sets y[i] = the first 16*blocks weights of the row at
// w[i] · xp (permuted as by permuteBlocks).
//
//go:noescape
func dot4DenseBF16AVX2(y *[4]float32, w *[4]*uint16, xp *float32, blocks int)

//go:noescape
func axpyDenseBF16AVX2(dxp []float32, w []uint16, dy []float32, blocks, stride int)

//go:noescape
func widenBF16AVX2(dst []float32, src []uint16)

//go:noescape
func dotBatchF32AVX2(yT []float32, w []float32, xT []float32, chunks, nb, rows int)

// dot2BatchBitmapBF16AVX2 adds to y[i][b] the row whose masks and values
// start at masks[i] and vals[i] · x_b, for i = 0, 1 and the nb rows of x in
// the chunk-major layout of packBatch (xT), over chunks whole chunks, and
// moves vals[i] past the values read (rows 0 and 1 may be the same).
//
//go:noescape
func dot2BatchBitmapBF16AVX2(y *[2]*float32, masks, vals *[2]*uint16, xT *float32, chunks, nb int)

// dot2BatchDenseBF16AVX2 adds to y[i][b] the first 16*blocks weights of the
// row at w[i] · x_b, for i = 0, 1 and the nb rows of x in xT as above.
//
//go:noescape
func dot2BatchDenseBF16AVX2(y *[2]*float32, w *[2]*uint16, xT *float32, blocks, nb int)

// hasAVX2 reports whether the CPU (and OS) support the instructions the AVX2
// kernels use.
func hasAVX2() bool {
	return cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasPOPCNT && cpu.X86.HasF16C
}

// The shuffle tables of the AVX2 kernels, one entry per mask byte m (the 8
// columns of half a chunk); in each, k is the number of bits of m below bit i:
//
//	bytes     0..8191: bf16, 32 bytes: lane i takes bytes 2k, 2k+1 into its
//	                   high half if bit i of m is set; 0x80 (zero) elsewhere
//	bytes  8192..12287: fp16, 16 bytes: half i takes bytes 2k, 2k+1, or zero
//	bytes 12288..20479: fp32, 8 int32: the VPERMPS index of lane i (k, or 0)
//	bytes 20480..28671: fp32, 8 int32: all ones in the lanes m selects
const (
	tabBF16      = 0
	tabF16       = 8192
	tabF32       = 12288
	tabF32Mask   = tabF32 + 8192
	avx2TabBytes = tabF32Mask + 8192
)

// avx2Tables points to the tables, 64-byte aligned (read by the assembly).
var avx2Tables = buildAVX2Tables()

func buildAVX2Tables() *[avx2TabBytes]byte {
	buf := make([]byte, avx2TabBytes+64)
	skip := int(-uintptr(unsafe.Pointer(unsafe.SliceData(buf))) % 64)
	t := (*[avx2TabBytes]byte)(buf[skip:])
	for m := range 256 {
		bf, hf := t[tabBF16+32*m:][:32], t[tabF16+16*m:][:16]
		perm, mask := t[tabF32+32*m:][:32], t[tabF32Mask+32*m:][:32]
		for i := range 8 {
			k := byte(bits.OnesCount8(uint8(m) & (1<<i - 1)))
			bf[4*i], bf[4*i+1], bf[4*i+2], bf[4*i+3] = 0x80, 0x80, 0x80, 0x80
			hf[2*i], hf[2*i+1] = 0x80, 0x80
			if m>>i&1 == 0 {
				continue
			}
			bf[4*i+2], bf[4*i+3] = 2*k, 2*k+1
			hf[2*i], hf[2*i+1] = 2*k, 2*k+1
			perm[4*i] = k
			mask[4*i], mask[4*i+1], mask[4*i+2], mask[4*i+3] = 0xff, 0xff, 0xff, 0xff
		}
	}
	return t
}

// chunkPadded returns s[:n] when that is whole chunks, else a zero-padded copy
// of whole chunks in a vectors-pool buffer (buf, nil when s is used itself).
func chunkPadded(s []float32, n int) (p, buf []float32) {
	chunks := ChunksPerRow(n)
	if n%ChunkCols == 0 {
		return s[:n], nil
	}
	p, buf = aligned(chunks * ChunkCols)
	copy(p, s[:n])
	clear(p[n:])
	return p, buf
}

// putPadded hands back a buffer of chunkPadded.
func putPadded(buf []float32) {
	if buf != nil {
		putBuffer(&vectors, buf)
	}
}

// avx2BitmapDecode writes rows [r0, r1) of m into dst, row r at
// (r-r0)*stride; each row is written as whole chunks, so stride must be at
// least chunks*16 or the rows written in order (the spill of a row's last
// chunk is overwritten by the next row).
func avx2BitmapDecode(m *Matrix, dst []float32, r0, r1, stride int) {
	masks := m.rowMasks(r0, r1)
	switch m.dtype {
	case BF16:
		decodeBitmapBF16AVX2(dst, masks, m.rowValues16(r0, r1), r1-r0, m.chunks, stride)
	case F16:
		decodeBitmapF16AVX2(dst, masks, m.rowValues16(r0, r1), r1-r0, m.chunks, stride)
	case F32:
		decodeBitmapF32AVX2(dst, masks, m.rowValues32(r0, r1), r1-r0, m.chunks, stride)
	}
}

// avx2DotBF16 sets y[i] = row r0+i of m · x for rows [r0, r1), x padded to
// whole chunks, four rows at a time; a last group of fewer repeats the last
// row and drops the copies, so every row goes through the same operations.
func avx2DotBF16(m *Matrix, y, x []float32, r0, r1 int) {
	if m.chunks == 0 {
		clear(y)
		return
	}
	var out [4]float32
	var masks, vals [4]*uint16
	q := (r1 - r0 + 3) / 4
	for r := r0; r < r0+q; r++ {
		for i := range masks {
			ri := min(r+i*q, r1-1)
			masks[i] = &m.masks[ri*m.chunks]
			vals[i] = unsafe.SliceData(m.vals16[m.rowPtr[ri]:]) // valuePad spare values: never nil
		}
		dot4BitmapBF16AVX2(&out, &masks, &vals, &x[0], m.chunks)
		for i := range out {
			if ri := r + i*q; ri < r1 {
				y[ri-r0] = out[i]
			}
		}
	}
}

// permuteBlocks writes each whole block of 16 values of x as its 8 even
// then its 8 odd values (the order the dense kernels widen bf16 in) into xp,
// and returns the number of blocks.
func permuteBlocks(xp, x []float32) int {
	blocks := len(x) / ChunkCols
	for b := range blocks {
		src, dst := x[b*ChunkCols:][:ChunkCols], xp[b*ChunkCols:][:ChunkCols]
		for i := range ChunkCols / 2 {
			dst[i], dst[ChunkCols/2+i] = src[2*i], src[2*i+1]
		}
	}
	return blocks
}

// widenRows writes rows [r0, r1) of d as fp32 into dst, row r at
// (r-r0)*stride, zeroing each row's stride-cols padding.
func widenRows(d *DenseBF16, dst []float32, r0, r1, stride int) {
	if stride == d.cols {
		n := (r1 - r0) * d.cols
		widenTail(dst[:n], d.w[r0*d.cols:r1*d.cols])
		return
	}
	for r := r0; r < r1; r++ {
		row := dst[(r-r0)*stride:][:stride]
		widenTail(row[:d.cols], d.w[r*d.cols:(r+1)*d.cols])
		clear(row[d.cols:])
	}
}

// widenTail widens src into dst: whole groups of 8 in assembly, the rest here.
func widenTail(dst []float32, src []uint16) {
	n := len(src) / 8 * 8
	if n > 0 {
		widenBF16AVX2(dst[:n], src[:n])
	}
	for i := n; i < len(src); i++ {
		dst[i] = kernels.BF16ToFloat32(src[i])
	}
}

// checkBatch panics unless nb is a batch size of batchSize (a positive
// multiple of 4 up to maxBatch), the only ones dotBatchF32AVX2 handles.
func checkBatch(nb int) {
	if nb <= 0 || nb%4 != 0 || nb > maxBatch {
		panic("bitmap: small-batch kernel called with nb not a multiple of 4 in [4, 16]")
	}
}

// batchRows is the number of rows the fp16 and fp32 small-batch kernels
// decode at a time.
const batchRows = 4

// The bf16 small batches go over a tile of batchTileRows rows of W one block
// of batchBlockChunks chunks (512 columns) at a time, so that the block of x
// (8 KB per 4 rows of x) stays in L1 for all the tile's rows rather than all
// of x coming from L2 for every pair of rows; each block's sums are added to
// the output. The blocks are the same for every range and batch
// size, so a result depends neither on the range or tile its row is in nor
// on the number of rows of x.
const (
	batchTileRows    = 8
	batchBlockChunks = 32
)

// avx2DotBatchBF16 sets yT[i*nb+b] = row r0+i of m · x_b for rows [r0, r1),
// two rows at a time; a last odd row of a tile is paired with itself, so
// every row goes through the same operations.
func avx2DotBatchBF16(m *Matrix, yT, xT []float32, nb, r0, r1 int) {
	clear(yT[:(r1-r0)*nb])
	xT = xT[:m.chunks*nb*ChunkCols]
	bc := batchBlockChunks
	var vp [batchTileRows]*uint16
	var ys [2]*float32
	var masks, vals [2]*uint16
	for t0 := r0; t0 < r1; t0 += batchTileRows {
		t1 := min(t0+batchTileRows, r1)
		for r := t0; r < t1; r++ {
			vp[r-t0] = unsafe.SliceData(m.vals16[m.rowPtr[r]:]) // valuePad spare values: never nil
		}
		for c0 := 0; c0 < m.chunks; c0 += bc {
			n := min(bc, m.chunks-c0)
			for r := t0; r < t1; r += 2 {
				ra, rb := r, min(r+1, t1-1)
				ys[0], ys[1] = &yT[(ra-r0)*nb], &yT[(rb-r0)*nb]
				masks[0], masks[1] = &m.masks[ra*m.chunks+c0], &m.masks[rb*m.chunks+c0]
				vals[0], vals[1] = vp[ra-t0], vp[rb-t0]
				dot2BatchBitmapBF16AVX2(&ys, &masks, &vals, &xT[c0*nb*ChunkCols], n, nb)
				vp[ra-t0], vp[rb-t0] = vals[0], vals[1]
			}
		}
	}
}

// avx2DenseDotBatch is avx2DotBatchBF16 for dense bf16 rows: whole blocks
// of 16 columns in assembly, the columns after the last one here.
func avx2DenseDotBatch(d *DenseBF16, yT, xT []float32, nb, r0, r1 int) {
	clear(yT[:(r1-r0)*nb])
	cols := d.cols
	blocks := cols / ChunkCols
	xT = xT[:ChunksPerRow(cols)*nb*ChunkCols]
	bc := batchBlockChunks
	var ys [2]*float32
	var rows [2]*uint16
	for t0 := r0; t0 < r1; t0 += batchTileRows {
		t1 := min(t0+batchTileRows, r1)
		for c0 := 0; c0 < blocks; c0 += bc {
			n := min(bc, blocks-c0)
			for r := t0; r < t1; r += 2 {
				ra, rb := r, min(r+1, t1-1)
				ys[0], ys[1] = &yT[(ra-r0)*nb], &yT[(rb-r0)*nb]
				rows[0], rows[1] = &d.w[ra*cols+c0*ChunkCols], &d.w[rb*cols+c0*ChunkCols]
				dot2BatchDenseBF16AVX2(&ys, &rows, &xT[c0*nb*ChunkCols], n, nb)
			}
		}
	}
	tail := blocks * ChunkCols
	if tail == cols {
		return
	}
	xc := xT[blocks*nb*ChunkCols:]
	for i := range r1 - r0 {
		w := d.w[(r0+i)*cols+tail : (r0+i+1)*cols]
		for b := range nb {
			s := yT[i*nb+b]
			for j, v := range w {
				s += kernels.BF16ToFloat32(v) * xc[b*ChunkCols+j]
			}
			yT[i*nb+b] = s
		}
	}
}

// avx2Kernels wraps the AVX2 assembly in the kernelSet signatures.
var avx2Kernels = &kernelSet{
	name: "avx2",
	bitmapDot: func(m *Matrix, y, x []float32, r0, r1 int) {
		if r1 <= r0 {
			return
		}
		x, buf := chunkPadded(x, m.cols)
		y = y[:r1-r0]
		if m.dtype == BF16 {
			avx2DotBF16(m, y, x, r0, r1)
			putPadded(buf)
			return
		}
		// Rows in pairs from the two halves of the range; the last row of
		// an odd count alone.
		if h := (r1 - r0) / 2; h > 0 {
			ya := unsafe.Pointer(unsafe.SliceData(y))
			yend, yb := uintptr(ya)+uintptr(4*h), uintptr(4*h)
			ma, mb := m.rowMasks(r0, r0+h), m.rowMasks(r0+h, r1)
			switch m.dtype {
			case F16:
				dot2BitmapF16AVX2(y, ma, mb, m.rowValues16(r0, r0+h), m.rowValues16(r0+h, r1), x, yend, yb, m.chunks)
			case F32:
				dot2BitmapF32AVX2(y, ma, mb, m.rowValues32(r0, r0+h), m.rowValues32(r0+h, r1), x, yend, yb, m.chunks)
			}
			if (r1-r0)%2 == 0 {
				putPadded(buf)
				return
			}
			y, r0 = y[2*h:], r1-1
		}
		masks := m.rowMasks(r0, r1)
		switch m.dtype {
		case F16:
			dotBitmapF16AVX2(y, masks, m.rowValues16(r0, r1), x, m.chunks)
		case F32:
			dotBitmapF32AVX2(y, masks, m.rowValues32(r0, r1), x, m.chunks)
		}
		putPadded(buf)
	},
	bitmapAxpy: func(m *Matrix, dx, dy []float32, r0, r1 int) {
		if r1 <= r0 {
			return
		}
		p, buf := chunkPadded(dx, m.cols)
		dy, masks := dy[:r1-r0], m.rowMasks(r0, r1)
		switch m.dtype {
		case BF16:
			axpyBitmapBF16AVX2(p, masks, m.rowValues16(r0, r1), dy, m.chunks)
		case F16:
			axpyBitmapF16AVX2(p, masks, m.rowValues16(r0, r1), dy, m.chunks)
		case F32:
			axpyBitmapF32AVX2(p, masks, m.rowValues32(r0, r1), dy, m.chunks)
		}
		if buf != nil {
			copy(dx[:m.cols], p)
			putPadded(buf)
		}
	},
	bitmapDecode: func(m *Matrix, dst []float32, r0, r1 int) {
		if r1 <= r0 {
			return
		}
		dst = dst[:(r1-r0)*m.cols]
		if m.cols%ChunkCols == 0 {
			avx2BitmapDecode(m, dst, r0, r1, m.cols)
			return
		}
		// A row's last chunk is written whole, past the row's end; the next
		// row's decode overwrites that. Rows whose spill could reach past
		// dst go through a scratch row: the last one, and every one when a
		// row is shorter than a chunk (the spill then outruns the next row).
		direct := r1 - 1
		if m.cols < ChunkCols {
			direct = r0
		}
		avx2BitmapDecode(m, dst, r0, direct, m.cols)
		row, buf := aligned(m.chunks * ChunkCols)
		for r := direct; r < r1; r++ {
			avx2BitmapDecode(m, row, r, r+1, m.cols)
			copy(dst[(r-r0)*m.cols:], row[:m.cols])
		}
		putBuffer(&vectors, buf)
	},
	bitmapDotBatch: func(m *Matrix, yT, xT []float32, nb, r0, r1 int) {
		checkBatch(nb)
		if r1 <= r0 {
			return
		}
		if m.dtype == BF16 {
			avx2DotBatchBF16(m, yT, xT, nb, r0, r1)
			return
		}
		stride := m.chunks * ChunkCols
		rows, buf := aligned(batchRows * stride)
		xT = xT[:m.chunks*nb*ChunkCols]
		for r := r0; r < r1; r += batchRows {
			n := min(batchRows, r1-r)
			avx2BitmapDecode(m, rows, r, r+n, stride)
			dotBatchF32AVX2(yT[(r-r0)*nb:(r-r0+n)*nb], rows[:n*stride], xT, m.chunks, nb, n)
		}
		putBuffer(&vectors, buf)
	},
	denseDot: func(d *DenseBF16, y, x []float32, r0, r1 int) {
		if r1 <= r0 {
			return
		}
		cols := d.cols
		x = x[:cols]
		xp, buf := aligned(cols)
		blocks := permuteBlocks(xp, x)
		w := d.w[r0*cols : r1*cols]
		if blocks > 0 {
			var out [4]float32
			var rows [4]*uint16
			for r := 0; r < r1-r0; r += 4 {
				for i := range rows {
					rows[i] = &w[min(r+i, r1-r0-1)*cols]
				}
				dot4DenseBF16AVX2(&out, &rows, &xp[0], blocks)
				copy(y[r:r1-r0], out[:])
			}
		} else {
			clear(y[:r1-r0])
		}
		for j := blocks * ChunkCols; j < cols; j++ {
			for i := range r1 - r0 {
				y[i] += kernels.BF16ToFloat32(w[i*cols+j]) * x[j]
			}
		}
		putBuffer(&vectors, buf)
	},
	denseDotBatch: func(d *DenseBF16, yT, xT []float32, nb, r0, r1 int) {
		checkBatch(nb)
		if r1 > r0 {
			avx2DenseDotBatch(d, yT, xT, nb, r0, r1)
		}
	},
	denseAxpy: func(d *DenseBF16, dx, dy []float32, r0, r1 int) {
		if r1 <= r0 {
			return
		}
		cols := d.cols
		dx, dy = dx[:cols], dy[:r1-r0]
		w := d.w[r0*cols : r1*cols]
		blocks := cols / ChunkCols
		if blocks > 0 {
			// Accumulate in the permuted order, then add back in place.
			dxp, buf := aligned(blocks * ChunkCols)
			permuteBlocks(dxp, dx[:blocks*ChunkCols])
			axpyDenseBF16AVX2(dxp, w, dy, blocks, cols)
			for b := range blocks {
				src, dst := dxp[b*ChunkCols:][:ChunkCols], dx[b*ChunkCols:][:ChunkCols]
				for i := range ChunkCols / 2 {
					dst[2*i], dst[2*i+1] = src[i], src[ChunkCols/2+i]
				}
			}
			putBuffer(&vectors, buf)
		}
		for j := blocks * ChunkCols; j < cols; j++ {
			for i, a := range dy {
				dx[j] += a * kernels.BF16ToFloat32(w[i*cols+j])
			}
		}
	},
	denseDecode: func(d *DenseBF16, dst []float32, r0, r1 int) {
		if r1 > r0 {
			widenRows(d, dst, r0, r1, d.cols)
		}
	},
}
