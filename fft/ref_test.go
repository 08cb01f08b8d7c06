package fft_test

import (
	"math"
	"math/cmplx"
	"math/rand/v2"
)

// naive2 is the reference: the centred orthonormal 2-D DFT of each rows×cols
// image, computed in float64 straight from the definition, one dimension at a
// time (O(N·(rows+cols)), so sizes up to 368×640 stay quick), with the shifts
// done as explicit numpy-style rolls.
func naive2(src []complex64, rows, cols int, inverse bool) []complex128 {
	n := rows * cols
	out := make([]complex128, len(src))
	img := make([]complex128, n)
	tmp := make([]complex128, n)
	for b := 0; b*n < len(src); b++ {
		for i := range img {
			img[i] = complex128(src[b*n+i])
		}
		ifftshift2(tmp, img, rows, cols)
		// rows of length cols
		for r := 0; r < rows; r++ {
			dft1(img[r*cols:(r+1)*cols], tmp[r*cols:(r+1)*cols], 1, inverse)
		}
		// columns of length rows
		for c := 0; c < cols; c++ {
			dft1(tmp[c:], img[c:], cols, inverse)
		}
		fftshift2(out[b*n:(b+1)*n], tmp, rows, cols)
		s := 1 / math.Sqrt(float64(n))
		for i := b * n; i < (b+1)*n; i++ {
			out[i] *= complex(s, 0)
		}
	}
	return out
}

// dft1 computes dst[k*st] = Σ_j src[j*st] exp(∓2πi jk/n) for the n = len/st
// values at stride st.
func dft1(dst, src []complex128, st int, inverse bool) {
	n := (len(src) + st - 1) / st
	sign := -1.0
	if inverse {
		sign = 1
	}
	tw := make([]complex128, n)
	for k := range tw {
		tw[k] = cmplx.Rect(1, sign*2*math.Pi*float64(k)/float64(n))
	}
	for k := 0; k < n; k++ {
		var acc complex128
		for j := 0; j < n; j++ {
			acc += src[j*st] * tw[(j*k)%n]
		}
		dst[k*st] = acc
	}
}

// roll2 shifts an image by (dr, dc) with wrap-around, as numpy.roll.
func roll2(dst, src []complex128, rows, cols, dr, dc int) {
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			dst[((r+dr)%rows)*cols+(c+dc)%cols] = src[r*cols+c]
		}
	}
}

// numpy: fftshift rolls by n//2, ifftshift by -(n//2).
func fftshift2(dst, src []complex128, rows, cols int) { roll2(dst, src, rows, cols, rows/2, cols/2) }
func ifftshift2(dst, src []complex128, rows, cols int) {
	roll2(dst, src, rows, cols, rows-rows/2, cols-cols/2)
}

func random(n int, seed uint64) []complex64 {
	rng := rand.New(rand.NewPCG(seed, 1))
	x := make([]complex64, n)
	for i := range x {
		x[i] = complex(float32(rng.NormFloat64()), float32(rng.NormFloat64()))
	}
	return x
}

// relErr is ‖got − want‖ / ‖want‖ in float64.
func relErr(got []complex64, want []complex128) float64 {
	var num, den float64
	for i, w := range want {
		d := complex128(got[i]) - w
		num += real(d)*real(d) + imag(d)*imag(d)
		den += real(w)*real(w) + imag(w)*imag(w)
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

func norm(x []complex64) float64 {
	var s float64
	for _, v := range x {
		s += float64(real(v))*float64(real(v)) + float64(imag(v))*float64(imag(v))
	}
	return math.Sqrt(s)
}

func widen(x []complex64) []complex128 {
	y := make([]complex128, len(x))
	for i, v := range x {
		y[i] = complex128(v)
	}
	return y
}
