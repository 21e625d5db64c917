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
// Bitmap dot: for each row r < R9: (DI) = row · x. SI masks, DX values,
// R8 x, R10 chunks per row. Four chunks in flight, one accumulator each.

#define DOT_CHUNK(EXPAND, ADVANCE, moff, xoff, k, z, acc, cnt) \
	LOAD_MASK(moff, k, cnt); \
	EXPAND(k, z); \
	VFMADD231PS xoff(R11), z, k, acc; \
	ADVANCE(cnt)

#define DOT_BITMAP(EXPAND, ADVANCE) \
rowloop: \
	ZERO_ACC4; \
	MOVQ R8, R11; \
	MOVQ R10, CX; \
	CMPQ CX, $4; \
	JB   single; \
quad: \
	DOT_CHUNK(EXPAND, ADVANCE, 0, 0, K1, Z4, Z0, AX); \
	DOT_CHUNK(EXPAND, ADVANCE, 2, 64, K2, Z5, Z1, BX); \
	DOT_CHUNK(EXPAND, ADVANCE, 4, 128, K3, Z6, Z2, R12); \
	DOT_CHUNK(EXPAND, ADVANCE, 6, 192, K4, Z7, Z3, R13); \
	ADDQ $8, SI; \
	ADDQ $256, R11; \
	SUBQ $4, CX; \
	CMPQ CX, $4; \
	JAE  quad; \
single: \
	TESTQ CX, CX; \
	JZ    reduce; \
	DOT_CHUNK(EXPAND, ADVANCE, 0, 0, K1, Z4, Z0, AX); \
	ADDQ $2, SI; \
	ADDQ $64, R11; \
	DECQ CX; \
	JMP  single; \
reduce: \
	REDUCE4; \
	VMOVSS X0, (DI); \
	ADDQ $4, DI; \
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

// ---------------------------------------------------------------------------
// Bitmap axpy: for each row r < R9: dx += (R8)[r] · row. SI masks, DX
// values, DI dx, R10 chunks per row; Z31 holds the broadcast dy[r].

#define AXPY_CHUNK(EXPAND, ADVANCE, moff, xoff, k, z, cnt) \
	LOAD_MASK(moff, k, cnt); \
	EXPAND(k, z); \
	VFMADD213PS xoff(R11), Z31, k, z; \
	VMOVUPS z, k, xoff(R11); \
	ADVANCE(cnt)

#define AXPY_BITMAP(EXPAND, ADVANCE) \
rowloop: \
	VBROADCASTSS (R8), Z31; \
	ADDQ $4, R8; \
	MOVQ DI, R11; \
	MOVQ R10, CX; \
	CMPQ CX, $4; \
	JB   single; \
quad: \
	AXPY_CHUNK(EXPAND, ADVANCE, 0, 0, K1, Z4, AX); \
	AXPY_CHUNK(EXPAND, ADVANCE, 2, 64, K2, Z5, BX); \
	AXPY_CHUNK(EXPAND, ADVANCE, 4, 128, K3, Z6, R12); \
	AXPY_CHUNK(EXPAND, ADVANCE, 6, 192, K4, Z7, R13); \
	ADDQ $8, SI; \
	ADDQ $256, R11; \
	SUBQ $4, CX; \
	CMPQ CX, $4; \
	JAE  quad; \
single: \
	TESTQ CX, CX; \
	JZ    next; \
	AXPY_CHUNK(EXPAND, ADVANCE, 0, 0, K1, Z4, AX); \
	ADDQ $2, SI; \
	ADDQ $64, R11; \
	DECQ CX; \
	JMP  single; \
next: \
	DECQ R9; \
	JNZ  rowloop; \
	VZEROUPPER; \
	RET

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

// ---------------------------------------------------------------------------
// Bitmap decode: R9 rows of R10 columns from SI masks and DX values into
// dense rows at DI. R12 = chunks before the last one of a row, K7 = the
// columns of the last chunk, R13 = row stride in bytes; R8 and R10 are free
// after the set-up.

#define DECODE_CHUNK(EXPAND, ADVANCE, moff, xoff, k, z, cnt) \
	LOAD_MASK(moff, k, cnt); \
	EXPAND(k, z); \
	VMOVUPS z, xoff(R11); \
	ADVANCE(cnt)

#define DECODE_BITMAP(EXPAND, ADVANCE) \
	LEAQ -1(R10), R12; \
	SHRQ $4, R12; \
	MOVQ R12, CX; \
	SHLQ $4, CX; \
	NEGQ CX; \
	ADDQ R10, CX; \
	MOVL $1, AX; \
	SHLL CX, AX; \
	DECL AX; \
	KMOVW AX, K7; \
	LEAQ (R10*4), R13; \
rowloop: \
	MOVQ DI, R11; \
	MOVQ R12, CX; \
	CMPQ CX, $4; \
	JB   single; \
quad: \
	DECODE_CHUNK(EXPAND, ADVANCE, 0, 0, K1, Z4, AX); \
	DECODE_CHUNK(EXPAND, ADVANCE, 2, 64, K2, Z5, BX); \
	DECODE_CHUNK(EXPAND, ADVANCE, 4, 128, K3, Z6, R8); \
	DECODE_CHUNK(EXPAND, ADVANCE, 6, 192, K4, Z7, R10); \
	ADDQ $8, SI; \
	ADDQ $256, R11; \
	SUBQ $4, CX; \
	CMPQ CX, $4; \
	JAE  quad; \
single: \
	TESTQ CX, CX; \
	JZ    last; \
	DECODE_CHUNK(EXPAND, ADVANCE, 0, 0, K1, Z4, AX); \
	ADDQ $2, SI; \
	ADDQ $64, R11; \
	DECQ CX; \
	JMP  single; \
last: \
	LOAD_MASK(0, K1, AX); \
	EXPAND(K1, Z4); \
	VMOVUPS Z4, K7, (R11); \
	ADVANCE(AX); \
	ADDQ $2, SI; \
	ADDQ R13, DI; \
	DECQ R9; \
	JNZ  rowloop; \
	VZEROUPPER; \
	RET

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
// Dense bf16. R12 = full chunks per row, K1 = the columns of the partial last
// chunk, R13 = its size in bytes (0 when Cols is a multiple of 16).

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
	CMPQ CX, $4
	JB   single

quad:
	WIDEN_BF16(0(SI), Z4)
	WIDEN_BF16(32(SI), Z5)
	WIDEN_BF16(64(SI), Z6)
	WIDEN_BF16(96(SI), Z7)
	VFMADD231PS 0(R11), Z4, Z0
	VFMADD231PS 64(R11), Z5, Z1
	VFMADD231PS 128(R11), Z6, Z2
	VFMADD231PS 192(R11), Z7, Z3
	ADDQ $128, SI
	ADDQ $256, R11
	SUBQ $4, CX
	CMPQ CX, $4
	JAE  quad

single:
	TESTQ CX, CX
	JZ    tail
	WIDEN_BF16((SI), Z4)
	VFMADD231PS (R11), Z4, Z0
	ADDQ $32, SI
	ADDQ $64, R11
	DECQ CX
	JMP  single

tail:
	TESTQ R13, R13
	JZ    reduce
	VPMOVZXWD.Z (SI), K1, Z4
	VPSLLD $16, Z4, Z4
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
	CMPQ CX, $4
	JB   single

quad:
	WIDEN_BF16(0(SI), Z4)
	WIDEN_BF16(32(SI), Z5)
	WIDEN_BF16(64(SI), Z6)
	WIDEN_BF16(96(SI), Z7)
	VFMADD213PS 0(R11), Z31, Z4
	VFMADD213PS 64(R11), Z31, Z5
	VFMADD213PS 128(R11), Z31, Z6
	VFMADD213PS 192(R11), Z31, Z7
	VMOVUPS Z4, 0(R11)
	VMOVUPS Z5, 64(R11)
	VMOVUPS Z6, 128(R11)
	VMOVUPS Z7, 192(R11)
	ADDQ $128, SI
	ADDQ $256, R11
	SUBQ $4, CX
	CMPQ CX, $4
	JAE  quad

single:
	TESTQ CX, CX
	JZ    tail
	WIDEN_BF16((SI), Z4)
	VFMADD213PS (R11), Z31, Z4
	VMOVUPS Z4, (R11)
	ADDQ $32, SI
	ADDQ $64, R11
	DECQ CX
	JMP  single

tail:
	TESTQ R13, R13
	JZ    next
	VPMOVZXWD.Z (SI), K1, Z4
	VPSLLD $16, Z4, Z4
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
	MOVQ dst_base+0(FP), DI
	MOVQ src_base+24(FP), SI
	MOVQ src_len+32(FP), R10
	DENSE_TAIL_SETUP
	MOVQ R12, CX
	CMPQ CX, $4
	JB   single

quad:
	WIDEN_BF16(0(SI), Z4)
	WIDEN_BF16(32(SI), Z5)
	WIDEN_BF16(64(SI), Z6)
	WIDEN_BF16(96(SI), Z7)
	VMOVUPS Z4, 0(DI)
	VMOVUPS Z5, 64(DI)
	VMOVUPS Z6, 128(DI)
	VMOVUPS Z7, 192(DI)
	ADDQ $128, SI
	ADDQ $256, DI
	SUBQ $4, CX
	CMPQ CX, $4
	JAE  quad

single:
	TESTQ CX, CX
	JZ    tail
	WIDEN_BF16((SI), Z4)
	VMOVUPS Z4, (DI)
	ADDQ $32, SI
	ADDQ $64, DI
	DECQ CX
	JMP  single

tail:
	TESTQ R13, R13
	JZ    done
	VPMOVZXWD.Z (SI), K1, Z4
	VPSLLD $16, Z4, Z4
	VMOVUPS Z4, K1, (DI)

done:
	VZEROUPPER
	RET
