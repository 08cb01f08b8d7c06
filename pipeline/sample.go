package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/device"
	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/posterior"
	"github.com/kspaced/kspaced/priors"
	"github.com/kspaced/kspaced/priors/builtin"
)

// prior is a loaded diffusion prior with what inference must honour.
type prior struct {
	d       priors.Denoiser
	name    string
	dev     Device
	release func() // gives the prior and the device back
}

// PriorName names the prior of recon.sampler.prior for reports and DICOM
// headers: the checkpoint's file name, or the built-in prior with the start
// of its SHA-256 when the path is empty.
func PriorName(path string) string {
	if path == "" {
		return fmt.Sprintf("%s (sha256 %.12s)", builtin.Name, builtin.SHA256())
	}
	return filepath.Base(path)
}

// loadPrior waits for the device (dev; nil: the CPU) and takes the
// checkpoint named by rc.Sampler.Prior on it for the sampling methods;
// classical methods need neither. The caller calls release when done.
func loadPrior(ctx context.Context, rc *configs.Recon, dev Device) (*prior, error) {
	if !rc.Sampling() {
		return nil, nil
	}
	if dev == nil && rc.Device == "cpu" {
		dev = device.CPU()
	}
	if dev == nil || dev.Name() != rc.Device {
		return nil, fmt.Errorf("%w: recon.device is %q but no such device was opened for this job", ErrConfig, rc.Device)
	}
	freeDev, err := dev.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	d, info, freePrior, err := dev.Prior(rc.Sampler.Prior)
	if err != nil {
		freeDev()
		return nil, fmt.Errorf("%w: recon.sampler.prior: load prior: %w", ErrConfig, err)
	}
	release := func() { freePrior(); freeDev() }
	if s := info.Normalisation.Scheme; s != "" && s != NormalisationScheme {
		release()
		return nil, fmt.Errorf("%w: prior %s was trained with normalisation %q; kspaced applies %q", ErrConfig, PriorName(rc.Sampler.Prior), s, NormalisationScheme)
	}
	name := PriorName(rc.Sampler.Prior)
	if info.Provenance.EMLap > 0 {
		name += fmt.Sprintf(" (%s, EM lap %d)", info.Kind, info.Provenance.EMLap)
	}
	return &prior{d: d, name: name, dev: dev, release: release}, nil
}

// sliceBatch is how many slices of rows×cols samplePosterior takes at once
// for rc (1 for classical methods): recon.sampler.batch_pixels bounds
// samples × rows × cols summed over the slices (about 2 KB of network
// activations per pixel on the CPU, measured at 320²).
func sliceBatch(rc *configs.Recon, pr *prior, rows, cols int) int {
	if pr == nil {
		return 1
	}
	return max(1, rc.Sampler.BatchPixels/max(1, rc.Sampler.Samples*rows*cols))
}

// samplePosterior draws rc.Sampler.Samples posterior samples of each
// prepared slice of ps (all of one size), all slices' samples as one batch
// through the denoiser, and fills res[i] with slice i's mean, magnitude std
// and residual. Each slice's samples are those it would get alone (its own
// random stream, seeded by recon.sampler.seed), up to float rounding.
func samplePosterior(ctx context.Context, ps []*Prepared, pr *prior, rc *configs.Recon, res []*sliceResult, progress func(step, total int)) error {
	s0 := ps[0].Scan
	for i, p := range ps {
		if !(p.NoiseVar > 0) {
			return fmt.Errorf("%w: the noise level of this slice is unknown (no noise scan, and none could be estimated from the data); %s needs it for the likelihood and will not assume 0", ErrBadInput, rc.Method)
		}
		if p.Scan.Rows != s0.Rows || p.Scan.Cols != s0.Cols {
			return fmt.Errorf("slice %d is %d×%d, slice 0 of its batch %d×%d", i, p.Scan.Rows, p.Scan.Cols, s0.Rows, s0.Cols)
		}
	}
	if c, _, _ := pr.d.Shape(); c != 2 {
		return fmt.Errorf("%w: prior %s has %d channels, want 2 (complex images)", ErrBadInput, pr.name, c)
	}
	// A network prior serves any matrix (padded to its stride, cropped back).
	d, err := priors.ForSize(pr.d, s0.Rows, s0.Cols)
	if err != nil {
		return fmt.Errorf("%w: prior %s: %v", ErrBadInput, pr.name, err)
	}
	probs := make([]posterior.Problem, len(ps))
	ops := make([]mri.Operator, len(ps)) // full k-space, for the spread check
	for i, p := range ps {
		s := p.Scan
		var op mri.Operator = p.Op // the CPU's SENSE, built by Prepare
		if pr.dev.Name() != "cpu" {
			dop, err := pr.dev.Operator(p.Maps, s.Coils, s.Rows, s.Cols, s.Mask)
			if err != nil {
				return err
			}
			defer pr.dev.Release(dop)
			op = dop
		}
		ops[i] = op
		// The sampler sees only the sampled k-space: MMPS's CG then runs on a
		// quarter of the values at 4× (the unsampled ones are zeros of A's output).
		rop, err := posterior.Restrict(op, posterior.Measured(s.Mask, s.Coils))
		if err != nil {
			return err
		}
		y := make([]complex64, rop.OutLen())
		rop.Gather(y, s.KSpace)
		probs[i] = posterior.Problem{A: rop, Y: y, NoiseVar: p.NoiseVar, Scale: p.Scale}
	}
	sp := rc.Sampler
	cov, steps := samplerSettings(pr.d, rc)
	sv := sp.StepVariance
	if sv == posterior.StepVariancePosterior && (rc.Method != "mmps" || cov != posterior.CovDiagonal) {
		return fmt.Errorf("%w: recon.sampler.step_variance posterior needs mmps with the diagonal covariance; this run has %s with the %s one (prior %s)", ErrConfig, rc.Method, cov, pr.name)
	}
	var band [2]float64
	if j := sp.JacobianSigma; len(j) == 2 {
		band = [2]float64{j[0], j[1]}
	}
	opt := posterior.SampleOptions{
		Method: rc.Method, Covariance: cov, StepVariance: sv, Antithetic: sp.Antithetic, JacobianSigma: band, Precondition: sp.Precondition, Steps: steps, CGIter: sp.CGIterations, Samples: sp.Samples,
		Zeta: sp.Zeta, Seed: sp.Seed, Progress: progress,
	}
	posts, err := posterior.SamplePosteriors(ctx, d, probs, opt)
	if derr := pr.dev.Err(); derr != nil {
		return fmt.Errorf("device: %w", derr)
	}
	if err != nil {
		return err
	}
	if sp.SpreadCheck {
		opt.Progress = nil
		for i, p := range ps {
			s := p.Scan
			o := opt
			o.NoiseVar, o.Scale = probs[i].NoiseVar, probs[i].Scale
			sc, err := posterior.CheckSpread(ctx, d, ops[i], s.KSpace, s.Mask, s.Rows, s.Cols, s.Coils, o, posterior.HoldOutOptions{Seed: sp.Seed + uint64(i)})
			if derr := pr.dev.Err(); derr != nil {
				return fmt.Errorf("device: %w", derr)
			}
			if errors.Is(err, posterior.ErrNothingToHoldOut) {
				res[i].SpreadRatio = math.NaN()
				res[i].Warnings = append(res[i].Warnings, "spread check skipped: the mask measured nothing outside its calibration lines")
				continue
			}
			if err != nil {
				return err
			}
			res[i].SpreadRatio = sc.Ratio
		}
	}
	for i, post := range posts {
		// Where the coil maps vanish the data say nothing and the samples are
		// the prior's own background; the reconstruction is 0 there, as with
		// the classical methods (and `bart pics`).
		support := ps[i].Support()
		for k, in := range support {
			if !in {
				post.Mean[k], post.MagStd[k] = 0, 0
			}
		}
		r := res[i]
		r.Image, r.Std, r.Residual = post.Mean, post.MagStd, post.Residual
		r.DenoiserEvals, r.VJPs = post.DenoiserEvals, post.VJPs
		if rc.Reads("covariance") {
			r.Covariance, r.StepVariance = cov, sv
		}
	}
	return nil
}

// samplerSettings resolves recon.sampler's automatic choices for prior d:
// covariance auto is the diagonal one for a network that carries a
// covariance head (a Gaussian's exact Jacobian is cheap and exact), else the
// Jacobian one; steps 0 depend on the covariance.
func samplerSettings(d priors.Denoiser, rc *configs.Recon) (covariance string, steps int) {
	covariance, steps = rc.Sampler.Covariance, rc.Sampler.Steps
	if covariance == "auto" {
		covariance = posterior.CovJacobian
		if u, ok := d.(*priors.UNet); ok && u.Covariance() != nil {
			covariance = posterior.CovDiagonal
		}
	}
	if steps == 0 {
		steps = configs.DefaultSteps
		if covariance == posterior.CovDiagonal && rc.Reads("covariance") {
			steps = configs.DefaultDiagonalSteps
		}
	}
	return covariance, steps
}
