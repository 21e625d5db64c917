//go:build amd64 && !purego

package bitmap

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// The AVX512-BF16 kernels (kernels_avx512bf16_amd64.s). xb is x rounded to
// bf16 by packBF16 (one row) or packBF16Batch (nb rows, group-major).

//go:noescape
func packBF16(dst []uint16, src []float32)

//go:noescape
func packBF16Batch(dst []uint16, src []float32, chunks, nb int)

//go:noescape
func dotDenseBF16DP(y []float32, w []uint16, xb []uint16, cols int)

//go:noescape
func dotBitmapBF16DP(y []float32, masks []uint16, vals []uint16, xb []uint16, chunks int)

//go:noescape
func dotBitmapBF16DPx4(y []float32, masks []uint16, vals []uint16, xb []uint16, chunks, rows int)

//go:noescape
func dotBitmapBF16DPx8(y []float32, masks []uint16, vals []uint16, xb []uint16, chunks, rows int)

//go:noescape
func dotBitmapBF16DPx12(y []float32, masks []uint16, vals []uint16, xb []uint16, chunks, rows int)

//go:noescape
func dotBitmapBF16DPx16(y []float32, masks []uint16, vals []uint16, xb []uint16, chunks, rows int)

//go:noescape
func dotDenseBF16DPx4(y []float32, w []uint16, xb []uint16, cols, rows int)

//go:noescape
func dotDenseBF16DPx8(y []float32, w []uint16, xb []uint16, cols, rows int)

//go:noescape
func dotDenseBF16DPx12(y []float32, w []uint16, xb []uint16, cols, rows int)

//go:noescape
func dotDenseBF16DPx16(y []float32, w []uint16, xb []uint16, cols, rows int)

//go:noescape
func gemmBF16Tile(c []float32, xp []uint32, w []uint16, ldw, kpairs int)

//go:noescape
func decodeBitmapBF16Words(dst []uint16, masks []uint16, vals []uint16, rows, chunks, ldd int)

//go:noescape
func packPairsBF16(dst []uint32, lo, hi []uint16, idx []uint16, cols, stride int)

// packPairsIdx are the word indices of packPairsBF16's two VPERMT2W: word 2i
// of the result is word i of lo, word 2i+1 word i of hi (index 32+i).
var packPairsIdx = func() (idx [64]uint16) {
	for i := range 32 {
		idx[2*i], idx[2*i+1] = uint16(i), uint16(32+i)
	}
	return idx
}()

// packPairs is bf16Gemm.pairs with packPairsBF16.
func packPairs(dst []uint32, lo, hi []uint16, cols, stride int) {
	blocks := (cols + gemmM - 1) / gemmM
	packPairsBF16(dst[:(blocks-1)*stride+gemmM], lo[:cols], hi[:cols], packPairsIdx[:], cols, stride)
}

var (
	dotBitmapBF16DPBatch = [maxBatch + 1]func(y []float32, masks []uint16, vals []uint16, xb []uint16, chunks, rows int){
		4: dotBitmapBF16DPx4, 8: dotBitmapBF16DPx8, 12: dotBitmapBF16DPx12, 16: dotBitmapBF16DPx16}
	dotDenseBF16DPBatch = [maxBatch + 1]func(y []float32, w []uint16, xb []uint16, cols, rows int){
		4: dotDenseBF16DPx4, 8: dotDenseBF16DPx8, 12: dotDenseBF16DPx12, 16: dotDenseBF16DPx16}
)

// hasAVX512BF16 reports whether the CPU (and OS) support what the dense
// avx512bf16 kernels use besides the avx512 set's needs: AVX-512 BW (word
// masks) and BF16 (VDPBF16PS, VCVTNE2PS2BF16).
func hasAVX512BF16() bool {
	return hasAVX512() && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512BF16
}

// newAVX512BF16Kernels is the avx512bf16 set: the avx512 set with the dot
// products of bf16 weights (dense and bitmap, batch 1 and small batches)
// replaced by VDPBF16PS kernels, and the batched products (MulT and Mul above
// maxBatch) of bf16 weights by the VDPBF16PS GEMM of bf16Gemm. The bitmap
// dot products also need VPEXPANDW (AVX-512 VBMI2): without vbmi2 they stay
// the avx512 ones, and the GEMM decodes bitmap rows to fp32 and rounds them.
func newAVX512BF16Kernels(vbmi2 bool) *kernelSet {
	ks := *avx512Kernels
	ks.name = "avx512bf16"
	ks.fallback = avx512Kernels
	ks.denseBF16X = true
	ks.denseDot = func(d *DenseBF16, y, x []float32, r0, r1 int) {
		if r1 <= r0 {
			return
		}
		xb, buf := bf16Vector(x[:d.cols])
		dotDenseBF16DP(y[:r1-r0], d.w[r0*d.cols:r1*d.cols], xb, d.cols)
		putBuffer(&vectors, buf)
	}
	ks.denseDotBatch = func(d *DenseBF16, yT, xT []float32, nb, r0, r1 int) {
		if r1 <= r0 {
			return
		}
		xb, buf := bf16Batch(xT, ChunksPerRow(d.cols), nb)
		dotDenseBF16DPBatch[nb](yT[:(r1-r0)*nb], d.w[r0*d.cols:r1*d.cols], xb, d.cols, r1-r0)
		putBuffer(&vectors, buf)
	}
	g := &bf16Gemm{tile: gemmBF16Tile, round: packBF16, decode: decodeBitmapBF16WordsF32, pairs: packPairs}
	if vbmi2 {
		g.decode = decodeBitmapBF16WordsVBMI2
	}
	g.install(&ks)
	if !vbmi2 {
		return &ks
	}
	ks.bitmapBF16X = true
	ks.bitmapDot = func(m *Matrix, y, x []float32, r0, r1 int) {
		if m.dtype != BF16 {
			avx512Kernels.bitmapDot(m, y, x, r0, r1)
			return
		}
		if r1 <= r0 {
			return
		}
		xb, buf := bf16Vector(x[:m.cols])
		dotBitmapBF16DP(y[:r1-r0], m.rowMasks(r0, r1), m.rowValues16(r0, r1), xb, m.chunks)
		putBuffer(&vectors, buf)
	}
	ks.bitmapDotBatch = func(m *Matrix, yT, xT []float32, nb, r0, r1 int) {
		if m.dtype != BF16 {
			avx512Kernels.bitmapDotBatch(m, yT, xT, nb, r0, r1)
			return
		}
		if r1 <= r0 {
			return
		}
		xb, buf := bf16Batch(xT, m.chunks, nb)
		dotBitmapBF16DPBatch[nb](yT[:(r1-r0)*nb], m.rowMasks(r0, r1), m.rowValues16(r0, r1), xb, m.chunks, r1-r0)
		putBuffer(&vectors, buf)
	}
	return &ks
}

// avx512BF16Kernels is the avx512bf16 set for this CPU (its bitmap kernels
// only with VBMI2); kernelPaths offers it only where hasAVX512BF16.
var avx512BF16Kernels = newAVX512BF16Kernels(cpu.X86.HasAVX512VBMI2)

// bf16Vector returns x rounded to bf16 in a 64-byte aligned scratch vector of
// whole groups of 32 values (zero past len(x)), inside buf, to hand back with
// putBuffer(&vectors, buf).
func bf16Vector(x []float32) (xb []uint16, buf []float32) {
	n := (len(x) + 31) / 32 * 32
	xb, buf = alignedBF16(n)
	packBF16(xb, x)
	return xb, buf
}

// bf16Batch returns the nb rows of x given chunk-major in xT (packBatch)
// rounded to bf16 in the group-major layout of the batch kernels
// (packBF16Batch), like bf16Vector.
func bf16Batch(xT []float32, chunks, nb int) (xb []uint16, buf []float32) {
	xb, buf = alignedBF16((chunks + 1) / 2 * nb * 32)
	packBF16Batch(xb, xT[:chunks*nb*ChunkCols], chunks, nb)
	return xb, buf
}

// alignedBF16 returns n (even) uint16s on a 64-byte boundary, viewing an
// aligned float32 vector of the vectors pool.
func alignedBF16(n int) (xb []uint16, buf []float32) {
	f, buf := aligned(n / 2)
	return unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(f))), n), buf
}

// The batched product y = x Wᵀ of bf16 weights (MulT for n > maxBatch) on
// VDPBF16PS: x is rounded to bf16 once per call and packed by packX into
// blocks of gemmM rows, and W is taken gemmN rows at a time (dense bf16 rows
// as they are stored, bitmap rows decoded to bf16 in a small scratch that
// stays in cache); every block of gemmN rows of W is multiplied with every
// block of x by gemmBF16Tile calls over spans of gemmKC column pairs, and
// each tile is written to (or, after the first span, added to) its place in
// y. Blocks of rows of W are handed out to the cores. Mul (dx = dy W) runs
// the same tile with other operands (see mul).
const (
	gemmN     = 12   // rows of W per tile
	gemmM     = 32   // rows of x per tile
	gemmGroup = 4    // blocks of gemmN rows of W multiplied with each block of x in turn
	gemmKC    = 1024 // column pairs per tile call
)

// bf16Gemm holds the kernels the batched bf16 product runs: the assembly on
// CPUs with AVX512-BF16, pure-Go stand-ins in the drivers' tests.
type bf16Gemm struct {
	// tile is gemmBF16Tile: c (gemmN × gemmM) = the gemmN rows of w (stride
	// ldw) times the gemmM rows of x packed in xp, over kpairs pairs of columns.
	tile func(c []float32, xp []uint32, w []uint16, ldw, kpairs int)
	// round is packBF16: dst = src rounded to bf16, zero up to a multiple of 32.
	round func(dst []uint16, src []float32)
	// decode writes bitmap bf16 rows [r0, r1) as bf16 into dst (row i at
	// dst[i*ldd:], whole groups of 32 columns, zero past Cols).
	decode func(m *Matrix, dst []uint16, ldd, r0, r1 int)
	// pairs is packPairs: for each block b of 32 columns of two rows lo and
	// hi, dst[b*stride+i] = lo[32b+i] | hi[32b+i]<<16 (zero past cols).
	pairs func(dst []uint32, lo, hi []uint16, cols, stride int)
}

// install makes g the batched products of ks for dense bf16 and bitmap bf16
// matrices (other value types keep the panel pipeline).
func (g *bf16Gemm) install(ks *kernelSet) {
	ks.denseMulT = func(d *DenseBF16, y, x []float32, n int) { g.mulTDense(d, y, x, n) }
	ks.bitmapMulT = func(m *Matrix, y, x []float32, n int) bool {
		if m.dtype != BF16 {
			return false
		}
		g.mulTBitmap(m, y, x, n)
		return true
	}
	ks.denseMul = func(d *DenseBF16, dx, dy []float32, n int) {
		g.mul(dx, dy, n, d.rows, d.cols, func(_ []uint16, r int) []uint16 { return d.w[r*d.cols : (r+1)*d.cols] })
	}
	ks.bitmapMul = func(m *Matrix, dx, dy []float32, n int) bool {
		if m.dtype != BF16 {
			return false
		}
		g.mul(dx, dy, n, m.rows, m.cols, func(scratch []uint16, r int) []uint16 {
			g.decode(m, scratch, 0, r, r+1)
			return scratch[:m.cols]
		})
		return true
	}
}

// decodeBitmapBF16WordsVBMI2 is bf16Gemm.decode with VPEXPANDW.
func decodeBitmapBF16WordsVBMI2(m *Matrix, dst []uint16, ldd, r0, r1 int) {
	decodeBitmapBF16Words(dst[:(r1-r0-1)*ldd+gemmKPairs(m.cols, true)*2], m.rowMasks(r0, r1), m.rowValues16(r0, r1), r1-r0, m.chunks, ldd)
}

// decodeBitmapBF16WordsF32 is bf16Gemm.decode without VBMI2: the avx512
// decode to fp32, then rounding to bf16, which is exact for bf16 values.
func decodeBitmapBF16WordsF32(m *Matrix, dst []uint16, ldd, r0, r1 int) {
	wide, buf := aligned(m.cols)
	for r := r0; r < r1; r++ {
		avx512Kernels.bitmapDecode(m, wide, r, r+1)
		packBF16(dst[(r-r0)*ldd:(r-r0)*ldd+gemmKPairs(m.cols, true)*2], wide)
	}
	putBuffer(&vectors, buf)
}

// gemmKPairs is the number of column pairs the tiles run over for cols
// columns: whole groups of 32 for bitmap rows (as decoded), else cols/2
// rounded up.
func gemmKPairs(cols int, bitmap bool) int {
	if bitmap {
		return (cols + 31) / 32 * 16
	}
	return (cols + 1) / 2
}

// mulTDense is MulT for a dense bf16 matrix: its rows are used in place
// when Cols is even, copied with a zero column appended when it is odd.
func (g *bf16Gemm) mulTDense(d *DenseBF16, y, x []float32, n int) {
	kp := gemmKPairs(d.cols, false)
	g.mulT(y, x, n, d.rows, d.cols, kp, func(scratch []uint16, r0, r1 int) ([]uint16, int) {
		if d.cols%2 == 0 && r1-r0 == gemmN {
			return d.w[r0*d.cols : r1*d.cols], d.cols
		}
		for r := r0; r < r1; r++ {
			copy(scratch[(r-r0)*2*kp:], d.w[r*d.cols:(r+1)*d.cols])
		}
		return scratch, 2 * kp
	})
}

// mulTBitmap is MulT for a bitmap bf16 matrix: each block of gemmN rows is
// decoded to bf16 into the worker's scratch.
func (g *bf16Gemm) mulTBitmap(m *Matrix, y, x []float32, n int) {
	kp := gemmKPairs(m.cols, true)
	g.mulT(y, x, n, m.rows, m.cols, kp, func(scratch []uint16, r0, r1 int) ([]uint16, int) {
		g.decode(m, scratch, 2*kp, r0, r1)
		return scratch, 2 * kp
	})
}

// mulT sets y (n × rows) = x (n × cols) Wᵀ with kp column pairs per row of
// W (2·kp >= cols); rowsOf returns rows [r0, r1) (at most gemmN) of W as bf16
// with their stride, in place or written into scratch (gemmN rows of 2·kp
// values, zero where nothing was written since it was handed out).
//
// Each worker takes its blocks of gemmN rows of W gemmGroup at a time, and
// for each span of gemmKC column pairs multiplies every block of x with the
// group's blocks in turn: the span of the x block (gemmM·gemmKC dwords,
// 128 KB) and of the group's rows (192 KB) stay in L2 while they are reused.
// The sums of the spans are added in y in span order.
func (g *bf16Gemm) mulT(y, x []float32, n, rows, cols, kp int, rowsOf func(scratch []uint16, r0, r1 int) ([]uint16, int)) {
	mBlocks := (n + gemmM - 1) / gemmM
	xp, buf := panelDwords(mBlocks * kp * gemmM)
	defer putBuffer(&panels, buf)
	g.packX(xp, x, n, cols, kp)
	nBlocks := (rows + gemmN - 1) / gemmN
	workers, grain := blocking(nBlocks, gemmN*cols*n)
	grain = (grain + gemmGroup - 1) / gemmGroup * gemmGroup
	runBlocks(workers, nBlocks, grain, func(_, b0, b1 int) {
		type rowBlock struct {
			w           []uint16
			ldw, r0, r1 int
		}
		var group [gemmGroup]rowBlock
		var c [gemmN * gemmM]float32
		scratch := make([]uint16, gemmGroup*gemmN*2*kp)
		for g0 := b0; g0 < b1; g0 += gemmGroup {
			blocks := group[:min(gemmGroup, b1-g0)]
			for i := range blocks {
				r0, r1 := (g0+i)*gemmN, min((g0+i+1)*gemmN, rows)
				w, ldw := rowsOf(scratch[i*gemmN*2*kp:(i+1)*gemmN*2*kp], r0, r1)
				blocks[i] = rowBlock{w, ldw, r0, r1}
			}
			for k0 := 0; k0 < kp; k0 += gemmKC {
				k1 := min(k0+gemmKC, kp)
				for mb := range mBlocks {
					xs := xp[(mb*kp+k0)*gemmM : (mb*kp+k1)*gemmM]
					for _, rb := range blocks {
						g.tile(c[:], xs, rb.w[2*k0:(gemmN-1)*rb.ldw+2*k1], rb.ldw, k1-k0)
						for i := mb * gemmM; i < min(n, (mb+1)*gemmM); i++ {
							yi := y[i*rows+rb.r0 : i*rows+rb.r1]
							for j := range yi {
								if k0 == 0 {
									yi[j] = c[j*gemmM+i-mb*gemmM]
								} else {
									yi[j] += c[j*gemmM+i-mb*gemmM]
								}
							}
						}
					}
				}
			}
		}
	})
}

// packX writes the n rows of x (n × cols) rounded to bf16 into xp in the
// layout of gemmBF16Tile: for each block of gemmM rows and each pair kp of
// columns, gemmM dwords holding x[2kp] (low half) and x[2kp+1] (high half),
// zero past cols and for the rows past n in the last block.
func (g *bf16Gemm) packX(xp []uint32, x []float32, n, cols, kp int) {
	mBlocks := (n + gemmM - 1) / gemmM
	width := max((cols+31)/32*32, 2*kp)
	workers, grain := blocking(mBlocks, gemmM*cols)
	runBlocks(workers, mBlocks, grain, func(_, b0, b1 int) {
		row := make([]uint16, width)
		for mb := b0; mb < b1; mb++ {
			blk := xp[mb*kp*gemmM : (mb+1)*kp*gemmM]
			for i := range gemmM {
				if mb*gemmM+i >= n {
					for k := range kp {
						blk[k*gemmM+i] = 0
					}
					continue
				}
				g.round(row, x[(mb*gemmM+i)*cols:(mb*gemmM+i+1)*cols])
				for k := range kp {
					blk[k*gemmM+i] = uint32(row[2*k]) | uint32(row[2*k+1])<<16
				}
			}
		}
	})
}

// mul sets dx (n × cols) = dy (n × rows) W, W given one bf16 row at a time by
// rowOf (in place, or decoded into scratch: 2·gemmKPairs(cols, true) values).
// The tiles run with the roles of gemmBF16Tile's operands swapped: 12 rows
// of dy (rounded to bf16) are the broadcast rows, and the columns of W the
// packed ones, in pairs of rows of W. W goes in panels of 2·gemmKC rows: each
// is packed (packW, rows split across cores), then multiplied by blocks of
// 32 columns split across cores, gemmGroup blocks with each block of dy in
// turn, its sums written to (after the first panel, added to) dx.
func (g *bf16Gemm) mul(dx, dy []float32, n, rows, cols int, rowOf func(scratch []uint16, r int) []uint16) {
	ldy := (rows + 31) / 32 * 32 // dy rounded, zero past rows
	jBlocks := (n + gemmN - 1) / gemmN
	dyb := make([]uint16, jBlocks*gemmN*ldy)
	workers, grain := blocking(n, rows)
	runBlocks(workers, n, grain, func(_, i0, i1 int) {
		for i := i0; i < i1; i++ {
			g.round(dyb[i*ldy:(i+1)*ldy], dy[i*rows:(i+1)*rows])
		}
	})
	cBlocks := (cols + gemmM - 1) / gemmM
	wp, buf := panelDwords(cBlocks * gemmKC * gemmM)
	defer putBuffer(&panels, buf)
	for p0 := 0; p0 < rows; p0 += 2 * gemmKC {
		p1 := min(p0+2*gemmKC, rows)
		kp := (p1 - p0 + 1) / 2
		g.packW(wp, rowOf, p0, p1, cols, kp)
		workers, grain := blocking(cBlocks, gemmM*(p1-p0)*n)
		grain = (grain + gemmGroup - 1) / gemmGroup * gemmGroup
		runBlocks(workers, cBlocks, grain, func(_, b0, b1 int) {
			var c [gemmN * gemmM]float32
			for g0 := b0; g0 < b1; g0 += gemmGroup {
				g1 := min(g0+gemmGroup, b1)
				for jb := range jBlocks {
					a := dyb[jb*gemmN*ldy+p0 : jb*gemmN*ldy+p0+(gemmN-1)*ldy+2*kp]
					for cb := g0; cb < g1; cb++ {
						g.tile(c[:], wp[cb*kp*gemmM:(cb+1)*kp*gemmM], a, ldy, kp)
						c0, c1 := cb*gemmM, min((cb+1)*gemmM, cols)
						for j := range min(gemmN, n-jb*gemmN) {
							dxj := dx[(jb*gemmN+j)*cols+c0 : (jb*gemmN+j)*cols+c1]
							cj := c[j*gemmM : j*gemmM+len(dxj)]
							if p0 == 0 {
								copy(dxj, cj)
							} else {
								for i, v := range cj {
									dxj[i] += v
								}
							}
						}
					}
				}
			}
		})
	}
}

// panelDwords returns n uint32s (not cleared) viewing a buffer of the panels
// pool, to hand back with putBuffer(&panels, buf).
func panelDwords(n int) (s []uint32, buf []float32) {
	buf = getBuffer(&panels, n)
	return unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(buf))), n), buf
}

// packW writes rows [p0, p1) of W (kp pairs of rows, a zero row after an odd
// last one) into wp in the layout of gemmBF16Tile's packed operand, columns
// in the place of its rows of x: for each block of 32 columns and each pair
// of rows, 32 dwords holding W[p0+2kp, c] (low half) and W[p0+2kp+1, c],
// zero past cols.
func (g *bf16Gemm) packW(wp []uint32, rowOf func(scratch []uint16, r int) []uint16, p0, p1, cols, kp int) {
	width := 2 * gemmKPairs(cols, true)
	blocks := (cols + gemmM - 1) / gemmM
	zero := make([]uint16, cols)
	workers, grain := blocking(kp, 2*cols)
	runBlocks(workers, kp, grain, func(_, k0, k1 int) {
		s0, s1 := make([]uint16, width), make([]uint16, width)
		for k := k0; k < k1; k++ {
			lo, hi := rowOf(s0, p0+2*k), zero
			if p0+2*k+1 < p1 {
				hi = rowOf(s1, p0+2*k+1)
			}
			g.pairs(wp[k*gemmM:((blocks-1)*kp+k+1)*gemmM], lo[:cols], hi[:cols], cols, kp*gemmM)
		}
	})
}
