//go:build amd64 && !purego

#include "textflag.h"

// The AVX2 NF4 decoder (nf4_amd64.go). 16 values per group: 8 bytes of
// codes split into low and high nibbles, interleaved back into value order
// (low nibble first), widened to 8 dwords at a time; VPERMPS looks each
// index up in the low and the high half of the 16-entry code book held in
// two registers and VBLENDVPS picks the half by bit 3 of the index (moved to
// the sign bit); then one multiply by the block's scale.

// func dequantNF4AVX2(dst *float32, codes *uint8, scales *float32, tab *[16]float32, groups, phase int)
// dst gets 16*groups values; the scale of group i is scales[(phase+i)/4]
// (4 groups of 16 per block of 64; 0 <= phase < 4).
TEXT ·dequantNF4AVX2(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ codes+8(FP), SI
	MOVQ scales+16(FP), DX
	MOVQ tab+24(FP), R8
	MOVQ groups+32(FP), CX
	MOVQ phase+40(FP), BX
	MOVQ $4, AX
	SUBQ BX, AX // groups left in the current block
	VMOVUPS (R8), Y14
	VMOVUPS 32(R8), Y15
	MOVL $0x0f0f0f0f, R9
	VMOVD R9, X12
	VPBROADCASTD X12, X12
	TESTQ CX, CX
	JZ done

loop:
	VBROADCASTSS (DX), Y13
	VMOVQ (SI), X0
	VPSRLW $4, X0, X1
	VPAND X12, X0, X0
	VPAND X12, X1, X1
	VPUNPCKLBW X1, X0, X0
	VPMOVZXBD X0, Y2
	VPSRLDQ $8, X0, X3
	VPMOVZXBD X3, Y3

	VPERMPS Y14, Y2, Y4
	VPERMPS Y15, Y2, Y5
	VPSLLD $28, Y2, Y6
	VBLENDVPS Y6, Y5, Y4, Y4
	VMULPS Y13, Y4, Y4
	VMOVUPS Y4, (DI)

	VPERMPS Y14, Y3, Y7
	VPERMPS Y15, Y3, Y8
	VPSLLD $28, Y3, Y9
	VBLENDVPS Y9, Y8, Y7, Y7
	VMULPS Y13, Y7, Y7
	VMOVUPS Y7, 32(DI)

	ADDQ $8, SI
	ADDQ $64, DI
	DECQ CX
	JZ done
	DECQ AX
	JNZ loop
	ADDQ $4, DX
	MOVQ $4, AX
	JMP loop

done:
	VZEROUPPER
	RET
