package nn

import "github.com/kspaced/kspaced/priors/nn/internal/vexp"

// expAffine sets dst[i] = exp32(a·src[i] + b) (a = 1, b = −max for softmax;
// a = −1, b = 0 for the sigmoid), eight at a time where the CPU allows:
// softmax and SiLU spent most of their time in exp32 (a 320² image gives
// attention rows of 1600 values).
func expAffine(dst, src []float32, a, b float32) {
	src = src[:len(dst)]
	for i := vexp.Affine(dst, src, a, b); i < len(dst); i++ {
		dst[i] = exp32(a*src[i] + b)
	}
}
