// Package fft computes the centred orthonormal 2-D discrete Fourier transform
// (fftshift ∘ fft2 ∘ ifftshift with norm "ortho", as fastMRI's fft2c and BART's
// `fft -u`) on batches of complex64 images stored row-major and contiguously.
package fft

import (
	"fmt"
	"math"
	"sync"

	"gonum.org/v1/gonum/dsp/fourier"
)

// Forward writes the centred orthonormal 2-D DFT of every rows×cols image in
// src into dst. len(src) must be a multiple of rows*cols; dst and src may be
// the same slice.
func Forward(dst, src []complex64, rows, cols int) { transform(dst, src, rows, cols, false) }

// Inverse is the adjoint (and inverse) of Forward.
func Inverse(dst, src []complex64, rows, cols int) { transform(dst, src, rows, cols, true) }

// placeholder implementation: gonum complex128 1-D transforms, row then column.
// It is correct for any size; a faster engine replaces it.
var plans sync.Map // int -> *sync.Pool of *fourier.CmplxFFT

func plan(n int) *fourier.CmplxFFT {
	p, _ := plans.LoadOrStore(n, &sync.Pool{New: func() any { return fourier.NewCmplxFFT(n) }})
	return p.(*sync.Pool).Get().(*fourier.CmplxFFT)
}

func release(n int, f *fourier.CmplxFFT) {
	p, _ := plans.Load(n)
	p.(*sync.Pool).Put(f)
}

func transform(dst, src []complex64, rows, cols int, inverse bool) {
	n := rows * cols
	if rows <= 0 || cols <= 0 || len(src)%n != 0 || len(dst) != len(src) {
		panic(fmt.Sprintf("fft: %d values, %d destination values for %d×%d images", len(src), len(dst), rows, cols))
	}
	scale := 1 / math.Sqrt(float64(n))
	fr, fc := plan(rows), plan(cols)
	defer release(rows, fr)
	defer release(cols, fc)
	line := make([]complex128, max(rows, cols))
	out := make([]complex128, max(rows, cols))
	for b := 0; b < len(src); b += n {
		s, d := src[b:b+n], dst[b:b+n]
		copy(d, s)
		for r := 0; r < rows; r++ {
			for c := 0; c < cols; c++ {
				line[(c+(cols+1)/2)%cols] = complex128(d[r*cols+c]) // ifftshift
			}
			one(fc, out[:cols], line[:cols], inverse)
			for c := 0; c < cols; c++ {
				d[r*cols+(c+cols/2)%cols] = complex64(out[c]) // fftshift
			}
		}
		for c := 0; c < cols; c++ {
			for r := 0; r < rows; r++ {
				line[(r+(rows+1)/2)%rows] = complex128(d[r*cols+c])
			}
			one(fr, out[:rows], line[:rows], inverse)
			for r := 0; r < rows; r++ {
				d[((r+rows/2)%rows)*cols+c] = complex64(out[r] * complex(scale, 0))
			}
		}
	}
}

func one(f *fourier.CmplxFFT, dst, src []complex128, inverse bool) {
	if inverse {
		f.Sequence(dst, src)
	} else {
		f.Coefficients(dst, src)
	}
}
