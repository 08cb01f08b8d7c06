package mri_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/mri/simulate"
)

// noiseTestScan simulates a scan of real anatomy (mricron-data) with known
// white noise of E|n|² = sigma².
func noiseTestScan(t *testing.T, vol *simulate.Volume, axis int, v simulate.View, coils int, mask string, accel, sigma float64, seed uint64) *mri.Scan {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0x6e6f6973))
	mag, err := simulate.Anatomy(vol, axis, vol.Dims[axis]/2+int(seed%7)-3, v)
	if err != nil {
		t.Fatal(err)
	}
	var peak float32
	for _, m := range mag {
		peak = max(peak, m)
	}
	ph := simulate.SmoothPhase(v.Rows, v.Cols, rng)
	img := make([]complex64, len(mag))
	for i, m := range mag {
		s, c := math.Sincos(float64(ph[i]))
		img[i] = complex(float32(float64(m/peak)*c), float32(float64(m/peak)*s))
	}
	var m []float32
	switch mask {
	case "random":
		m, err = mri.RandomMask(v.Rows, v.Cols, 0.08, accel, seed)
	case "equispaced":
		m, err = mri.EquispacedMask(v.Rows, v.Cols, 0.04, accel, seed)
	case "poisson":
		m, err = mri.PoissonDiscMask(v.Rows, v.Cols, accel, 16, seed)
	}
	if err != nil {
		t.Fatal(err)
	}
	s, err := simulate.KSpace(img, simulate.CoilMaps(coils, v.Rows, v.Cols), coils, v.Rows, v.Cols, m, sigma, rng)
	if err != nil {
		t.Fatal(err)
	}
	s.NoiseCov = nil // as a fastMRI file: no noise scan
	return s
}

// TestEstimateNoiseOnAnatomy: on simulated scans of real anatomy at 4× and
// 8× (1-D random and equispaced, 2-D Poisson), several matrices, pixel
// sizes, coil counts and noise levels, the noise level estimated from the
// data is within ±20 % of the true σ on every scan with a 1-D mask and within
// ±10 % on every 2-D Poisson one (there from the calibration matrix of the
// k-space centre: docs/bench/noise.md), and the estimated coil covariance is white
// within 0.15 (shapeError) on every scan. By default one view per
// orientation; KSPACED_NOISE_TABLE=1 runs all three and prints the markdown
// table of docs/bench/noise.md.
func TestEstimateNoiseOnAnatomy(t *testing.T) {
	t.Parallel()
	vols := map[string]string{"ch2": "/usr/share/mricron/templates/ch2.nii.gz", "ch2better": "/usr/share/mricron/templates/ch2better.nii.gz"}
	type view struct {
		name string
		v    simulate.View
	}
	views := []view{
		{"128² 1.6 mm", simulate.View{Rows: 128, Cols: 128, PixelMM: 1.6}},
		{"192² 1.2 mm, rot 7°", simulate.View{Rows: 192, Cols: 192, PixelMM: 1.2, RotateDeg: 7}},
		{"256×208 1.0 mm, flipped", simulate.View{Rows: 256, Cols: 208, PixelMM: 1.0, FlipCols: true}},
	}
	table := os.Getenv("KSPACED_NOISE_TABLE") != ""
	var rows []string
	worst, worst2D, worstShape := 0.0, 0.0, 0.0
	seed := uint64(0)
	for _, vn := range []string{"ch2", "ch2better"} {
		vol, err := simulate.ReadNIfTI(vols[vn])
		if err != nil {
			t.Skipf("mricron-data: %v", err)
		}
		for axis, an := range []string{"sagittal", "coronal", "axial"} {
			for vi, vw := range views {
				if !table && vi != (axis+len(vn))%len(views) {
					continue // the full grid only for the table
				}
				for _, acq := range []struct {
					mask  string
					accel float64
				}{{"random", 4}, {"equispaced", 8}, {"random", 8}, {"poisson", 4}, {"poisson", 8}} {
					for _, sigma := range []float64{0.005, 0.01, 0.03} {
						seed++
						coils := []int{4, 8, 16}[(int(seed)+vi)%3]
						s := noiseTestScan(t, vol, axis, vw.v, coils, acq.mask, acq.accel, sigma, seed)
						est, err := mri.EstimateNoise(s)
						if err != nil {
							t.Fatalf("%s %s %s %s %g×: %v", vn, an, vw.name, acq.mask, acq.accel, err)
						}
						ratio := math.Sqrt(est.Mean()) / sigma
						// 2-D masks have no complete lines: their level comes from the
						// calibration matrix of the k-space centre (docs/bench/noise.md).
						bound := 0.2
						if acq.mask == "poisson" {
							bound = 0.1
							worst2D = math.Max(worst2D, math.Abs(ratio-1))
							if !strings.HasPrefix(est.Method, "calibration matrix") {
								t.Errorf("%s %s %s, %d coils, %s %g×, σ %g: from %s, not the calibration matrix", vn, an, vw.name, coils, acq.mask, acq.accel, sigma, est.Method)
							}
						} else {
							worst = math.Max(worst, math.Abs(ratio-1))
						}
						if math.Abs(ratio-1) > bound {
							t.Errorf("%s %s %s, %d coils, %s %g×, σ %g: estimated/true σ %.3f (%s)", vn, an, vw.name, coils, acq.mask, acq.accel, sigma, ratio, est.Method)
						}
						// The noise is white, so the estimate's shape must be too, on
						// every mask, or prewhitening rescales the coil combination.
						shape := shapeError(est)
						worstShape = math.Max(worstShape, shape)
						if shape > 0.15 {
							t.Errorf("%s %s %s, %d coils, %s %g×, σ %g: ‖Σ/mean − I‖ = %.3f (%s, %d samples)", vn, an, vw.name, coils, acq.mask, acq.accel, sigma, shape, est.Method, est.Samples)
						}
						rows = append(rows, fmt.Sprintf("| %s | %s | %s | %d | %s %g× | %g | %.3f | %.3f | %s |", vn, an, vw.name, coils, acq.mask, acq.accel, sigma, ratio, shape, est.Method))
					}
				}
			}
		}
	}
	t.Logf("%d scans, worst |estimated/true σ − 1| = %.3f on 1-D masks, %.3f on 2-D, worst ‖Σ/mean − I‖ %.3f (all)", len(rows), worst, worst2D, worstShape)
	if table {
		fmt.Println("| volume | orientation | view | coils | mask | σ | estimated/true σ | ‖Σ/mean − I‖ | from |")
		fmt.Println("|---|---|---|---:|---|---:|---:|---:|---|")
		fmt.Println(strings.Join(rows, "\n"))
	}
}

// TestEstimateNoiseCorrelatedCoils: the covariance, not only its level,
// comes out right for correlated coil noise (a peer: the sample covariance
// of a noise-only scan of the same coils).
func TestEstimateNoiseCorrelatedCoils(t *testing.T) {
	t.Parallel()
	const coils, rows, cols = 6, 160, 128
	rng := rand.New(rand.NewPCG(3, 4))
	// Σ = L Lᴴ for a random lower-triangular L.
	l := make([]complex128, coils*coils)
	for i := 0; i < coils; i++ {
		for j := 0; j <= i; j++ {
			l[i*coils+j] = complex(rng.NormFloat64(), rng.NormFloat64()) * 0.004
		}
		l[i*coils+i] = complex(0.01+0.005*rng.Float64(), 0)
	}
	sigma := make([]complex128, coils*coils)
	for i := 0; i < coils; i++ {
		for j := 0; j < coils; j++ {
			for k := 0; k < coils; k++ {
				sigma[i*coils+j] += l[i*coils+k] * complexConj(l[j*coils+k])
			}
		}
	}
	vol, err := simulate.ReadNIfTI("/usr/share/mricron/templates/ch2.nii.gz")
	if err != nil {
		t.Skipf("mricron-data: %v", err)
	}
	s := noiseTestScan(t, vol, 2, simulate.View{Rows: rows, Cols: cols, PixelMM: 1.5}, coils, "random", 4, 0, 1)
	n := rows * cols
	for i, m := range s.Mask {
		if m == 0 {
			continue
		}
		z := make([]complex128, coils)
		for k := range z {
			z[k] = complex(rng.NormFloat64(), rng.NormFloat64()) / math.Sqrt2
		}
		for c := 0; c < coils; c++ {
			var v complex128
			for k := 0; k <= c; k++ {
				v += l[c*coils+k] * z[k]
			}
			s.KSpace[c*n+i] += complex64(v)
		}
	}
	est, err := mri.EstimateNoise(s)
	if err != nil {
		t.Fatal(err)
	}
	var num, den float64
	for i := range sigma {
		d := complex128(est.Cov[i]) - sigma[i]
		num += real(d)*real(d) + imag(d)*imag(d)
		den += real(sigma[i])*real(sigma[i]) + imag(sigma[i])*imag(sigma[i])
	}
	rel := math.Sqrt(num / den)
	t.Logf("covariance from %s (%d samples per coil): relative Frobenius error %.3f", est.Method, est.Samples, rel)
	if rel > 0.2 {
		t.Fatalf("relative Frobenius error %.3f", rel)
	}
}

// shapeError is the spectral norm of Σ/mean − I for an estimate Σ (its
// largest eigenvalue deviation, by power iteration on the Hermitian
// difference): how far prewhitening by it is from a uniform rescaling.
func shapeError(e *mri.NoiseEstimate) float64 {
	c := int(math.Sqrt(float64(len(e.Cov))))
	m := e.Mean()
	d := make([]complex128, c*c)
	for i := range d {
		d[i] = complex128(e.Cov[i]) / complex(m, 0)
		if i%(c+1) == 0 {
			d[i] -= 1
		}
	}
	v := make([]complex128, c)
	for i := range v {
		v[i] = complex(1+0.1*float64(i), 0.05*float64(i))
	}
	var lam float64
	for it := 0; it < 200; it++ {
		w := make([]complex128, c)
		for i := 0; i < c; i++ {
			for j := 0; j < c; j++ {
				w[i] += d[i*c+j] * v[j]
			}
		}
		var nw float64
		for _, x := range w {
			nw += real(x)*real(x) + imag(x)*imag(x)
		}
		nw = math.Sqrt(nw)
		if nw == 0 {
			return 0
		}
		lam = nw
		for i := range v {
			v[i] = w[i] / complex(nw, 0)
		}
	}
	return lam
}

func complexConj(v complex128) complex128 { return complex(real(v), -imag(v)) }

// TestEstimateNoiseRefuses: noise-free data, or data with no noise-only
// region to measure, is refused with ErrNoNoiseEstimate, never a level of 0.
func TestEstimateNoiseRefuses(t *testing.T) {
	t.Parallel()
	// A noise-free scan of a phantom with exact air around it: every
	// noise-only region holds only float32 rounding.
	img := simulate.SheppLogan(96)
	cimg := make([]complex64, len(img))
	for i, v := range img {
		cimg[i] = complex(v, 0)
	}
	m, err := mri.RandomMask(96, 96, 0.08, 4, 1)
	if err != nil {
		t.Fatal(err)
	}
	s, err := simulate.KSpace(cimg, simulate.CoilMaps(4, 96, 96), 4, 96, 96, m, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := mri.EstimateNoise(s); !errors.Is(err, mri.ErrNoNoiseEstimate) {
		t.Fatalf("noise-free scan: %+v, %v", e, err)
	}
	tiny := &mri.Scan{Coils: 2, Rows: 8, Cols: 8, KSpace: make([]complex64, 128), Mask: make([]float32, 64)}
	for i := range tiny.KSpace {
		tiny.KSpace[i] = complex(float32(i%5), 1)
	}
	tiny.Mask[27], tiny.Mask[28] = 1, 1
	if _, err := mri.EstimateNoise(tiny); !errors.Is(err, mri.ErrNoNoiseEstimate) {
		t.Fatalf("two sampled locations: %v", err)
	}
	if _, err := mri.EstimateNoise(&mri.Scan{Coils: 1, Rows: 2, Cols: 2}); err == nil {
		t.Fatal("inconsistent scan accepted")
	}
}
