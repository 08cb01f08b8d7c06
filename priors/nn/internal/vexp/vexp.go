// Package vexp is the engine's vectorised exp kernel (Go assembly cannot live
// in priors/nn, a cgo package).
package vexp

// Affine sets dst[i] = exp(a·src[i] + b) for the first k = len(dst) rounded
// down to a multiple of 8 values, eight at a time, with the algorithm and
// accuracy of priors/nn's exp32 (relative error below 3e-7; +Inf above 88,
// 0 below −87), and returns k. It does nothing and returns 0 on a CPU
// without AVX2 and FMA (or with Enabled false); the caller does the rest.
func Affine(dst, src []float32, a, b float32) int {
	k := len(dst) &^ 7
	if !Enabled || k == 0 {
		return 0
	}
	src = src[:k]
	affineAVX2(&dst[0], &src[0], k, a, b)
	return k
}
