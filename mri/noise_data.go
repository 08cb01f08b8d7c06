package mri

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/cmplx"
	"slices"

	"github.com/kspaced/kspaced/fft"
)

// Noise from the data itself, for files without a noise scan (every fastMRI
// file). Two places in an undersampled scan hold (almost) nothing but noise:
//
//   - the edges of the field of view along the readout of fully acquired
//     lines: readout is oversampled (fastMRI: 2×) or the object is
//     surrounded by air, so after a 1-D inverse FFT along the readout the
//     outermost positions of every acquired line carry only noise, exactly;
//   - the outermost sampled k-space, where the object's spectrum has decayed.
//
// Each candidate region is scored robustly: for complex Gaussian noise of
// variance σ², |n|² is σ²·Exp(1), whose median is σ²·ln 2, so a minority of
// signal-bearing samples barely moves median(|n|²)/ln 2. Within a candidate
// the noise-only positions (or k-space bands) are chosen on one half of the
// lines and the level measured on the other half, so choosing the quietest
// positions does not bias the level low. Signal can only bias a candidate
// up, so the lowest candidate is kept. The level comes from those robust
// per-coil medians; the coil correlations from the sample covariance of the
// same samples. Scans without complete lines (2-D masks) take the level from
// the calibration matrix of the k-space centre instead (noise_calib.go).

// NoiseEstimate is a noise covariance estimated from a scan's own data.
type NoiseEstimate struct {
	Cov     []complex64 // coils×coils, row-major
	Method  string      // "readout edges", "outer k-space" (+ where the correlations came from) or "calibration matrix (level only)"
	Samples int         // samples per coil behind the estimate
	// Shrinkage is the weight of (mean variance)·I in Cov, in [0, 1]: 1 when
	// the samples say nothing about coil correlations (robustCov).
	Shrinkage float64
}

// Mean is the mean per-coil variance (the trace over the coil count).
func (e *NoiseEstimate) Mean() float64 {
	c := int(math.Sqrt(float64(len(e.Cov))))
	var tr float64
	for i := 0; i < c; i++ {
		tr += float64(real(e.Cov[i*c+i]))
	}
	return tr / float64(c)
}

// minNoiseSamples is the fewest samples (all coils) an estimate may rest on:
// the median of 200 Exp(1) draws is within ±15 % of its value about 95 % of
// the time.
const minNoiseSamples = 200

// ErrNoNoiseEstimate is returned when a scan holds no usable noise-only
// data; callers must not fall back to a noise level of 0.
var ErrNoNoiseEstimate = errors.New("no noise estimate possible from the data")

// EstimateNoise estimates the noise covariance of s from its own k-space.
func EstimateNoise(s *Scan) (*NoiseEstimate, error) {
	if s == nil || s.Coils < 1 || s.Coils > MaxCoils || s.Rows < 1 || s.Cols < 1 ||
		len(s.KSpace) != s.Coils*s.Rows*s.Cols || len(s.Mask) != s.Rows*s.Cols {
		return nil, errors.New("estimate noise: inconsistent scan shape")
	}
	var best *NoiseEstimate
	var why []string
	edges, err := noiseFromReadoutEdges(s)
	if err != nil {
		why = append(why, err.Error())
		// No complete lines (a 2-D mask): the outer k-space still holds
		// anatomy at low noise levels (up to +77 % in σ at 0.005 of the
		// peak), the calibration matrix stays within ±7 % at every level
		// (docs/bench/noise.md). It replaces the outer k-space rather than
		// competing with it (the lower of two would bias it low); the outer
		// k-space remains the fallback when the centre is too small.
		if best, err = noiseFromCalibration(s); err != nil {
			why = append(why, err.Error())
		}
	} else {
		best = edges
	}
	if best == nil || best == edges {
		// Signal only ever biases these two up: the lower is kept.
		if e, err := noiseFromOuterKSpace(s); err != nil {
			why = append(why, err.Error())
		} else if best == nil || e.Mean() < best.Mean() {
			best = outerShape(e, edges)
		}
	}
	if best == nil {
		return nil, fmt.Errorf("estimate noise: %w (%v)", ErrNoNoiseEstimate, why)
	}
	// Float32 rounding of noise-free data leaves |y|² about 1e-14 of the
	// signal power; anything below 1e-10 of it is not noise.
	var p float64
	var cnt int
	for i, v := range s.KSpace {
		if s.Mask[i%(s.Rows*s.Cols)] != 0 {
			p += abs2(v)
			cnt++
		}
	}
	if m := best.Mean(); !(m > 1e-10*p/float64(max(cnt, 1))) || math.IsInf(m, 0) {
		return nil, fmt.Errorf("estimate noise: %w: %s give a noise variance of %g against a mean sample power of %g (noise-free or synthetic data?)",
			ErrNoNoiseEstimate, best.Method, m, p/float64(max(cnt, 1)))
	}
	return best, nil
}

// outerShape gives an outer k-space estimate (the lower level) its coil
// correlations: a few dozen outer locations carry coil-coherent anatomy into
// the shape, so they come from the readout edges when those agree on the
// level within 10 % (noise only there too), and are left out (mean·I, no
// correlations, equal coils) otherwise: whitening by a shape that is anatomy
// rescales the coil combination, while equal white noise only forgoes
// whitening.
func outerShape(best, edges *NoiseEstimate) *NoiseEstimate {
	m := best.Mean()
	c := int(math.Sqrt(float64(len(best.Cov))))
	if edges != nil && edges.Mean() > 0 && edges.Mean() <= 1.1*m {
		cov := make([]complex64, len(best.Cov))
		r := complex(float32(m/edges.Mean()), 0)
		for i, v := range edges.Cov {
			cov[i] = v * r
		}
		return &NoiseEstimate{Cov: cov, Method: best.Method + " (coil correlations from readout edges)", Samples: best.Samples, Shrinkage: edges.Shrinkage}
	}
	return &NoiseEstimate{Cov: levelOnly(m, c), Method: best.Method + " (level only)", Samples: best.Samples, Shrinkage: 1}
}

// noiseFromReadoutEdges uses the fully acquired lines: columns (readout
// along rows, the fastMRI layout) or else rows.
func noiseFromReadoutEdges(s *Scan) (*NoiseEstimate, error) {
	full := func(n, m int, at func(i, j int) float32) []int {
		var lines []int
		for i := 0; i < n; i++ {
			ok := true
			for j := 0; j < m && ok; j++ {
				ok = at(i, j) != 0
			}
			if ok {
				lines = append(lines, i)
			}
		}
		return lines
	}
	// Lines are columns when every sampled column is complete.
	readLen := s.Rows
	lines := full(s.Cols, s.Rows, func(c, r int) float32 { return s.Mask[r*s.Cols+c] })
	colLines := true
	if len(lines) == s.Cols { // fully sampled: either axis; prefer the longer readout
		if s.Cols > s.Rows {
			lines, colLines, readLen = full(s.Rows, s.Cols, func(r, c int) float32 { return s.Mask[r*s.Cols+c] }), false, s.Cols
		}
	} else if len(lines) < 4 {
		lines = full(s.Rows, s.Cols, func(r, c int) float32 { return s.Mask[r*s.Cols+c] })
		colLines, readLen = false, s.Cols
	}
	if len(lines) < 4 || readLen < 16 {
		return nil, fmt.Errorf("readout edges: %d fully acquired lines", len(lines))
	}
	// Hybrid space: 1-D inverse FFT of every line along its readout.
	n := s.Rows * s.Cols
	L := len(lines)
	h := make([]complex64, s.Coils*L*readLen)
	for c := 0; c < s.Coils; c++ {
		for li, l := range lines {
			row := h[(c*L+li)*readLen : (c*L+li+1)*readLen]
			for j := range row {
				if colLines {
					row[j] = s.KSpace[c*n+j*s.Cols+l]
				} else {
					row[j] = s.KSpace[c*n+l*s.Cols+j]
				}
			}
		}
	}
	fft.Inverse(h, h, 1, readLen)
	// Positions ranked on the even lines, measured on the odd ones.
	at := func(c, li, pos int) complex64 { return h[(c*L+li)*readLen+pos] }
	score := make([]float64, readLen)
	buf := make([]float64, 0, s.Coils*L)
	for pos := range score {
		buf = buf[:0]
		for c := 0; c < s.Coils; c++ {
			for li := 0; li < L; li += 2 {
				buf = append(buf, abs2(at(c, li, pos)))
			}
		}
		score[pos] = median(buf)
	}
	order := make([]int, readLen)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(score[a], score[b]) })
	keep := order[:max(2, readLen/10)]
	x := make([][]complex64, s.Coils)
	for c := range x {
		for li := 1; li < L; li += 2 {
			for _, pos := range keep {
				x[c] = append(x[c], at(c, li, pos))
			}
		}
	}
	return robustCov(x, "readout edges")
}

// noiseFromOuterKSpace uses the sampled locations of outer k-space in rings
// of normalised radius ρ = √((ky/(H/2))² + (kx/(W/2))²) from 0.9 into the
// corners (ρ up to √2), where a spectrum decaying along both axes is
// weakest: the quietest ring chosen on one checkerboard half of k-space,
// measured on the other.
func noiseFromOuterKSpace(s *Scan) (*NoiseEstimate, error) {
	edges := []float64{0.9, 1.0, 1.1, 1.2, 1.3, 1.5}
	const rings = 5
	n := s.Rows * s.Cols
	var idx [rings][2][]int
	for r := 0; r < s.Rows; r++ {
		for c := 0; c < s.Cols; c++ {
			if s.Mask[r*s.Cols+c] == 0 {
				continue
			}
			dy, dx := float64(r-s.Rows/2)/(float64(s.Rows)/2), float64(c-s.Cols/2)/(float64(s.Cols)/2)
			rho := math.Sqrt(dy*dy + dx*dx)
			for k := 0; k < rings; k++ {
				if rho >= edges[k] && rho < edges[k+1] {
					idx[k][(r+c)%2] = append(idx[k][(r+c)%2], r*s.Cols+c)
				}
			}
		}
	}
	bestRing, bestScore := -1, math.Inf(1)
	for k := range idx {
		if len(idx[k][1]) < 32 || len(idx[k][1])*s.Coils < minNoiseSamples {
			continue
		}
		var buf []float64
		for c := 0; c < s.Coils; c++ {
			for _, i := range idx[k][0] {
				buf = append(buf, abs2(s.KSpace[c*n+i]))
			}
		}
		if m := median(buf); m < bestScore {
			bestRing, bestScore = k, m
		}
	}
	if bestRing < 0 {
		return nil, fmt.Errorf("outer k-space: too few sampled locations in every ring for %d coils", s.Coils)
	}
	x := make([][]complex64, s.Coils)
	for c := range x {
		for _, i := range idx[bestRing][1] {
			x[c] = append(x[c], s.KSpace[c*n+i])
		}
	}
	return robustCov(x, "outer k-space")
}

// robustCov estimates the covariance of per-coil noise samples: per-coil
// variances from the robust median(|x|²)/ln 2; correlations from the sample
// covariance of the samples whose energy over all coils is below three times
// the expected (signal is coherent across coils, so a few signal-bearing
// samples would otherwise dominate the correlations).
func robustCov(x [][]complex64, method string) (*NoiseEstimate, error) {
	m, coils := len(x[0]), len(x)
	if m < 32 || m*coils < minNoiseSamples {
		return nil, fmt.Errorf("%s: %d samples per coil in %d coils, need 32 per coil and %d in all", method, m, coils, minNoiseSamples)
	}
	rv := make([]float64, coils)
	buf := make([]float64, m)
	var total float64
	for c, v := range x {
		for i, a := range v {
			buf[i] = abs2(a)
		}
		rv[c] = median(buf) / math.Ln2
		total += rv[c]
	}
	quiet := make([][]complex64, coils)
	for i := 0; i < m; i++ {
		var e float64
		for c := range x {
			e += abs2(x[c][i])
		}
		if e < 3*total {
			for c := range x {
				quiet[c] = append(quiet[c], x[c][i])
			}
		}
	}
	cov := make([]complex64, coils*coils)
	rho := 1.0
	if len(quiet[0]) >= 32 {
		cov = covariance(quiet, len(quiet[0]))
		rho = shrinkage(quiet, cov)
	}
	diag := make([]float64, coils)
	for i := range diag {
		diag[i] = float64(real(cov[i*coils+i]))
	}
	// A few hundred samples leave each element of a coils×coils covariance
	// uncertain by ~1/√m of the variance. Prewhitening with that noise
	// distorts the coil combination (on the default-prior archive by 20 %
	// in image scale), so the estimate is shrunk toward its mean variance
	// times I (Ledoit–Wolf); the level (the mean) is unchanged.
	mean := total / float64(coils)
	for i := 0; i < coils; i++ {
		for j := 0; j < coils; j++ {
			d := math.Sqrt(diag[i] * diag[j])
			switch {
			case i == j:
				cov[i*coils+j] = complex(float32((1-rho)*rv[i]+rho*mean), 0)
			case d > 0:
				cov[i*coils+j] *= complex(float32((1-rho)*math.Sqrt(rv[i]*rv[j])/d), 0)
			default:
				cov[i*coils+j] = 0
			}
		}
	}
	return &NoiseEstimate{Cov: cov, Method: method, Samples: m, Shrinkage: rho}, nil
}

// shrinkage is the Ledoit–Wolf intensity (J. Multivar. Anal. 88, 2004) for
// shrinking the sample covariance s of samples x (per coil) toward
// (tr s / coils)·I: the estimated variance of s's elements over their
// squared distance from the target, clipped to [0, 1]; the diagonal's
// variance is that of the robust estimate robustCov puts there.
func shrinkage(x [][]complex64, s []complex64) float64 {
	coils, m := len(x), len(x[0])
	var mu float64
	for i := 0; i < coils; i++ {
		mu += float64(real(s[i*coils+i]))
	}
	mu /= float64(coils)
	var d2, b2 float64
	for i := 0; i < coils; i++ {
		for j := 0; j < coils; j++ {
			e := complex128(s[i*coils+j])
			if i == j {
				e -= complex(mu, 0)
			}
			d2 += real(e)*real(e) + imag(e)*imag(e)
			var v float64
			for k := 0; k < m; k++ {
				f := complex128(x[i][k])*cmplx.Conj(complex128(x[j][k])) - complex128(s[i*coils+j])
				v += real(f)*real(f) + imag(f)*imag(f)
			}
			if i == j {
				// The diagonal used is median(|x|²)/ln 2, whose variance for
				// Gaussian noise is 1/ln²2 ≈ 2.1 times the sample variance's.
				v /= math.Ln2 * math.Ln2
			}
			b2 += v
		}
	}
	b2 /= float64(m) * float64(m)
	if !(d2 > 0) {
		return 1
	}
	return math.Min(b2, d2) / d2
}

func abs2(v complex64) float64 {
	return float64(real(v))*float64(real(v)) + float64(imag(v))*float64(imag(v))
}

// median of v (reordered in place).
func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	if k := len(v); k%2 == 1 {
		return v[k/2]
	} else {
		return (v[k/2-1] + v[k/2]) / 2
	}
}

// levelOnly is the coils×coils covariance m·I (equal, uncorrelated coils):
// what an estimate that resolves the level but not the correlations gives.
func levelOnly(m float64, coils int) []complex64 {
	cov := make([]complex64, coils*coils)
	for i := 0; i < coils; i++ {
		cov[i*coils+i] = complex(float32(m), 0)
	}
	return cov
}
