package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/qc"
)

// sliceResult is one reconstructed slice, all images [rows][cols].
type sliceResult struct {
	Image      []complex64 // the reconstruction (posterior mean for sampling methods)
	ZeroFilled []complex64 // coil-combined zero-filled image, for previews
	Std        []float32   // pixelwise posterior std of the magnitude; nil for classical methods
	Residual   float64     // ‖M(y − A x)‖ / ‖y‖
	Iterations int
	// Denoiser evaluations and VJPs per posterior sample (sampling methods).
	DenoiserEvals, VJPs int
	Covariance          string  // MMPS's covariance as resolved (samplerSettings)
	StepVariance        string  // recon.sampler.step_variance as used
	NoiseVar            float64 // per-sample noise variance after whitening; 0 when unknown
	SpreadRatio         float64 // recon.sampler.spread_check's ratio (0: not checked; NaN: none, nothing held out or noise explains it)
	StdScale            float64 // the factor Std was multiplied by (stdScale)
	PixelMM             float64 // in-plane pixel size StdScale was chosen for (0: unknown)
	Warnings            []string
	QC                  *qc.Result // nil when it could not be measured
}

// reconstructSlice prepares s (whitening it in place) and reconstructs it
// with rc.Method.
func reconstructSlice(ctx context.Context, s *mri.Scan, rc *configs.Recon, pr *prior, env *qcEnv, timings map[string]float64, steps func(step, total int)) (*sliceResult, error) {
	res, err := reconstructSlices(ctx, []*mri.Scan{s}, 0, rc, pr, env, timings, steps)
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

// reconstructSlices is reconstructSlice for slices of one size and in-plane
// pixel size pixelMM (0: unknown, for the std calibration); a sampling
// method samples them all as one batch (samplePosterior).
func reconstructSlices(ctx context.Context, scans []*mri.Scan, pixelMM float64, rc *configs.Recon, pr *prior, env *qcEnv, timings map[string]float64, steps func(step, total int)) ([]*sliceResult, error) {
	ps := make([]*Prepared, len(scans))
	res := make([]*sliceResult, len(scans))
	for i, s := range scans {
		stop := timer(timings, "prepare")
		p, err := Prepare(ctx, s, rc.CoilMaps)
		stop()
		if err != nil {
			return nil, err
		}
		ps[i] = p
		res[i] = &sliceResult{ZeroFilled: p.ZeroFilled, NoiseVar: p.NoiseVar, Warnings: p.Warnings}
	}
	if pr != nil {
		stop := timer(timings, "sampling")
		err := samplePosterior(ctx, ps, pr, rc, res, steps)
		stop()
		if err != nil {
			return nil, err
		}
	} else {
		for i, p := range ps {
			stop := timer(timings, "reconstruction")
			x, it, relres, err := ReconstructClassical(ctx, p, rc)
			stop()
			if err != nil {
				return nil, err
			}
			res[i].Image, res[i].Iterations, res[i].Residual = x, it, relres
		}
	}
	for i, p := range ps {
		stop := timer(timings, "qc")
		measureQC(ctx, p, res[i], rc, env)
		// After QC: its uncertainty calibration is of the std as sampled.
		if res[i].Std != nil {
			res[i].StdScale, res[i].PixelMM = stdScale(rc, env, res[i].SpreadRatio, pixelMM), pixelMM
			for k := range res[i].Std {
				res[i].Std[k] *= float32(res[i].StdScale)
			}
		}
		stop()
	}
	return res, nil
}

// ReconstructClassical reconstructs a prepared slice with the classical
// method rc.Method and returns the image (in the units of the whitened
// k-space), the iterations run and ‖y − A x‖/‖y‖ over the sampled k-space.
func ReconstructClassical(ctx context.Context, p *Prepared, rc *configs.Recon) (x []complex64, iters int, relres float64, err error) {
	s := p.Scan
	op := p.Op
	// Classical methods work on k-space scaled so the zero-filled image
	// peaks at 1: regularisation weights then mean the same thing for every
	// scanner and protocol.
	scale := p.Peak
	y := make([]complex64, len(s.KSpace))
	inv := complex(float32(1/scale), 0)
	for i, v := range s.KSpace {
		y[i] = v * inv
	}
	x = make([]complex64, s.Rows*s.Cols)
	run, ok := classical[rc.Method]
	if !ok {
		return nil, 0, 0, fmt.Errorf("method %q is not available in this build", rc.Method)
	}
	if iters, err = run(ctx, x, y, p, rc); err != nil {
		return nil, 0, 0, err
	}
	relres = residual(op, x, y)
	for i := range x {
		x[i] *= complex(float32(scale), 0)
	}
	return x, iters, relres, nil
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

// stdScale is what a sampled slice's std is multiplied by: the slice's own
// spread-check ratio when recon.sampler.spread_check ran and gave one, else
// recon.sampler.std_scale, else the prior's spread calibration at the
// slice's pixel size, else 1.
func stdScale(rc *configs.Recon, env *qcEnv, spreadRatio, pixelMM float64) float64 {
	switch {
	case rc.Sampler.SpreadCheck && spreadRatio > 0 && !math.IsInf(spreadRatio, 0): // NaN: no ratio
		return spreadRatio
	case rc.Sampler.StdScale > 0:
		return rc.Sampler.StdScale
	case env != nil && env.cal != nil:
		return env.cal.StdScale(pixelMM)
	}
	return 1
}
