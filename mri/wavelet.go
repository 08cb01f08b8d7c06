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
	h, g       []float64
	levels     [][2]int // size of the band each level transforms
	line, out  []complex128
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
	g := make([]float64, len(h))
	for j := range g {
		g[j] = h[len(h)-1-j]
		if j%2 == 1 {
			g[j] = -g[j]
		}
	}
	w := &Wavelet{rows: rows, cols: cols, h: h, g: g}
	r, c := rows, cols
	for (maxLevels <= 0 || len(w.levels) < maxLevels) && r >= MinSize && c >= MinSize {
		w.levels = append(w.levels, [2]int{r, c})
		r, c = (r+1)/2, (c+1)/2
	}
	m := max(rows, cols)
	w.line, w.out = make([]complex128, m), make([]complex128, m)
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
// (inverse: columns then rows).
func (w *Wavelet) level(x []complex64, r, c int, inverse bool) {
	alongRows := func() {
		for i := 0; i < r; i++ {
			row := x[i*w.cols : i*w.cols+c]
			for j, v := range row {
				w.line[j] = complex128(v)
			}
			w.filter(w.out[:c], w.line[:c], inverse)
			for j := range row {
				row[j] = complex64(w.out[j])
			}
		}
	}
	alongCols := func() {
		for j := 0; j < c; j++ {
			for i := 0; i < r; i++ {
				w.line[i] = complex128(x[i*w.cols+j])
			}
			w.filter(w.out[:r], w.line[:r], inverse)
			for i := 0; i < r; i++ {
				x[i*w.cols+j] = complex64(w.out[i])
			}
		}
	}
	if inverse {
		alongCols()
		alongRows()
	} else {
		alongRows()
		alongCols()
	}
}

// filter is one 1-D level on a line of length n: forward gives
// [lowpass (n/2) | odd sample if any | highpass (n/2)], inverse undoes it.
func (w *Wavelet) filter(out, in []complex128, inverse bool) {
	n := len(in)
	half := n / 2
	even := 2 * half
	coarse := n - half // lowpass plus the odd sample
	if !inverse {
		for k := 0; k < half; k++ {
			var a, d complex128
			for j, hj := range w.h {
				v := in[(2*k+j)%even]
				a += complex(hj, 0) * v
				d += complex(w.g[j], 0) * v
			}
			out[k] = a
			out[coarse+k] = d
		}
		if n%2 == 1 {
			out[half] = in[n-1]
		}
		return
	}
	clear(out[:even])
	for k := 0; k < half; k++ {
		a, d := in[k], in[coarse+k]
		for j, hj := range w.h {
			out[(2*k+j)%even] += complex(hj, 0)*a + complex(w.g[j], 0)*d
		}
	}
	if n%2 == 1 {
		out[n-1] = in[half]
	}
}
