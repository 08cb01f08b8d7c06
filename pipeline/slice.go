package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/mri"
)

// sliceResult is one reconstructed slice, all images [rows][cols].
type sliceResult struct {
	Image      []complex64 // the reconstruction (posterior mean for sampling methods)
	ZeroFilled []complex64 // coil-combined zero-filled image, for previews
	Std        []float32   // pixelwise posterior std of the magnitude; nil for classical methods
	Residual   float64     // ‖M(y − A x)‖ / ‖y‖
	Iterations int
	NoiseVar   float64 // per-sample noise variance after whitening; 0 when unknown
	Warnings   []string
}

// reconstructSlice prewhitens s (in place) when it carries a noise
// covariance, estimates coil maps, and reconstructs with rc.Method.
func reconstructSlice(ctx context.Context, s *mri.Scan, rc *configs.Recon, timings map[string]float64) (*sliceResult, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadInput, err)
	}
	res := &sliceResult{}
	n := s.Rows * s.Cols
	if s.NoiseCov != nil {
		// Whiten with the covariance divided by its mean variance: coils are
		// decorrelated but the image keeps its units, and the noise left is
		// white with that mean variance.
		var tr float64
		for c := 0; c < s.Coils; c++ {
			tr += float64(real(s.NoiseCov[c*s.Coils+c]))
		}
		if tr > 0 {
			res.NoiseVar = tr / float64(s.Coils)
			for i := range s.NoiseCov {
				s.NoiseCov[i] /= complex(float32(res.NoiseVar), 0)
			}
		}
		if err := mri.Prewhiten(s, nil); err != nil {
			res.NoiseVar = 0
			res.Warnings = append(res.Warnings, "noise covariance unusable, data not prewhitened: "+err.Error())
		}
	}
	stop := timer(timings, "coil_maps")
	maps, warn, err := coilMaps(ctx, s, rc.CoilMaps)
	if warn != "" {
		res.Warnings = append(res.Warnings, warn)
	}
	stop()
	if err != nil {
		return nil, err
	}
	op := mri.NewSENSE(maps, s.Coils, s.Rows, s.Cols, s.Mask)

	res.ZeroFilled = make([]complex64, n)
	if err := mri.ZeroFilled(res.ZeroFilled, s, maps); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadInput, err)
	}
	// Scale so the zero-filled image peaks at 1: regularisation weights then
	// mean the same thing for every scanner and protocol.
	scale := 0.0
	for _, v := range res.ZeroFilled {
		scale = math.Max(scale, cabs(v))
	}
	if scale == 0 {
		return nil, fmt.Errorf("%w: k-space holds no signal (all sampled values are zero)", ErrBadInput)
	}
	y := make([]complex64, len(s.KSpace))
	inv := complex(float32(1/scale), 0)
	for i, v := range s.KSpace {
		y[i] = v * inv
	}

	x := make([]complex64, n)
	stop = timer(timings, "reconstruction")
	switch rc.Method {
	case "zero-filled":
		copy(x, res.ZeroFilled)
		for i := range x {
			x[i] *= inv
		}
	case "cg-sense":
		res.Iterations, _, err = mri.CGSENSE(ctx, x, op, y, rc.Lambda, rc.Iterations, rc.Tolerance, nil)
	case "l1-wavelet":
		res.Iterations, err = mri.L1Wavelet(ctx, x, op, y, s.Rows, s.Cols, mri.L1Options{
			Lambda: rc.Lambda, MaxIter: rc.Iterations, Tol: rc.Tolerance, Shift: true, Seed: rc.Sampler.Seed,
		})
	default:
		err = fmt.Errorf("method %q is not available in this build", rc.Method)
	}
	stop()
	if err != nil {
		return nil, err
	}
	res.Residual = residual(op, x, y)
	for i := range x {
		x[i] *= complex(float32(scale), 0)
	}
	res.Image = x
	return res, nil
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
	if acs := mri.ACSWidth(s.Mask, s.Rows, s.Cols); acs > 0 && cm.Kernel > max(3, acs/2) {
		warning = fmt.Sprintf("calibration region only %d lines wide: ESPIRiT kernel reduced from %d to %d", acs, cm.Kernel, max(3, acs/2))
		cm.Kernel = max(3, acs/2)
	}
	maps, err = mri.ESPIRiT(ctx, s.KSpace, s.Coils, s.Rows, s.Cols, s.Mask, mri.ESPIRiTOptions{
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

// residual is ‖y − A x‖ / ‖y‖ over the sampled locations.
func residual(op mri.Operator, x, y []complex64) float64 {
	ax := make([]complex64, op.OutLen())
	op.Forward(ax, x)
	var num, den float64
	for i := range y {
		d := y[i] - ax[i]
		num += sq(d)
		den += sq(y[i])
	}
	if den == 0 {
		return 0
	}
	return math.Sqrt(num / den)
}

func sq(v complex64) float64 {
	return float64(real(v))*float64(real(v)) + float64(imag(v))*float64(imag(v))
}

func cabs(v complex64) float64 { return math.Sqrt(sq(v)) }

var errNoKSpace = errors.New("no k-space file among the inputs")
