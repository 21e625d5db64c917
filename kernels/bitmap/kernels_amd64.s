//go:build amd64 && !purego

#include "textflag.h"
#include "kernels_amd64.h"

// AVX-512 (F) kernels of the bitmap format and of dense bf16; the layout and
// the algorithm are in doc.go, the Go references in kernels_generic.go.
//
// One chunk = 16 columns of one row = one uint16 mask at (SI) and
// popcount(mask) packed values at (DX). Chunks go in groups of four: one
// 64-bit load of their masks gives, by popcounts of its low 16, 32 and 48
// bits and of all of it, where each chunk's values start and how far DX
// moves, so the chunks' loads do not wait on each other. Per chunk the mask
// goes to a k register and EXPAND_* loads 16 values widened to fp32 and moves
// the first popcount(mask) of them to the lanes the mask selects (zeroing the
// others). Loads of 16 values may reach past the last one: the value slices
// keep 16 spare values. Every access to x, dx and dst is masked by the chunk
// mask or a tail mask, so nothing outside the caller's slices is read or
// written. Streams are prefetched ahead (values PF_VALUES bytes, masks
// PF_MASKS bytes): a value load's address depends on the masks before it,
// which keeps the out-of-order core from running far ahead on its own.

#define PF_VALUES 2048
#define PF_MASKS 512

// EXPAND_*(src, k, z): z = the packed values at src expanded under k, as fp32.
#define EXPAND_BF16(src, k, z) VPMOVZXWD src, z; VPSLLD $16, z, z; VEXPANDPS.Z z, k, z
#define EXPAND_F16(src, k, z) VCVTPH2PS src, z; VEXPANDPS.Z z, k, z
#define EXPAND_F32(src, k, z) VEXPANDPS.Z src, k, z

// ---------------------------------------------------------------------------
// The bitmap kernels share one loop over the chunks of a row: SI masks, DX
// values (S bytes each), R11 the row of x, dx or dst (64 bytes per chunk), CX
// the chunks left. Each chunk of a group has its own k, temporary and
// accumulator (Z0..Z3); the per-chunk work is CHUNK(EXPAND, moff, xoff, k, z,
// acc, src). AX, BX, R12 and R13 hold the group's offsets (AX is only ever
// written by 16-bit popcounts and 32-bit instructions, so its upper bits stay
// zero once the kernel has cleared it).

#define GROUP4(CHUNK, EXPAND, S) \
	MOVQ (SI), BX; \
	POPCNTQ BX, R13; \
	POPCNTL BX, R12; \
	POPCNTW BX, AX; \
	SHLQ $16, BX; \
	POPCNTQ BX, BX; \
	CHUNK(EXPAND, 0, 0, K1, Z4, Z0, (DX)); \
	CHUNK(EXPAND, 2, 64, K2, Z5, Z1, (DX)(AX*S)); \
	CHUNK(EXPAND, 4, 128, K3, Z6, Z2, (DX)(R12*S)); \
	CHUNK(EXPAND, 6, 192, K4, Z7, Z3, (DX)(BX*S)); \
	LEAQ (DX)(R13*S), DX

#define BITMAP_CHUNKS(CHUNK, EXPAND, S, done) \
	SUBQ $4, CX; \
	JL   tail; \
quad: \
	PREFETCHT0 PF_VALUES(DX); \
	PREFETCHT0 PF_MASKS(SI); \
	GROUP4(CHUNK, EXPAND, S); \
	ADDQ $8, SI; \
	ADDQ $256, R11; \
	SUBQ $4, CX; \
	JGE  quad; \
tail: \
	ADDQ $4, CX; \
	JZ   done; \
single: \
	MOVWLZX (SI), AX; \
	POPCNTL AX, AX; \
	CHUNK(EXPAND, 0, 0, K1, Z4, Z0, (DX)); \
	LEAQ (DX)(AX*S), DX; \
	ADDQ $2, SI; \
	ADDQ $64, R11; \
	DECQ CX; \
	JNZ  single

// DOT_CHUNK: acc += expanded chunk · x, both masked by the chunk mask.
#define DOT_CHUNK(EXPAND, moff, xoff, k, z, acc, src) \
	KMOVW moff(SI), k; \
	EXPAND(src, k, z); \
	VFMADD231PS xoff(R11), z, k, acc

// AXPY_CHUNK: dx chunk += Z31 · expanded chunk, only the mask's lanes of dx
// read and written.
#define AXPY_CHUNK(EXPAND, moff, xoff, k, z, acc, src) \
	KMOVW moff(SI), k; \
	EXPAND(src, k, z); \
	VFMADD213PS xoff(R11), Z31, k, z; \
	VMOVUPS z, k, xoff(R11)

// DECODE_CHUNK: dst chunk = expanded chunk (zeros at pruned positions).
#define DECODE_CHUNK(EXPAND, moff, xoff, k, z, acc, src) \
	KMOVW moff(SI), k; \
	EXPAND(src, k, z); \
	VMOVUPS z, xoff(R11)

// Bitmap dot: for each of R9 rows, (DI) = row · x; R8 x, R10 chunks per row.
#define DOT_BITMAP(EXPAND, S) \
	XORL AX, AX; \
rowloop: \
	ZERO_ACC4; \
	MOVQ R8, R11; \
	MOVQ R10, CX; \
	BITMAP_CHUNKS(DOT_CHUNK, EXPAND, S, reduce); \
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
#define AXPY_BITMAP(EXPAND, S) \
	XORL AX, AX; \
rowloop: \
	VBROADCASTSS (R8), Z31; \
	ADDQ $4, R8; \
	MOVQ DI, R11; \
	MOVQ R10, CX; \
	BITMAP_CHUNKS(AXPY_CHUNK, EXPAND, S, next); \
next: \
	DECQ R9; \
	JNZ  rowloop; \
	VZEROUPPER; \
	RET

// Bitmap decode: R9 rows of R10 columns into dense rows at DI. The chunks
// before the last one of a row (R8 of them) are stored whole, the last one
// under K7, the mask of the columns it covers; R10 becomes the row stride in
// bytes.
#define DECODE_BITMAP(EXPAND, S) \
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
	XORL AX, AX; \
rowloop: \
	MOVQ DI, R11; \
	MOVQ R8, CX; \
	BITMAP_CHUNKS(DECODE_CHUNK, EXPAND, S, last); \
last: \
	KMOVW (SI), K1; \
	MOVWLZX (SI), AX; \
	POPCNTL AX, AX; \
	EXPAND((DX), K1, Z4); \
	VMOVUPS Z4, K7, (R11); \
	LEAQ (DX)(AX*S), DX; \
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
	DOT_BITMAP(EXPAND_BF16, 2)

// func dotBitmapF16(y []float32, masks []uint16, vals []uint16, x []float32, chunks int)
TEXT ·dotBitmapF16(SB), NOSPLIT, $0-104
	MOVQ y_base+0(FP), DI
	MOVQ y_len+8(FP), R9
	MOVQ masks_base+24(FP), SI
	MOVQ vals_base+48(FP), DX
	MOVQ x_base+72(FP), R8
	MOVQ chunks+96(FP), R10
	DOT_BITMAP(EXPAND_F16, 2)

// func dotBitmapF32(y []float32, masks []uint16, vals []float32, x []float32, chunks int)
TEXT ·dotBitmapF32(SB), NOSPLIT, $0-104
	MOVQ y_base+0(FP), DI
	MOVQ y_len+8(FP), R9
	MOVQ masks_base+24(FP), SI
	MOVQ vals_base+48(FP), DX
	MOVQ x_base+72(FP), R8
	MOVQ chunks+96(FP), R10
	DOT_BITMAP(EXPAND_F32, 4)

// func axpyBitmapBF16(dx []float32, masks []uint16, vals []uint16, dy []float32, chunks int)
TEXT ·axpyBitmapBF16(SB), NOSPLIT, $0-104
	MOVQ dx_base+0(FP), DI
	MOVQ masks_base+24(FP), SI
	MOVQ vals_base+48(FP), DX
	MOVQ dy_base+72(FP), R8
	MOVQ dy_len+80(FP), R9
	MOVQ chunks+96(FP), R10
	AXPY_BITMAP(EXPAND_BF16, 2)

// func axpyBitmapF16(dx []float32, masks []uint16, vals []uint16, dy []float32, chunks int)
TEXT ·axpyBitmapF16(SB), NOSPLIT, $0-104
	MOVQ dx_base+0(FP), DI
	MOVQ masks_base+24(FP), SI
	MOVQ vals_base+48(FP), DX
	MOVQ dy_base+72(FP), R8
	MOVQ dy_len+80(FP), R9
	MOVQ chunks+96(FP), R10
	AXPY_BITMAP(EXPAND_F16, 2)

// func axpyBitmapF32(dx []float32, masks []uint16, vals []float32, dy []float32, chunks int)
TEXT ·axpyBitmapF32(SB), NOSPLIT, $0-104
	MOVQ dx_base+0(FP), DI
	MOVQ masks_base+24(FP), SI
	MOVQ vals_base+48(FP), DX
	MOVQ dy_base+72(FP), R8
	MOVQ dy_len+80(FP), R9
	MOVQ chunks+96(FP), R10
	AXPY_BITMAP(EXPAND_F32, 4)

// func decodeBitmapBF16(dst []float32, masks []uint16, vals []uint16, rows, cols int)
TEXT ·decodeBitmapBF16(SB), NOSPLIT, $0-88
	MOVQ dst_base+0(FP), DI
	MOVQ masks_base+24(FP), SI
	MOVQ vals_base+48(FP), DX
	MOVQ rows+72(FP), R9
	MOVQ cols+80(FP), R10
	DECODE_BITMAP(EXPAND_BF16, 2)

// func decodeBitmapF16(dst []float32, masks []uint16, vals []uint16, rows, cols int)
TEXT ·decodeBitmapF16(SB), NOSPLIT, $0-88
	MOVQ dst_base+0(FP), DI
	MOVQ masks_base+24(FP), SI
	MOVQ vals_base+48(FP), DX
	MOVQ rows+72(FP), R9
	MOVQ cols+80(FP), R10
	DECODE_BITMAP(EXPAND_F16, 2)

// func decodeBitmapF32(dst []float32, masks []uint16, vals []float32, rows, cols int)
TEXT ·decodeBitmapF32(SB), NOSPLIT, $0-88
	MOVQ dst_base+0(FP), DI
	MOVQ masks_base+24(FP), SI
	MOVQ vals_base+48(FP), DX
	MOVQ rows+72(FP), R9
	MOVQ cols+80(FP), R10
	DECODE_BITMAP(EXPAND_F32, 4)

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
