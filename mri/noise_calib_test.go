package mri_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kspaced/kspaced/mri"
)

// whiteNoiseScan is a rows×cols scan of pure white complex noise, E|n|² =
// sigma², under a mask with a fully sampled calib×calib centre and every
// third location elsewhere on a skewed lattice (no complete line).
func whiteNoiseScan(coils, rows, cols, calib int, sigma float64, seed uint64) *mri.Scan {
	rng := rand.New(rand.NewPCG(seed, 77))
	s := &mri.Scan{Coils: coils, Rows: rows, Cols: cols, KSpace: make([]complex64, coils*rows*cols), Mask: make([]float32, rows*cols)}
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			dr, dc := r-rows/2+calib/2, c-cols/2+calib/2
			if (dr >= 0 && dr < calib && dc >= 0 && dc < calib) || (r+2*c)%3 == 0 {
				s.Mask[r*cols+c] = 1
			}
		}
	}
	n := rows * cols
	for i := range s.KSpace {
		if s.Mask[i%n] != 0 {
			s.KSpace[i] = complex(float32(rng.NormFloat64()*sigma/math.Sqrt2), float32(rng.NormFloat64()*sigma/math.Sqrt2))
		}
	}
	return s
}

// TestNoiseFromCalibrationWhiteNoise: on pure white noise (σ known exactly)
// the calibration-matrix estimate is unbiased for 4, 8 and 16 coils and the
// smallest (16²) and largest (32²) centre blocks: the mean of σ̂/σ over 6
// seeds within ±1.5 %, every one within ±6 %. The MP fit keeps at most 2
// "signal" components, and where it keeps none its σ² equals the naive
// float64 mean of |y|² over every entry of the calibration matrix.
func TestNoiseFromCalibrationWhiteNoise(t *testing.T) {
	t.Parallel()
	const sigma, k = 0.01, 5
	for _, coils := range []int{4, 8, 16} {
		for _, calib := range []int{16, 32} {
			var sum float64
			const seeds = 6
			for seed := uint64(0); seed < seeds; seed++ {
				s := whiteNoiseScan(coils, 80, 72, calib, sigma, seed+uint64(100*coils+calib))
				if b := mri.CentreBlock(s, 32); b != calib {
					t.Fatalf("centre block %d, want %d", b, calib)
				}
				ev, rows, cols := mri.CalibEigenvalues(s, calib, k)
				s2, p := mri.MPNoise(ev, rows, cols)
				ratio := math.Sqrt(s2) / sigma
				sum += ratio
				if math.Abs(ratio-1) > 0.06 {
					t.Errorf("%d coils, %d² centre, seed %d: σ̂/σ = %.3f", coils, calib, seed, ratio)
				}
				if seed == 0 { // the candidate as EstimateNoise calls it
					e, err := mri.NoiseFromCalibration(s)
					if err != nil {
						t.Fatal(err)
					}
					if math.Abs(e.Mean()/s2-1) > 1e-6 || shapeError(e) != 0 {
						t.Errorf("%d coils: candidate %g·I-ish (shape %g), fit %g", coils, e.Mean(), shapeError(e), s2)
					}
				}
				if p > 2 {
					t.Errorf("%d coils, %d² centre, seed %d: %d signal components in pure noise", coils, calib, seed, p)
				}
				if p == 0 {
					if ref := naiveCalibPower(s, calib, k); math.Abs(s2/ref-1) > 1e-9 {
						t.Errorf("%d coils, %d² centre: σ² %g, naive mean |y|² %g", coils, calib, s2, ref)
					}
				}
			}
			mean := sum / seeds
			t.Logf("%2d coils, %d² centre: mean σ̂/σ %.4f", coils, calib, mean)
			if math.Abs(mean-1) > 0.015 {
				t.Errorf("%d coils, %d² centre: mean σ̂/σ %.4f over %d seeds", coils, calib, mean, seeds)
			}
		}
	}
}

// naiveCalibPower is the mean |y|² over the entries of the calibration
// matrix (every k×k patch of the centred b×b block, every coil), in float64.
func naiveCalibPower(s *mri.Scan, b, k int) float64 {
	var sum float64
	var cnt int
	r0, c0 := s.Rows/2-b/2, s.Cols/2-b/2
	for pr := r0; pr+k <= r0+b; pr++ {
		for pc := c0; pc+k <= c0+b; pc++ {
			for c := 0; c < s.Coils; c++ {
				for u := 0; u < k; u++ {
					for v := 0; v < k; v++ {
						y := complex128(s.KSpace[c*s.Rows*s.Cols+(pr+u)*s.Cols+pc+v])
						sum += real(y)*real(y) + imag(y)*imag(y)
						cnt++
					}
				}
			}
		}
	}
	return sum / float64(cnt)
}

// TestCalibEigenvaluesNaive: the eigenvalues of the calibration Gram matrix
// against a naive float64 reference, the explicit patch matrix A: Σλ =
// ‖A‖²_F and Σλ² = ‖AᴴA‖²_F, for both Gram orientations (4 coils: 64 rows
// < 100 columns; 144 rows > 100 columns).
func TestCalibEigenvaluesNaive(t *testing.T) {
	t.Parallel()
	const k = 5
	for _, b := range []int{12, 16} {
		s := whiteNoiseScan(4, 40, 36, b, 1, uint64(b))
		// A, naively: rows = patches, columns = (coil, u, v).
		var a [][]complex128
		r0, c0 := s.Rows/2-b/2, s.Cols/2-b/2
		for pr := r0; pr+k <= r0+b; pr++ {
			for pc := c0; pc+k <= c0+b; pc++ {
				var row []complex128
				for c := 0; c < s.Coils; c++ {
					for u := 0; u < k; u++ {
						for v := 0; v < k; v++ {
							row = append(row, complex128(s.KSpace[c*s.Rows*s.Cols+(pr+u)*s.Cols+pc+v]))
						}
					}
				}
				a = append(a, row)
			}
		}
		var tr, fro float64
		for _, row := range a {
			for _, y := range row {
				tr += real(y)*real(y) + imag(y)*imag(y)
			}
		}
		cols := len(a[0])
		for i := 0; i < cols; i++ {
			for j := 0; j < cols; j++ {
				var g complex128
				for _, row := range a {
					g += complex(real(row[i]), -imag(row[i])) * row[j]
				}
				fro += real(g)*real(g) + imag(g)*imag(g)
			}
		}
		ev, rows, gotCols := mri.CalibEigenvalues(s, b, k)
		if rows != len(a) || gotCols != cols || len(ev) != min(rows, cols) {
			t.Fatalf("b %d: %d×%d with %d eigenvalues, want %d×%d", b, rows, gotCols, len(ev), len(a), cols)
		}
		var s1, s2 float64
		for i, l := range ev {
			if i > 0 && l > ev[i-1] {
				t.Fatalf("b %d: eigenvalues not descending at %d", b, i)
			}
			s1 += l
			s2 += l * l
		}
		if math.Abs(s1/tr-1) > 1e-9 || math.Abs(s2/fro-1) > 1e-9 {
			t.Errorf("b %d: Σλ %g vs ‖A‖² %g, Σλ² %g vs ‖AᴴA‖² %g", b, s1, tr, s2, fro)
		}
	}
}
