package nn

import (
	"math"

	"github.com/kspaced/kspaced/priors/nn/internal/vexp"
)

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

// softmaxRow sets y = softmax(x), eight values at a time where the CPU
// allows (attention rows are 1600 long at 320²).
func softmaxRow(y, x []float32) {
	k, m := vexp.Max(x)
	if k == 0 {
		m = float32(math.Inf(-1))
	}
	for _, v := range x[k:] {
		m = max(m, v)
	}
	k, s := vexp.AffineSum(y, x, 1, -m)
	for i := k; i < len(y); i++ {
		e := exp32(x[i] - m)
		y[i] = e
		s += e
	}
	inv := 1 / s
	for i := vexp.Scale(y, inv); i < len(y); i++ {
		y[i] *= inv
	}
}
