//go:build amd64 && !purego

#include "textflag.h"

// exp over 8 float32 per YMM register, the algorithm of exp32 (fastmath.go):
// n = round(x·log2 e), r = x − n·ln2 (two parts), a degree-6 Taylor
// polynomial on |r| ≤ ln2/2, times 2ⁿ built in the exponent bits; +Inf above
// 88, 0 below −87.

#define VEC8(name, bits) \
	DATA name+0(SB)/4, bits; DATA name+4(SB)/4, bits; DATA name+8(SB)/4, bits; DATA name+12(SB)/4, bits; \
	DATA name+16(SB)/4, bits; DATA name+20(SB)/4, bits; DATA name+24(SB)/4, bits; DATA name+28(SB)/4, bits; \
	GLOBL name(SB), RODATA|NOPTR, $32

VEC8(log2ev<>, $0x3fb8aa3b)
VEC8(ln2hiv<>, $0x3f318000)
VEC8(ln2lov<>, $0xb95e8083)
VEC8(hiv<>, $0x42b00000)
VEC8(lov<>, $0xc2ae0000)
VEC8(c6v<>, $0x3ab60b61)
VEC8(c5v<>, $0x3c088889)
VEC8(c4v<>, $0x3d2aaaab)
VEC8(c3v<>, $0x3e2aaaab)
VEC8(c2v<>, $0x3f000000)
VEC8(onev<>, $0x3f800000)
VEC8(infv<>, $0x7f800000)
VEC8(biasv<>, $127)

// AFFINE_SETUP loads the arguments (dst DI, src SI, n CX, a Y8, b Y9) and
// the constants (Y10–Y15) of the affine kernels.
#define AFFINE_SETUP \
	MOVQ dst+0(FP), DI; \
	MOVQ src+8(FP), SI; \
	MOVQ n+16(FP), CX; \
	VBROADCASTSS a+24(FP), Y8; \
	VBROADCASTSS b+28(FP), Y9; \
	VMOVUPS log2ev<>(SB), Y10; \
	VMOVUPS ln2hiv<>(SB), Y11; \
	VMOVUPS ln2lov<>(SB), Y12; \
	VMOVUPS hiv<>(SB), Y13; \
	VMOVUPS lov<>(SB), Y14; \
	VMOVUPS infv<>(SB), Y15

// EXP8 sets Y3 = exp(a·x + b) for the 8 values x at (SI), leaving Y0 = a·x + b:
// n = round(x·log2 e) (Y1), r = x − n·ln2hi − n·ln2lo (Y2), the polynomial
// in r times 2ⁿ = (n + 127) << 23 (Y4); x > 88 gives +Inf, x < −87 gives 0.
#define EXP8 \
	VMOVUPS (SI), Y0; \
	VFMADD213PS Y9, Y8, Y0; \
	VMULPS Y10, Y0, Y1; \
	VROUNDPS $0, Y1, Y1; \
	VMOVAPS Y0, Y2; \
	VFNMADD231PS Y11, Y1, Y2; \
	VFNMADD231PS Y12, Y1, Y2; \
	VMOVUPS c6v<>(SB), Y3; \
	VFMADD213PS c5v<>(SB), Y2, Y3; \
	VFMADD213PS c4v<>(SB), Y2, Y3; \
	VFMADD213PS c3v<>(SB), Y2, Y3; \
	VFMADD213PS c2v<>(SB), Y2, Y3; \
	VFMADD213PS onev<>(SB), Y2, Y3; \
	VFMADD213PS onev<>(SB), Y2, Y3; \
	VCVTPS2DQ Y1, Y4; \
	VPADDD biasv<>(SB), Y4, Y4; \
	VPSLLD $23, Y4, Y4; \
	VMULPS Y4, Y3, Y3; \
	VCMPPS $0x1e, Y13, Y0, Y5; \
	VBLENDVPS Y5, Y15, Y3, Y3; \
	VCMPPS $0x11, Y14, Y0, Y6; \
	VANDNPS Y3, Y6, Y3

// func affineAVX2(dst, src *float32, n int, a, b float32)
// dst[i] = exp(a·src[i] + b) for i < n; n > 0 is a multiple of 8.
TEXT ·affineAVX2(SB), NOSPLIT, $0-32
	AFFINE_SETUP

loop:
	EXP8
	VMOVUPS Y3, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JNZ loop
	VZEROUPPER
	RET

// func affineSumAVX2(dst, src *float32, n int, a, b float32) (sum float32)
// affineAVX2 that also returns the sum of the values written (8 lanes,
// then across them).
TEXT ·affineSumAVX2(SB), NOSPLIT, $0-36
	AFFINE_SETUP
	VXORPS Y7, Y7, Y7

sumloop:
	EXP8
	VMOVUPS Y3, (DI)
	VADDPS Y3, Y7, Y7
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JNZ sumloop
	VEXTRACTF128 $1, Y7, X0
	VADDPS X0, X7, X7
	VMOVHLPS X7, X7, X0
	VADDPS X0, X7, X7
	VMOVSHDUP X7, X0
	VADDSS X0, X7, X7
	VMOVSS X7, ret+32(FP)
	VZEROUPPER
	RET

// func scaleAVX2(dst *float32, n int, c float32)
// dst[i] *= c for i < n; n > 0 is a multiple of 8.
TEXT ·scaleAVX2(SB), NOSPLIT, $0-20
	MOVQ dst+0(FP), DI
	MOVQ n+8(FP), CX
	VBROADCASTSS c+16(FP), Y1

scaleloop:
	VMULPS (DI), Y1, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, DI
	SUBQ $8, CX
	JNZ scaleloop
	VZEROUPPER
	RET

// func maxAVX2(src *float32, n int) (m float32)
// The largest of src[:n]; n > 0 is a multiple of 8.
TEXT ·maxAVX2(SB), NOSPLIT, $0-20
	MOVQ src+0(FP), SI
	MOVQ n+8(FP), CX
	VMOVUPS (SI), Y0

maxloop:
	VMAXPS (SI), Y0, Y0
	ADDQ $32, SI
	SUBQ $8, CX
	JNZ maxloop
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VMOVHLPS X0, X0, X1
	VMAXPS X1, X0, X0
	VMOVSHDUP X0, X1
	VMAXSS X1, X0, X0
	VMOVSS X0, ret+16(FP)
	VZEROUPPER
	RET
