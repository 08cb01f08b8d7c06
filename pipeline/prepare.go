package pipeline

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/mri/espirit"
	"github.com/kspaced/kspaced/qc"
)

// NormalisationScheme is how a scan is mapped into a prior's image range;
// checkpoints record it and inference applies the same map.
const NormalisationScheme = "per-scan: divide by the 99th-percentile magnitude of the coil-combined zero-filled image"

// Prepared is one slice ready for reconstruction: prewhitened, with coil
// maps, its SENSE operator and the statistics that normalise it.
type Prepared struct {
	Scan       *mri.Scan // whitened in place
	Maps       []complex64
	Op         *mri.SENSE
	ZeroFilled []complex64 // coil-combined, [rows][cols]
	// Peak is max |ZeroFilled|; classical regularisation weights are relative to it.
	Peak float64
	// Scale is the 99th-percentile |ZeroFilled| (NormalisationScheme): prior
	// space image = image / Scale.
	Scale float64
	// NoiseVar is E|n|² of each whitened k-space sample in image units, from
	// the scan's noise covariance or else estimated from its data
	// (mri.EstimateNoise); 0 if unknown.
	NoiseVar float64
	// NoiseDeclared says the noise covariance came with the scan (a noise
	// scan) rather than from its data.
	NoiseDeclared bool
	Warnings      []string
}

// Prepare validates s, prewhitens it in place (with the covariance divided by
// its mean variance, so coils decorrelate and the image keeps its units),
// estimates coil maps, and builds the operator.
func Prepare(ctx context.Context, s *mri.Scan, cm configs.CoilMaps) (*Prepared, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadInput, err)
	}
	p := &Prepared{Scan: s, NoiseDeclared: s.NoiseCov != nil}
	if s.NoiseCov == nil && s.Coils > 0 {
		if est, err := mri.EstimateNoise(s); err == nil {
			s.NoiseCov = est.Cov
		} else {
			// Classical methods go on; sampling methods refuse (samplePosterior).
			p.Warnings = append(p.Warnings, "noise level unknown (no noise scan, none estimable from the data): "+err.Error())
		}
	}
	if s.NoiseCov != nil {
		var tr float64
		for c := 0; c < s.Coils; c++ {
			tr += float64(real(s.NoiseCov[c*s.Coils+c]))
		}
		if tr > 0 {
			p.NoiseVar = tr / float64(s.Coils)
			for i := range s.NoiseCov {
				s.NoiseCov[i] /= complex(float32(p.NoiseVar), 0)
			}
		}
		if err := mri.Prewhiten(s, nil); err != nil {
			p.NoiseVar = 0
			p.Warnings = append(p.Warnings, "noise covariance unusable, data not prewhitened: "+err.Error())
		}
	}
	maps, warn, err := coilMaps(ctx, s, cm)
	if err != nil {
		return nil, err
	}
	if warn != "" {
		p.Warnings = append(p.Warnings, warn)
	}
	p.Maps = maps
	p.Op = mri.NewSENSE(maps, s.Coils, s.Rows, s.Cols, s.Mask)
	p.ZeroFilled = make([]complex64, s.Rows*s.Cols)
	if err := mri.ZeroFilled(p.ZeroFilled, s, maps); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadInput, err)
	}
	mags := magnitudes(p.ZeroFilled)
	p.Peak = float64(slices.Max(mags))
	if p.Peak == 0 || math.IsNaN(p.Peak) {
		return nil, fmt.Errorf("%w: k-space holds no signal (all sampled values are zero)", ErrBadInput)
	}
	slices.Sort(mags)
	p.Scale = float64(mags[int(0.99*float64(len(mags)-1))])
	if p.Scale == 0 {
		p.Scale = p.Peak
	}
	return p, nil
}

// coilMaps estimates sensitivities by ESPIRiT. A calibration region narrower
// than two kernels gives too few patches for the signal subspace (maps then
// fail visibly), so the kernel shrinks to half the ACS width, never below 3.
func coilMaps(ctx context.Context, s *mri.Scan, cm configs.CoilMaps) (maps []complex64, warning string, err error) {
	if s.Coils == 1 {
		maps = make([]complex64, s.Rows*s.Cols)
		for i := range maps {
			maps[i] = 1
		}
		return maps, "", nil
	}
	if acs := espirit.ACSWidth(s.Mask, s.Rows, s.Cols); acs > 0 && cm.Kernel > max(3, acs/2) {
		warning = fmt.Sprintf("calibration region only %d lines wide: ESPIRiT kernel reduced from %d to %d", acs, cm.Kernel, max(3, acs/2))
		cm.Kernel = max(3, acs/2)
	}
	maps, err = espirit.Maps(ctx, s.KSpace, s.Coils, s.Rows, s.Cols, s.Mask, espirit.Options{
		Calib: cm.Calib, Kernel: cm.Kernel, Threshold: cm.Threshold, Crop: cm.Crop,
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", err
		}
		return nil, "", fmt.Errorf("%w: coil sensitivity estimation (ESPIRiT): %v", ErrBadInput, err)
	}
	return maps, warning, nil
}

// QCSlice is the slice as package qc measures it, with the reconstruction
// img (image units) and, for sampling methods, the posterior std.
func (p *Prepared) QCSlice(img []complex64, std []float32) *qc.Slice {
	s := p.Scan
	return &qc.Slice{Op: p.Op, Coils: s.Coils, Rows: s.Rows, Cols: s.Cols, KSpace: s.KSpace, Mask: s.Mask,
		Image: img, NoiseVar: p.NoiseVar, DeclaredNoise: p.NoiseDeclared, Std: std, Scale: p.Scale}
}

// Support reports, per pixel, whether the coil maps cover it (Σ_c |S_c|² >
// 1/2: ESPIRiT maps are about 1 inside the object's support and 0 where
// they were cropped). Single-coil scans without maps cover every pixel.
func (p *Prepared) Support() []bool {
	s := p.Scan
	n := s.Rows * s.Cols
	in := make([]bool, n)
	if len(p.Maps) < s.Coils*n {
		for i := range in {
			in[i] = true
		}
		return in
	}
	for i := range in {
		var e float32
		for c := 0; c < s.Coils; c++ {
			q := p.Maps[c*n+i]
			e += real(q)*real(q) + imag(q)*imag(q)
		}
		in[i] = e > 0.5
	}
	return in
}
