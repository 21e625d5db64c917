//go:build amd64 && !purego

#include "textflag.h"
#include "kernels_amd64.h"

// AVX512-BF16 kernels: products of bf16 weights with x rounded to bf16,
// accumulated in fp32 by VDPBF16PS (per fp32 lane i: acc[i] += w[2i]·x[2i] +
// w[2i+1]·x[2i+1], 32 bf16 pairs of a row per instruction). x is converted
// once per call (packBF16, packBF16Batch) into a scratch vector of whole
// groups of 32 columns, zero past the last column, so that every x load is a
// whole 64-byte group. The dense kernels load the weights' partial last
// group under a mask, the bitmap kernels expand each group's packed values
// with VPEXPANDW under the group's 32-bit mask (two chunk masks), which reads
// only the values it places.
//
// Go's assembler has no mnemonics for VDPBF16PS and VCVTNE2PS2BF16: the macros
// below are their EVEX encodings for the fixed registers the kernels use
// (assembled with GNU as; the comment gives each in Intel operand order,
// destination first).

#define PF_VALUES 2048
#define PF_MASKS 512
#define PF_DENSE 2048

// VDPBF16PS zmm0, zmm4, zmm8 ... zmm3, zmm7, zmm11: the single-row kernels.
#define DP_Z0_Z4_Z8 BYTE $0x62; BYTE $0xd2; BYTE $0x5e; BYTE $0x48; BYTE $0x52; BYTE $0xc0
#define DP_Z1_Z5_Z9 BYTE $0x62; BYTE $0xd2; BYTE $0x56; BYTE $0x48; BYTE $0x52; BYTE $0xc9
#define DP_Z2_Z6_Z10 BYTE $0x62; BYTE $0xd2; BYTE $0x4e; BYTE $0x48; BYTE $0x52; BYTE $0xd2
#define DP_Z3_Z7_Z11 BYTE $0x62; BYTE $0xd2; BYTE $0x46; BYTE $0x48; BYTE $0x52; BYTE $0xdb

// VDPBF16PS zmm(12+b), zmm4, zmm5 for b = 0..15: the batch kernels (weights
// in Z4, row b of x in Z5, its accumulator Z12+b).
#define DPB0 BYTE $0x62; BYTE $0x72; BYTE $0x5e; BYTE $0x48; BYTE $0x52; BYTE $0xe5
#define DPB1 BYTE $0x62; BYTE $0x72; BYTE $0x5e; BYTE $0x48; BYTE $0x52; BYTE $0xed
#define DPB2 BYTE $0x62; BYTE $0x72; BYTE $0x5e; BYTE $0x48; BYTE $0x52; BYTE $0xf5
#define DPB3 BYTE $0x62; BYTE $0x72; BYTE $0x5e; BYTE $0x48; BYTE $0x52; BYTE $0xfd
#define DPB4 BYTE $0x62; BYTE $0xe2; BYTE $0x5e; BYTE $0x48; BYTE $0x52; BYTE $0xc5
#define DPB5 BYTE $0x62; BYTE $0xe2; BYTE $0x5e; BYTE $0x48; BYTE $0x52; BYTE $0xcd
#define DPB6 BYTE $0x62; BYTE $0xe2; BYTE $0x5e; BYTE $0x48; BYTE $0x52; BYTE $0xd5
#define DPB7 BYTE $0x62; BYTE $0xe2; BYTE $0x5e; BYTE $0x48; BYTE $0x52; BYTE $0xdd
#define DPB8 BYTE $0x62; BYTE $0xe2; BYTE $0x5e; BYTE $0x48; BYTE $0x52; BYTE $0xe5
#define DPB9 BYTE $0x62; BYTE $0xe2; BYTE $0x5e; BYTE $0x48; BYTE $0x52; BYTE $0xed
#define DPB10 BYTE $0x62; BYTE $0xe2; BYTE $0x5e; BYTE $0x48; BYTE $0x52; BYTE $0xf5
#define DPB11 BYTE $0x62; BYTE $0xe2; BYTE $0x5e; BYTE $0x48; BYTE $0x52; BYTE $0xfd
#define DPB12 BYTE $0x62; BYTE $0x62; BYTE $0x5e; BYTE $0x48; BYTE $0x52; BYTE $0xc5
#define DPB13 BYTE $0x62; BYTE $0x62; BYTE $0x5e; BYTE $0x48; BYTE $0x52; BYTE $0xcd
#define DPB14 BYTE $0x62; BYTE $0x62; BYTE $0x5e; BYTE $0x48; BYTE $0x52; BYTE $0xd5
#define DPB15 BYTE $0x62; BYTE $0x62; BYTE $0x5e; BYTE $0x48; BYTE $0x52; BYTE $0xdd

// VCVTNE2PS2BF16 zmm2, zmm1, zmm0: words 0..15 of Z2 = Z0 rounded to bf16
// (nearest even), words 16..31 = Z1 rounded.
#define CVT_Z2_Z1_Z0 BYTE $0x62; BYTE $0xf2; BYTE $0x77; BYTE $0x48; BYTE $0x72; BYTE $0xd0

// ---------------------------------------------------------------------------
// Batch kernels for nb = 4, 8, 12, 16 rows of x in the group-major layout of
// packBF16Batch (nb*64 bytes per group, R11): each group of W is loaded or
// expanded once into Z4 and multiplied with every row of x (loaded into Z5)
// into the row's accumulator Z12+b; yT gets nb values per row of W.

#define XDP(off, DPM) VMOVDQU16 off(R11), Z5; DPM

#define BATCH_DP4 XDP(0, DPB0); XDP(64, DPB1); XDP(128, DPB2); XDP(192, DPB3)
#define BATCH_DP8 BATCH_DP4; XDP(256, DPB4); XDP(320, DPB5); XDP(384, DPB6); XDP(448, DPB7)
#define BATCH_DP12 BATCH_DP8; XDP(512, DPB8); XDP(576, DPB9); XDP(640, DPB10); XDP(704, DPB11)
#define BATCH_DP16 BATCH_DP12; XDP(768, DPB12); XDP(832, DPB13); XDP(896, DPB14); XDP(960, DPB15)

#define ZERO4(a, b, c, d) VPXORD a, a, a; VPXORD b, b, b; VPXORD c, c, c; VPXORD d, d, d
#define BATCH_ZERO4 ZERO4(Z12, Z13, Z14, Z15)
#define BATCH_ZERO8 BATCH_ZERO4; ZERO4(Z16, Z17, Z18, Z19)
#define BATCH_ZERO12 BATCH_ZERO8; ZERO4(Z20, Z21, Z22, Z23)
#define BATCH_ZERO16 BATCH_ZERO12; ZERO4(Z24, Z25, Z26, Z27)

// STORE1: off(DI) = sum of the lanes of z (clobbers Z0, X1; only z itself is
// named as a zmm, so no AVX512VL form is needed for Z16..Z27).
#define STORE1(z, off) \
	VEXTRACTF64X4 $1, z, Y0; \
	VADDPS z, Z0, Z0; \
	VEXTRACTF128 $1, Y0, X1; \
	VADDPS X1, X0, X0; \
	VMOVHLPS X0, X0, X1; \
	VADDPS X1, X0, X0; \
	VMOVSHDUP X0, X1; \
	VADDSS X1, X0, X0; \
	VMOVSS X0, off(DI)

#define BATCH_STORE4 STORE1(Z12, 0); STORE1(Z13, 4); STORE1(Z14, 8); STORE1(Z15, 12)
#define BATCH_STORE8 BATCH_STORE4; STORE1(Z16, 16); STORE1(Z17, 20); STORE1(Z18, 24); STORE1(Z19, 28)
#define BATCH_STORE12 BATCH_STORE8; STORE1(Z20, 32); STORE1(Z21, 36); STORE1(Z22, 40); STORE1(Z23, 44)
#define BATCH_STORE16 BATCH_STORE12; STORE1(Z24, 48); STORE1(Z25, 52); STORE1(Z26, 56); STORE1(Z27, 60)

// Bitmap batch: R9 rows of R10 chunks; groups of two chunks, then an odd last
// chunk. XSTEP = nb*64, YSTEP = nb*4; arguments as loaded by each kernel.
#define BITMAP_BATCH(ZERO, DPS, STORE, XSTEP, YSTEP) \
row: \
	ZERO; \
	MOVQ R8, R11; \
	MOVQ R10, CX; \
	SUBQ $2, CX; \
	JL   last; \
pair: \
	PREFETCHT0 PF_VALUES(DX); \
	PREFETCHT0 PF_MASKS(SI); \
	MOVL    (SI), AX; \
	KMOVD   AX, K1; \
	POPCNTL AX, AX; \
	VPEXPANDW.Z (DX), K1, Z4; \
	DPS; \
	LEAQ (DX)(AX*2), DX; \
	ADDQ $4, SI; \
	ADDQ $XSTEP, R11; \
	SUBQ $2, CX; \
	JGE  pair; \
last: \
	ADDQ    $2, CX; \
	JZ      store; \
	MOVWLZX (SI), AX; \
	KMOVD   AX, K1; \
	POPCNTL AX, AX; \
	VPEXPANDW.Z (DX), K1, Z4; \
	DPS; \
	LEAQ (DX)(AX*2), DX; \
	ADDQ $2, SI; \
store: \
	STORE; \
	ADDQ $YSTEP, DI; \
	DECQ R9; \
	JNZ  row; \
	VZEROUPPER; \
	RET

// Dense batch: R9 rows of cols weights; whole groups, then the partial last
// group (R13 bytes) under K1; arguments as loaded by each kernel.
#define DENSE_BATCH(ZERO, DPS, STORE, XSTEP, YSTEP) \
	MOVQ R10, R12; \
	SHRQ $5, R12; \
	MOVQ R10, CX; \
	ANDQ $31, CX; \
	LEAQ (CX*2), R13; \
	MOVL $1, AX; \
	SHLL CX, AX; \
	DECL AX; \
	KMOVD AX, K1; \
row: \
	ZERO; \
	MOVQ  R8, R11; \
	MOVQ  R12, CX; \
	TESTQ CX, CX; \
	JZ    tail; \
group: \
	PREFETCHT0 PF_DENSE(SI); \
	VMOVDQU16 (SI), Z4; \
	DPS; \
	ADDQ $64, SI; \
	ADDQ $XSTEP, R11; \
	DECQ CX; \
	JNZ  group; \
tail: \
	TESTQ R13, R13; \
	JZ    store; \
	VMOVDQU16.Z (SI), K1, Z4; \
	DPS; \
	ADDQ R13, SI; \
store: \
	STORE; \
	ADDQ $YSTEP, DI; \
	DECQ R9; \
	JNZ  row; \
	VZEROUPPER; \
	RET

// func packBF16(dst []uint16, src []float32)
// dst = src rounded to bf16, then zeros up to the next multiple of 32 values
// (len(dst) must be at least that).
TEXT ·packBF16(SB), NOSPLIT, $0-48
	MOVQ dst_base+0(FP), DI
	MOVQ src_base+24(FP), SI
	MOVQ src_len+32(FP), CX
	MOVQ CX, R8
	SHRQ $5, R8
	ANDQ $31, CX
	TESTQ R8, R8
	JZ   tail

group:
	VMOVUPS (SI), Z0
	VMOVUPS 64(SI), Z1
	CVT_Z2_Z1_Z0
	VMOVDQU16 Z2, (DI)
	ADDQ $128, SI
	ADDQ $64, DI
	DECQ R8
	JNZ  group

tail:
	// CX < 32 values left: K1 selects the first min(CX, 16), K2 the rest.
	TESTQ CX, CX
	JZ    done
	MOVL  $1, AX
	SHLL  CX, AX
	DECL  AX
	KMOVW AX, K1
	SHRL  $16, AX
	KMOVW AX, K2
	VMOVUPS.Z (SI), K1, Z0
	VMOVUPS.Z 64(SI), K2, Z1
	CVT_Z2_Z1_Z0
	VMOVDQU16 Z2, (DI)

done:
	VZEROUPPER
	RET

// func packBF16Batch(dst []uint16, src []float32, chunks, nb int)
// src is nb rows of x chunk-major (packBatch: chunks × nb × 16 fp32); dst gets
// them group-major: for each group g of 32 columns, row b's 32 values rounded
// to bf16 at (g*nb+b)*32, zero in the upper half of an odd last chunk's group.
TEXT ·packBF16Batch(SB), NOSPLIT, $0-64
	MOVQ dst_base+0(FP), DI
	MOVQ src_base+24(FP), SI
	MOVQ chunks+48(FP), R10
	MOVQ nb+56(FP), R9
	MOVQ R9, R12
	SHLQ $6, R12 // bytes from a chunk of row b to the next chunk of row b

pairs:
	CMPQ R10, $2
	JL   last
	MOVQ R9, CX
	MOVQ SI, R11

pairrow:
	VMOVUPS (R11), Z0
	VMOVUPS (R11)(R12*1), Z1
	CVT_Z2_Z1_Z0
	VMOVDQU16 Z2, (DI)
	ADDQ $64, R11
	ADDQ $64, DI
	DECQ CX
	JNZ  pairrow
	LEAQ (SI)(R12*2), SI
	SUBQ $2, R10
	JMP  pairs

last:
	TESTQ  R10, R10
	JZ     done
	VPXORD Z1, Z1, Z1
	MOVQ   R9, CX

lastrow:
	VMOVUPS (SI), Z0
	CVT_Z2_Z1_Z0
	VMOVDQU16 Z2, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ  lastrow

done:
	VZEROUPPER
	RET

// func dotDenseBF16DP(y []float32, w []uint16, xb []uint16, cols int)
// For each of len(y) rows of cols bf16 weights at w: y = row · xb. Groups of
// 32 columns go four at a time (Z0..Z3 accumulate), then one at a time; the
// partial last group (R13 bytes, K1 its columns) is loaded under K1.
TEXT ·dotDenseBF16DP(SB), NOSPLIT, $0-80
	MOVQ y_base+0(FP), DI
	MOVQ y_len+8(FP), R9
	MOVQ w_base+24(FP), SI
	MOVQ xb_base+48(FP), R8
	MOVQ cols+72(FP), R10
	MOVQ R10, R12
	SHRQ $7, R12 // runs of four groups
	MOVQ R10, CX
	ANDQ $31, CX
	LEAQ (CX*2), R13
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
	KMOVD AX, K1
	SHRQ $5, R10
	ANDQ $3, R10 // single groups after the runs of four

rowloop:
	ZERO_ACC4
	MOVQ  R8, R11
	MOVQ  R12, CX
	TESTQ CX, CX
	JZ    groups

quad:
	PREFETCHT0 PF_DENSE(SI)
	PREFETCHT0 (PF_DENSE+64)(SI)
	PREFETCHT0 (PF_DENSE+128)(SI)
	PREFETCHT0 (PF_DENSE+192)(SI)
	VMOVDQU16 (SI), Z4
	VMOVDQU16 64(SI), Z5
	VMOVDQU16 128(SI), Z6
	VMOVDQU16 192(SI), Z7
	VMOVDQU16 (R11), Z8
	VMOVDQU16 64(R11), Z9
	VMOVDQU16 128(R11), Z10
	VMOVDQU16 192(R11), Z11
	DP_Z0_Z4_Z8
	DP_Z1_Z5_Z9
	DP_Z2_Z6_Z10
	DP_Z3_Z7_Z11
	ADDQ $256, SI
	ADDQ $256, R11
	DECQ CX
	JNZ  quad

groups:
	MOVQ  R10, CX
	TESTQ CX, CX
	JZ    tail

group:
	VMOVDQU16 (SI), Z4
	VMOVDQU16 (R11), Z8
	DP_Z0_Z4_Z8
	ADDQ $64, SI
	ADDQ $64, R11
	DECQ CX
	JNZ  group

tail:
	TESTQ R13, R13
	JZ    reduce
	VMOVDQU16.Z (SI), K1, Z4
	VMOVDQU16 (R11), Z8
	DP_Z0_Z4_Z8
	ADDQ R13, SI

reduce:
	REDUCE4
	VMOVSS X0, (DI)
	ADDQ   $4, DI
	DECQ   R9
	JNZ    rowloop
	VZEROUPPER
	RET

// func dotBitmapBF16DP(y []float32, masks []uint16, vals []uint16, xb []uint16, chunks int)
// For each of len(y) rows of chunks masks: y = row · xb. Groups of 32 columns
// (two chunk masks, one 32-bit load) go four at a time: two 64-bit loads of
// their masks give, by popcounts of their low 32 bits and of all of them,
// where each group's values start and how far DX moves. Then single groups,
// then an odd last chunk (its mask's upper 16 bits zero).
TEXT ·dotBitmapBF16DP(SB), NOSPLIT, $0-104
	MOVQ y_base+0(FP), DI
	MOVQ y_len+8(FP), R9
	MOVQ masks_base+24(FP), SI
	MOVQ vals_base+48(FP), DX
	MOVQ xb_base+72(FP), R8
	MOVQ chunks+96(FP), R10

rowloop:
	ZERO_ACC4
	MOVQ R8, R11
	MOVQ R10, CX
	SUBQ $8, CX
	JL   pairs

octet:
	PREFETCHT0 PF_VALUES(DX)
	PREFETCHT0 (PF_VALUES+64)(DX)
	PREFETCHT0 PF_MASKS(SI)
	MOVQ    (SI), BX
	MOVQ    8(SI), R12
	POPCNTL BX, AX    // values of group 0 = offset of group 1
	POPCNTQ BX, BX    // groups 0, 1 = offset of group 2
	POPCNTL R12, R13  // group 2
	POPCNTQ R12, R12  // groups 2, 3
	ADDQ    BX, R13   // offset of group 3
	ADDQ    BX, R12   // all four
	KMOVD   (SI), K1
	KMOVD   4(SI), K2
	KMOVD   8(SI), K3
	KMOVD   12(SI), K4
	VPEXPANDW.Z (DX), K1, Z4
	VPEXPANDW.Z (DX)(AX*2), K2, Z5
	VPEXPANDW.Z (DX)(BX*2), K3, Z6
	VPEXPANDW.Z (DX)(R13*2), K4, Z7
	VMOVDQU16 (R11), Z8
	VMOVDQU16 64(R11), Z9
	VMOVDQU16 128(R11), Z10
	VMOVDQU16 192(R11), Z11
	DP_Z0_Z4_Z8
	DP_Z1_Z5_Z9
	DP_Z2_Z6_Z10
	DP_Z3_Z7_Z11
	LEAQ (DX)(R12*2), DX
	ADDQ $16, SI
	ADDQ $256, R11
	SUBQ $8, CX
	JGE  octet

pairs:
	ADDQ $8, CX // chunks left, 0..7

pair:
	CMPQ    CX, $2
	JL      single
	MOVL    (SI), AX
	KMOVD   AX, K1
	POPCNTL AX, AX
	VPEXPANDW.Z (DX), K1, Z4
	VMOVDQU16 (R11), Z8
	DP_Z0_Z4_Z8
	LEAQ (DX)(AX*2), DX
	ADDQ $4, SI
	ADDQ $64, R11
	SUBQ $2, CX
	JMP  pair

single:
	TESTQ   CX, CX
	JZ      reduce
	MOVWLZX (SI), AX
	KMOVD   AX, K1
	POPCNTL AX, AX
	VPEXPANDW.Z (DX), K1, Z4
	VMOVDQU16 (R11), Z8
	DP_Z0_Z4_Z8
	LEAQ (DX)(AX*2), DX
	ADDQ $2, SI

reduce:
	REDUCE4
	VMOVSS X0, (DI)
	ADDQ   $4, DI
	DECQ   R9
	JNZ    rowloop
	VZEROUPPER
	RET

// func dotBitmapBF16DPx4(y []float32, masks []uint16, vals []uint16, xb []uint16, chunks, rows int)
TEXT ·dotBitmapBF16DPx4(SB), NOSPLIT, $0-112
	MOVQ y_base+0(FP), DI
	MOVQ masks_base+24(FP), SI
	MOVQ vals_base+48(FP), DX
	MOVQ xb_base+72(FP), R8
	MOVQ chunks+96(FP), R10
	MOVQ rows+104(FP), R9
	BITMAP_BATCH(BATCH_ZERO4, BATCH_DP4, BATCH_STORE4, 256, 16)

// func dotBitmapBF16DPx8(y []float32, masks []uint16, vals []uint16, xb []uint16, chunks, rows int)
TEXT ·dotBitmapBF16DPx8(SB), NOSPLIT, $0-112
	MOVQ y_base+0(FP), DI
	MOVQ masks_base+24(FP), SI
	MOVQ vals_base+48(FP), DX
	MOVQ xb_base+72(FP), R8
	MOVQ chunks+96(FP), R10
	MOVQ rows+104(FP), R9
	BITMAP_BATCH(BATCH_ZERO8, BATCH_DP8, BATCH_STORE8, 512, 32)

// func dotBitmapBF16DPx12(y []float32, masks []uint16, vals []uint16, xb []uint16, chunks, rows int)
TEXT ·dotBitmapBF16DPx12(SB), NOSPLIT, $0-112
	MOVQ y_base+0(FP), DI
	MOVQ masks_base+24(FP), SI
	MOVQ vals_base+48(FP), DX
	MOVQ xb_base+72(FP), R8
	MOVQ chunks+96(FP), R10
	MOVQ rows+104(FP), R9
	BITMAP_BATCH(BATCH_ZERO12, BATCH_DP12, BATCH_STORE12, 768, 48)

// func dotBitmapBF16DPx16(y []float32, masks []uint16, vals []uint16, xb []uint16, chunks, rows int)
TEXT ·dotBitmapBF16DPx16(SB), NOSPLIT, $0-112
	MOVQ y_base+0(FP), DI
	MOVQ masks_base+24(FP), SI
	MOVQ vals_base+48(FP), DX
	MOVQ xb_base+72(FP), R8
	MOVQ chunks+96(FP), R10
	MOVQ rows+104(FP), R9
	BITMAP_BATCH(BATCH_ZERO16, BATCH_DP16, BATCH_STORE16, 1024, 64)

// func dotDenseBF16DPx4(y []float32, w []uint16, xb []uint16, cols, rows int)
TEXT ·dotDenseBF16DPx4(SB), NOSPLIT, $0-88
	MOVQ y_base+0(FP), DI
	MOVQ w_base+24(FP), SI
	MOVQ xb_base+48(FP), R8
	MOVQ cols+72(FP), R10
	MOVQ rows+80(FP), R9
	DENSE_BATCH(BATCH_ZERO4, BATCH_DP4, BATCH_STORE4, 256, 16)

// func dotDenseBF16DPx8(y []float32, w []uint16, xb []uint16, cols, rows int)
TEXT ·dotDenseBF16DPx8(SB), NOSPLIT, $0-88
	MOVQ y_base+0(FP), DI
	MOVQ w_base+24(FP), SI
	MOVQ xb_base+48(FP), R8
	MOVQ cols+72(FP), R10
	MOVQ rows+80(FP), R9
	DENSE_BATCH(BATCH_ZERO8, BATCH_DP8, BATCH_STORE8, 512, 32)

// func dotDenseBF16DPx12(y []float32, w []uint16, xb []uint16, cols, rows int)
TEXT ·dotDenseBF16DPx12(SB), NOSPLIT, $0-88
	MOVQ y_base+0(FP), DI
	MOVQ w_base+24(FP), SI
	MOVQ xb_base+48(FP), R8
	MOVQ cols+72(FP), R10
	MOVQ rows+80(FP), R9
	DENSE_BATCH(BATCH_ZERO12, BATCH_DP12, BATCH_STORE12, 768, 48)

// func dotDenseBF16DPx16(y []float32, w []uint16, xb []uint16, cols, rows int)
TEXT ·dotDenseBF16DPx16(SB), NOSPLIT, $0-88
	MOVQ y_base+0(FP), DI
	MOVQ w_base+24(FP), SI
	MOVQ xb_base+48(FP), R8
	MOVQ cols+72(FP), R10
	MOVQ rows+80(FP), R9
	DENSE_BATCH(BATCH_ZERO16, BATCH_DP16, BATCH_STORE16, 1024, 64)

// ---------------------------------------------------------------------------
// The batched product (MulT for n > maxBatch): one tile is 12 rows of W
// (bf16, row-major with stride ldw) times 32 rows of x, given as 16-lane
// vectors of bf16 pairs (packXBF16: for pair kp, the 32 rows' x[2kp],
// x[2kp+1] in 32 dwords). Per pair of columns: two vectors of x (Z24, Z25),
// and for each row j of W its pair broadcast to all lanes (Z26..Z29 in turn),
// multiplied with both into the accumulators Z(2j) (rows 0..15 of x) and
// Z(2j+1) (rows 16..31).
//
// DPTk is VDPBF16PS zmm(k), zmm(24 + k%2), zmm(26 + (k/2)%4) (Intel operand
// order: accumulator, x, broadcast weights).
#define DPT0 BYTE $0x62; BYTE $0x92; BYTE $0x3e; BYTE $0x40; BYTE $0x52; BYTE $0xc2
#define DPT1 BYTE $0x62; BYTE $0x92; BYTE $0x36; BYTE $0x40; BYTE $0x52; BYTE $0xca
#define DPT2 BYTE $0x62; BYTE $0x92; BYTE $0x3e; BYTE $0x40; BYTE $0x52; BYTE $0xd3
#define DPT3 BYTE $0x62; BYTE $0x92; BYTE $0x36; BYTE $0x40; BYTE $0x52; BYTE $0xdb
#define DPT4 BYTE $0x62; BYTE $0x92; BYTE $0x3e; BYTE $0x40; BYTE $0x52; BYTE $0xe4
#define DPT5 BYTE $0x62; BYTE $0x92; BYTE $0x36; BYTE $0x40; BYTE $0x52; BYTE $0xec
#define DPT6 BYTE $0x62; BYTE $0x92; BYTE $0x3e; BYTE $0x40; BYTE $0x52; BYTE $0xf5
#define DPT7 BYTE $0x62; BYTE $0x92; BYTE $0x36; BYTE $0x40; BYTE $0x52; BYTE $0xfd
#define DPT8 BYTE $0x62; BYTE $0x12; BYTE $0x3e; BYTE $0x40; BYTE $0x52; BYTE $0xc2
#define DPT9 BYTE $0x62; BYTE $0x12; BYTE $0x36; BYTE $0x40; BYTE $0x52; BYTE $0xca
#define DPT10 BYTE $0x62; BYTE $0x12; BYTE $0x3e; BYTE $0x40; BYTE $0x52; BYTE $0xd3
#define DPT11 BYTE $0x62; BYTE $0x12; BYTE $0x36; BYTE $0x40; BYTE $0x52; BYTE $0xdb
#define DPT12 BYTE $0x62; BYTE $0x12; BYTE $0x3e; BYTE $0x40; BYTE $0x52; BYTE $0xe4
#define DPT13 BYTE $0x62; BYTE $0x12; BYTE $0x36; BYTE $0x40; BYTE $0x52; BYTE $0xec
#define DPT14 BYTE $0x62; BYTE $0x12; BYTE $0x3e; BYTE $0x40; BYTE $0x52; BYTE $0xf5
#define DPT15 BYTE $0x62; BYTE $0x12; BYTE $0x36; BYTE $0x40; BYTE $0x52; BYTE $0xfd
#define DPT16 BYTE $0x62; BYTE $0x82; BYTE $0x3e; BYTE $0x40; BYTE $0x52; BYTE $0xc2
#define DPT17 BYTE $0x62; BYTE $0x82; BYTE $0x36; BYTE $0x40; BYTE $0x52; BYTE $0xca
#define DPT18 BYTE $0x62; BYTE $0x82; BYTE $0x3e; BYTE $0x40; BYTE $0x52; BYTE $0xd3
#define DPT19 BYTE $0x62; BYTE $0x82; BYTE $0x36; BYTE $0x40; BYTE $0x52; BYTE $0xdb
#define DPT20 BYTE $0x62; BYTE $0x82; BYTE $0x3e; BYTE $0x40; BYTE $0x52; BYTE $0xe4
#define DPT21 BYTE $0x62; BYTE $0x82; BYTE $0x36; BYTE $0x40; BYTE $0x52; BYTE $0xec
#define DPT22 BYTE $0x62; BYTE $0x82; BYTE $0x3e; BYTE $0x40; BYTE $0x52; BYTE $0xf5
#define DPT23 BYTE $0x62; BYTE $0x82; BYTE $0x36; BYTE $0x40; BYTE $0x52; BYTE $0xfd

// func gemmBF16Tile(c []float32, xp []uint32, w []uint16, ldw, kpairs int)
// c[j*32+i] = Σ over kp < kpairs of w[j*ldw+2kp]·x_i[2kp] + w[j*ldw+2kp+1]·x_i[2kp+1]
// for the 12 rows j of W and the 32 rows i of x, with xp[kp*32+i] holding
// x_i[2kp] in its low half and x_i[2kp+1] in its high half.
TEXT ·gemmBF16Tile(SB), NOSPLIT, $0-88
	MOVQ c_base+0(FP), DI
	MOVQ xp_base+24(FP), SI
	MOVQ w_base+48(FP), R8
	MOVQ ldw+72(FP), R9
	MOVQ kpairs+80(FP), CX
	SHLQ $1, R9           // bytes from a row of W to the next
	LEAQ (R9)(R9*2), R10  // three rows
	LEAQ (R8)(R9*4), R11  // row 4
	LEAQ (R11)(R9*4), R12 // row 8
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	VPXORD Z16, Z16, Z16
	VPXORD Z17, Z17, Z17
	VPXORD Z18, Z18, Z18
	VPXORD Z19, Z19, Z19
	VPXORD Z20, Z20, Z20
	VPXORD Z21, Z21, Z21
	VPXORD Z22, Z22, Z22
	VPXORD Z23, Z23, Z23

pair:
	VMOVUPS (SI), Z24
	VMOVUPS 64(SI), Z25
	VPBROADCASTD (R8), Z26
	DPT0
	DPT1
	VPBROADCASTD (R8)(R9*1), Z27
	DPT2
	DPT3
	VPBROADCASTD (R8)(R9*2), Z28
	DPT4
	DPT5
	VPBROADCASTD (R8)(R10*1), Z29
	DPT6
	DPT7
	VPBROADCASTD (R11), Z26
	DPT8
	DPT9
	VPBROADCASTD (R11)(R9*1), Z27
	DPT10
	DPT11
	VPBROADCASTD (R11)(R9*2), Z28
	DPT12
	DPT13
	VPBROADCASTD (R11)(R10*1), Z29
	DPT14
	DPT15
	VPBROADCASTD (R12), Z26
	DPT16
	DPT17
	VPBROADCASTD (R12)(R9*1), Z27
	DPT18
	DPT19
	VPBROADCASTD (R12)(R9*2), Z28
	DPT20
	DPT21
	VPBROADCASTD (R12)(R10*1), Z29
	DPT22
	DPT23
	ADDQ $128, SI
	ADDQ $4, R8
	ADDQ $4, R11
	ADDQ $4, R12
	DECQ CX
	JNZ  pair

	VMOVUPS Z0, 0(DI)
	VMOVUPS Z1, 64(DI)
	VMOVUPS Z2, 128(DI)
	VMOVUPS Z3, 192(DI)
	VMOVUPS Z4, 256(DI)
	VMOVUPS Z5, 320(DI)
	VMOVUPS Z6, 384(DI)
	VMOVUPS Z7, 448(DI)
	VMOVUPS Z8, 512(DI)
	VMOVUPS Z9, 576(DI)
	VMOVUPS Z10, 640(DI)
	VMOVUPS Z11, 704(DI)
	VMOVUPS Z12, 768(DI)
	VMOVUPS Z13, 832(DI)
	VMOVUPS Z14, 896(DI)
	VMOVUPS Z15, 960(DI)
	VMOVUPS Z16, 1024(DI)
	VMOVUPS Z17, 1088(DI)
	VMOVUPS Z18, 1152(DI)
	VMOVUPS Z19, 1216(DI)
	VMOVUPS Z20, 1280(DI)
	VMOVUPS Z21, 1344(DI)
	VMOVUPS Z22, 1408(DI)
	VMOVUPS Z23, 1472(DI)
	VZEROUPPER
	RET

// func decodeBitmapBF16Words(dst []uint16, masks []uint16, vals []uint16, rows, chunks, ldd int)
// Decodes rows of chunks masks to bf16 in dst, row i at dst[i*ldd:], in whole
// groups of 32 columns (an odd last chunk's group ends in 16 zeros): each
// group's 32-bit mask (two chunk masks) expands its packed values with
// VPEXPANDW, which reads only the values it places.
TEXT ·decodeBitmapBF16Words(SB), NOSPLIT, $0-96
	MOVQ dst_base+0(FP), DI
	MOVQ masks_base+24(FP), SI
	MOVQ vals_base+48(FP), DX
	MOVQ rows+72(FP), R9
	MOVQ chunks+80(FP), R10
	MOVQ ldd+88(FP), R8
	SHLQ $1, R8 // bytes from a row of dst to the next

row:
	MOVQ DI, R11
	MOVQ R10, CX

group:
	CMPQ    CX, $2
	JL      single
	MOVL    (SI), AX
	KMOVD   AX, K1
	POPCNTL AX, AX
	VPEXPANDW.Z (DX), K1, Z4
	VMOVDQU16 Z4, (R11)
	LEAQ (DX)(AX*2), DX
	ADDQ $4, SI
	ADDQ $64, R11
	SUBQ $2, CX
	JMP  group

single:
	TESTQ   CX, CX
	JZ      next
	MOVWLZX (SI), AX
	KMOVD   AX, K1
	POPCNTL AX, AX
	VPEXPANDW.Z (DX), K1, Z4
	VMOVDQU16 Z4, (R11)
	LEAQ (DX)(AX*2), DX
	ADDQ $2, SI

next:
	ADDQ R8, DI
	DECQ R9
	JNZ  row
	VZEROUPPER
	RET

// func packPairsBF16(dst []uint32, lo, hi []uint16, idx []uint16, cols, stride int)
// For each block b of 32 columns: dst[b*stride+i] = lo[32b+i] | hi[32b+i]<<16
// for i < 32 (zero past cols), by two VPERMT2W of the 32 words of lo and hi
// with the word indices idx (0, 32, 1, 33, ..., 15, 47, then 16, 48, ...).
TEXT ·packPairsBF16(SB), NOSPLIT, $0-112
	MOVQ dst_base+0(FP), DI
	MOVQ lo_base+24(FP), SI
	MOVQ hi_base+48(FP), DX
	MOVQ idx_base+72(FP), AX
	MOVQ cols+96(FP), CX
	MOVQ stride+104(FP), R8
	SHLQ $2, R8 // bytes from a block of dst to the next
	VMOVDQU16 (AX), Z6
	VMOVDQU16 64(AX), Z7
	MOVQ CX, R9
	SHRQ $5, R9
	ANDQ $31, CX
	TESTQ R9, R9
	JZ    tail

block:
	VMOVDQU16 (SI), Z0
	VMOVDQU16 (DX), Z1
	VMOVDQA64 Z0, Z2
	VPERMT2W  Z1, Z6, Z2
	VMOVDQA64 Z0, Z3
	VPERMT2W  Z1, Z7, Z3
	VMOVUPS   Z2, (DI)
	VMOVUPS   Z3, 64(DI)
	ADDQ $64, SI
	ADDQ $64, DX
	ADDQ R8, DI
	DECQ R9
	JNZ  block

tail:
	TESTQ CX, CX
	JZ    done
	MOVL  $1, AX
	SHLL  CX, AX
	DECL  AX
	KMOVD AX, K1
	VMOVDQU16.Z (SI), K1, Z0
	VMOVDQU16.Z (DX), K1, Z1
	VMOVDQA64 Z0, Z2
	VPERMT2W  Z1, Z6, Z2
	VMOVDQA64 Z0, Z3
	VPERMT2W  Z1, Z7, Z3
	VMOVUPS   Z2, (DI)
	VMOVUPS   Z3, 64(DI)

done:
	VZEROUPPER
	RET
