//go:build amd64 && !purego

#include "textflag.h"

// AVX2+FMA Stockham stages over interleaved complex64, 4 values per YMM
// register. Layout and index conventions as in kernels.go: the j-th input of
// butterfly (g, t) is x[(g + j*m)*sv + t], its k-th output goes to
// y[(r*g + k)*sv + t], times twiddle tw[g*(r-1) + k-1] unless tw is nil (then
// m must be 1). sv is a multiple of 4. Callers check all lengths.

#define VEC8(name, bits) \
	DATA name+0(SB)/4, bits; DATA name+4(SB)/4, bits; DATA name+8(SB)/4, bits; DATA name+12(SB)/4, bits; \
	DATA name+16(SB)/4, bits; DATA name+20(SB)/4, bits; DATA name+24(SB)/4, bits; DATA name+28(SB)/4, bits; \
	GLOBL name(SB), RODATA|NOPTR, $32

VEC8(signv<>, $0x80000000)
VEC8(c51v<>, $0x3e9e377a)
VEC8(c52v<>, $0xbf4f1bbd)
VEC8(s51v<>, $0x3f737871)
VEC8(s52v<>, $0x3f167918)
VEC8(sin60v<>, $0x3f5db3d7)
VEC8(halfv<>, $0x3f000000)

// T = Z · (WR + i·WI) for 4 complex values: (zr·wr − zi·wi, zi·wr + zr·wi).
#define CMUL(Z, WR, WI, T) \
	VPERMILPS $0xB1, Z, T; \
	VMULPS WI, T, T; \
	VFMADDSUB231PS WR, Z, T

// From R and I: B = R − i·I into BK, R + i·I into BN. Clobbers I.
#define PAIR(R, I, BK, BN) \
	VPERMILPS $0xB1, I, I; \
	VADDSUBPS I, R, BN; \
	VXORPS signv<>(SB), I, I; \
	VADDSUBPS I, R, BK

// func stage2AVX(y, x *complex64, m, sv int, tw *complex64)
TEXT ·stage2AVX(SB), NOSPLIT, $0-40
	MOVQ y+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ m+16(FP), CX
	MOVQ sv+24(FP), DX
	MOVQ tw+32(FP), R8
	SHLQ $3, DX
	MOVQ CX, R9
	IMULQ DX, R9 // q: bytes between a butterfly's inputs
	TESTQ R8, R8
	JZ   s2plain

s2group:
	VBROADCASTSS 0(R8), Y8
	VBROADCASTSS 4(R8), Y9
	LEAQ (SI)(DX*1), R12 // end of this group's input run

s2loop:
	VMOVUPS (SI), Y0
	VMOVUPS (SI)(R9*1), Y1
	VADDPS  Y1, Y0, Y2
	VSUBPS  Y1, Y0, Y3
	VMOVUPS Y2, (DI)
	CMUL(Y3, Y8, Y9, Y4)
	VMOVUPS Y4, (DI)(DX*1)
	ADDQ    $32, SI
	ADDQ    $32, DI
	CMPQ    SI, R12
	JLT     s2loop
	ADDQ    DX, DI
	ADDQ    $8, R8
	DECQ    CX
	JNZ     s2group
	VZEROUPPER
	RET

s2plain:
	LEAQ (SI)(DX*1), R12

s2ploop:
	VMOVUPS (SI), Y0
	VMOVUPS (SI)(R9*1), Y1
	VADDPS  Y1, Y0, Y2
	VSUBPS  Y1, Y0, Y3
	VMOVUPS Y2, (DI)
	VMOVUPS Y3, (DI)(DX*1)
	ADDQ    $32, SI
	ADDQ    $32, DI
	CMPQ    SI, R12
	JLT     s2ploop
	VZEROUPPER
	RET

// Radix-3 butterfly from (SI), (SI)(R9*1), (SI)(R9*2): b0 in Y0, b1 in Y1,
// b2 in Y2.
#define BFLY3 \
	VMOVUPS (SI), Y0; \
	VMOVUPS (SI)(R9*1), Y1; \
	VMOVUPS (SI)(R9*2), Y2; \
	VADDPS  Y2, Y1, Y3; \
	VSUBPS  Y2, Y1, Y4; \
	VMULPS  sin60v<>(SB), Y4, Y4; \
	VMOVAPS Y0, Y5; \
	VFNMADD231PS halfv<>(SB), Y3, Y5; \
	VADDPS  Y3, Y0, Y0; \
	PAIR(Y5, Y4, Y1, Y2)

// func stage3AVX(y, x *complex64, m, sv int, tw *complex64)
TEXT ·stage3AVX(SB), NOSPLIT, $0-40
	MOVQ y+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ m+16(FP), CX
	MOVQ sv+24(FP), DX
	MOVQ tw+32(FP), R8
	SHLQ $3, DX
	MOVQ CX, R9
	IMULQ DX, R9
	LEAQ (DX)(DX*1), R11 // 2·sv bytes
	TESTQ R8, R8
	JZ   s3plain

s3group:
	VBROADCASTSS 0(R8), Y8
	VBROADCASTSS 4(R8), Y9
	VBROADCASTSS 8(R8), Y10
	VBROADCASTSS 12(R8), Y11
	LEAQ (SI)(DX*1), R12

s3loop:
	BFLY3
	VMOVUPS Y0, (DI)
	CMUL(Y1, Y8, Y9, Y6)
	VMOVUPS Y6, (DI)(DX*1)
	CMUL(Y2, Y10, Y11, Y7)
	VMOVUPS Y7, (DI)(DX*2)
	ADDQ    $32, SI
	ADDQ    $32, DI
	CMPQ    SI, R12
	JLT     s3loop
	ADDQ    R11, DI
	ADDQ    $16, R8
	DECQ    CX
	JNZ     s3group
	VZEROUPPER
	RET

s3plain:
	LEAQ (SI)(DX*1), R12

s3ploop:
	BFLY3
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, (DI)(DX*1)
	VMOVUPS Y2, (DI)(DX*2)
	ADDQ    $32, SI
	ADDQ    $32, DI
	CMPQ    SI, R12
	JLT     s3ploop
	VZEROUPPER
	RET

// Radix-4 butterfly from (SI), (SI)(R9*1), (SI)(R9*2), (R10): b0..b3 in
// Y0..Y3.
#define BFLY4 \
	VMOVUPS (SI), Y0; \
	VMOVUPS (SI)(R9*1), Y1; \
	VMOVUPS (SI)(R9*2), Y2; \
	VMOVUPS (R10), Y3; \
	VADDPS  Y2, Y0, Y4; \
	VSUBPS  Y2, Y0, Y5; \
	VADDPS  Y3, Y1, Y6; \
	VSUBPS  Y3, Y1, Y7; \
	VADDPS  Y6, Y4, Y0; \
	VSUBPS  Y6, Y4, Y2; \
	PAIR(Y5, Y7, Y1, Y3)

// func stage4AVX(y, x *complex64, m, sv int, tw *complex64)
TEXT ·stage4AVX(SB), NOSPLIT, $0-40
	MOVQ y+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ m+16(FP), CX
	MOVQ sv+24(FP), DX
	MOVQ tw+32(FP), R8
	SHLQ $3, DX
	MOVQ CX, R9
	IMULQ DX, R9
	LEAQ (R9)(R9*2), R10
	ADDQ SI, R10             // x3
	LEAQ (DX)(DX*2), R11     // 3·sv bytes
	LEAQ (DI)(R11*1), R13    // y3
	TESTQ R8, R8
	JZ   s4plain

s4group:
	VBROADCASTSS 0(R8), Y8
	VBROADCASTSS 4(R8), Y9
	VBROADCASTSS 8(R8), Y10
	VBROADCASTSS 12(R8), Y11
	VBROADCASTSS 16(R8), Y12
	VBROADCASTSS 20(R8), Y13
	LEAQ (SI)(DX*1), R12

s4loop:
	BFLY4
	VMOVUPS Y0, (DI)
	CMUL(Y1, Y8, Y9, Y4)
	VMOVUPS Y4, (DI)(DX*1)
	CMUL(Y2, Y10, Y11, Y5)
	VMOVUPS Y5, (DI)(DX*2)
	CMUL(Y3, Y12, Y13, Y6)
	VMOVUPS Y6, (R13)
	ADDQ    $32, SI
	ADDQ    $32, R10
	ADDQ    $32, DI
	ADDQ    $32, R13
	CMPQ    SI, R12
	JLT     s4loop
	ADDQ    R11, DI
	ADDQ    R11, R13
	ADDQ    $24, R8
	DECQ    CX
	JNZ     s4group
	VZEROUPPER
	RET

s4plain:
	LEAQ (SI)(DX*1), R12

s4ploop:
	BFLY4
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, (DI)(DX*1)
	VMOVUPS Y2, (DI)(DX*2)
	VMOVUPS Y3, (R13)
	ADDQ    $32, SI
	ADDQ    $32, R10
	ADDQ    $32, DI
	ADDQ    $32, R13
	CMPQ    SI, R12
	JLT     s4ploop
	VZEROUPPER
	RET

// Radix-5 butterfly from (SI), (SI)(R9*1), (SI)(R9*2), (R10), (SI)(R9*4):
// stores b0 to (DI) and leaves b1 in Y7, b4 in Y6, b2 in Y5, b3 in Y4.
#define BFLY5 \
	VMOVUPS (SI), Y0; \
	VMOVUPS (SI)(R9*1), Y1; \
	VMOVUPS (SI)(R9*4), Y4; \
	VADDPS  Y4, Y1, Y5; \
	VSUBPS  Y4, Y1, Y1; \
	VMOVUPS (SI)(R9*2), Y2; \
	VMOVUPS (R10), Y3; \
	VADDPS  Y3, Y2, Y4; \
	VSUBPS  Y3, Y2, Y2; \
	VADDPS  Y5, Y0, Y3; \
	VADDPS  Y4, Y3, Y3; \
	VMOVUPS Y3, (DI); \
	VMOVAPS Y0, Y3; \
	VFMADD231PS c51v<>(SB), Y5, Y3; \
	VFMADD231PS c52v<>(SB), Y4, Y3; \
	VFMADD231PS c52v<>(SB), Y5, Y0; \
	VFMADD231PS c51v<>(SB), Y4, Y0; \
	VMULPS  s51v<>(SB), Y1, Y4; \
	VFMADD231PS s52v<>(SB), Y2, Y4; \
	VMULPS  s52v<>(SB), Y1, Y5; \
	VFNMADD231PS s51v<>(SB), Y2, Y5; \
	PAIR(Y3, Y4, Y7, Y6); \
	VMOVAPS Y5, Y1; \
	PAIR(Y0, Y1, Y5, Y4)

// func stage5AVX(y, x *complex64, m, sv int, tw *complex64)
TEXT ·stage5AVX(SB), NOSPLIT, $0-40
	MOVQ y+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ m+16(FP), CX
	MOVQ sv+24(FP), DX
	MOVQ tw+32(FP), R8
	SHLQ $3, DX
	MOVQ CX, R9
	IMULQ DX, R9
	LEAQ (R9)(R9*2), R10
	ADDQ SI, R10             // x3
	LEAQ (DX)(DX*2), R11
	LEAQ (DI)(R11*1), R13    // y3
	LEAQ (DX*4), R11         // 4·sv bytes
	TESTQ R8, R8
	JZ   s5plain

s5group:
	VBROADCASTSS 0(R8), Y8
	VBROADCASTSS 4(R8), Y9
	VBROADCASTSS 8(R8), Y10
	VBROADCASTSS 12(R8), Y11
	VBROADCASTSS 16(R8), Y12
	VBROADCASTSS 20(R8), Y13
	VBROADCASTSS 24(R8), Y14
	VBROADCASTSS 28(R8), Y15
	LEAQ (SI)(DX*1), R12

s5loop:
	BFLY5
	CMUL(Y7, Y8, Y9, Y0)
	VMOVUPS Y0, (DI)(DX*1)
	CMUL(Y5, Y10, Y11, Y1)
	VMOVUPS Y1, (DI)(DX*2)
	CMUL(Y4, Y12, Y13, Y2)
	VMOVUPS Y2, (R13)
	CMUL(Y6, Y14, Y15, Y3)
	VMOVUPS Y3, (DI)(DX*4)
	ADDQ    $32, SI
	ADDQ    $32, R10
	ADDQ    $32, DI
	ADDQ    $32, R13
	CMPQ    SI, R12
	JLT     s5loop
	ADDQ    R11, DI
	ADDQ    R11, R13
	ADDQ    $32, R8
	DECQ    CX
	JNZ     s5group
	VZEROUPPER
	RET

s5plain:
	LEAQ (SI)(DX*1), R12

s5ploop:
	BFLY5
	VMOVUPS Y7, (DI)(DX*1)
	VMOVUPS Y5, (DI)(DX*2)
	VMOVUPS Y4, (R13)
	VMOVUPS Y6, (DI)(DX*4)
	ADDQ    $32, SI
	ADDQ    $32, R10
	ADDQ    $32, DI
	ADDQ    $32, R13
	CMPQ    SI, R12
	JLT     s5ploop
	VZEROUPPER
	RET

// func genSumDiffAVX(s, d, out0, aj, an *complex64, n int)
// s = aj + an, d = aj − an, out0 += s over n values (n a multiple of 4).
TEXT ·genSumDiffAVX(SB), NOSPLIT, $0-48
	MOVQ s+0(FP), DI
	MOVQ d+8(FP), BX
	MOVQ out0+16(FP), R8
	MOVQ aj+24(FP), SI
	MOVQ an+32(FP), R9
	MOVQ n+40(FP), CX
	SHLQ $3, CX
	XORQ AX, AX

sdloop:
	VMOVUPS (SI)(AX*1), Y0
	VMOVUPS (R9)(AX*1), Y1
	VADDPS  Y1, Y0, Y2
	VSUBPS  Y1, Y0, Y3
	VMOVUPS Y2, (DI)(AX*1)
	VMOVUPS Y3, (BX)(AX*1)
	VADDPS  (R8)(AX*1), Y2, Y2
	VMOVUPS Y2, (R8)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, CX
	JLT     sdloop
	VZEROUPPER
	RET

// func genOutAVX(yk, yn, a0, sd *complex64, cs *float32, h, L int, wk, wn *complex64)
// For one k of a generic odd radix: R = a0 + Σ_j cos_jk·S_j, I = Σ_j sin_jk·D_j
// (S_j at sd[(j-1)L], D_j at sd[(h+j-1)L], cos/sin pairs at cs[2(j-1)]), then
// yk = (R − i·I)·wk, yn = (R + i·I)·wn, the twiddles skipped when wk is nil.
// L is a multiple of 4; 16 values at a time keep 8 accumulators in flight.
TEXT ·genOutAVX(SB), NOSPLIT, $0-72
	MOVQ yk+0(FP), DI
	MOVQ yn+8(FP), BX
	MOVQ a0+16(FP), SI
	MOVQ sd+24(FP), R8
	MOVQ cs+32(FP), R9
	MOVQ h+40(FP), CX
	MOVQ L+48(FP), DX
	MOVQ wk+56(FP), R10
	MOVQ wn+64(FP), R11
	SHLQ $3, DX          // bytes between S_j and S_{j+1}
	MOVQ CX, R12
	IMULQ DX, R12        // bytes from S_j to D_j
	XORQ R14, R14        // R14 = 1 when twiddles apply
	TESTQ R10, R10
	JZ   gnotw
	VBROADCASTSS 0(R10), Y12
	VBROADCASTSS 4(R10), Y13
	VBROADCASTSS 0(R11), Y14
	VBROADCASTSS 4(R11), Y15
	MOVQ $1, R14

gnotw:
	LEAQ (R9)(CX*8), R10 // end of the cos/sin pairs
	XORQ AX, AX          // byte offset of the current values
	MOVQ DX, R11
	ANDQ $-128, R11      // bytes done 16 at a time

g16:
	CMPQ AX, R11
	JGE  g4start
	VMOVUPS (SI)(AX*1), Y0
	VMOVUPS 32(SI)(AX*1), Y1
	VMOVUPS 64(SI)(AX*1), Y2
	VMOVUPS 96(SI)(AX*1), Y3
	VXORPS  Y4, Y4, Y4
	VXORPS  Y5, Y5, Y5
	VXORPS  Y6, Y6, Y6
	VXORPS  Y7, Y7, Y7
	LEAQ    (R8)(AX*1), R13
	MOVQ    R9, CX

g16j:
	VBROADCASTSS 0(CX), Y8
	VBROADCASTSS 4(CX), Y9
	VFMADD231PS (R13), Y8, Y0
	VFMADD231PS 32(R13), Y8, Y1
	VFMADD231PS 64(R13), Y8, Y2
	VFMADD231PS 96(R13), Y8, Y3
	VFMADD231PS (R13)(R12*1), Y9, Y4
	VFMADD231PS 32(R13)(R12*1), Y9, Y5
	VFMADD231PS 64(R13)(R12*1), Y9, Y6
	VFMADD231PS 96(R13)(R12*1), Y9, Y7
	ADDQ DX, R13
	ADDQ $8, CX
	CMPQ CX, R10
	JLT  g16j

	PAIR(Y0, Y4, Y8, Y9)
	PAIR(Y1, Y5, Y10, Y11)
	TESTQ R14, R14
	JZ   g16a
	CMUL(Y8, Y12, Y13, Y0)
	CMUL(Y9, Y14, Y15, Y4)
	CMUL(Y10, Y12, Y13, Y1)
	CMUL(Y11, Y14, Y15, Y5)
	VMOVUPS Y0, (DI)(AX*1)
	VMOVUPS Y4, (BX)(AX*1)
	VMOVUPS Y1, 32(DI)(AX*1)
	VMOVUPS Y5, 32(BX)(AX*1)
	JMP  g16b

g16a:
	VMOVUPS Y8, (DI)(AX*1)
	VMOVUPS Y9, (BX)(AX*1)
	VMOVUPS Y10, 32(DI)(AX*1)
	VMOVUPS Y11, 32(BX)(AX*1)

g16b:
	PAIR(Y2, Y6, Y8, Y9)
	PAIR(Y3, Y7, Y10, Y11)
	TESTQ R14, R14
	JZ   g16c
	CMUL(Y8, Y12, Y13, Y0)
	CMUL(Y9, Y14, Y15, Y4)
	CMUL(Y10, Y12, Y13, Y1)
	CMUL(Y11, Y14, Y15, Y5)
	VMOVUPS Y0, 64(DI)(AX*1)
	VMOVUPS Y4, 64(BX)(AX*1)
	VMOVUPS Y1, 96(DI)(AX*1)
	VMOVUPS Y5, 96(BX)(AX*1)
	ADDQ $128, AX
	JMP  g16

g16c:
	VMOVUPS Y8, 64(DI)(AX*1)
	VMOVUPS Y9, 64(BX)(AX*1)
	VMOVUPS Y10, 96(DI)(AX*1)
	VMOVUPS Y11, 96(BX)(AX*1)
	ADDQ $128, AX
	JMP  g16

g4start:
	CMPQ AX, DX
	JGE  gdone
	VMOVUPS (SI)(AX*1), Y0
	VXORPS  Y4, Y4, Y4
	LEAQ    (R8)(AX*1), R13
	MOVQ    R9, CX

g4j:
	VBROADCASTSS 0(CX), Y8
	VBROADCASTSS 4(CX), Y9
	VFMADD231PS (R13), Y8, Y0
	VFMADD231PS (R13)(R12*1), Y9, Y4
	ADDQ DX, R13
	ADDQ $8, CX
	CMPQ CX, R10
	JLT  g4j

	PAIR(Y0, Y4, Y8, Y9)
	TESTQ R14, R14
	JZ   g4a
	CMUL(Y8, Y12, Y13, Y0)
	CMUL(Y9, Y14, Y15, Y4)
	VMOVUPS Y0, (DI)(AX*1)
	VMOVUPS Y4, (BX)(AX*1)
	ADDQ $32, AX
	JMP  g4start

g4a:
	VMOVUPS Y8, (DI)(AX*1)
	VMOVUPS Y9, (BX)(AX*1)
	ADDQ $32, AX
	JMP  g4start

gdone:
	VZEROUPPER
	RET

// func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL eaxArg+0(FP), AX
	MOVL ecxArg+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET

// func xgetbv0() (eax uint32)
TEXT ·xgetbv0(SB), NOSPLIT, $0-4
	MOVL $0, CX
	XGETBV
	MOVL AX, eax+0(FP)
	RET

// func transpose4AVX(dst *complex64, dA, dB, dC int, src *complex64, sA, sB, sC, n, groups int, mask *uint32)
// For t < n and g < groups: loads the 4×4 block of complex64 whose rows
// start at src + t·sB + g·sC + i·sA (i < 4, all in bytes), transposes it,
// XORs it with the 32-byte mask (conjugation or nothing) and stores its rows
// at dst + t·dB + g·dC + i·dA.
TEXT ·transpose4AVX(SB), NOSPLIT, $0-88
	MOVQ dst+0(FP), DI
	MOVQ dA+8(FP), R8
	MOVQ dB+16(FP), R9
	MOVQ dC+24(FP), DX
	MOVQ src+32(FP), SI
	MOVQ sA+40(FP), R10
	MOVQ sB+48(FP), R11
	MOVQ sC+56(FP), BX
	MOVQ mask+80(FP), AX
	VMOVUPS (AX), Y15
	LEAQ (R10)(R10*2), R12 // 3·sA
	LEAQ (R8)(R8*2), R13   // 3·dA
	CMPQ n+64(FP), $0
	JLE  tdone
	CMPQ groups+72(FP), $0
	JLE  tdone

touter:
	MOVQ groups+72(FP), AX
	MOVQ SI, R14
	MOVQ DI, CX

tloop:
	VMOVUPS (R14), Y0
	VMOVUPS (R14)(R10*1), Y1
	VMOVUPS (R14)(R10*2), Y2
	VMOVUPS (R14)(R12*1), Y3
	VUNPCKLPD Y1, Y0, Y4
	VUNPCKHPD Y1, Y0, Y5
	VUNPCKLPD Y3, Y2, Y6
	VUNPCKHPD Y3, Y2, Y7
	VPERM2F128 $0x20, Y6, Y4, Y0
	VPERM2F128 $0x20, Y7, Y5, Y1
	VPERM2F128 $0x31, Y6, Y4, Y2
	VPERM2F128 $0x31, Y7, Y5, Y3
	VXORPS  Y15, Y0, Y0
	VXORPS  Y15, Y1, Y1
	VXORPS  Y15, Y2, Y2
	VXORPS  Y15, Y3, Y3
	VMOVUPS Y0, (CX)
	VMOVUPS Y1, (CX)(R8*1)
	VMOVUPS Y2, (CX)(R8*2)
	VMOVUPS Y3, (CX)(R13*1)
	ADDQ BX, R14
	ADDQ DX, CX
	DECQ AX
	JNZ  tloop
	ADDQ R11, SI
	ADDQ R9, DI
	DECQ n+64(FP)
	JNZ  touter

tdone:
	VZEROUPPER
	RET

// func scaleRowsAVX(dst *complex64, ds int, src *complex64, ss, rows, n4 int, scale *float32, mask *uint32)
// For r < rows: dst[r·ds + c] = (src[r·ss + c]·scale) XOR mask for c < 4·n4
// (strides in values).
TEXT ·scaleRowsAVX(SB), NOSPLIT, $0-64
	MOVQ dst+0(FP), DI
	MOVQ ds+8(FP), R8
	MOVQ src+16(FP), SI
	MOVQ ss+24(FP), R9
	MOVQ rows+32(FP), CX
	MOVQ n4+40(FP), DX
	MOVQ scale+48(FP), AX
	VBROADCASTSS (AX), Y14
	MOVQ mask+56(FP), AX
	VMOVUPS (AX), Y15
	SHLQ $3, R8
	SHLQ $3, R9
	SHLQ $5, DX
	TESTQ CX, CX
	JZ   srdone
	TESTQ DX, DX
	JZ   srdone

srrow:
	XORQ AX, AX

srloop:
	VMULPS  (SI)(AX*1), Y14, Y0
	VXORPS  Y15, Y0, Y0
	VMOVUPS Y0, (DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, DX
	JLT     srloop
	ADDQ R8, DI
	ADDQ R9, SI
	DECQ CX
	JNZ  srrow

srdone:
	VZEROUPPER
	RET
