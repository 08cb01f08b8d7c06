package mri

import (
	"fmt"
	"math"
)

// Image quality as fastMRI evaluates it: magnitude images, data range =
// max(target), PSNR over the image and SSIM with skimage's defaults.

// Magnitude writes |src| into dst.
func Magnitude(dst []float32, src []complex64) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] = float32(math.Hypot(float64(real(v)), float64(imag(v))))
	}
}

// MaxOf is the largest value of x (fastMRI's data range for the target).
func MaxOf(x []float32) float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = math.Max(m, float64(v))
	}
	return m
}

// PSNR is 10·log10(dataRange²/MSE) as skimage.metrics.peak_signal_noise_ratio;
// +Inf for identical images.
func PSNR(target, pred []float32, dataRange float64) (float64, error) {
	if len(target) != len(pred) || len(target) == 0 {
		return 0, fmt.Errorf("psnr: %d and %d pixels", len(target), len(pred))
	}
	var s float64
	for i, t := range target {
		d := float64(t) - float64(pred[i])
		s += d * d
	}
	return 10 * math.Log10(dataRange*dataRange/(s/float64(len(target)))), nil
}

// SSIM is skimage.metrics.structural_similarity on 2-D images with its
// defaults, as fastMRI calls it: 7×7 uniform window, K1 = 0.01, K2 = 0.03,
// sample covariances (×49/48), scipy's 'reflect' boundary for the local
// means, and the mean of the SSIM map with a 3-pixel border cropped.
func SSIM(target, pred []float32, rows, cols int, dataRange float64) (float64, error) {
	const win = 7
	if rows < win || cols < win {
		return 0, fmt.Errorf("ssim: %d×%d image smaller than the %d×%d window", rows, cols, win, win)
	}
	n := rows * cols
	if len(target) != n || len(pred) != n {
		return 0, fmt.Errorf("ssim: %d and %d pixels for %d×%d", len(target), len(pred), rows, cols)
	}
	x, y := make([]float64, n), make([]float64, n)
	xx, yy, xy := make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range x {
		a, b := float64(target[i]), float64(pred[i])
		x[i], y[i] = a, b
		xx[i], yy[i], xy[i] = a*a, b*b, a*b
	}
	tmp := make([]float64, max(rows, cols))
	for _, im := range [][]float64{x, y, xx, yy, xy} {
		uniformFilter7(im, rows, cols, tmp)
	}
	const np = win * win
	covNorm := float64(np) / float64(np-1)
	c1 := (0.01 * dataRange) * (0.01 * dataRange)
	c2 := (0.03 * dataRange) * (0.03 * dataRange)
	const pad = (win - 1) / 2
	var sum float64
	for r := pad; r < rows-pad; r++ {
		for c := pad; c < cols-pad; c++ {
			i := r*cols + c
			ux, uy := x[i], y[i]
			vx := covNorm * (xx[i] - ux*ux)
			vy := covNorm * (yy[i] - uy*uy)
			vxy := covNorm * (xy[i] - ux*uy)
			a1, a2 := 2*ux*uy+c1, 2*vxy+c2
			b1, b2 := ux*ux+uy*uy+c1, vx+vy+c2
			sum += (a1 * a2) / (b1 * b2)
		}
	}
	return sum / float64((rows-2*pad)*(cols-2*pad)), nil
}

// uniformFilter7 replaces im by its 7×7 moving average with scipy.ndimage's
// default 'reflect' boundary (…c b a | a b c…), separably.
func uniformFilter7(im []float64, rows, cols int, tmp []float64) {
	const h = 3
	reflect := func(i, n int) int {
		// Half-sample symmetric, periodic with 2n.
		i = ((i % (2 * n)) + 2*n) % (2 * n)
		if i >= n {
			i = 2*n - 1 - i
		}
		return i
	}
	for r := 0; r < rows; r++ {
		row := im[r*cols : (r+1)*cols]
		for c := 0; c < cols; c++ {
			var s float64
			for k := -h; k <= h; k++ {
				s += row[reflect(c+k, cols)]
			}
			tmp[c] = s / 7
		}
		copy(row, tmp[:cols])
	}
	for c := 0; c < cols; c++ {
		for r := 0; r < rows; r++ {
			var s float64
			for k := -h; k <= h; k++ {
				s += im[reflect(r+k, rows)*cols+c]
			}
			tmp[r] = s / 7
		}
		for r := 0; r < rows; r++ {
			im[r*cols+c] = tmp[r]
		}
	}
}
