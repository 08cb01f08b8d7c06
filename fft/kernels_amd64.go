//go:build amd64 && !purego

package fft

// useAsm selects the AVX2+FMA stages; tests switch it off to check the
// portable kernels too.
var (
	hasAsm = hasAVX2FMA()
	useAsm = hasAsm
)

func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
func xgetbv0() (eax uint32)

// hasAVX2FMA reports whether the CPU has AVX2 and FMA and the OS saves YMM
// registers.
func hasAVX2FMA() bool {
	maxID, _, _, _ := cpuid(0, 0)
	if maxID < 7 {
		return false
	}
	_, _, c1, _ := cpuid(1, 0)
	const fma, osxsave, avx = 1 << 12, 1 << 27, 1 << 28
	if c1&(fma|osxsave|avx) != fma|osxsave|avx {
		return false
	}
	if xgetbv0()&6 != 6 { // XMM and YMM state enabled
		return false
	}
	_, b7, _, _ := cpuid(7, 0)
	return b7&(1<<5) != 0
}

//go:noescape
func stage2AVX(y, x *complex64, m, sv int, tw *complex64)

//go:noescape
func stage3AVX(y, x *complex64, m, sv int, tw *complex64)

//go:noescape
func stage4AVX(y, x *complex64, m, sv int, tw *complex64)

//go:noescape
func stage5AVX(y, x *complex64, m, sv int, tw *complex64)

//go:noescape
func genSumDiffAVX(s, d, out0, aj, an *complex64, n int)

//go:noescape
func genOutAVX(yk, yn, a0, sd *complex64, cs *float32, h, L int, wk, wn *complex64)

// asmStage runs a stage with the assembly kernels when it can, after the
// bounds checks the assembly does not do, and reports whether it did.
func asmStage(y, x []complex64, st *stage, sv int, tmp []complex64) bool {
	r, m := st.r, st.m
	if !useAsm || sv%4 != 0 || len(x) < r*m*sv || len(y) < r*m*sv || len(st.tw) < m*(r-1) {
		return false
	}
	var tw *complex64
	if m > 1 {
		tw = &st.tw[0]
	}
	switch r {
	case 2:
		stage2AVX(&y[0], &x[0], m, sv, tw)
	case 3:
		stage3AVX(&y[0], &x[0], m, sv, tw)
	case 4:
		stage4AVX(&y[0], &x[0], m, sv, tw)
	case 5:
		stage5AVX(&y[0], &x[0], m, sv, tw)
	default:
		h := (r - 1) / 2
		if len(tmp) < 2*h*min(genChunk, sv) || len(st.cs) < 2*h*h {
			return false
		}
		asmGeneric(y, x, st, sv, tmp)
	}
	return true
}

// asmGeneric is radixGeneric with the lane loops in assembly.
func asmGeneric(y, x []complex64, st *stage, sv int, tmp []complex64) {
	r, m := st.r, st.m
	h := (r - 1) / 2
	q := m * sv
	for g := 0; g < m; g++ {
		tw := st.tw[g*(r-1) : (g+1)*(r-1)]
		for t0 := 0; t0 < sv; t0 += genChunk {
			L := min(genChunk, sv-t0)
			base := g*sv + t0
			a0 := x[base : base+L]
			out0 := y[r*g*sv+t0 : r*g*sv+t0+L]
			copy(out0, a0)
			sd := tmp[:2*h*L]
			for j := 1; j <= h; j++ {
				aj := x[base+j*q : base+j*q+L]
				an := x[base+(r-j)*q : base+(r-j)*q+L]
				genSumDiffAVX(&sd[(j-1)*L], &sd[(h+j-1)*L], &out0[0], &aj[0], &an[0], L)
			}
			for k := 1; k <= h; k++ {
				yk := y[(r*g+k)*sv+t0 : (r*g+k)*sv+t0+L]
				yn := y[(r*g+r-k)*sv+t0 : (r*g+r-k)*sv+t0+L]
				var wk, wn *complex64
				if m > 1 {
					wk, wn = &tw[k-1], &tw[r-k-1]
				}
				genOutAVX(&yk[0], &yn[0], &a0[0], &sd[0], &st.cs[2*(k-1)*h], h, L, wk, wn)
			}
		}
	}
}

//go:noescape
func transpose4AVX(dst *complex64, dA, dB, dC int, src *complex64, sA, sB, sC, n, groups int, mask *uint32)

//go:noescape
func scaleRowsAVX(dst *complex64, ds int, src *complex64, ss, rows, n4 int, scale *float32, mask *uint32)

var (
	maskNone = [8]uint32{}
	maskConj = [8]uint32{1: 1 << 31, 3: 1 << 31, 5: 1 << 31, 7: 1 << 31}
)

func maskFor(conj bool) *uint32 {
	if conj {
		return &maskConj[0]
	}
	return &maskNone[0]
}

// transposeAsm does the first n&^3 columns and lanes&^3 lanes of
// transposeIn (out=false) or transposeOut (out=true) and returns how many
// columns it did.
func transposeAsm(dst []complex64, ds int, src []complex64, ss, n, lanes int, conj, out bool) int {
	nb, ng := n/4, lanes/4
	if !useAsm || nb == 0 || ng == 0 {
		return 0
	}
	if out { // dst[i*ds + c] = src[c*ss + i]
		_, _ = dst[(4*ng-1)*ds+4*nb-1], src[(4*nb-1)*ss+4*ng-1]
		transpose4AVX(&dst[0], 8*ds, 32, 32*ds, &src[0], 8*ss, 32*ss, 32, nb, ng, maskFor(conj))
	} else { // dst[c*ds + i] = src[i*ss + c]
		_, _ = dst[(4*nb-1)*ds+4*ng-1], src[(4*ng-1)*ss+4*nb-1]
		transpose4AVX(&dst[0], 8*ds, 32*ds, 32, &src[0], 8*ss, 32, 32*ss, nb, ng, maskFor(conj))
	}
	return 4 * nb
}

// scaleRowsAsm does the first n&^3 columns of scaleRows and returns how many
// it did.
func scaleRowsAsm(dst []complex64, ds int, src []complex64, ss, rows, n int, scale float32, conj bool) int {
	n4 := n / 4
	if !useAsm || n4 == 0 || rows == 0 {
		return 0
	}
	_, _ = dst[(rows-1)*ds+4*n4-1], src[(rows-1)*ss+4*n4-1]
	scaleRowsAVX(&dst[0], ds, &src[0], ss, rows, n4, &scale, maskFor(conj))
	return 4 * n4
}
