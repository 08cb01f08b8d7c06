package mri

import (
	"fmt"
	"math"
)

// WaveletKind names an orthogonal wavelet filter.
type WaveletKind int

const (
	// Daubechies2 has 4 taps and 2 vanishing moments (db2, "D4"); it is
	// BART's default (dau2).
	Daubechies2 WaveletKind = iota
	Haar
)

func (k WaveletKind) String() string {
	switch k {
	case Daubechies2:
		return "db2"
	case Haar:
		return "haar"
	}
	return fmt.Sprintf("WaveletKind(%d)", int(k))
}

func waveletFilter(k WaveletKind) ([]float64, error) {
	switch k {
	case Haar:
		return []float64{math.Sqrt2 / 2, math.Sqrt2 / 2}, nil
	case Daubechies2:
		s3, d := math.Sqrt(3), 4*math.Sqrt2
		return []float64{(1 + s3) / d, (3 + s3) / d, (3 - s3) / d, (1 - s3) / d}, nil
	}
	return nil, fmt.Errorf("unknown wavelet %d", int(k))
}

// Wavelet is a multi-level separable 2-D orthogonal wavelet transform Ψ of
// rows×cols complex images with periodic extension, in the Mallat layout:
// after all levels the coarse (approximation) band is the top-left
// CoarseRows×CoarseCols block and everything else is detail.
//
// Any size works and Ψ stays exactly orthogonal (ΨᴴΨ = ΨΨᴴ = I): at a level
// where a side has odd length the last sample is left out of the filtering
// and passed on as an extra coarse coefficient. A level is applied while both
// sides of the current coarse band are at least MinSize (16, as BART) and
// fewer than the requested levels are done.
//
// Not safe for concurrent use (line buffers).
type Wavelet struct {
	rows, cols int
	h, g       []float32
	levels     [][2]int    // size of the band each level transforms
	line       []complex64 // one row or column
	band       []complex64 // copy of the band for the column pass
}

// MinSize is the smallest band side a wavelet level is applied to.
const MinSize = 16

// NewWavelet plans the transform; maxLevels ≤ 0 means as many as the size allows.
func NewWavelet(kind WaveletKind, rows, cols, maxLevels int) (*Wavelet, error) {
	h, err := waveletFilter(kind)
	if err != nil {
		return nil, err
	}
	if rows < 1 || rows > MaxDim || cols < 1 || cols > MaxDim {
		return nil, fmt.Errorf("wavelet size %d×%d outside [1, %d]", rows, cols, MaxDim)
	}
	w := &Wavelet{rows: rows, cols: cols, h: make([]float32, len(h)), g: make([]float32, len(h))}
	for j := range h {
		w.h[j] = float32(h[j])
		w.g[j] = float32(h[len(h)-1-j])
		if j%2 == 1 {
			w.g[j] = -w.g[j]
		}
	}
	r, c := rows, cols
	for (maxLevels <= 0 || len(w.levels) < maxLevels) && r >= MinSize && c >= MinSize {
		w.levels = append(w.levels, [2]int{r, c})
		r, c = (r+1)/2, (c+1)/2
	}
	w.line = make([]complex64, max(rows, cols))
	if len(w.levels) > 0 {
		w.band = make([]complex64, rows*cols)
	}
	return w, nil
}

// Levels is the number of levels applied.
func (w *Wavelet) Levels() int { return len(w.levels) }

// Coarse is the size of the approximation band.
func (w *Wavelet) Coarse() (rows, cols int) {
	r, c := w.rows, w.cols
	for range w.levels {
		r, c = (r+1)/2, (c+1)/2
	}
	return r, c
}

// Forward writes Ψ src into dst (which may be src).
func (w *Wavelet) Forward(dst, src []complex64) {
	checkLens("wavelet", dst, src, w.rows*w.cols, w.rows*w.cols)
	copy(dst, src)
	for _, lv := range w.levels {
		w.level(dst, lv[0], lv[1], false)
	}
}

// Inverse writes Ψᴴ src (= Ψ⁻¹ src) into dst (which may be src).
func (w *Wavelet) Inverse(dst, src []complex64) {
	checkLens("wavelet", dst, src, w.rows*w.cols, w.rows*w.cols)
	copy(dst, src)
	for l := len(w.levels) - 1; l >= 0; l-- {
		w.level(dst, w.levels[l][0], w.levels[l][1], true)
	}
}

// level transforms the top-left r×c band of x along rows then columns
// (inverse: columns then rows). Arithmetic is float32: the filters have 2 or
// 4 taps, so rounding stays near float32 epsilon per level.
func (w *Wavelet) level(x []complex64, r, c int, inverse bool) {
	if inverse {
		w.columns(x, r, c, true)
	}
	line := w.line[:c]
	for i := 0; i < r; i++ {
		row := x[i*w.cols : i*w.cols+c]
		copy(line, row)
		w.filter(row, line, inverse)
	}
	if !inverse {
		w.columns(x, r, c, false)
	}
}

// filter is one 1-D level on a line of length n = len(in): forward gives
// [lowpass (n/2) | odd sample if any | highpass (n/2)], inverse undoes it.
// out and in must not overlap.
func (w *Wavelet) filter(out, in []complex64, inverse bool) {
	n := len(in)
	half := n / 2
	even := 2 * half
	coarse := n - half // lowpass plus the odd sample
	taps := len(w.h)
	if !inverse {
		for k := 0; k < half; k++ {
			var ar, ai, dr, di float32
			for j := 0; j < taps; j++ {
				idx := 2*k + j
				if idx >= even {
					idx -= even
					for idx >= even { // bands shorter than the filter
						idx -= even
					}
				}
				v := in[idx]
				ar += w.h[j] * real(v)
				ai += w.h[j] * imag(v)
				dr += w.g[j] * real(v)
				di += w.g[j] * imag(v)
			}
			out[k] = complex(ar, ai)
			out[coarse+k] = complex(dr, di)
		}
		if n%2 == 1 {
			out[half] = in[n-1]
		}
		return
	}
	clear(out[:even])
	for k := 0; k < half; k++ {
		a, d := in[k], in[coarse+k]
		for j := 0; j < taps; j++ {
			idx := (2*k + j) % even
			out[idx] += complex(w.h[j]*real(a)+w.g[j]*real(d), w.h[j]*imag(a)+w.g[j]*imag(d))
		}
	}
	if n%2 == 1 {
		out[n-1] = in[half]
	}
}

// columns is filter applied down every column of the r×c band, done a row
// at a time so every inner loop runs over contiguous memory.
func (w *Wavelet) columns(x []complex64, r, c int, inverse bool) {
	band := w.band[:r*c]
	for i := 0; i < r; i++ {
		copy(band[i*c:(i+1)*c], x[i*w.cols:i*w.cols+c])
	}
	rowOf := func(i int) []complex64 { return x[i*w.cols : i*w.cols+c] }
	half := r / 2
	even := 2 * half
	coarse := r - half
	if !inverse {
		for k := 0; k < half; k++ {
			lo, hi := rowOf(k), rowOf(coarse+k)
			clear(lo)
			clear(hi)
			for j := range w.h {
				src := band[((2*k+j)%even)*c : ((2*k+j)%even+1)*c]
				axpyReal2(lo, hi, w.h[j], w.g[j], src)
			}
		}
		if r%2 == 1 {
			copy(rowOf(half), band[(r-1)*c:r*c])
		}
		return
	}
	for i := 0; i < even; i++ {
		clear(rowOf(i))
	}
	for k := 0; k < half; k++ {
		a, d := band[k*c:(k+1)*c], band[(coarse+k)*c:(coarse+k+1)*c]
		for j := range w.h {
			dst := rowOf((2*k + j) % even)
			for i := range dst {
				dst[i] += complex(w.h[j]*real(a[i])+w.g[j]*real(d[i]), w.h[j]*imag(a[i])+w.g[j]*imag(d[i]))
			}
		}
	}
	if r%2 == 1 {
		copy(rowOf(r-1), band[half*c:(half+1)*c])
	}
}

// axpyReal2 adds h·src to lo and g·src to hi.
func axpyReal2(lo, hi []complex64, h, g float32, src []complex64) {
	src = src[:len(lo)]
	hi = hi[:len(lo)]
	for i, v := range src {
		lo[i] += complex(h*real(v), h*imag(v))
		hi[i] += complex(g*real(v), g*imag(v))
	}
}
