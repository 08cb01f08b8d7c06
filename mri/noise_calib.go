package mri

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// Noise from the calibration matrix of the fully sampled k-space centre, for
// scans whose mask keeps no complete line (2-D masks): there the outer
// k-space, the only other candidate, still holds anatomy at low noise levels
// (docs/bench/noise.md), while the centre, though dominated by signal, holds
// the noise in a known way. Stacking every k×k patch of the C-coil centre
// block as a row gives the ESPIRiT/SAKE calibration matrix A (P rows, k²·C
// columns). Smooth coil maps make the signal rows span a low-dimensional
// subspace; the remaining singular values are noise alone and follow the
// Marchenko–Pastur law, whose width fixes σ. The rank p of the signal is
// chosen as in MP-PCA (Veraart et al., NeuroImage 142, 2016): the smallest p
// for which the spread of the remaining eigenvalues is no wider than the MP
// bulk of their mean.
//
// The MP bulk assumes white noise across coils (equal, uncorrelated coil
// noise, as after prewhitening); correlated coils or unequal coil variances
// widen the bulk, their strongest noise modes are taken for signal and σ
// comes out low (docs/bench/noise.md).

const (
	// calibKernel is the patch size k. With k = 3 and 4 coils the 36 columns
	// leave no noise-only subspace beside the anatomy; k = 5 leaves 30 or more
	// noise eigenvalues on every test scan (4–16 coils).
	calibKernel = 5
	// calibMaxBlock caps the centre block side, bounding the cost (at 16
	// coils a 400×400 Hermitian eigenproblem); 32² already gives 784 rows.
	calibMaxBlock = 32
	// calibMinBulk is the fewest noise-only eigenvalues an estimate may rest on.
	calibMinBulk = 16
)

// noiseFromCalibration is the calibration-matrix candidate; its estimate is
// the level only (mean·I): it does not resolve coil correlations.
func noiseFromCalibration(s *Scan) (*NoiseEstimate, error) {
	b := centreBlock(s, calibMaxBlock)
	if b < calibKernel+7 { // under 64 patches
		return nil, fmt.Errorf("calibration matrix: fully sampled centre %d×%d", b, b)
	}
	ev, rows, cols := calibEigenvalues(s, b, calibKernel)
	s2, p := mpNoise(ev, rows, cols)
	if len(ev)-p < calibMinBulk || !(s2 > 0) {
		return nil, fmt.Errorf("calibration matrix: %d of %d eigenvalues left as noise", len(ev)-p, len(ev))
	}
	return &NoiseEstimate{Cov: levelOnly(s2, s.Coils), Method: "calibration matrix (level only)", Samples: b * b, Shrinkage: 1}, nil
}

// centreBlock is the side of the largest fully sampled square centred at
// (Rows/2, Cols/2), at most limit.
func centreBlock(s *Scan, limit int) int {
	b := 0
	for n := 1; n <= min(limit, s.Rows, s.Cols); n++ {
		r0, c0 := s.Rows/2-n/2, s.Cols/2-n/2
		for r := r0; r < r0+n; r++ {
			for c := c0; c < c0+n; c++ {
				if s.Mask[r*s.Cols+c] == 0 {
					return b
				}
			}
		}
		b = n
	}
	return b
}

// calibEigenvalues returns the eigenvalues (descending) of the smaller Gram
// matrix of the calibration matrix of the centred b×b block with k×k
// patches, and that matrix's row and column counts.
func calibEigenvalues(s *Scan, b, k int) (ev []float64, rows, cols int) {
	n, w := s.Rows*s.Cols, b-k+1
	r0, c0 := s.Rows/2-b/2, s.Cols/2-b/2
	rows, cols = w*w, k*k*s.Coils
	a := make([]complex128, rows*cols)
	for i := 0; i < w; i++ {
		for j := 0; j < w; j++ {
			row := a[(i*w+j)*cols:]
			q := 0
			for c := 0; c < s.Coils; c++ {
				for u := 0; u < k; u++ {
					for v := 0; v < k; v++ {
						row[q] = complex128(s.KSpace[c*n+(r0+i+u)*s.Cols+c0+j+v])
						q++
					}
				}
			}
		}
	}
	// G = AᴴA (cols ≤ rows) or AAᴴ: the same nonzero eigenvalues.
	m, inner, at := cols, rows, func(r, c int) complex128 { return a[r*cols+c] } // at(inner, outer)
	if rows < cols {
		m, inner, at = rows, cols, func(r, c int) complex128 { return a[c*cols+r] }
	}
	// gonum has no complex Hermitian eigensolver: G = X + iY has the
	// eigenvalues of the real symmetric [[X, −Y], [Y, X]], each twice.
	sym := mat.NewSymDense(2*m, nil)
	for i := 0; i < m; i++ {
		for j := i; j < m; j++ {
			var g complex128
			for r := 0; r < inner; r++ {
				x, y := at(r, i), at(r, j)
				g += complex(real(x), -imag(x)) * y
			}
			sym.SetSym(i, j, real(g))
			sym.SetSym(m+i, m+j, real(g))
			sym.SetSym(i, m+j, -imag(g))
			sym.SetSym(j, m+i, imag(g))
		}
	}
	var es mat.EigenSym
	if !es.Factorize(sym, false) {
		return nil, rows, cols
	}
	all := es.Values(nil) // ascending, in pairs
	ev = make([]float64, m)
	for i := range ev {
		ev[i] = all[2*(m-1-i)+1]
	}
	return ev, rows, cols
}

// mpNoise fits the Marchenko–Pastur law to the eigenvalues ev (descending)
// of the Gram matrix of a rows×cols matrix: signal rank p and noise
// variance σ². A rank-p signal takes p dimensions from both sides, so the
// remaining m = min−p eigenvalues are those of an m×(max−p) noise matrix
// (Cordero-Grande et al., NeuroImage 200, 2019): their sum is σ²·m·(max−p)
// and their spread at most σ²·(max−p)·4√(m/(max−p)). With no p fitting,
// p = len(ev).
func mpNoise(ev []float64, rows, cols int) (s2 float64, p int) {
	big := max(rows, cols)
	tail := make([]float64, len(ev)+1) // tail[p] = Σ_{i≥p} ev[i]
	for i := len(ev) - 1; i >= 0; i-- {
		tail[i] = tail[i+1] + ev[i]
	}
	for p = 0; p < len(ev)-1; p++ {
		m, l := float64(len(ev)-p), float64(big-p)
		s2 = tail[p] / (m * l)
		if ev[p]-ev[len(ev)-1] <= 4*math.Sqrt(m/l)*l*s2 {
			return s2, p
		}
	}
	return math.NaN(), len(ev)
}
