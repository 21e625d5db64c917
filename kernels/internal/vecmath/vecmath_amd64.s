//go:build amd64 && !purego

#include "textflag.h"

// Vector float32 kernels for softmax, cross-entropy and SwiGLU: exp(x - shift)
// with a float64 sum, the logistic sigmoid, the maximum, scaling and the
// softmax backward step, each in an AVX-512F and an AVX2+FMA version (selected at run time in vecmath_amd64.go). The
// reference loops are in vecmath.go.
//
// exp(x) for float32 x (Cephes expf, evaluated with FMA):
//   t = clamp(x, minArg, 89)       NaN passes through (it is the second operand of MAX/MIN)
//   n = round(t·log2e)             to nearest, as a float
//   r = t - n·ln2hi - n·ln2lo      two-constant Cody–Waite reduction, |r| <= ln2/2;
//                                  the first FMA is exact
//   p = 1 + r + r²·P(r)            P of degree 5 (Cephes' minimax coefficients)
//   exp(x) = p·2ⁿ                  AVX-512: VSCALEFPS; AVX2: two exact powers of two
//                                  2^(n>>1)·2^(n-(n>>1)), so that n = 128 still works
// Results overflow to +Inf for x > ln(MaxFloat32) (the clamp at 89 makes p·2ⁿ
// overflow) and are flushed to 0 for x < minArg = ln(smallest normal float32);
// NaN gives NaN. Every element goes through the same instructions (tails use
// masked loads and stores), so an element's result does not depend on its
// position or on the slice length.

// Constants, each replicated 8 times (32 bytes) so that AVX2 code can use them
// as memory operands; AVX-512 code broadcasts their first element.
#define CONST8(name, bits) \
	DATA name+0(SB)/4, $bits; DATA name+4(SB)/4, $bits; DATA name+8(SB)/4, $bits; DATA name+12(SB)/4, $bits; \
	DATA name+16(SB)/4, $bits; DATA name+20(SB)/4, $bits; DATA name+24(SB)/4, $bits; DATA name+28(SB)/4, $bits; \
	GLOBL name(SB), RODATA|NOPTR, $32

CONST8(expMinArg<>, 0xc2aeac4f)  // -87.33654: below this exp(x) is not a normal float32
CONST8(expClampHi<>, 0x42b20000) // 89: above ln(MaxFloat32) = 88.72284
CONST8(expLog2e<>, 0x3fb8aa3b)   // log2(e)
CONST8(expLn2Hi<>, 0x3f317218)   // float32(ln 2)
CONST8(expLn2Lo<>, 0xb102e308)   // ln 2 - ln2Hi = -1.9046542e-9
CONST8(expC5<>, 0x39506967)      // 1.9875691500e-4
CONST8(expC4<>, 0x3ab743ce)      // 1.3981999507e-3
CONST8(expC3<>, 0x3c088908)      // 8.3334519073e-3
CONST8(expC2<>, 0x3d2aa9c1)      // 4.1665795894e-2
CONST8(expC1<>, 0x3e2aaaaa)      // 1.6666665459e-1
CONST8(expC0<>, 0x3f000000)      // 5.0000001201e-1 (0.5 in float32)
CONST8(expOne<>, 0x3f800000)     // 1
CONST8(expBias<>, 0x0000007f)    // 127, the float32 exponent bias (int32)
CONST8(negInf<>, 0xff800000)     // -Inf

// tailMask<>+4·(8-k) holds k int32 lanes of -1 followed by zeros: the AVX2
// lane mask of a tail of k < 8 elements.
DATA tailMask<>+0(SB)/8, $-1
DATA tailMask<>+8(SB)/8, $-1
DATA tailMask<>+16(SB)/8, $-1
DATA tailMask<>+24(SB)/8, $-1
DATA tailMask<>+32(SB)/8, $0
DATA tailMask<>+40(SB)/8, $0
DATA tailMask<>+48(SB)/8, $0
DATA tailMask<>+56(SB)/8, $0
GLOBL tailMask<>(SB), RODATA|NOPTR, $64

// EXP_REDUCE sets n = round(t·log2e) and r = t - n·ln2 for t = x clamped to
// [minArg, clampHi] (minArg and clampHi must be registers; NaN x gives NaN r).
// ROUND is the rounding instruction (VROUNDPS or VRNDSCALEPS).
#define EXP_REDUCE(x, n, r, minArg, clampHi, log2e, ln2hi, ln2lo, ROUND) \
	VMAXPS x, minArg, r; \
	VMINPS r, clampHi, r; \
	VMULPS log2e, r, n; \
	ROUND $0, n, n; \
	VFNMADD231PS ln2hi, n, r; \
	VFNMADD231PS ln2lo, n, r

// EXP_POLY sets p = exp(r) for |r| <= ln2/2; r2 is scratch.
#define EXP_POLY(r, p, r2, c5, c4, c3, c2, c1, c0, one) \
	VMULPS r, r, r2; \
	VMOVUPS c5, p; \
	VFMADD213PS c4, r, p; \
	VFMADD213PS c3, r, p; \
	VFMADD213PS c2, r, p; \
	VFMADD213PS c1, r, p; \
	VFMADD213PS c0, r, p; \
	VFMADD213PS r, r2, p; \
	VADDPS one, p, p

// ---- AVX-512F ----
// Registers: Z16 minArg, Z17 clampHi, Z18 log2e, Z19 ln2Hi, Z20 ln2Lo,
// Z21..Z26 c5..c0, Z27 one, Z28 shift (expShiftedSum) or zero (sigmoid);
// K3 all lanes.

#define AVX512_CONSTS \
	VBROADCASTSS expMinArg<>(SB), Z16; \
	VBROADCASTSS expClampHi<>(SB), Z17; \
	VBROADCASTSS expLog2e<>(SB), Z18; \
	VBROADCASTSS expLn2Hi<>(SB), Z19; \
	VBROADCASTSS expLn2Lo<>(SB), Z20; \
	VBROADCASTSS expC5<>(SB), Z21; \
	VBROADCASTSS expC4<>(SB), Z22; \
	VBROADCASTSS expC3<>(SB), Z23; \
	VBROADCASTSS expC2<>(SB), Z24; \
	VBROADCASTSS expC1<>(SB), Z25; \
	VBROADCASTSS expC0<>(SB), Z26; \
	VBROADCASTSS expOne<>(SB), Z27; \
	KXNORW K3, K3, K3

// EXP16 sets Z1 = exp(Z0) in the lanes of mask `lanes` and 0 in the others.
// Uses Z2..Z4 and K1.
#define EXP16(lanes) \
	VCMPPS $5, Z16, Z0, lanes, K1; \
	EXP_REDUCE(Z0, Z2, Z3, Z16, Z17, Z18, Z19, Z20, VRNDSCALEPS); \
	EXP_POLY(Z3, Z4, Z1, Z21, Z22, Z23, Z24, Z25, Z26, Z27); \
	VSCALEFPS.Z Z2, Z4, K1, Z1

// ADD16 adds the 16 float32 lanes of Z1 to the float64 accumulators Z8, Z9.
#define ADD16 \
	VCVTPS2PD Y1, Z2; \
	VEXTRACTF64X4 $1, Z1, Y3; \
	VCVTPS2PD Y3, Z3; \
	VADDPD Z2, Z8, Z8; \
	VADDPD Z3, Z9, Z9

// TAIL16 sets K2 to the low CX (< 16) lanes.
#define TAIL16 \
	MOVL $1, AX; \
	SHLL CX, AX; \
	DECL AX; \
	KMOVW AX, K2

// func expShiftedSumAVX512(dst, src *float32, n int, shift float32) float64
TEXT ·expShiftedSumAVX512(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	AVX512_CONSTS
	VBROADCASTSS shift+24(FP), Z28
	VPXORQ Z8, Z8, Z8
	VPXORQ Z9, Z9, Z9

esumLoop:
	CMPQ CX, $16
	JL   esumTail
	VMOVUPS (SI), Z0
	VSUBPS  Z28, Z0, Z0
	EXP16(K3)
	VMOVUPS Z1, (DI)
	ADD16
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP  esumLoop

esumTail:
	TESTQ CX, CX
	JZ    esumDone
	TAIL16
	VMOVUPS.Z (SI), K2, Z0
	VSUBPS    Z28, Z0, Z0
	EXP16(K2)
	VMOVUPS   Z1, K2, (DI)
	ADD16

esumDone:
	VADDPD        Z9, Z8, Z8
	VEXTRACTF64X4 $1, Z8, Y9
	VADDPD        Y9, Y8, Y8
	VEXTRACTF128  $1, Y8, X9
	VADDPD        X9, X8, X8
	VPERMILPD     $1, X8, X9
	VADDSD        X9, X8, X8
	VZEROUPPER
	MOVSD         X8, ret+32(FP)
	RET

// func sigmoidAVX512(dst, src *float32, n int)
TEXT ·sigmoidAVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	AVX512_CONSTS
	VPXORD Z28, Z28, Z28

sigLoop:
	CMPQ CX, $16
	JL   sigTail
	VMOVUPS (SI), Z0
	VSUBPS  Z0, Z28, Z0  // -x
	EXP16(K3)
	VADDPS  Z27, Z1, Z1  // 1 + exp(-x)
	VDIVPS  Z1, Z27, Z1  // 1 / (1 + exp(-x))
	VMOVUPS Z1, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP  sigLoop

sigTail:
	TESTQ CX, CX
	JZ    sigDone
	TAIL16
	VMOVUPS.Z (SI), K2, Z0
	VSUBPS    Z0, Z28, Z0
	EXP16(K2)
	VADDPS    Z27, Z1, Z1
	VDIVPS    Z1, Z27, Z1
	VMOVUPS   Z1, K2, (DI)

sigDone:
	VZEROUPPER
	RET

// func maxAVX512(src *float32, n int) float32
// The accumulators are the second operand of VMAXPS, so NaN elements are
// skipped.
TEXT ·maxAVX512(SB), NOSPLIT, $0-20
	MOVQ src+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS negInf<>(SB), Z0
	VMOVAPS      Z0, Z1
	VMOVAPS      Z0, Z2
	VMOVAPS      Z0, Z3
	VMOVAPS      Z0, Z8

max64:
	CMPQ    CX, $64
	JL      max16
	VMOVUPS (SI), Z4
	VMOVUPS 64(SI), Z5
	VMOVUPS 128(SI), Z6
	VMOVUPS 192(SI), Z7
	VMAXPS  Z0, Z4, Z0
	VMAXPS  Z1, Z5, Z1
	VMAXPS  Z2, Z6, Z2
	VMAXPS  Z3, Z7, Z3
	ADDQ    $256, SI
	SUBQ    $64, CX
	JMP     max64

max16:
	CMPQ    CX, $16
	JL      maxTail
	VMOVUPS (SI), Z4
	VMAXPS  Z0, Z4, Z0
	ADDQ    $64, SI
	SUBQ    $16, CX
	JMP     max16

maxTail:
	TESTQ   CX, CX
	JZ      maxDone
	TAIL16
	VMOVAPS Z8, Z4
	VMOVUPS (SI), K2, Z4 // missing lanes stay -Inf
	VMAXPS  Z0, Z4, Z0

maxDone:
	VMAXPS        Z1, Z0, Z0
	VMAXPS        Z3, Z2, Z2
	VMAXPS        Z2, Z0, Z0
	VEXTRACTF64X4 $1, Z0, Y1
	VMAXPS        Y1, Y0, Y0
	VEXTRACTF128  $1, Y0, X1
	VMAXPS        X1, X0, X0
	VPERMILPS     $0x4e, X0, X1
	VMAXPS        X1, X0, X0
	VPERMILPS     $0xb1, X0, X1
	VMAXPS        X1, X0, X0
	VZEROUPPER
	MOVSS         X0, ret+16(FP)
	RET

// func scaleAVX512(x *float32, n int, a float32)
TEXT ·scaleAVX512(SB), NOSPLIT, $0-20
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS a+16(FP), Z28

scaleLoop:
	CMPQ    CX, $16
	JL      scaleTail
	VMULPS  (SI), Z28, Z0
	VMOVUPS Z0, (SI)
	ADDQ    $64, SI
	SUBQ    $16, CX
	JMP     scaleLoop

scaleTail:
	TESTQ     CX, CX
	JZ        scaleDone
	TAIL16
	VMOVUPS.Z (SI), K2, Z0
	VMULPS    Z28, Z0, Z0
	VMOVUPS   Z0, K2, (SI)

scaleDone:
	VZEROUPPER
	RET

// DOT16 adds the products of the 16 lanes of Z0 and Z1, in float64, to Z8 and
// Z9. Uses Z2..Z5.
#define DOT16 \
	VCVTPS2PD     Y0, Z2; \
	VCVTPS2PD     Y1, Z3; \
	VFMADD231PD   Z3, Z2, Z8; \
	VEXTRACTF64X4 $1, Z0, Y4; \
	VEXTRACTF64X4 $1, Z1, Y5; \
	VCVTPS2PD     Y4, Z4; \
	VCVTPS2PD     Y5, Z5; \
	VFMADD231PD   Z5, Z4, Z9

// func softmaxBackwardAVX512(dx, p *float32, n int)
TEXT ·softmaxBackwardAVX512(SB), NOSPLIT, $0-24
	MOVQ   dx+0(FP), DI
	MOVQ   p+8(FP), SI
	MOVQ   n+16(FP), CX
	VPXORQ Z8, Z8, Z8
	VPXORQ Z9, Z9, Z9
	XORQ   BX, BX        // element offset in bytes

sbDotLoop:
	CMPQ    CX, $16
	JL      sbDotTail
	VMOVUPS (SI)(BX*1), Z0
	VMOVUPS (DI)(BX*1), Z1
	DOT16
	ADDQ    $64, BX
	SUBQ    $16, CX
	JMP     sbDotLoop

sbDotTail:
	TESTQ     CX, CX
	JZ        sbDotDone
	TAIL16
	VMOVUPS.Z (SI)(BX*1), K2, Z0
	VMOVUPS.Z (DI)(BX*1), K2, Z1
	DOT16

sbDotDone:
	VADDPD        Z9, Z8, Z8
	VEXTRACTF64X4 $1, Z8, Y9
	VADDPD        Y9, Y8, Y8
	VEXTRACTF128  $1, Y8, X9
	VADDPD        X9, X8, X8
	VPERMILPD     $1, X8, X9
	VADDSD        X9, X8, X8
	VCVTSD2SS     X8, X8, X8
	VBROADCASTSS  X8, Z10    // the dot product as float32
	MOVQ          n+16(FP), CX

sbLoop:
	CMPQ    CX, $16
	JL      sbTail
	VMOVUPS (DI), Z1
	VSUBPS  Z10, Z1, Z1
	VMULPS  (SI), Z1, Z1
	VMOVUPS Z1, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DI
	SUBQ    $16, CX
	JMP     sbLoop

sbTail:
	TESTQ     CX, CX
	JZ        sbDone
	VMOVUPS.Z (DI), K2, Z1 // K2 still holds the tail mask: same n
	VMOVUPS.Z (SI), K2, Z0
	VSUBPS    Z10, Z1, Z1
	VMULPS    Z0, Z1, Z1
	VMOVUPS   Z1, K2, (DI)

sbDone:
	VZEROUPPER
	RET

// ---- AVX2 + FMA ----
// Registers: Y13 minArg, Y14 clampHi, Y15 shift (expShiftedSum) or zero
// (sigmoid); the other constants are memory operands.

#define AVX2_CONSTS \
	VMOVUPS expMinArg<>(SB), Y13; \
	VMOVUPS expClampHi<>(SB), Y14

// EXP8 sets Y1 = exp(Y0) in the lanes of the mask register `lanes` and 0 in
// the others. Uses Y2..Y6.
#define EXP8(lanes) \
	VCMPPS $5, Y13, Y0, Y6; \
	VANDPS lanes, Y6, Y6; \
	EXP_REDUCE(Y0, Y2, Y3, Y13, Y14, expLog2e<>(SB), expLn2Hi<>(SB), expLn2Lo<>(SB), VROUNDPS); \
	EXP_POLY(Y3, Y4, Y1, expC5<>(SB), expC4<>(SB), expC3<>(SB), expC2<>(SB), expC1<>(SB), expC0<>(SB), expOne<>(SB)); \
	VCVTPS2DQ Y2, Y2; \
	VPSRAD $1, Y2, Y5; \
	VPSUBD Y5, Y2, Y2; \
	VPADDD expBias<>(SB), Y5, Y5; \
	VPSLLD $23, Y5, Y5; \
	VPADDD expBias<>(SB), Y2, Y2; \
	VPSLLD $23, Y2, Y2; \
	VMULPS Y5, Y4, Y4; \
	VMULPS Y2, Y4, Y4; \
	VANDPS Y6, Y4, Y1

// ADD8 adds the 8 float32 lanes of Y1 to the float64 accumulators Y8, Y9.
#define ADD8 \
	VCVTPS2PD X1, Y2; \
	VEXTRACTF128 $1, Y1, X3; \
	VCVTPS2PD X3, Y3; \
	VADDPD Y2, Y8, Y8; \
	VADDPD Y3, Y9, Y9

// TAIL8 sets Y7 to the lane mask of the low CX (< 8) lanes.
#define TAIL8 \
	MOVQ $8, AX; \
	SUBQ CX, AX; \
	LEAQ tailMask<>(SB), DX; \
	VMOVUPS (DX)(AX*4), Y7

// func expShiftedSumAVX2(dst, src *float32, n int, shift float32) float64
TEXT ·expShiftedSumAVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	AVX2_CONSTS
	VBROADCASTSS shift+24(FP), Y15
	VPCMPEQD     Y7, Y7, Y7 // all lanes
	VXORPD       Y8, Y8, Y8
	VXORPD       Y9, Y9, Y9

esum2Loop:
	CMPQ CX, $8
	JL   esum2Tail
	VMOVUPS (SI), Y0
	VSUBPS  Y15, Y0, Y0
	EXP8(Y7)
	VMOVUPS Y1, (DI)
	ADD8
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  esum2Loop

esum2Tail:
	TESTQ CX, CX
	JZ    esum2Done
	TAIL8
	VMASKMOVPS (SI), Y7, Y0
	VSUBPS     Y15, Y0, Y0
	EXP8(Y7)
	VMASKMOVPS Y1, Y7, (DI)
	ADD8

esum2Done:
	VADDPD       Y9, Y8, Y8
	VEXTRACTF128 $1, Y8, X9
	VADDPD       X9, X8, X8
	VPERMILPD    $1, X8, X9
	VADDSD       X9, X8, X8
	VZEROUPPER
	MOVSD        X8, ret+32(FP)
	RET

// func sigmoidAVX2(dst, src *float32, n int)
TEXT ·sigmoidAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	AVX2_CONSTS
	VXORPS    Y15, Y15, Y15
	VPCMPEQD  Y7, Y7, Y7
	VMOVUPS   expOne<>(SB), Y10

sig2Loop:
	CMPQ CX, $8
	JL   sig2Tail
	VMOVUPS (SI), Y0
	VSUBPS  Y0, Y15, Y0
	EXP8(Y7)
	VADDPS  Y10, Y1, Y1
	VDIVPS  Y1, Y10, Y1
	VMOVUPS Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  sig2Loop

sig2Tail:
	TESTQ CX, CX
	JZ    sig2Done
	TAIL8
	VMASKMOVPS (SI), Y7, Y0
	VSUBPS     Y0, Y15, Y0
	EXP8(Y7)
	VADDPS     Y10, Y1, Y1
	VDIVPS     Y1, Y10, Y1
	VMASKMOVPS Y1, Y7, (DI)

sig2Done:
	VZEROUPPER
	RET

// func maxAVX2(src *float32, n int) float32
TEXT ·maxAVX2(SB), NOSPLIT, $0-20
	MOVQ src+0(FP), SI
	MOVQ n+8(FP), CX
	VMOVUPS negInf<>(SB), Y0
	VMOVAPS Y0, Y1
	VMOVAPS Y0, Y2
	VMOVAPS Y0, Y3
	VMOVAPS Y0, Y8

max2x32:
	CMPQ    CX, $32
	JL      max2x8
	VMOVUPS (SI), Y4
	VMOVUPS 32(SI), Y5
	VMOVUPS 64(SI), Y6
	VMOVUPS 96(SI), Y7
	VMAXPS  Y0, Y4, Y0
	VMAXPS  Y1, Y5, Y1
	VMAXPS  Y2, Y6, Y2
	VMAXPS  Y3, Y7, Y3
	ADDQ    $128, SI
	SUBQ    $32, CX
	JMP     max2x32

max2x8:
	CMPQ    CX, $8
	JL      max2Tail
	VMOVUPS (SI), Y4
	VMAXPS  Y0, Y4, Y0
	ADDQ    $32, SI
	SUBQ    $8, CX
	JMP     max2x8

max2Tail:
	TESTQ      CX, CX
	JZ         max2Done
	TAIL8
	VMASKMOVPS (SI), Y7, Y4
	VBLENDVPS  Y7, Y4, Y8, Y4 // missing lanes -Inf
	VMAXPS     Y0, Y4, Y0

max2Done:
	VMAXPS       Y1, Y0, Y0
	VMAXPS       Y3, Y2, Y2
	VMAXPS       Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0x4e, X0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0xb1, X0, X1
	VMAXPS       X1, X0, X0
	VZEROUPPER
	MOVSS        X0, ret+16(FP)
	RET

// func scaleAVX2(x *float32, n int, a float32)
TEXT ·scaleAVX2(SB), NOSPLIT, $0-20
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS a+16(FP), Y15

scale2Loop:
	CMPQ    CX, $8
	JL      scale2Tail
	VMULPS  (SI), Y15, Y0
	VMOVUPS Y0, (SI)
	ADDQ    $32, SI
	SUBQ    $8, CX
	JMP     scale2Loop

scale2Tail:
	TESTQ      CX, CX
	JZ         scale2Done
	TAIL8
	VMASKMOVPS (SI), Y7, Y0
	VMULPS     Y15, Y0, Y0
	VMASKMOVPS Y0, Y7, (SI)

scale2Done:
	VZEROUPPER
	RET

// DOT8 adds the products of the 8 lanes of Y0 and Y1, in float64, to Y8 and
// Y9. Uses Y2..Y5.
#define DOT8 \
	VCVTPS2PD    X0, Y2; \
	VCVTPS2PD    X1, Y3; \
	VFMADD231PD  Y3, Y2, Y8; \
	VEXTRACTF128 $1, Y0, X4; \
	VEXTRACTF128 $1, Y1, X5; \
	VCVTPS2PD    X4, Y4; \
	VCVTPS2PD    X5, Y5; \
	VFMADD231PD  Y5, Y4, Y9

// func softmaxBackwardAVX2(dx, p *float32, n int)
TEXT ·softmaxBackwardAVX2(SB), NOSPLIT, $0-24
	MOVQ   dx+0(FP), DI
	MOVQ   p+8(FP), SI
	MOVQ   n+16(FP), CX
	VXORPD Y8, Y8, Y8
	VXORPD Y9, Y9, Y9
	XORQ   BX, BX

sb2DotLoop:
	CMPQ    CX, $8
	JL      sb2DotTail
	VMOVUPS (SI)(BX*1), Y0
	VMOVUPS (DI)(BX*1), Y1
	DOT8
	ADDQ    $32, BX
	SUBQ    $8, CX
	JMP     sb2DotLoop

sb2DotTail:
	TESTQ      CX, CX
	JZ         sb2DotDone
	TAIL8
	VMASKMOVPS (SI)(BX*1), Y7, Y0
	VMASKMOVPS (DI)(BX*1), Y7, Y1
	DOT8

sb2DotDone:
	VADDPD       Y9, Y8, Y8
	VEXTRACTF128 $1, Y8, X9
	VADDPD       X9, X8, X8
	VPERMILPD    $1, X8, X9
	VADDSD       X9, X8, X8
	VCVTSD2SS    X8, X8, X8
	VBROADCASTSS X8, Y10
	MOVQ         n+16(FP), CX

sb2Loop:
	CMPQ    CX, $8
	JL      sb2Tail
	VMOVUPS (DI), Y1
	VSUBPS  Y10, Y1, Y1
	VMULPS  (SI), Y1, Y1
	VMOVUPS Y1, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	SUBQ    $8, CX
	JMP     sb2Loop

sb2Tail:
	TESTQ      CX, CX
	JZ         sb2Done
	VMASKMOVPS (DI), Y7, Y1 // Y7 still holds the tail mask: same n
	VMASKMOVPS (SI), Y7, Y0
	VSUBPS     Y10, Y1, Y1
	VMULPS     Y0, Y1, Y1
	VMASKMOVPS Y1, Y7, (DI)

sb2Done:
	VZEROUPPER
	RET
