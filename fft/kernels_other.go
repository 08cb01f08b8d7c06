//go:build !amd64 || purego

package fft

// useAsm is always false without the amd64 assembly kernels.
var useAsm, hasAsm = false, false

func asmStage(y, x []complex64, st *stage, sv int, tmp []complex64) bool { return false }

func transposeAsm(dst []complex64, ds int, src []complex64, ss, n, lanes int, conj, out bool) int {
	return 0
}

func scaleRowsAsm(dst []complex64, ds int, src []complex64, ss, rows, n int, scale float32, conj bool) int {
	return 0
}
