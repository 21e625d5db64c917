//go:build amd64 && !purego

#include "textflag.h"

// The AVX2 NF4 decoder (nf4_amd64.go). For each block of 64 values the
// 16-entry code book is scaled by the block's absmax (two VMULPS), rounded
// to bf16 (nearest even: add 0x7fff plus bit 16, keep the high half; the
// values are finite) and split into a table of the 16 low bytes and one of
// the 16 high bytes, each held in both lanes of a register. A group of 32
// values is then 16 bytes of codes split into low and high nibbles,
// interleaved back into value order (low nibble first), two VPSHUFB lookups
// (low and high bytes of the bf16 values) and two interleaves back into 32
// bf16 values.

// splitBytes gathers, in each 128-bit lane, the even (low) bytes of the
// eight 16-bit values, then the odd (high) ones.
DATA splitBytes<>+0(SB)/8, $0x0e0c0a0806040200
DATA splitBytes<>+8(SB)/8, $0x0f0d0b0907050301
DATA splitBytes<>+16(SB)/8, $0x0e0c0a0806040200
DATA splitBytes<>+24(SB)/8, $0x0f0d0b0907050301
GLOBL splitBytes<>(SB), RODATA|NOPTR, $32

// func dequantNF4AVX2(dst *uint16, codes *uint8, scales *float32, tab *[16]float32, groups, phase int)
// dst gets 32*groups bf16 values; the scale of group i is
// scales[(phase+i)/2] (2 groups of 32 per block of 64; phase is 0 or 1).
TEXT ·dequantNF4AVX2(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ codes+8(FP), SI
	MOVQ scales+16(FP), DX
	MOVQ tab+24(FP), R8
	MOVQ groups+32(FP), CX
	MOVQ phase+40(FP), BX
	TESTQ CX, CX
	JZ done
	VMOVUPS (R8), Y14
	VMOVUPS 32(R8), Y15
	MOVL $0x0f0f0f0f, R9
	VMOVD R9, X12
	VPBROADCASTD X12, X12
	MOVL $0x7fff, R9
	VMOVD R9, X11
	VPBROADCASTD X11, Y11
	MOVL $1, R9
	VMOVD R9, X10
	VPBROADCASTD X10, Y10
	VMOVDQU splitBytes<>(SB), Y9

block:
	// The block's bf16 table: Y0 = low bytes, Y1 = high bytes (both lanes).
	VBROADCASTSS (DX), Y13
	VMULPS Y14, Y13, Y4
	VMULPS Y15, Y13, Y7
	VPSRLD $16, Y4, Y5
	VPAND Y10, Y5, Y5
	VPADDD Y11, Y4, Y4
	VPADDD Y5, Y4, Y4
	VPSRLD $16, Y4, Y4
	VPSRLD $16, Y7, Y8
	VPAND Y10, Y8, Y8
	VPADDD Y11, Y7, Y7
	VPADDD Y8, Y7, Y7
	VPSRLD $16, Y7, Y7
	VPACKUSDW Y7, Y4, Y4 // per lane: entries 0-3 (4-7) from Y4, 8-11 (12-15) from Y7
	VPERMQ $0xd8, Y4, Y4 // entries 0-15 in order
	VPSHUFB Y9, Y4, Y4   // per lane: 8 low bytes, 8 high bytes
	VPERMQ $0xd8, Y4, Y4 // low bytes of 0-15, high bytes of 0-15
	VPERMQ $0x44, Y4, Y0
	VPERMQ $0xee, Y4, Y1
	ADDQ $4, DX

group:
	VMOVDQU (SI), X2
	VPSRLW $4, X2, X3
	VPAND X12, X2, X2
	VPAND X12, X3, X3
	VPUNPCKLBW X3, X2, X4 // indices 0-15
	VPUNPCKHBW X3, X2, X5 // indices 16-31
	VINSERTI128 $1, X5, Y4, Y4
	VPSHUFB Y4, Y0, Y5 // low bytes
	VPSHUFB Y4, Y1, Y6 // high bytes
	VPUNPCKLBW Y6, Y5, Y7 // values 0-7 | 16-23
	VPUNPCKHBW Y6, Y5, Y8 // values 8-15 | 24-31
	VPERM2I128 $0x20, Y8, Y7, Y2
	VPERM2I128 $0x31, Y8, Y7, Y3
	VMOVDQU Y2, (DI)
	VMOVDQU Y3, 32(DI)
	ADDQ $16, SI
	ADDQ $64, DI
	DECQ CX
	JZ done
	XORQ $1, BX
	JNZ group // the second group of the block
	JMP block

done:
	VZEROUPPER
	RET

// The fused NF4 GEMV (nf4dot_amd64.go): a dot product straight from the
// packed codes, the decoded values never stored. Per block of 64 values the
// bf16 tables are built as above. The 32 bytes of codes give the indices
// of the even values (low nibbles) and of the odd ones (high nibbles),
// each looked up in both tables with VPSHUFB; a byte interleave makes the
// bf16 values, and each dword's low half shifted up (VPSLLD) and its high
// half masked (VPAND) are fp32. The 8 registers of 8 values that come out
// are multiplied into four accumulators with x in the same order: the
// caller permutes each block of 64 values of x as nf4DotPerm says.

DATA nf4Nibble<>+0(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nf4Nibble<>+8(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nf4Nibble<>+16(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nf4Nibble<>+24(SB)/8, $0x0f0f0f0f0f0f0f0f
GLOBL nf4Nibble<>(SB), RODATA|NOPTR, $32

DATA nf4Round<>+0(SB)/8, $0x00007fff00007fff
DATA nf4Round<>+8(SB)/8, $0x00007fff00007fff
DATA nf4Round<>+16(SB)/8, $0x00007fff00007fff
DATA nf4Round<>+24(SB)/8, $0x00007fff00007fff
GLOBL nf4Round<>(SB), RODATA|NOPTR, $32

DATA nf4One<>+0(SB)/8, $0x0000000100000001
DATA nf4One<>+8(SB)/8, $0x0000000100000001
DATA nf4One<>+16(SB)/8, $0x0000000100000001
DATA nf4One<>+24(SB)/8, $0x0000000100000001
GLOBL nf4One<>(SB), RODATA|NOPTR, $32

DATA nf4High<>+0(SB)/8, $0xffff0000ffff0000
DATA nf4High<>+8(SB)/8, $0xffff0000ffff0000
DATA nf4High<>+16(SB)/8, $0xffff0000ffff0000
DATA nf4High<>+24(SB)/8, $0xffff0000ffff0000
GLOBL nf4High<>(SB), RODATA|NOPTR, $32

// func nf4DotAVX2(codes *uint8, scales *float32, tab *[16]float32, xp *float32, blocks int) float32
// Σ over blocks b < blocks of scales[b] · Σ over values i < 64 of
// bf16(tab[index of value 64b+i]) · x[64b+i], the indices the nibbles of
// the 32*blocks bytes at codes (low nibble first), x permuted into xp by
// nf4DotPerm. The bf16 table of the unscaled codes is built once per call
// and stays in Y0/Y1; each block's four partial sums (Y9, Y10, Y11, Y14)
// start with VMULPS, are added and scaled once into the row's sum Y8.
TEXT ·nf4DotAVX2(SB), NOSPLIT, $0-44
	MOVQ codes+0(FP), SI
	MOVQ scales+8(FP), DX
	MOVQ tab+16(FP), R8
	MOVQ xp+24(FP), DI
	MOVQ blocks+32(FP), CX
	VXORPS Y8, Y8, Y8
	TESTQ CX, CX
	JZ usum
	VMOVDQU nf4Nibble<>(SB), Y12
	VMOVDQU nf4High<>(SB), Y13
	VMOVDQU nf4Round<>(SB), Y14
	VMOVDQU nf4One<>(SB), Y15

	// The bf16 table of the codes: Y0 = low bytes, Y1 = high bytes.
	VMOVUPS (R8), Y4
	VMOVUPS 32(R8), Y7
	VPSRLD $16, Y4, Y5
	VPAND Y15, Y5, Y5
	VPADDD Y14, Y4, Y4
	VPADDD Y5, Y4, Y4
	VPSRLD $16, Y4, Y4
	VPSRLD $16, Y7, Y3
	VPAND Y15, Y3, Y3
	VPADDD Y14, Y7, Y7
	VPADDD Y3, Y7, Y7
	VPSRLD $16, Y7, Y7
	VPACKUSDW Y7, Y4, Y4
	VPERMQ $0xd8, Y4, Y4
	VPSHUFB splitBytes<>(SB), Y4, Y4
	VPERMQ $0xd8, Y4, Y4
	VPERMQ $0x44, Y4, Y0
	VPERMQ $0xee, Y4, Y1

ublock:
	VMOVDQU (SI), Y2
	VPSRLW $4, Y2, Y3
	VPAND Y12, Y2, Y2
	VPAND Y12, Y3, Y3

	VPSHUFB Y2, Y0, Y4
	VPSHUFB Y2, Y1, Y5
	VPUNPCKLBW Y5, Y4, Y6
	VPUNPCKHBW Y5, Y4, Y7
	VPSLLD $16, Y6, Y4
	VMULPS 0(DI), Y4, Y9
	VPAND Y13, Y6, Y6
	VMULPS 32(DI), Y6, Y10
	VPSLLD $16, Y7, Y4
	VMULPS 64(DI), Y4, Y11
	VPAND Y13, Y7, Y7
	VMULPS 96(DI), Y7, Y14

	VPSHUFB Y3, Y0, Y4
	VPSHUFB Y3, Y1, Y5
	VPUNPCKLBW Y5, Y4, Y6
	VPUNPCKHBW Y5, Y4, Y7
	VPSLLD $16, Y6, Y4
	VFMADD231PS 128(DI), Y4, Y9
	VPAND Y13, Y6, Y6
	VFMADD231PS 160(DI), Y6, Y10
	VPSLLD $16, Y7, Y4
	VFMADD231PS 192(DI), Y4, Y11
	VPAND Y13, Y7, Y7
	VFMADD231PS 224(DI), Y7, Y14

	VADDPS Y10, Y9, Y9
	VADDPS Y14, Y11, Y11
	VADDPS Y11, Y9, Y9
	VBROADCASTSS (DX), Y15
	VFMADD231PS Y15, Y9, Y8

	ADDQ $32, SI
	ADDQ $256, DI
	ADDQ $4, DX
	DECQ CX
	JNZ ublock

usum:
	VEXTRACTF128 $1, Y8, X9
	VADDPS X9, X8, X8
	VHADDPS X8, X8, X8
	VHADDPS X8, X8, X8
	VMOVSS X8, ret+40(FP)
	VZEROUPPER
	RET
