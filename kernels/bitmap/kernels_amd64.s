//go:build amd64 && !purego

#include "textflag.h"

// AVX-512 (F) kernels of the bitmap format and of dense bf16; the layout and
// the algorithm are in doc.go, the Go references in kernels_generic.go.
//
// One chunk = 16 columns of one row = one uint16 mask at (SI) and
// popcount(mask) packed values at (DX). Per chunk the mask goes to a k
// register, EXPAND_* loads 16 values at (DX) widened to fp32 and moves the
// first popcount(mask) of them to the lanes the mask selects (zeroing the
// others), and ADVANCE_* moves DX past the values used. Loads of 16 values
// may reach past the last one: the value slices keep 16 spare values.
// Every access to x, dx and dst is masked by the chunk mask or a tail mask,
// so nothing outside the caller's slices is read or written.

// EXPAND_*(k, z): z = the packed values at (DX) expanded under k, as fp32.
#define EXPAND_BF16(k, z) VPMOVZXWD (DX), z; VPSLLD $16, z, z; VEXPANDPS.Z z, k, z
#define EXPAND_F16(k, z) VCVTPH2PS (DX), z; VEXPANDPS.Z z, k, z
#define EXPAND_F32(k, z) VEXPANDPS.Z (DX), k, z

// ADVANCE_*(cnt): DX += cnt values.
#define ADVANCE_16(cnt) LEAQ (DX)(cnt*2), DX
#define ADVANCE_32(cnt) LEAQ (DX)(cnt*4), DX

// LOAD_MASK(moff, k, cnt): k = mask at moff(SI), cnt = its popcount.
#define LOAD_MASK(moff, k, cnt) KMOVW moff(SI), k; MOVWLZX moff(SI), cnt; POPCNTL cnt, cnt

// REDUCE4: X0[0] = sum of all lanes of Z0..Z3 (clobbers Z1..Z3).
#define REDUCE4 \
	VADDPS Z1, Z0, Z0; \
	VADDPS Z3, Z2, Z2; \
	VADDPS Z2, Z0, Z0; \
	VEXTRACTF64X4 $1, Z0, Y1; \
	VADDPS Y1, Y0, Y0; \
	VEXTRACTF128 $1, Y0, X1; \
	VADDPS X1, X0, X0; \
	VMOVHLPS X0, X0, X1; \
	VADDPS X1, X0, X0; \
	VMOVSHDUP X0, X1; \
	VADDSS X1, X0, X0

#define ZERO_ACC4 \
	VPXORD Z0, Z0, Z0; \
	VPXORD Z1, Z1, Z1; \
	VPXORD Z2, Z2, Z2; \
	VPXORD Z3, Z3, Z3

// ---------------------------------------------------------------------------
// The bitmap kernels share one loop over the chunks of a row: SI masks, DX
// values, R11 the row of x, dx or dst (64 bytes per chunk), CX the chunks
// left. Four chunks are in flight, each with its own k, temporary,
// accumulator (Z0..Z3) and count register; the per-chunk work is CHUNK.

#define BITMAP_CHUNKS(CHUNK, EXPAND, ADVANCE, done) \
	CMPQ CX, $4; \
	JB   single; \
quad: \
	CHUNK(EXPAND, ADVANCE, 0, 0, K1, Z4, Z0, AX); \
	CHUNK(EXPAND, ADVANCE, 2, 64, K2, Z5, Z1, BX); \
	CHUNK(EXPAND, ADVANCE, 4, 128, K3, Z6, Z2, R12); \
	CHUNK(EXPAND, ADVANCE, 6, 192, K4, Z7, Z3, R13); \
	ADDQ $8, SI; \
	ADDQ $256, R11; \
	SUBQ $4, CX; \
	CMPQ CX, $4; \
	JAE  quad; \
single: \
	TESTQ CX, CX; \
	JZ    done; \
	CHUNK(EXPAND, ADVANCE, 0, 0, K1, Z4, Z0, AX); \
	ADDQ $2, SI; \
	ADDQ $64, R11; \
	DECQ CX; \
	JMP  single

// DOT_CHUNK: acc += expanded chunk · x, both masked by the chunk mask.
#define DOT_CHUNK(EXPAND, ADVANCE, moff, xoff, k, z, acc, cnt) \
	LOAD_MASK(moff, k, cnt); \
	EXPAND(k, z); \
	VFMADD231PS xoff(R11), z, k, acc; \
	ADVANCE(cnt)

// AXPY_CHUNK: dx chunk += Z31 · expanded chunk, only the mask's lanes of dx
// read and written.
#define AXPY_CHUNK(EXPAND, ADVANCE, moff, xoff, k, z, acc, cnt) \
	LOAD_MASK(moff, k, cnt); \
	EXPAND(k, z); \
	VFMADD213PS xoff(R11), Z31, k, z; \
	VMOVUPS z, k, xoff(R11); \
	ADVANCE(cnt)

// DECODE_CHUNK: dst chunk = expanded chunk (zeros at pruned positions).
#define DECODE_CHUNK(EXPAND, ADVANCE, moff, xoff, k, z, acc, cnt) \
	LOAD_MASK(moff, k, cnt); \
	EXPAND(k, z); \
	VMOVUPS z, xoff(R11); \
	ADVANCE(cnt)

// Bitmap dot: for each of R9 rows, (DI) = row · x; R8 x, R10 chunks per row.
#define DOT_BITMAP(EXPAND, ADVANCE) \
rowloop: \
	ZERO_ACC4; \
	MOVQ R8, R11; \
	MOVQ R10, CX; \
	BITMAP_CHUNKS(DOT_CHUNK, EXPAND, ADVANCE, reduce); \
reduce: \
	REDUCE4; \
	VMOVSS X0, (DI); \
	ADDQ $4, DI; \
	DECQ R9; \
	JNZ  rowloop; \
	VZEROUPPER; \
	RET

// Bitmap axpy: for each of R9 rows, dx (DI) += (R8)[row] · row; R10 chunks
// per row, Z31 the broadcast dy[row].
#define AXPY_BITMAP(EXPAND, ADVANCE) \
rowloop: \
	VBROADCASTSS (R8), Z31; \
	ADDQ $4, R8; \
	MOVQ DI, R11; \
	MOVQ R10, CX; \
	BITMAP_CHUNKS(AXPY_CHUNK, EXPAND, ADVANCE, next); \
next: \
	DECQ R9; \
	JNZ  rowloop; \
	VZEROUPPER; \
	RET

// Bitmap decode: R9 rows of R10 columns into dense rows at DI. The chunks
// before the last one of a row (R8 of them) are stored whole, the last one
// under K7, the mask of the columns it covers; R10 becomes the row stride in
// bytes.
#define DECODE_BITMAP(EXPAND, ADVANCE) \
	LEAQ -1(R10), R8; \
	SHRQ $4, R8; \
	MOVQ R8, CX; \
	SHLQ $4, CX; \
	NEGQ CX; \
	ADDQ R10, CX; \
	MOVL $1, AX; \
	SHLL CX, AX; \
	DECL AX; \
	KMOVW AX, K7; \
	SHLQ $2, R10; \
rowloop: \
	MOVQ DI, R11; \
	MOVQ R8, CX; \
	BITMAP_CHUNKS(DECODE_CHUNK, EXPAND, ADVANCE, last); \
last: \
	LOAD_MASK(0, K1, AX); \
	EXPAND(K1, Z4); \
	VMOVUPS Z4, K7, (R11); \
	ADVANCE(AX); \
	ADDQ $2, SI; \
	ADDQ R10, DI; \
	DECQ R9; \
	JNZ  rowloop; \
	VZEROUPPER; \
	RET

// func dotBitmapBF16(y []float32, masks []uint16, vals []uint16, x []float32, chunks int)
TEXT ·dotBitmapBF16(SB), NOSPLIT, $0-104
	MOVQ y_base+0(FP), DI
	MOVQ y_len+8(FP), R9
	MOVQ masks_base+24(FP), SI
	MOVQ vals_base+48(FP), DX
	MOVQ x_base+72(FP), R8
	MOVQ chunks+96(FP), R10
	DOT_BITMAP(EXPAND_BF16, ADVANCE_16)

// func dotBitmapF16(y []float32, masks []uint16, vals []uint16, x []float32, chunks int)
TEXT ·dotBitmapF16(SB), NOSPLIT, $0-104
	MOVQ y_base+0(FP), DI
	MOVQ y_len+8(FP), R9
	MOVQ masks_base+24(FP), SI
	MOVQ vals_base+48(FP), DX
	MOVQ x_base+72(FP), R8
	MOVQ chunks+96(FP), R10
	DOT_BITMAP(EXPAND_F16, ADVANCE_16)

// func dotBitmapF32(y []float32, masks []uint16, vals []float32, x []float32, chunks int)
TEXT ·dotBitmapF32(SB), NOSPLIT, $0-104
	MOVQ y_base+0(FP), DI
	MOVQ y_len+8(FP), R9
	MOVQ masks_base+24(FP), SI
	MOVQ vals_base+48(FP), DX
	MOVQ x_base+72(FP), R8
	MOVQ chunks+96(FP), R10
	DOT_BITMAP(EXPAND_F32, ADVANCE_32)

// func axpyBitmapBF16(dx []float32, masks []uint16, vals []uint16, dy []float32, chunks int)
TEXT ·axpyBitmapBF16(SB), NOSPLIT, $0-104
	MOVQ dx_base+0(FP), DI
	MOVQ masks_base+24(FP), SI
	MOVQ vals_base+48(FP), DX
	MOVQ dy_base+72(FP), R8
	MOVQ dy_len+80(FP), R9
	MOVQ chunks+96(FP), R10
	AXPY_BITMAP(EXPAND_BF16, ADVANCE_16)

// func axpyBitmapF16(dx []float32, masks []uint16, vals []uint16, dy []float32, chunks int)
TEXT ·axpyBitmapF16(SB), NOSPLIT, $0-104
	MOVQ dx_base+0(FP), DI
	MOVQ masks_base+24(FP), SI
	MOVQ vals_base+48(FP), DX
	MOVQ dy_base+72(FP), R8
	MOVQ dy_len+80(FP), R9
	MOVQ chunks+96(FP), R10
	AXPY_BITMAP(EXPAND_F16, ADVANCE_16)

// func axpyBitmapF32(dx []float32, masks []uint16, vals []float32, dy []float32, chunks int)
TEXT ·axpyBitmapF32(SB), NOSPLIT, $0-104
	MOVQ dx_base+0(FP), DI
	MOVQ masks_base+24(FP), SI
	MOVQ vals_base+48(FP), DX
	MOVQ dy_base+72(FP), R8
	MOVQ dy_len+80(FP), R9
	MOVQ chunks+96(FP), R10
	AXPY_BITMAP(EXPAND_F32, ADVANCE_32)

// func decodeBitmapBF16(dst []float32, masks []uint16, vals []uint16, rows, cols int)
TEXT ·decodeBitmapBF16(SB), NOSPLIT, $0-88
	MOVQ dst_base+0(FP), DI
	MOVQ masks_base+24(FP), SI
	MOVQ vals_base+48(FP), DX
	MOVQ rows+72(FP), R9
	MOVQ cols+80(FP), R10
	DECODE_BITMAP(EXPAND_BF16, ADVANCE_16)

// func decodeBitmapF16(dst []float32, masks []uint16, vals []uint16, rows, cols int)
TEXT ·decodeBitmapF16(SB), NOSPLIT, $0-88
	MOVQ dst_base+0(FP), DI
	MOVQ masks_base+24(FP), SI
	MOVQ vals_base+48(FP), DX
	MOVQ rows+72(FP), R9
	MOVQ cols+80(FP), R10
	DECODE_BITMAP(EXPAND_F16, ADVANCE_16)

// func decodeBitmapF32(dst []float32, masks []uint16, vals []float32, rows, cols int)
TEXT ·decodeBitmapF32(SB), NOSPLIT, $0-88
	MOVQ dst_base+0(FP), DI
	MOVQ masks_base+24(FP), SI
	MOVQ vals_base+48(FP), DX
	MOVQ rows+72(FP), R9
	MOVQ cols+80(FP), R10
	DECODE_BITMAP(EXPAND_F32, ADVANCE_32)

// ---------------------------------------------------------------------------
// Dense bf16: rows of R10 columns at SI (2 bytes each), R11 the row of x, dx
// or dst. DENSE_CHUNKS runs CHUNK over the CX whole chunks of a row, four at
// a time; the partial last chunk (R13 bytes, columns K1; R13 = 0 when R10 is
// a multiple of 16) is done by each kernel under K1.

#define WIDEN_BF16(src, z) VPMOVZXWD src, z; VPSLLD $16, z, z

#define DENSE_TAIL_SETUP \
	MOVQ R10, R12; \
	SHRQ $4, R12; \
	MOVQ R10, CX; \
	ANDQ $15, CX; \
	LEAQ (CX*2), R13; \
	MOVL $1, AX; \
	SHLL CX, AX; \
	DECL AX; \
	KMOVW AX, K1

#define DENSE_CHUNKS(CHUNK, done) \
	CMPQ CX, $4; \
	JB   single; \
quad: \
	CHUNK(0, 0, Z4, Z0); \
	CHUNK(32, 64, Z5, Z1); \
	CHUNK(64, 128, Z6, Z2); \
	CHUNK(96, 192, Z7, Z3); \
	ADDQ $128, SI; \
	ADDQ $256, R11; \
	SUBQ $4, CX; \
	CMPQ CX, $4; \
	JAE  quad; \
single: \
	TESTQ CX, CX; \
	JZ    done; \
	CHUNK(0, 0, Z4, Z0); \
	ADDQ $32, SI; \
	ADDQ $64, R11; \
	DECQ CX; \
	JMP  single

// WIDEN_TAIL: Z4 = the partial last chunk widened (zeros past it).
#define WIDEN_TAIL VPMOVZXWD.Z (SI), K1, Z4; VPSLLD $16, Z4, Z4

#define DENSE_DOT_CHUNK(woff, xoff, z, acc) WIDEN_BF16(woff(SI), z); VFMADD231PS xoff(R11), z, acc
#define DENSE_AXPY_CHUNK(woff, xoff, z, acc) WIDEN_BF16(woff(SI), z); VFMADD213PS xoff(R11), Z31, z; VMOVUPS z, xoff(R11)
#define WIDEN_CHUNK(woff, xoff, z, acc) WIDEN_BF16(woff(SI), z); VMOVUPS z, xoff(R11)

// func dotDenseBF16(y []float32, w []uint16, x []float32, cols int)
TEXT ·dotDenseBF16(SB), NOSPLIT, $0-80
	MOVQ y_base+0(FP), DI
	MOVQ y_len+8(FP), R9
	MOVQ w_base+24(FP), SI
	MOVQ x_base+48(FP), R8
	MOVQ cols+72(FP), R10
	DENSE_TAIL_SETUP

rowloop:
	ZERO_ACC4
	MOVQ R8, R11
	MOVQ R12, CX
	DENSE_CHUNKS(DENSE_DOT_CHUNK, tail)

tail:
	TESTQ R13, R13
	JZ    reduce
	WIDEN_TAIL
	VFMADD231PS (R11), Z4, K1, Z1
	ADDQ R13, SI

reduce:
	REDUCE4
	VMOVSS X0, (DI)
	ADDQ $4, DI
	DECQ R9
	JNZ  rowloop
	VZEROUPPER
	RET

// func axpyDenseBF16(dx []float32, w []uint16, dy []float32, cols int)
TEXT ·axpyDenseBF16(SB), NOSPLIT, $0-80
	MOVQ dx_base+0(FP), DI
	MOVQ w_base+24(FP), SI
	MOVQ dy_base+48(FP), R8
	MOVQ dy_len+56(FP), R9
	MOVQ cols+72(FP), R10
	DENSE_TAIL_SETUP

rowloop:
	VBROADCASTSS (R8), Z31
	ADDQ $4, R8
	MOVQ DI, R11
	MOVQ R12, CX
	DENSE_CHUNKS(DENSE_AXPY_CHUNK, tail)

tail:
	TESTQ R13, R13
	JZ    next
	WIDEN_TAIL
	VFMADD213PS (R11), Z31, K1, Z4
	VMOVUPS Z4, K1, (R11)
	ADDQ R13, SI

next:
	DECQ R9
	JNZ  rowloop
	VZEROUPPER
	RET

// func widenBF16(dst []float32, src []uint16)
TEXT ·widenBF16(SB), NOSPLIT, $0-48
	MOVQ dst_base+0(FP), R11
	MOVQ src_base+24(FP), SI
	MOVQ src_len+32(FP), R10
	DENSE_TAIL_SETUP
	MOVQ R12, CX
	DENSE_CHUNKS(WIDEN_CHUNK, tail)

tail:
	TESTQ R13, R13
	JZ    done
	WIDEN_TAIL
	VMOVUPS Z4, K1, (R11)

done:
	VZEROUPPER
	RET
