// Package mri holds the scan model, sampling masks, the measurement operator
// and classical reconstruction for Cartesian multi-coil MRI.
package mri

import (
	"fmt"
	"math"
)

// Scan is one 2-D Cartesian slice of multi-coil k-space.
type Scan struct {
	Coils, Rows, Cols int
	// KSpace is [coil][ky][kx], row-major, with zeros where nothing was sampled.
	KSpace []complex64
	// Mask is [ky][kx]: 1 where k-space was sampled, 0 elsewhere.
	Mask []float32
	// NoiseCov is the coils×coils noise covariance (row-major), or nil when unknown.
	NoiseCov []complex64
}

// MaxDim bounds every image dimension read from a file or a flag, so a corrupt
// header cannot ask for an absurd allocation.
const MaxDim = 4096

// MaxCoils bounds the coil count for the same reason.
const MaxCoils = 256

// Validate checks shapes and that every sample is finite.
func (s *Scan) Validate() error {
	if s.Coils < 1 || s.Coils > MaxCoils {
		return fmt.Errorf("coil count %d outside [1, %d]", s.Coils, MaxCoils)
	}
	if s.Rows < 1 || s.Rows > MaxDim || s.Cols < 1 || s.Cols > MaxDim {
		return fmt.Errorf("matrix %d×%d outside [1, %d]", s.Rows, s.Cols, MaxDim)
	}
	if len(s.KSpace) != s.Coils*s.Rows*s.Cols {
		return fmt.Errorf("k-space has %d samples, want %d coils × %d × %d", len(s.KSpace), s.Coils, s.Rows, s.Cols)
	}
	if len(s.Mask) != s.Rows*s.Cols {
		return fmt.Errorf("mask has %d entries, want %d × %d", len(s.Mask), s.Rows, s.Cols)
	}
	if s.NoiseCov != nil && len(s.NoiseCov) != s.Coils*s.Coils {
		return fmt.Errorf("noise covariance has %d entries, want %d × %d", len(s.NoiseCov), s.Coils, s.Coils)
	}
	for i, v := range s.KSpace {
		if !finite(v) {
			return fmt.Errorf("k-space sample %d is not finite (%v)", i, v)
		}
	}
	for i, m := range s.Mask {
		if m != 0 && m != 1 {
			return fmt.Errorf("mask entry %d is %v, want 0 or 1", i, m)
		}
	}
	return nil
}

// SampledFraction is the fraction of k-space locations in the mask.
func (s *Scan) SampledFraction() float64 {
	n := 0
	for _, m := range s.Mask {
		if m != 0 {
			n++
		}
	}
	return float64(n) / float64(len(s.Mask))
}

func finite(v complex64) bool {
	r, i := float64(real(v)), float64(imag(v))
	return !math.IsNaN(r) && !math.IsInf(r, 0) && !math.IsNaN(i) && !math.IsInf(i, 0)
}

// SENSE builds the scan's measurement operator from coil maps
// [coil][rows][cols], checking shapes first (NewSENSE panics on a mismatch).
func (s *Scan) SENSE(maps []complex64) (*SENSE, error) {
	if err := CheckSENSE(maps, s.Coils, s.Rows, s.Cols, s.Mask); err != nil {
		return nil, err
	}
	return NewSENSE(maps, s.Coils, s.Rows, s.Cols, s.Mask), nil
}
