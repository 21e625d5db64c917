//go:build amd64 && !purego

#include "textflag.h"

// AVX2 (+ FMA, F16C, POPCNT) kernels of the bitmap format and of dense bf16;
// the layout is in doc.go, the Go references in kernels_generic.go, the
// wrappers that pad tails and the shuffle tables in kernels_avx2_amd64.go.
//
// A chunk of 16 columns is done as two halves of 8 (one ymm of fp32 each).
// For a half, the mask byte m selects a 32-byte (bf16, fp32) or 16-byte
// (fp16) entry of a table built once (avx2Tables): bf16 broadcasts the next
// 16 bytes of packed values to both 128-bit lanes and one VPSHUFB moves
// value k to the high half of lane i, zeros elsewhere (k = the number of
// bits of m below bit i); fp16 shuffles 8 halves the same way and widens
// them with VCVTPH2PS; fp32 permutes 8 values with VPERMPS and ANDs the
// unselected lanes to zero. The value pointer then moves by popcount(m).
// Loads of values may reach 16 values past the last one (the value slices
// keep valuePad spare values). x, dx and dst are accessed as whole chunks:
// the wrappers pass rows of x and dx padded to whole chunks and decode the
// last row of a range with a partial chunk into a scratch row.

#ifndef PF2_VALUES
#define PF2_VALUES 1024
#endif
#define PF2_MASKS 256

// Table offsets inside avx2Tables.
#define TAB_BF16 0
#define TAB_F16 8192
#define TAB_F32 12288

// EXP_*(idx, src, y, x, t): y = 8 fp32 lanes of the packed values at src
// for the mask byte whose table offset is in idx (t, x scratch).
#define EXP_BF16(idx, src, y, x, t) VBROADCASTI128 src, y; VPSHUFB (R14)(idx*1), y, y
#define EXP_F16(idx, src, y, x, t) VMOVDQU src, x; VPSHUFB (R14)(idx*1), x, x; VCVTPH2PS x, y
#define EXP_F32(idx, src, y, x, t) VMOVDQU (R14)(idx*1), t; VPERMPS src, t, y; VANDPS 8192(R14)(idx*1), y, y

// CHUNKP(EXP, SH, S, moff, MP, VP, ya, xa, yb, xb, ta, tb): ya, yb = the
// chunk whose mask is at moff(MP), columns 0-7 and 8-15; VP moves past its
// values (S bytes each). SH is log2 of the table entry size. Clobbers AX, BX,
// R12, R13.
#define CHUNKP(EXP, SH, S, moff, MP, VP, ya, xa, yb, xb, ta, tb) \
	MOVWLZX moff(MP), AX; \
	MOVBLZX AX, BX; \
	SHRL $8, AX; \
	POPCNTL BX, R12; \
	POPCNTL AX, R13; \
	SHLL $SH, BX; \
	SHLL $SH, AX; \
	EXP(BX, (VP), ya, xa, ta); \
	LEAQ (VP)(R12*S), VP; \
	EXP(AX, (VP), yb, xb, tb); \
	LEAQ (VP)(R13*S), VP

// CHUNK(EXP, SH, S, moff): Y4, Y5 = the chunk whose mask is at moff(SI);
// DX moves past its values.
#define CHUNK(EXP, SH, S, moff) CHUNKP(EXP, SH, S, moff, SI, DX, Y4, X4, Y5, X5, Y6, Y7)

// HSUM: X0[0] = sum of the 8 lanes of Y0 (clobbers Y1).
#define HSUM \
	VEXTRACTF128 $1, Y0, X1; \
	VADDPS X1, X0, X0; \
	VMOVHLPS X0, X0, X1; \
	VADDPS X1, X0, X0; \
	VMOVSHDUP X0, X1; \
	VADDSS X1, X0, X0

// Bitmap dot: for each of R9 rows, (DI) = row · x; R8 x, R10 chunks per row.
// Chunks go in pairs with four accumulators.
#define DOT_BITMAP(EXP, SH, S, TAB) \
	MOVQ ·avx2Tables(SB), R14; \
	ADDQ $TAB, R14; \
	TESTQ R9, R9; \
	JZ   done; \
rowloop: \
	VXORPS Y0, Y0, Y0; \
	VXORPS Y1, Y1, Y1; \
	VXORPS Y2, Y2, Y2; \
	VXORPS Y3, Y3, Y3; \
	MOVQ R8, R11; \
	MOVQ R10, CX; \
	SUBQ $2, CX; \
	JL   tail; \
pair: \
	PREFETCHT0 PF2_VALUES(DX); \
	PREFETCHT0 PF2_MASKS(SI); \
	CHUNK(EXP, SH, S, 0); \
	VFMADD231PS (R11), Y4, Y0; \
	VFMADD231PS 32(R11), Y5, Y1; \
	CHUNK(EXP, SH, S, 2); \
	VFMADD231PS 64(R11), Y4, Y2; \
	VFMADD231PS 96(R11), Y5, Y3; \
	ADDQ $4, SI; \
	ADDQ $128, R11; \
	SUBQ $2, CX; \
	JGE  pair; \
tail: \
	ADDQ $2, CX; \
	JZ   reduce; \
	CHUNK(EXP, SH, S, 0); \
	VFMADD231PS (R11), Y4, Y0; \
	VFMADD231PS 32(R11), Y5, Y1; \
	ADDQ $2, SI; \
reduce: \
	VADDPS Y1, Y0, Y0; \
	VADDPS Y3, Y2, Y2; \
	VADDPS Y2, Y0, Y0; \
	HSUM; \
	VMOVSS X0, (DI); \
	ADDQ $4, DI; \
	DECQ R9; \
	JNZ  rowloop; \
done: \
	VZEROUPPER; \
	RET

// Bitmap dot of two rows at a time, one from each of two row ranges (two
// streams in flight, x loaded once for both): (DI)[i] = row A_i · x and
// (DI)(yb)[i] = row B_i · x until DI reaches yend; SI, DX the masks and
// values of A, R9, R8 those of B, R10 chunks per row.
#define DOT2_BITMAP(EXP, SH, S, TAB) \
	MOVQ ·avx2Tables(SB), R14; \
	ADDQ $TAB, R14; \
	CMPQ DI, yend+144(FP); \
	JEQ  done; \
rowloop: \
	VXORPS Y0, Y0, Y0; \
	VXORPS Y1, Y1, Y1; \
	VXORPS Y2, Y2, Y2; \
	VXORPS Y3, Y3, Y3; \
	MOVQ x_base+120(FP), R11; \
	MOVQ R10, CX; \
	SUBQ $2, CX; \
	JL   one; \
pair: \
	VMOVUPS (R11), Y8; \
	VMOVUPS 32(R11), Y9; \
	CHUNKP(EXP, SH, S, 0, SI, DX, Y4, X4, Y5, X5, Y6, Y7); \
	VFMADD231PS Y8, Y4, Y0; \
	VFMADD231PS Y9, Y5, Y1; \
	CHUNKP(EXP, SH, S, 0, R9, R8, Y10, X10, Y11, X11, Y12, Y13); \
	VFMADD231PS Y8, Y10, Y2; \
	VFMADD231PS Y9, Y11, Y3; \
	VMOVUPS 64(R11), Y8; \
	VMOVUPS 96(R11), Y9; \
	CHUNKP(EXP, SH, S, 2, SI, DX, Y4, X4, Y5, X5, Y6, Y7); \
	VFMADD231PS Y8, Y4, Y0; \
	VFMADD231PS Y9, Y5, Y1; \
	CHUNKP(EXP, SH, S, 2, R9, R8, Y10, X10, Y11, X11, Y12, Y13); \
	VFMADD231PS Y8, Y10, Y2; \
	VFMADD231PS Y9, Y11, Y3; \
	ADDQ $4, SI; \
	ADDQ $4, R9; \
	ADDQ $128, R11; \
	SUBQ $2, CX; \
	JGE  pair; \
one: \
	ADDQ $2, CX; \
	JZ   sum; \
	VMOVUPS (R11), Y8; \
	VMOVUPS 32(R11), Y9; \
	CHUNKP(EXP, SH, S, 0, SI, DX, Y4, X4, Y5, X5, Y6, Y7); \
	VFMADD231PS Y8, Y4, Y0; \
	VFMADD231PS Y9, Y5, Y1; \
	CHUNKP(EXP, SH, S, 0, R9, R8, Y10, X10, Y11, X11, Y12, Y13); \
	VFMADD231PS Y8, Y10, Y2; \
	VFMADD231PS Y9, Y11, Y3; \
	ADDQ $2, SI; \
	ADDQ $2, R9; \
sum: \
	VADDPS Y1, Y0, Y0; \
	VADDPS Y3, Y2, Y7; \
	HSUM; \
	VMOVSS X0, (DI); \
	VMOVAPS Y7, Y0; \
	HSUM; \
	MOVQ yb+152(FP), AX; \
	VMOVSS X0, (DI)(AX*1); \
	ADDQ $4, DI; \
	CMPQ DI, yend+144(FP); \
	JNE  rowloop; \
done: \
	VZEROUPPER; \
	RET

// Bitmap axpy: for each of R9 rows, dx (DI) += (R8)[row] · row; R10 chunks
// per row, Y15 the broadcast dy[row]. Every lane of dx is read and written
// (unselected lanes add dy·0).
#define AXPY_BITMAP(EXP, SH, S, TAB) \
	MOVQ ·avx2Tables(SB), R14; \
	ADDQ $TAB, R14; \
	TESTQ R9, R9; \
	JZ   done; \
rowloop: \
	VBROADCASTSS (R8), Y15; \
	ADDQ $4, R8; \
	MOVQ DI, R11; \
	MOVQ R10, CX; \
chunk: \
	PREFETCHT0 PF2_VALUES(DX); \
	CHUNK(EXP, SH, S, 0); \
	VFMADD213PS (R11), Y15, Y4; \
	VFMADD213PS 32(R11), Y15, Y5; \
	VMOVUPS Y4, (R11); \
	VMOVUPS Y5, 32(R11); \
	ADDQ $2, SI; \
	ADDQ $64, R11; \
	DECQ CX; \
	JNZ  chunk; \
	DECQ R9; \
	JNZ  rowloop; \
done: \
	VZEROUPPER; \
	RET

// Bitmap decode: R9 rows of R10 whole chunks into rows of dst (DI) R8 bytes
// apart.
#define DECODE_BITMAP(EXP, SH, S, TAB) \
	MOVQ ·avx2Tables(SB), R14; \
	ADDQ $TAB, R14; \
	TESTQ R9, R9; \
	JZ   done; \
rowloop: \
	MOVQ DI, R11; \
	MOVQ R10, CX; \
chunk: \
	PREFETCHT0 PF2_VALUES(DX); \
	CHUNK(EXP, SH, S, 0); \
	VMOVUPS Y4, (R11); \
	VMOVUPS Y5, 32(R11); \
	ADDQ $2, SI; \
	ADDQ $64, R11; \
	DECQ CX; \
	JNZ  chunk; \
	ADDQ R8, DI; \
	DECQ R9; \
	JNZ  rowloop; \
done: \
	VZEROUPPER; \
	RET

// func dotBitmapF16AVX2(y []float32, masks []uint16, vals []uint16, x []float32, chunks int)
TEXT ·dotBitmapF16AVX2(SB), NOSPLIT, $0-104
	MOVQ y_base+0(FP), DI
	MOVQ y_len+8(FP), R9
	MOVQ masks_base+24(FP), SI
	MOVQ vals_base+48(FP), DX
	MOVQ x_base+72(FP), R8
	MOVQ chunks+96(FP), R10
	DOT_BITMAP(EXP_F16, 4, 2, TAB_F16)

// func dotBitmapF32AVX2(y []float32, masks []uint16, vals []float32, x []float32, chunks int)
TEXT ·dotBitmapF32AVX2(SB), NOSPLIT, $0-104
	MOVQ y_base+0(FP), DI
	MOVQ y_len+8(FP), R9
	MOVQ masks_base+24(FP), SI
	MOVQ vals_base+48(FP), DX
	MOVQ x_base+72(FP), R8
	MOVQ chunks+96(FP), R10
	DOT_BITMAP(EXP_F32, 5, 4, TAB_F32)

// func dot2BitmapF16AVX2(y []float32, masks, masksB []uint16, vals, valsB []uint16, x []float32, yend, yb uintptr, chunks int)
TEXT ·dot2BitmapF16AVX2(SB), NOSPLIT, $0-168
	MOVQ y_base+0(FP), DI
	MOVQ masks_base+24(FP), SI
	MOVQ masksB_base+48(FP), R9
	MOVQ vals_base+72(FP), DX
	MOVQ valsB_base+96(FP), R8
	MOVQ chunks+160(FP), R10
	DOT2_BITMAP(EXP_F16, 4, 2, TAB_F16)

// func dot2BitmapF32AVX2(y []float32, masks, masksB []uint16, vals, valsB []float32, x []float32, yend, yb uintptr, chunks int)
TEXT ·dot2BitmapF32AVX2(SB), NOSPLIT, $0-168
	MOVQ y_base+0(FP), DI
	MOVQ masks_base+24(FP), SI
	MOVQ masksB_base+48(FP), R9
	MOVQ vals_base+72(FP), DX
	MOVQ valsB_base+96(FP), R8
	MOVQ chunks+160(FP), R10
	DOT2_BITMAP(EXP_F32, 5, 4, TAB_F32)

// func axpyBitmapBF16AVX2(dx []float32, masks []uint16, vals []uint16, dy []float32, chunks int)
TEXT ·axpyBitmapBF16AVX2(SB), NOSPLIT, $0-104
	MOVQ dx_base+0(FP), DI
	MOVQ masks_base+24(FP), SI
	MOVQ vals_base+48(FP), DX
	MOVQ dy_base+72(FP), R8
	MOVQ dy_len+80(FP), R9
	MOVQ chunks+96(FP), R10
	AXPY_BITMAP(EXP_BF16, 5, 2, TAB_BF16)

// func axpyBitmapF16AVX2(dx []float32, masks []uint16, vals []uint16, dy []float32, chunks int)
TEXT ·axpyBitmapF16AVX2(SB), NOSPLIT, $0-104
	MOVQ dx_base+0(FP), DI
	MOVQ masks_base+24(FP), SI
	MOVQ vals_base+48(FP), DX
	MOVQ dy_base+72(FP), R8
	MOVQ dy_len+80(FP), R9
	MOVQ chunks+96(FP), R10
	AXPY_BITMAP(EXP_F16, 4, 2, TAB_F16)

// func axpyBitmapF32AVX2(dx []float32, masks []uint16, vals []float32, dy []float32, chunks int)
TEXT ·axpyBitmapF32AVX2(SB), NOSPLIT, $0-104
	MOVQ dx_base+0(FP), DI
	MOVQ masks_base+24(FP), SI
	MOVQ vals_base+48(FP), DX
	MOVQ dy_base+72(FP), R8
	MOVQ dy_len+80(FP), R9
	MOVQ chunks+96(FP), R10
	AXPY_BITMAP(EXP_F32, 5, 4, TAB_F32)

// func decodeBitmapBF16AVX2(dst []float32, masks []uint16, vals []uint16, rows, chunks, stride int)
TEXT ·decodeBitmapBF16AVX2(SB), NOSPLIT, $0-96
	MOVQ dst_base+0(FP), DI
	MOVQ masks_base+24(FP), SI
	MOVQ vals_base+48(FP), DX
	MOVQ rows+72(FP), R9
	MOVQ chunks+80(FP), R10
	MOVQ stride+88(FP), R8
	SHLQ $2, R8
	DECODE_BITMAP(EXP_BF16, 5, 2, TAB_BF16)

// func decodeBitmapF16AVX2(dst []float32, masks []uint16, vals []uint16, rows, chunks, stride int)
TEXT ·decodeBitmapF16AVX2(SB), NOSPLIT, $0-96
	MOVQ dst_base+0(FP), DI
	MOVQ masks_base+24(FP), SI
	MOVQ vals_base+48(FP), DX
	MOVQ rows+72(FP), R9
	MOVQ chunks+80(FP), R10
	MOVQ stride+88(FP), R8
	SHLQ $2, R8
	DECODE_BITMAP(EXP_F16, 4, 2, TAB_F16)

// func decodeBitmapF32AVX2(dst []float32, masks []uint16, vals []float32, rows, chunks, stride int)
TEXT ·decodeBitmapF32AVX2(SB), NOSPLIT, $0-96
	MOVQ dst_base+0(FP), DI
	MOVQ masks_base+24(FP), SI
	MOVQ vals_base+48(FP), DX
	MOVQ rows+72(FP), R9
	MOVQ chunks+80(FP), R10
	MOVQ stride+88(FP), R8
	SHLQ $2, R8
	DECODE_BITMAP(EXP_F32, 5, 4, TAB_F32)

// Batch-1 bf16 dot of four rows at once (four streams of masks and four of
// values in flight, each chunk of x loaded once for all four): y[i] = row i ·
// x for the rows whose masks and values start at masks[i] and vals[i]. Per
// row and chunk: the mask's low byte, times 32, indexes the table entry of
// columns 0-7 (values at V); its popcount (of the byte times 32, the same)
// places the values of columns 8-15; the popcount of the whole mask moves V.
// Each row has one accumulator for columns 0-7 and one for 8-15, summed at
// the end, the same operations in the same order for every row.
//
// ROW4_BF16(M, V, lo, hi): lo, hi += the chunk of the row with masks at
// M+R12 and values at V, times Y8, Y9; V moves past its values. Clobbers AX,
// BX, Y10, Y11.
#define ROW4_BF16(M, V, lo, hi) \
	MOVWLZX (M)(R12*1), AX; \
	MOVBLZX AX, BX; \
	SHLL $5, BX; \
	VBROADCASTI128 (V), Y10; \
	VPSHUFB (R14)(BX*1), Y10, Y10; \
	POPCNTL BX, BX; \
	VBROADCASTI128 (V)(BX*2), Y11; \
	POPCNTL AX, BX; \
	SHRL $8, AX; \
	SHLL $5, AX; \
	VPSHUFB (R14)(AX*1), Y11, Y11; \
	LEAQ (V)(BX*2), V; \
	VFMADD231PS Y8, Y10, lo; \
	VFMADD231PS Y9, Y11, hi

// HSUM_TO(y, x, t): x[0] = the sum of the 8 lanes of y in the order of HSUM
// (clobbers t).
#define HSUM_TO(y, x, t) \
	VEXTRACTF128 $1, y, t; \
	VADDPS t, x, x; \
	VMOVHLPS x, x, t; \
	VADDPS t, x, x; \
	VMOVSHDUP x, t; \
	VADDSS t, x, x

// STORE4: (AX)[i] = the sum of the two accumulators of row i (Y0+Y1, ...,
// Y6+Y7).
#define STORE4 \
	VADDPS Y1, Y0, Y0; \
	VADDPS Y3, Y2, Y2; \
	VADDPS Y5, Y4, Y4; \
	VADDPS Y7, Y6, Y6; \
	HSUM_TO(Y0, X0, X1); \
	HSUM_TO(Y2, X2, X3); \
	HSUM_TO(Y4, X4, X5); \
	HSUM_TO(Y6, X6, X7); \
	VMOVSS X0, (AX); \
	VMOVSS X2, 4(AX); \
	VMOVSS X4, 8(AX); \
	VMOVSS X6, 12(AX)

#define ZERO8 \
	VXORPS Y0, Y0, Y0; \
	VXORPS Y1, Y1, Y1; \
	VXORPS Y2, Y2, Y2; \
	VXORPS Y3, Y3, Y3; \
	VXORPS Y4, Y4, Y4; \
	VXORPS Y5, Y5, Y5; \
	VXORPS Y6, Y6, Y6; \
	VXORPS Y7, Y7, Y7

// func dot4BitmapBF16AVX2(y *[4]float32, masks, vals *[4]*uint16, x *float32, chunks int)
TEXT ·dot4BitmapBF16AVX2(SB), NOSPLIT, $0-40
	MOVQ ·avx2Tables(SB), R14
	ADDQ $TAB_BF16, R14
	MOVQ chunks+32(FP), R12
	SHLQ $1, R12
	MOVQ masks+8(FP), AX
	MOVQ 0(AX), SI
	MOVQ 8(AX), DI
	MOVQ 16(AX), R8
	MOVQ 24(AX), R9
	ADDQ R12, SI                 // the masks' ends: R12 runs from -2*chunks to 0
	ADDQ R12, DI
	ADDQ R12, R8
	ADDQ R12, R9
	NEGQ R12
	MOVQ vals+16(FP), AX
	MOVQ 0(AX), DX
	MOVQ 8(AX), CX
	MOVQ 16(AX), R10
	MOVQ 24(AX), R13
	MOVQ x+24(FP), R11
	ZERO8
	TESTQ R12, R12
	JZ    sum

chunk:
	VMOVUPS (R11), Y8
	VMOVUPS 32(R11), Y9
	ROW4_BF16(SI, DX, Y0, Y1)
	ROW4_BF16(DI, CX, Y2, Y3)
	ROW4_BF16(R8, R10, Y4, Y5)
	ROW4_BF16(R9, R13, Y6, Y7)
	ADDQ $64, R11
	ADDQ $2, R12
	JNZ  chunk

sum:
	MOVQ y+0(FP), AX
	STORE4
	VZEROUPPER
	RET

// ---------------------------------------------------------------------------
// Dense bf16. 16 bf16 weights are one 32-byte load; VPSLLD $16 gives the
// even ones as fp32 and VPAND with 0xffff0000 the odd ones, so the kernels
// work on x and dx permuted per block of 16 (the 8 even columns, then the 8
// odd ones; the wrappers permute). The axpy's rows are R8 bytes apart; R10
// whole blocks per row (the wrappers do the partial block). The batch-1 dot
// (dot4DenseBF16AVX2) takes its four rows by pointer.

#define SPLIT(woff, e, o) \
	VMOVDQU woff(AX), o; \
	VPSLLD  $16, o, e; \
	VPAND   Y15, o, o

#define ODD_MASK \
	MOVL $0xffff0000, BX; \
	MOVQ BX, X15; \
	VPBROADCASTD X15, Y15

// Batch-1 dot of four rows at once (four streams in flight, each block of x
// loaded once for all four): y[i] = row i · xp over `blocks` blocks of 16,
// the rows starting at w[i]. Each row has one accumulator for the even and
// one for the odd columns, summed at the end, the same operations in the
// same order for every row.
//
// DROW4(W, e, o): e, o += the block of the row at W+R12, split, times Y8, Y9.
#define DROW4(W, e, o) \
	VMOVDQU (W)(R12*1), Y11; \
	VPSLLD  $16, Y11, Y10; \
	VPAND   Y15, Y11, Y11; \
	VFMADD231PS Y8, Y10, e; \
	VFMADD231PS Y9, Y11, o

// func dot4DenseBF16AVX2(y *[4]float32, w *[4]*uint16, xp *float32, blocks int)
TEXT ·dot4DenseBF16AVX2(SB), NOSPLIT, $0-32
	MOVQ blocks+24(FP), R12
	SHLQ $5, R12
	MOVQ w+8(FP), AX
	MOVQ 0(AX), SI
	MOVQ 8(AX), DI
	MOVQ 16(AX), R8
	MOVQ 24(AX), R9
	ADDQ R12, SI                 // the rows' ends: R12 runs from -32*blocks to 0
	ADDQ R12, DI
	ADDQ R12, R8
	ADDQ R12, R9
	MOVQ xp+16(FP), R11
	LEAQ (R11)(R12*2), R11       // the end of xp: 64 bytes per block
	NEGQ R12
	ODD_MASK
	ZERO8
	TESTQ R12, R12
	JZ    sum

block:
	VMOVUPS (R11)(R12*2), Y8
	VMOVUPS 32(R11)(R12*2), Y9
	DROW4(SI, Y0, Y1)
	DROW4(DI, Y2, Y3)
	DROW4(R8, Y4, Y5)
	DROW4(R9, Y6, Y7)
	ADDQ $32, R12
	JNZ  block

sum:
	MOVQ y+0(FP), AX
	STORE4
	VZEROUPPER
	RET

// func axpyDenseBF16AVX2(dxp []float32, w []uint16, dy []float32, blocks, stride int)
TEXT ·axpyDenseBF16AVX2(SB), NOSPLIT, $0-88
	MOVQ dxp_base+0(FP), R11
	MOVQ w_base+24(FP), SI
	MOVQ dy_base+48(FP), DI
	MOVQ dy_len+56(FP), R9
	MOVQ blocks+72(FP), R10
	MOVQ stride+80(FP), R8
	SHLQ $1, R8
	ODD_MASK
	TESTQ R9, R9
	JZ    done
	TESTQ R10, R10
	JZ    done

rowloop:
	VBROADCASTSS (DI), Y14
	ADDQ $4, DI
	MOVQ SI, AX
	MOVQ R11, DX
	MOVQ R10, CX

block:
	PREFETCHT0 PF2_VALUES(AX)
	SPLIT(0, Y8, Y9)
	VFMADD213PS (DX), Y14, Y8
	VFMADD213PS 32(DX), Y14, Y9
	VMOVUPS Y8, (DX)
	VMOVUPS Y9, 32(DX)
	ADDQ $32, AX
	ADDQ $64, DX
	DECQ CX
	JNZ  block
	ADDQ R8, SI
	DECQ R9
	JNZ  rowloop

done:
	VZEROUPPER
	RET

// func widenBF16AVX2(dst []float32, src []uint16)
// Widens the first len(src)/8*8 values; the wrapper does the rest.
TEXT ·widenBF16AVX2(SB), NOSPLIT, $0-48
	MOVQ dst_base+0(FP), DI
	MOVQ src_base+24(FP), SI
	MOVQ src_len+32(FP), CX
	SHRQ $3, CX
	SUBQ $4, CX
	JL   tail

quad:
	PREFETCHT0 PF2_VALUES(SI)
	VPMOVZXWD (SI), Y0
	VPMOVZXWD 16(SI), Y1
	VPMOVZXWD 32(SI), Y2
	VPMOVZXWD 48(SI), Y3
	VPSLLD    $16, Y0, Y0
	VPSLLD    $16, Y1, Y1
	VPSLLD    $16, Y2, Y2
	VPSLLD    $16, Y3, Y3
	VMOVUPS   Y0, (DI)
	VMOVUPS   Y1, 32(DI)
	VMOVUPS   Y2, 64(DI)
	VMOVUPS   Y3, 96(DI)
	ADDQ      $64, SI
	ADDQ      $128, DI
	SUBQ      $4, CX
	JGE       quad

tail:
	ADDQ $4, CX
	JZ   done

single:
	VPMOVZXWD (SI), Y0
	VPSLLD    $16, Y0, Y0
	VMOVUPS   Y0, (DI)
	ADDQ      $16, SI
	ADDQ      $32, DI
	DECQ      CX
	JNZ       single

done:
	VZEROUPPER
	RET

// ---------------------------------------------------------------------------
// Small batches on decoded rows: for each of R9 rows of fp32 weights (R10
// whole chunks each, consecutive), yT[row*nb+b] = row · x_b for the nb rows of
// x in the chunk-major layout of packBatch, four rows of x at a time with two
// accumulators each.

// func dotBatchF32AVX2(yT []float32, w []float32, xT []float32, chunks, nb, rows int)
TEXT ·dotBatchF32AVX2(SB), NOSPLIT, $0-96
	MOVQ yT_base+0(FP), DI
	MOVQ w_base+24(FP), SI
	MOVQ xT_base+48(FP), R8
	MOVQ chunks+72(FP), R10
	MOVQ nb+80(FP), BX
	MOVQ rows+88(FP), R9
	MOVQ BX, R13
	SHLQ $6, R13                 // x stride per chunk: nb*64 bytes
	TESTQ R9, R9
	JZ    done

rowloop:
	MOVQ R8, R14
	MOVQ BX, AX

group:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	MOVQ SI, R11
	MOVQ R14, R12
	MOVQ R10, CX

chunk:
	VMOVUPS     (R11), Y8
	VMOVUPS     32(R11), Y9
	VFMADD231PS (R12), Y8, Y0
	VFMADD231PS 32(R12), Y9, Y1
	VFMADD231PS 64(R12), Y8, Y2
	VFMADD231PS 96(R12), Y9, Y3
	VFMADD231PS 128(R12), Y8, Y4
	VFMADD231PS 160(R12), Y9, Y5
	VFMADD231PS 192(R12), Y8, Y6
	VFMADD231PS 224(R12), Y9, Y7
	ADDQ        $64, R11
	ADDQ        R13, R12
	DECQ        CX
	JNZ         chunk

	// Y0 = row·x_0 ... Y6 = row·x_3 (8 partial lanes each), then
	// X0 = the four sums.
	VADDPS       Y1, Y0, Y0
	VADDPS       Y3, Y2, Y2
	VADDPS       Y5, Y4, Y4
	VADDPS       Y7, Y6, Y6
	VHADDPS      Y2, Y0, Y0
	VHADDPS      Y6, Y4, Y4
	VHADDPS      Y4, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VMOVUPS      X0, (DI)
	ADDQ         $16, DI
	ADDQ         $256, R14
	SUBQ         $4, AX
	JNZ          group

	MOVQ R10, AX
	SHLQ $6, AX
	ADDQ AX, SI
	DECQ R9
	JNZ  rowloop

done:
	VZEROUPPER
	RET

// ---------------------------------------------------------------------------
// Register-blocked small batches: two rows of weights (A and B) times the nb
// rows of x in the chunk-major layout of packBatch, four rows of x per pass.
// Each half chunk of a weight row is decoded once per pass into a register
// (bitmap bf16 as in ROW4_BF16, dense bf16 by VPMOVZXWD and VPSLLD) and
// multiplied with the matching 8 columns of the four rows of x; each (weight
// row, x row) pair has one accumulator that takes columns 0-7, then 8-15 of
// every chunk, summed horizontally at the end and added to the output (the
// wrappers call the kernels per block of columns). Every pair goes through
// the same operations whichever row it is paired with. Registers: R8, R9 the
// ends of the masks (bitmap) or rows (dense) of A and B, R10 minus their
// length in bytes, R12 the running index from R10 to 0, DX and CX the value
// pointers of A and B (bitmap), R11 the current chunk of x, R13 the bytes of
// x per chunk (nb*64), SI the byte offset of the pass's rows of x in a chunk.

// DEC_BITMAP2: Y8, Y9 = the chunk of A (columns 0-7, 8-15), Y10, Y11 that of
// B; the value pointers move past their values. Clobbers AX, BX.
#define DEC_BITMAP2 \
	MOVWLZX (R8)(R12*1), AX; \
	MOVBLZX AX, BX; \
	SHLL $5, BX; \
	VBROADCASTI128 (DX), Y8; \
	VPSHUFB (R14)(BX*1), Y8, Y8; \
	POPCNTL BX, BX; \
	VBROADCASTI128 (DX)(BX*2), Y9; \
	POPCNTL AX, BX; \
	SHRL $8, AX; \
	SHLL $5, AX; \
	VPSHUFB (R14)(AX*1), Y9, Y9; \
	LEAQ (DX)(BX*2), DX; \
	MOVWLZX (R9)(R12*1), AX; \
	MOVBLZX AX, BX; \
	SHLL $5, BX; \
	VBROADCASTI128 (CX), Y10; \
	VPSHUFB (R14)(BX*1), Y10, Y10; \
	POPCNTL BX, BX; \
	VBROADCASTI128 (CX)(BX*2), Y11; \
	POPCNTL AX, BX; \
	SHRL $8, AX; \
	SHLL $5, AX; \
	VPSHUFB (R14)(AX*1), Y11, Y11; \
	LEAQ (CX)(BX*2), CX

// DEC_DENSE2: the same for dense bf16 rows (16 weights, 32 bytes per chunk).
#define DEC_DENSE2 \
	VPMOVZXWD (R8)(R12*1), Y8; \
	VPMOVZXWD 16(R8)(R12*1), Y9; \
	VPMOVZXWD (R9)(R12*1), Y10; \
	VPMOVZXWD 16(R9)(R12*1), Y11; \
	VPSLLD $16, Y8, Y8; \
	VPSLLD $16, Y9, Y9; \
	VPSLLD $16, Y10, Y10; \
	VPSLLD $16, Y11, Y11

// FMA2(off, wa, wb, xr, acca, accb): acca += wa * the 8 values of x at
// off(R11), accb += wb * them.
#define FMA2(off, wa, wb, xr, acca, accb) \
	VMOVUPS off(R11), xr; \
	VFMADD231PS xr, wa, acca; \
	VFMADD231PS xr, wb, accb

// FMA16: the 16 products of a chunk (Y8-Y11) with four rows of x at R11.
#define FMA16 \
	FMA2(0, Y8, Y10, Y12, Y0, Y4); \
	FMA2(64, Y8, Y10, Y13, Y1, Y5); \
	FMA2(128, Y8, Y10, Y12, Y2, Y6); \
	FMA2(192, Y8, Y10, Y13, Y3, Y7); \
	FMA2(32, Y9, Y11, Y12, Y0, Y4); \
	FMA2(96, Y9, Y11, Y13, Y1, Y5); \
	FMA2(160, Y9, Y11, Y12, Y2, Y6); \
	FMA2(224, Y9, Y11, Y13, Y3, Y7)

// STORE2: adds the four sums of A (Y0-Y3) and of B (Y4-Y7) to the outputs
// of the pass (AX points to the pointers to the nb outputs of A and of B;
// both loaded before either is stored, so A and B may be the same row).
// Clobbers BX, R12.
#define STORE2 \
	VHADDPS Y1, Y0, Y0; \
	VHADDPS Y3, Y2, Y2; \
	VHADDPS Y2, Y0, Y0; \
	VEXTRACTF128 $1, Y0, X1; \
	VADDPS X1, X0, X0; \
	VHADDPS Y5, Y4, Y4; \
	VHADDPS Y7, Y6, Y6; \
	VHADDPS Y6, Y4, Y4; \
	VEXTRACTF128 $1, Y4, X5; \
	VADDPS X5, X4, X4; \
	MOVQ 8(AX), BX; \
	MOVQ 0(AX), AX; \
	MOVQ SI, R12; \
	SHRQ $4, R12; \
	VMOVUPS (AX)(R12*1), X1; \
	VMOVUPS (BX)(R12*1), X5; \
	VADDPS X1, X0, X0; \
	VADDPS X5, X4, X4; \
	VMOVUPS X0, (AX)(R12*1); \
	VMOVUPS X4, (BX)(R12*1)

// func dot2BatchBitmapBF16AVX2(y *[2]*float32, masks, vals *[2]*uint16, xT *float32, chunks, nb int)
TEXT ·dot2BatchBitmapBF16AVX2(SB), NOSPLIT, $0-48
	MOVQ ·avx2Tables(SB), R14
	ADDQ $TAB_BF16, R14
	MOVQ chunks+32(FP), R10
	SHLQ $1, R10
	MOVQ masks+8(FP), AX
	MOVQ 0(AX), R8
	MOVQ 8(AX), R9
	ADDQ R10, R8                 // the masks' ends
	ADDQ R10, R9
	NEGQ R10
	MOVQ nb+40(FP), R13
	SHLQ $6, R13
	XORQ SI, SI

pass:
	MOVQ xT+24(FP), R11
	ADDQ SI, R11
	MOVQ vals+16(FP), AX
	MOVQ 0(AX), DX
	MOVQ 8(AX), CX
	MOVQ R10, R12
	ZERO8
	TESTQ R12, R12
	JZ    sum

chunk:
	DEC_BITMAP2
	FMA16
	ADDQ R13, R11
	ADDQ $2, R12
	JNZ  chunk

sum:
	MOVQ y+0(FP), AX
	STORE2
	ADDQ $256, SI
	CMPQ SI, R13
	JNE  pass
	MOVQ vals+16(FP), AX
	MOVQ DX, 0(AX)
	MOVQ CX, 8(AX)
	VZEROUPPER
	RET

// func dot2BatchDenseBF16AVX2(y *[2]*float32, w *[2]*uint16, xT *float32, blocks, nb int)
TEXT ·dot2BatchDenseBF16AVX2(SB), NOSPLIT, $0-40
	MOVQ blocks+24(FP), R10
	SHLQ $5, R10
	MOVQ w+8(FP), AX
	MOVQ 0(AX), R8
	MOVQ 8(AX), R9
	ADDQ R10, R8                 // the rows' ends
	ADDQ R10, R9
	NEGQ R10
	MOVQ nb+32(FP), R13
	SHLQ $6, R13
	XORQ SI, SI

pass:
	MOVQ xT+16(FP), R11
	ADDQ SI, R11
	MOVQ R10, R12
	ZERO8
	TESTQ R12, R12
	JZ    sum

chunk:
	DEC_DENSE2
	FMA16
	ADDQ R13, R11
	ADDQ $32, R12
	JNZ  chunk

sum:
	MOVQ y+0(FP), AX
	STORE2
	ADDQ $256, SI
	CMPQ SI, R13
	JNE  pass
	VZEROUPPER
	RET
