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
// bf16 tables are built as above; the 32 bytes of codes are split into the
// indices of the even (low nibble) and odd (high nibble) values,
// interleaved back into value order (lane 0: values 0-15, lane 1: 32-47,
// and 16-31 | 48-63), and VPERMD puts the dwords of 4 indices in the order
// [0 2 4 6 | 1 3 5 7], so that after the two VPSHUFB lookups (low and high
// bytes) one byte interleave and one word interleave with zero (bf16 into
// the high half of fp32) yield 8 consecutive values per register: 0-7,
// 8-15, 32-39, 40-47 (and 16-23, 24-31, 48-55, 56-63), each multiplied
// into an accumulator with the 8 matching values of x.

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

DATA nf4Perm<>+0(SB)/8, $0x0000000200000000
DATA nf4Perm<>+8(SB)/8, $0x0000000600000004
DATA nf4Perm<>+16(SB)/8, $0x0000000300000001
DATA nf4Perm<>+24(SB)/8, $0x0000000700000005
GLOBL nf4Perm<>(SB), RODATA|NOPTR, $32

// func nf4DotAVX2(codes *uint8, scales *float32, tab *[16]float32, x *float32, blocks int) float32
// Σ over blocks b < blocks and i < 64 of bf16(tab[index of value 64b+i] ·
// scales[b]) · x[64b+i], the indices the nibbles of the 32*blocks bytes at
// codes (low nibble first).
TEXT ·nf4DotAVX2(SB), NOSPLIT, $0-44
	MOVQ codes+0(FP), SI
	MOVQ scales+8(FP), DX
	MOVQ tab+16(FP), R8
	MOVQ x+24(FP), DI
	MOVQ blocks+32(FP), CX
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	VXORPS Y13, Y13, Y13
	TESTQ CX, CX
	JZ sum
	VMOVDQU nf4Nibble<>(SB), Y12
	VMOVDQU nf4Perm<>(SB), Y14

dblock:
	// The block's bf16 table, Y0 = low bytes, Y1 = high bytes (as above).
	VBROADCASTSS (DX), Y2
	VMULPS (R8), Y2, Y4
	VMULPS 32(R8), Y2, Y7
	VPSRLD $16, Y4, Y5
	VPAND nf4One<>(SB), Y5, Y5
	VPADDD nf4Round<>(SB), Y4, Y4
	VPADDD Y5, Y4, Y4
	VPSRLD $16, Y4, Y4
	VPSRLD $16, Y7, Y3
	VPAND nf4One<>(SB), Y3, Y3
	VPADDD nf4Round<>(SB), Y7, Y7
	VPADDD Y3, Y7, Y7
	VPSRLD $16, Y7, Y7
	VPACKUSDW Y7, Y4, Y4
	VPERMQ $0xd8, Y4, Y4
	VPSHUFB splitBytes<>(SB), Y4, Y4
	VPERMQ $0xd8, Y4, Y4
	VPERMQ $0x44, Y4, Y0
	VPERMQ $0xee, Y4, Y1

	// The 64 indices.
	VMOVDQU (SI), Y2
	VPSRLW $4, Y2, Y3
	VPAND Y12, Y2, Y2
	VPAND Y12, Y3, Y3
	VPUNPCKLBW Y3, Y2, Y4 // values 0-15 | 32-47
	VPUNPCKHBW Y3, Y2, Y5 // values 16-31 | 48-63
	VPERMD Y4, Y14, Y4
	VPERMD Y5, Y14, Y5

	VPSHUFB Y4, Y0, Y6
	VPSHUFB Y4, Y1, Y7
	VPUNPCKLBW Y7, Y6, Y15 // bf16 values 0-3 8-11 | 4-7 12-15
	VPUNPCKHBW Y7, Y6, Y6  // 32-35 40-43 | 36-39 44-47
	VPUNPCKLWD Y15, Y13, Y7
	VFMADD231PS (DI), Y7, Y8
	VPUNPCKHWD Y15, Y13, Y7
	VFMADD231PS 32(DI), Y7, Y9
	VPUNPCKLWD Y6, Y13, Y7
	VFMADD231PS 128(DI), Y7, Y10
	VPUNPCKHWD Y6, Y13, Y7
	VFMADD231PS 160(DI), Y7, Y11

	VPSHUFB Y5, Y0, Y6
	VPSHUFB Y5, Y1, Y7
	VPUNPCKLBW Y7, Y6, Y15 // 16-19 24-27 | 20-23 28-31
	VPUNPCKHBW Y7, Y6, Y6  // 48-51 56-59 | 52-55 60-63
	VPUNPCKLWD Y15, Y13, Y7
	VFMADD231PS 64(DI), Y7, Y8
	VPUNPCKHWD Y15, Y13, Y7
	VFMADD231PS 96(DI), Y7, Y9
	VPUNPCKLWD Y6, Y13, Y7
	VFMADD231PS 192(DI), Y7, Y10
	VPUNPCKHWD Y6, Y13, Y7
	VFMADD231PS 224(DI), Y7, Y11

	ADDQ $32, SI
	ADDQ $256, DI
	ADDQ $4, DX
	DECQ CX
	JNZ dblock

sum:
	VADDPS Y9, Y8, Y8
	VADDPS Y11, Y10, Y10
	VADDPS Y10, Y8, Y8
	VEXTRACTF128 $1, Y8, X9
	VADDPS X9, X8, X8
	VHADDPS X8, X8, X8
	VHADDPS X8, X8, X8
	VMOVSS X8, ret+40(FP)
	VZEROUPPER
	RET

// func compressXAVX2(dst *float32, masks *uint16, x *float32, tab *[8192]byte, halves int)
// For each of halves groups of 8 columns (mask byte m, the 8 values of x
// there), writes the values of x at the set bits of m, in order, to dst and
// moves dst on by their number (VPERMPS with the indices tab[32m:]); each
// store writes 8 values, so up to 7 past the last one are overwritten.
TEXT ·compressXAVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ masks+8(FP), SI
	MOVQ x+16(FP), DX
	MOVQ tab+24(FP), R8
	MOVQ halves+32(FP), CX
	TESTQ CX, CX
	JZ cdone

cloop:
	MOVBLZX (SI), AX
	POPCNTL AX, BX
	SHLQ $5, AX
	VMOVDQU (R8)(AX*1), Y1
	VPERMPS (DX), Y1, Y0
	VMOVUPS Y0, (DI)
	LEAQ (DI)(BX*4), DI
	INCQ SI
	ADDQ $32, DX
	DECQ CX
	JNZ cloop

cdone:
	VZEROUPPER
	RET
