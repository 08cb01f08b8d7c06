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

// AffineSum is Affine that also returns the sum of the k values written
// (accumulated in eight lanes: a different order from a sequential sum).
func AffineSum(dst, src []float32, a, b float32) (k int, sum float32) {
	k = len(dst) &^ 7
	if !Enabled || k == 0 {
		return 0, 0
	}
	src = src[:k]
	return k, affineSumAVX2(&dst[0], &src[0], k, a, b)
}

// Scale multiplies the first k = len(dst) rounded down to a multiple of 8
// values by c and returns k (0 without the kernel).
func Scale(dst []float32, c float32) int {
	k := len(dst) &^ 7
	if !Enabled || k == 0 {
		return 0
	}
	scaleAVX2(&dst[0], k, c)
	return k
}

// Max returns the largest of the first k = len(src) rounded down to a
// multiple of 8 values, and k (0 without the kernel). NaNs are not
// propagated reliably.
func Max(src []float32) (k int, m float32) {
	k = len(src) &^ 7
	if !Enabled || k == 0 {
		return 0, 0
	}
	return k, maxAVX2(&src[0], k)
}
