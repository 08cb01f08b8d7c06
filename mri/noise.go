package mri

import (
	"fmt"
	"math"
	"math/cmplx"
)

// NoiseCovariance estimates the coils×coils noise covariance
// Σ[i][j] = E[(n_i − μ_i) conj(n_j − μ_j)] from noise-only samples
// ([coil][n], e.g. a noise pre-scan), with the per-coil mean removed (a
// receiver DC offset is not noise) and the unbiased 1/(n−1) normalisation.
func NoiseCovariance(samples []complex64, coils int) ([]complex64, error) {
	if coils < 1 || coils > MaxCoils || len(samples)%coils != 0 {
		return nil, fmt.Errorf("noise covariance: %d samples do not split into %d coils", len(samples), coils)
	}
	n := len(samples) / coils
	if n < 2 {
		return nil, fmt.Errorf("noise covariance: %d samples per coil, need at least 2", n)
	}
	cols := make([][]complex64, coils)
	for c := range cols {
		cols[c] = samples[c*n : (c+1)*n]
	}
	return covariance(cols, n), nil
}

// covariance of per-coil sample vectors, accumulated in float64.
func covariance(x [][]complex64, n int) []complex64 {
	coils := len(x)
	mean := make([]complex128, coils)
	for c, v := range x {
		var s complex128
		for _, a := range v {
			s += complex128(a)
		}
		mean[c] = s / complex(float64(n), 0)
	}
	cov := make([]complex64, coils*coils)
	for i := 0; i < coils; i++ {
		for j := i; j < coils; j++ {
			var sr, si float64
			mi, mj := mean[i], mean[j]
			for k := 0; k < n; k++ {
				a := complex128(x[i][k]) - mi
				b := complex128(x[j][k]) - mj
				// a·conj(b)
				sr += real(a)*real(b) + imag(a)*imag(b)
				si += imag(a)*real(b) - real(a)*imag(b)
			}
			v := complex(sr/float64(n-1), si/float64(n-1))
			cov[i*coils+j] = complex64(v)
			cov[j*coils+i] = complex64(cmplx.Conj(v))
		}
	}
	return cov
}

// NoiseFromCorners estimates the noise covariance of a scan without a noise
// pre-scan, from the sampled k-space in its four corner patches, each
// ceil(frac·rows)×ceil(frac·cols) (frac in (0, 0.5]; 0.1 is a fair default).
//
// Heuristic: image energy falls off fast with spatial frequency, so where the
// outermost phase encodes meet the ends of the (fully sampled) readouts the
// samples are almost pure noise; with the usual 2× readout oversampling the
// readout ends hold no object at all. Residual signal biases the estimate
// upwards (never downwards), so prefer a real noise scan when there is one.
// At least 20 sampled locations per coil (and 64 in all) are required.
func NoiseFromCorners(s *Scan, frac float64) ([]complex64, error) {
	if s == nil || s.Coils < 1 || s.Coils > MaxCoils || s.Rows < 1 || s.Cols < 1 ||
		len(s.KSpace) != s.Coils*s.Rows*s.Cols || len(s.Mask) != s.Rows*s.Cols {
		return nil, fmt.Errorf("noise from corners: inconsistent scan shape")
	}
	if !(frac > 0 && frac <= 0.5) {
		return nil, fmt.Errorf("noise from corners: fraction %v outside (0, 0.5]", frac)
	}
	pr := int(math.Ceil(frac * float64(s.Rows)))
	pc := int(math.Ceil(frac * float64(s.Cols)))
	var idx []int
	for r := 0; r < s.Rows; r++ {
		if r >= pr && r < s.Rows-pr {
			continue
		}
		for c := 0; c < s.Cols; c++ {
			if (c < pc || c >= s.Cols-pc) && s.Mask[r*s.Cols+c] != 0 {
				idx = append(idx, r*s.Cols+c)
			}
		}
	}
	if len(idx) < max(64, 20*s.Coils) {
		return nil, fmt.Errorf("noise from corners: only %d sampled corner locations for %d coils", len(idx), s.Coils)
	}
	n := s.Rows * s.Cols
	x := make([][]complex64, s.Coils)
	for c := range x {
		x[c] = make([]complex64, len(idx))
		for k, i := range idx {
			x[c][k] = s.KSpace[c*n+i]
		}
	}
	return covariance(x, len(idx)), nil
}

// Whitener applies L⁻¹ across coils, where Σ = L Lᴴ is the Cholesky
// factorisation of a noise covariance: whitened noise has covariance I.
// Whitening both the k-space and the coil maps with the same L⁻¹ keeps the
// model consistent (L⁻¹ acts on the coil index only and so commutes with
// the FFT and the mask): y' = L⁻¹y = (M F L⁻¹S) x + L⁻¹n.
type Whitener struct {
	coils int
	linv  []complex128 // lower triangular, row-major
}

// NewWhitener factorises the coils×coils Hermitian positive definite cov.
func NewWhitener(cov []complex64, coils int) (*Whitener, error) {
	if coils < 1 || coils > MaxCoils || len(cov) != coils*coils {
		return nil, fmt.Errorf("whitener: %d covariance values for %d coils", len(cov), coils)
	}
	a := make([]complex128, len(cov))
	for i, v := range cov {
		if !finite(v) {
			return nil, fmt.Errorf("whitener: covariance entry %d is %v", i, v)
		}
		a[i] = complex128(v)
	}
	// Cholesky–Banachiewicz on the lower triangle (Hermitian symmetry
	// assumed; the upper triangle is not read).
	l := make([]complex128, len(a))
	for i := 0; i < coils; i++ {
		for j := 0; j <= i; j++ {
			s := a[i*coils+j]
			for k := 0; k < j; k++ {
				s -= l[i*coils+k] * cmplx.Conj(l[j*coils+k])
			}
			if i == j {
				d := real(s)
				if !(d > 1e-12*math.Max(1, real(a[0]))) {
					return nil, fmt.Errorf("whitener: covariance is not positive definite (pivot %d is %g)", i, d)
				}
				l[i*coils+i] = complex(math.Sqrt(d), 0)
			} else {
				l[i*coils+j] = s / l[j*coils+j]
			}
		}
	}
	// Invert the triangular factor by forward substitution on the identity.
	inv := make([]complex128, len(l))
	for col := 0; col < coils; col++ {
		for i := col; i < coils; i++ {
			var s complex128
			if i == col {
				s = 1
			}
			for k := col; k < i; k++ {
				s -= l[i*coils+k] * inv[k*coils+col]
			}
			inv[i*coils+col] = s / l[i*coils+i]
		}
	}
	return &Whitener{coils: coils, linv: inv}, nil
}

// Apply writes L⁻¹ applied across coils of src ([coil][n]) into dst; dst
// may be src (coils are processed last to first, and row c of L⁻¹ only reads
// coils ≤ c).
func (w *Whitener) Apply(dst, src []complex64) error {
	if len(src)%w.coils != 0 || len(dst) != len(src) {
		return fmt.Errorf("whiten: %d values into %d do not split into %d coils", len(src), len(dst), w.coils)
	}
	n := len(src) / w.coils
	for i := 0; i < n; i++ {
		for c := w.coils - 1; c >= 0; c-- {
			var s complex128
			row := w.linv[c*w.coils : c*w.coils+c+1]
			for d, v := range row {
				s += v * complex128(src[d*n+i])
			}
			dst[c*n+i] = complex64(s)
		}
	}
	return nil
}

// Prewhiten whitens s.KSpace and maps ([coil][rows][cols], may be nil) in
// place with s.NoiseCov and sets s.NoiseCov to the identity. Only whiten maps
// that were estimated from unwhitened data: maps estimated from whitened
// k-space are already in the whitened coil space.
func Prewhiten(s *Scan, maps []complex64) error {
	if s == nil || s.NoiseCov == nil {
		return fmt.Errorf("prewhiten: scan has no noise covariance")
	}
	if len(s.KSpace) != s.Coils*s.Rows*s.Cols {
		return fmt.Errorf("prewhiten: %d k-space values for %d coils × %d × %d", len(s.KSpace), s.Coils, s.Rows, s.Cols)
	}
	if maps != nil && len(maps) != len(s.KSpace) {
		return fmt.Errorf("prewhiten: %d map values, want %d", len(maps), len(s.KSpace))
	}
	w, err := NewWhitener(s.NoiseCov, s.Coils)
	if err != nil {
		return fmt.Errorf("prewhiten: %w", err)
	}
	if err := w.Apply(s.KSpace, s.KSpace); err != nil {
		return fmt.Errorf("prewhiten: %w", err)
	}
	if maps != nil {
		if err := w.Apply(maps, maps); err != nil {
			return fmt.Errorf("prewhiten maps: %w", err)
		}
	}
	id := make([]complex64, s.Coils*s.Coils)
	for i := 0; i < s.Coils; i++ {
		id[i*s.Coils+i] = 1
	}
	s.NoiseCov = id
	return nil
}
