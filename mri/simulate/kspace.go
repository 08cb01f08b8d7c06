package simulate

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/kspaced/kspaced/fft"
	"github.com/kspaced/kspaced/mri"
)

// KSpace simulates a scan of the rows×cols image img through coil maps
// ([coil][row][col]): y = M·F·S·x + M·n, with F the centred orthonormal FFT
// and n white complex Gaussian noise, independent across coils, of variance
// E|n|² = noiseStd² (noiseStd/√2 in each of the real and imaginary parts).
// mask ([row][col], 0 or 1) selects the sampled locations; nil samples all.
// The Scan's NoiseCov is noiseStd²·I. rng may be nil only when noiseStd is 0.
func KSpace(img, maps []complex64, coils, rows, cols int, mask []float32, noiseStd float64, rng *rand.Rand) (*mri.Scan, error) {
	if coils < 1 || coils > mri.MaxCoils {
		return nil, fmt.Errorf("simulate k-space: coil count %d outside [1, %d]", coils, mri.MaxCoils)
	}
	if rows < 1 || rows > mri.MaxDim || cols < 1 || cols > mri.MaxDim {
		return nil, fmt.Errorf("simulate k-space: matrix %d×%d outside [1, %d]", rows, cols, mri.MaxDim)
	}
	npix := rows * cols
	if len(img) != npix {
		return nil, fmt.Errorf("simulate k-space: image has %d pixels, want %d × %d", len(img), rows, cols)
	}
	if len(maps) != coils*npix {
		return nil, fmt.Errorf("simulate k-space: maps have %d values, want %d coils × %d × %d", len(maps), coils, rows, cols)
	}
	if mask != nil && len(mask) != npix {
		return nil, fmt.Errorf("simulate k-space: mask has %d entries, want %d × %d", len(mask), rows, cols)
	}
	if !(noiseStd >= 0) || math.IsInf(noiseStd, 0) {
		return nil, fmt.Errorf("simulate k-space: noise std %v is not a finite non-negative number", noiseStd)
	}
	if noiseStd > 0 && rng == nil {
		return nil, errors.New("simulate k-space: noise requested without a random source")
	}
	m := make([]float32, npix)
	for i := range m {
		switch {
		case mask == nil:
			m[i] = 1
		case mask[i] == 0 || mask[i] == 1:
			m[i] = mask[i]
		default:
			return nil, fmt.Errorf("simulate k-space: mask entry %d is %v, want 0 or 1", i, mask[i])
		}
	}
	ksp := make([]complex64, coils*npix)
	for c := 0; c < coils; c++ {
		s, d := maps[c*npix:(c+1)*npix], ksp[c*npix:(c+1)*npix]
		for i := range d {
			d[i] = s[i] * img[i]
		}
	}
	fft.Forward(ksp, ksp, rows, cols)
	sd := noiseStd / math.Sqrt2
	for c := 0; c < coils; c++ {
		d := ksp[c*npix : (c+1)*npix]
		for i := range d {
			if m[i] == 0 {
				d[i] = 0
				continue
			}
			if sd > 0 {
				d[i] += complex(float32(sd*rng.NormFloat64()), float32(sd*rng.NormFloat64()))
			}
		}
	}
	cov := make([]complex64, coils*coils)
	for c := 0; c < coils; c++ {
		cov[c*coils+c] = complex(float32(noiseStd*noiseStd), 0)
	}
	return &mri.Scan{Coils: coils, Rows: rows, Cols: cols, KSpace: ksp, Mask: m, NoiseCov: cov}, nil
}
