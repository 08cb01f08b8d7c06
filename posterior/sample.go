package posterior

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/mri/cg"
	"github.com/kspaced/kspaced/priors"
)

// SampleOptions configures SamplePosterior. Zero values take the defaults
// named below.
type SampleOptions struct {
	// Method is "mmps" (default: moment-matching posterior sampling) or
	// "dps" (diffusion posterior sampling, the baseline).
	Method string
	// Sampler is "ddpm" (default: ancestral) or "ddim" (deterministic, η = 0).
	Sampler string
	// Steps is the number of denoiser evaluations per sample, on the grid of
	// TimeGrid (default 64, at least 2).
	Steps int
	// CGIter is the most conjugate-gradient iterations MMPS runs per step;
	// each costs one VJP of the denoiser (default 3, recon.sampler's
	// cg_iterations in configs/default.yaml).
	CGIter int
	// CGTol stops a sample's CG early once its residual norm is below CGTol
	// times its initial one (0: always run CGIter iterations with the
	// Jacobian covariance, DiagCGTol with the diagonal one).
	CGTol float64
	// Covariance is MMPS's Cov[x | x_t]: "jacobian" (σ²·∂d/∂x_t through
	// CGIter VJPs per step, exact for the network) or "diagonal" (the
	// prior's diagonal covariance, OCM: priors.DiagCovariance, a Gaussian's
	// exact one or a U-Net's covariance head; one denoiser and one head pass
	// per step, CG without network calls). Default DefaultCovariance.
	Covariance string
	// DiagCGIter caps the CG iterations per step with the diagonal
	// covariance (default DefaultDiagCGIter; CGIter is for the Jacobian
	// one); CG stops earlier at CGTol (default DiagCGTol).
	DiagCGIter int
	// StepVariance is what DDPM's ancestral step draws around its mean:
	// "ddpm" the forward process's σ_s²(1 − σ_s²/σ_t²) alone, which omits
	// (1 − σ_s²/σ_t²)²·Cov[x | x_t, y] and so loses variance (16 % at 64
	// steps on a Gaussian), or "posterior" that term as well, drawn from
	// MMPS's Gaussian posterior by Matheron's rule (one more CG solve per
	// step, no network call; the diagonal covariance only, the Jacobian one
	// has no square root to draw from). Default StepVarianceDDPM.
	StepVariance string
	// Antithetic draws the samples in pairs whose random draws are negatives
	// of each other (the start, every step's noise and the posterior step
	// draw): each sample is still a posterior sample, but where the sampler
	// is nearly linear in its noise, as for a Gaussian posterior, a pair's
	// errors cancel in the mean. An odd last sample has its own draws.
	Antithetic bool
	// JacobianSigma [lo, hi], with the diagonal covariance, runs the steps
	// whose σ lies in it with the Jacobian covariance instead (CGIter VJPs
	// each, every iteration): the diagonal leaves out the covariance's
	// correlations, which cost most in the middle of the σ range
	// (docs/bench/sampling.md). Zero: none.
	JacobianSigma [2]float64
	// Precondition preconditions the Jacobian covariance's CG (the steps of
	// JacobianSigma, or every step with covariance "jacobian") by the
	// diagonal covariance's system Σ_y + A diag(c) Aᴴ, solved by an inner
	// CG without network calls (DiagCGIter, CGTol or DiagCGTol). It needs a
	// prior with a diagonal covariance (priors.DiagCovariance) and costs one
	// head pass per such step; the VJPs stay CGIter per step, but fewer
	// of them reach what more unpreconditioned ones do.
	Precondition bool
	// Samples is the number of posterior samples, drawn as one batch
	// (default DefaultSamples, as recon.sampler.samples in
	// configs/default.yaml).
	Samples int
	// Zeta is the DPS step size ζ: after each unconditional update x_s moves
	// by −ζ/‖y − A x̂‖ · ∇_{x_t}‖y − A x̂‖². Unused by MMPS.
	Zeta float64
	// HardDC replaces the measured part of every denoised estimate by the
	// data, x̂ ← x̂ + Aᴴ(y − A x̂). It needs A to be a partial isometry
	// (A Aᴴ A = A, as a masked orthonormal FFT is), which is checked.
	HardDC bool
	// Seed makes the run reproducible: equal seeds and inputs give equal samples.
	Seed uint64
	// NoiseVar is σ_y² = E|n|², the variance of the complex noise of each
	// k-space sample in image units (its real and imaginary parts have
	// σ_y²/2 each); 1 for prewhitened multi-coil data. It may be 0.
	NoiseVar float64
	// NoiseVarDiag, when set, gives σ_y² per measurement (length A.OutLen())
	// and overrides NoiseVar.
	NoiseVarDiag []float32
	// Scale maps prior space to image units: image = Scale · prior-space
	// image (default 1). The sampler works on y/Scale with noise variance
	// σ_y²/Scale² and returns images in image units.
	Scale float64
	// Progress, when set, is called after each of the Steps steps.
	Progress func(step, total int)
}

// Posterior holds the samples of one slice and their pixelwise statistics,
// all in image units, images [rows][cols].
type Posterior struct {
	Rows, Cols int
	// Samples holds the Samples posterior samples, [sample][rows][cols].
	Samples []complex64
	// Mean is the sample mean (the reconstruction); Std is the complex
	// standard deviation √(Σ|x − Mean|²/(N−1)) (zero for one sample).
	Mean []complex64
	Std  []float32
	// MagMean and MagStd are the mean and standard deviation (N−1 in the
	// denominator) of the samples' magnitudes.
	MagMean, MagStd []float32
	// Residual is the data-consistency residual ‖y − A·Mean‖/‖y‖.
	Residual float64
	// DenoiserEvals and VJPs count, per sample, the denoiser evaluations and
	// vector–Jacobian products the run made (a batched call counts once).
	DenoiserEvals, VJPs int
	// CGIterations is MMPS's mean number of CG iterations per step and sample.
	CGIterations float64
	// Scale is the prior-to-image scale the run used.
	Scale float64
}

// SamplePosterior draws opt.Samples posterior samples of the image behind the
// measurements y = A x + n under the diffusion prior d, as one batch, and
// summarises them. A maps rows×cols complex images to A.OutLen() values and
// d must have two channels (real, imaginary) of that shape.
//
// Every step evaluates the denoiser once for the whole batch at σ_t; MMPS
// adds CGIter VJPs per step, DPS one VJP per step except the last. The
// sampler runs on the time grid of TimeGrid, starts from x ~ N(0, SigmaMax²I)
// and returns the (posterior) denoiser's estimate at SigmaMin.
func SamplePosterior(ctx context.Context, d priors.Denoiser, A mri.Operator, y []complex64, opt SampleOptions) (*Posterior, error) {
	s, err := newSampler(d, A, y, opt)
	if err != nil {
		return nil, err
	}
	if err := s.run(ctx); err != nil {
		return nil, err
	}
	return s.summarise(0), nil
}

// Problem is one image's measurements y = A x + n for SamplePosteriors,
// with the SampleOptions fields that differ between images (NoiseVar,
// NoiseVarDiag, Scale; their meaning and defaults as there).
type Problem struct {
	A            mri.Operator
	Y            []complex64
	NoiseVar     float64
	NoiseVarDiag []float32
	Scale        float64
}

// SamplePosteriors is SamplePosterior for several images (the slices of a
// volume) at once: the opt.Samples samples of every problem go through the
// denoiser as one batch, so each step makes one network call for all of
// them. opt's NoiseVar, NoiseVarDiag and Scale are ignored (each Problem
// has its own). Every problem's samples equal what SamplePosterior draws for
// it alone with the same options (each problem has its own random stream
// seeded by opt.Seed), up to the denoiser's batch invariance.
func SamplePosteriors(ctx context.Context, d priors.Denoiser, probs []Problem, opt SampleOptions) ([]*Posterior, error) {
	s, err := newBatchSampler(d, probs, opt)
	if err != nil {
		return nil, err
	}
	if err := s.run(ctx); err != nil {
		return nil, err
	}
	out := make([]*Posterior, len(probs))
	for g := range probs {
		out[g] = s.summarise(g)
	}
	return out, nil
}

type sampler struct {
	d     priors.Denoiser
	dd    priors.DiagDenoiser // the diagonal covariance's prior, nil with the Jacobian one
	cdiag []float32           // [nb][n]: diag Cov[x | x_t] (diagonal covariance)
	draw  []float32           // [nb][n]: a draw of N(0, Cov[x | x_t, y]) (StepVariancePosterior)
	opt   SampleOptions
	mmps  bool
	ddim  bool
	rows  int
	cols  int
	grp   []*group    // the problems; sample j belongs to grp[j/per]
	per   int         // samples per problem
	nb    int         // batch: all samples of all problems
	hw    int         // pixels per image
	n     int         // real values per image, 2·hw
	x, e  []float32   // [nb][n]: current x_t, (posterior) estimate
	xhat  []float32   // [nb][n]: unconditional estimate
	bufP  []float32   // [nb][n]: VJP input
	bufQ  []float32   // [nb][n]: VJP output
	bufW  []float32   // [nb][n]: MMPS running J Aᴴ u
	sig   []float32   // [nb]
	ci    []complex64 // [hw]
	co    []complex64 // [largest m]
	res   []complex64 // [nb][m of the sample's problem]
	dir   []complex64 // [nb][m of the sample's problem]: CG search directions
	// MMPS's lockstep CG (newMMPS): per-sample views of res and dir, the
	// step's VJP and σ².
	resJ, dirJ   [][]complex64
	cg           *cg.Solver[[]complex64]
	cgJac        cg.Problem[[]complex64] // the Jacobian covariance's system
	cgDiag       cg.Problem[[]complex64] // the diagonal covariance's system
	jacLo, jacHi float64                 // SampleOptions.JacobianSigma with the diagonal covariance (jacHi 0: none)
	vjp          func(dst, v []float32) error
	s2           float64
	rnorm        []float64 // [nb]: DPS ‖y − A x̂‖
	times        []float64
	evals        int
	vjps         int

	// SampleOptions.Precondition: the prior's diagonal covariance (nil
	// without), the Jacobian CG's z = P⁻¹r, and precondDiag's inner CG:
	// its sample, solution and scratch.
	pre                    priors.DiagDenoiser
	inJ                    int
	cz, inZ, inR, inP, inQ []complex64
	cgIn                   *cg.Solver[[]complex64]
	cgInP                  cg.Problem[[]complex64]
}

// group is one problem of the batch: its operator, data, noise and random
// stream.
type group struct {
	A       mri.Operator
	m       int // measurements
	yImage  []complex64
	y       []complex64 // y / Scale
	noise   []float64   // per-component noise variance σ_y²/(2 Scale²) per measurement
	scale   float64
	rng     *rand.Rand
	cgIters int // summed over steps and the group's samples
	// pairs is the number of antithetic sample pairs (0 without
	// SampleOptions.Antithetic); z is normals' buffer and prev the draw a
	// pair's second sample mirrors.
	pairs   int
	z, prev []float64
}

// normals returns cnt standard normal draws for the group's sample j: fresh
// from the group's stream, or the negatives of sample j−1's when j is the
// second of an antithetic pair. Without pairs the stream is consumed exactly
// as drawing inline would. The slice is valid until the next call.
func (gr *group) normals(j, cnt int) []float64 {
	if cap(gr.z) < cnt {
		gr.z = make([]float64, cnt)
	}
	z := gr.z[:cnt]
	if j < 2*gr.pairs && j%2 == 1 {
		for i, v := range gr.prev[:cnt] {
			z[i] = -v
		}
		return z
	}
	for i := range z {
		z[i] = gr.rng.NormFloat64()
	}
	if j < 2*gr.pairs {
		gr.prev = append(gr.prev[:0], z...)
	}
	return z
}

// of is the problem of sample j.
func (s *sampler) of(j int) *group { return s.grp[j/s.per] }

func newSampler(d priors.Denoiser, A mri.Operator, y []complex64, opt SampleOptions) (*sampler, error) {
	return newBatchSampler(d, []Problem{{A: A, Y: y, NoiseVar: opt.NoiseVar, NoiseVarDiag: opt.NoiseVarDiag, Scale: opt.Scale}}, opt)
}

func newBatchSampler(d priors.Denoiser, probs []Problem, opt SampleOptions) (*sampler, error) {
	if d == nil || len(probs) == 0 {
		return nil, errors.New("sample posterior: nil denoiser or no problem")
	}
	for _, p := range probs {
		if p.A == nil {
			return nil, errors.New("sample posterior: nil operator")
		}
	}
	switch opt.Method {
	case "", "mmps", "dps":
	default:
		return nil, fmt.Errorf("sample posterior: unknown method %q (want mmps or dps)", opt.Method)
	}
	if opt.Covariance == "" {
		opt.Covariance = DefaultCovariance
	}
	var dd priors.DiagDenoiser
	switch opt.Covariance {
	case CovJacobian:
	case CovDiagonal:
		if opt.Method != "dps" {
			var err error
			if dd, err = priors.DiagCovariance(d); err != nil {
				return nil, fmt.Errorf("sample posterior: covariance diagonal: %w", err)
			}
			if opt.DiagCGIter == 0 {
				opt.DiagCGIter = DefaultDiagCGIter
			}
			if opt.CGTol == 0 {
				opt.CGTol = DiagCGTol
			}
		}
	default:
		return nil, fmt.Errorf("sample posterior: unknown covariance %q (want %s or %s)", opt.Covariance, CovJacobian, CovDiagonal)
	}
	switch opt.Sampler {
	case "", "ddpm", "ddim":
	default:
		return nil, fmt.Errorf("sample posterior: unknown sampler %q (want ddpm or ddim)", opt.Sampler)
	}
	switch opt.StepVariance {
	case "":
		opt.StepVariance = StepVarianceDDPM
	case StepVarianceDDPM:
	case StepVariancePosterior:
		if dd == nil || opt.Sampler == "ddim" {
			return nil, fmt.Errorf("sample posterior: step variance %s needs MMPS with the diagonal covariance and the ddpm sampler", opt.StepVariance)
		}
	default:
		return nil, fmt.Errorf("sample posterior: unknown step variance %q (want %s or %s)", opt.StepVariance, StepVarianceDDPM, StepVariancePosterior)
	}
	if j := opt.JacobianSigma; !(j[0] >= 0 && j[0] <= j[1]) || math.IsInf(j[1], 0) {
		return nil, fmt.Errorf("sample posterior: Jacobian σ band %v, want 0 ≤ lo ≤ hi, finite", j)
	}
	if opt.JacobianSigma[1] > 0 && opt.StepVariance == StepVariancePosterior {
		return nil, errors.New("sample posterior: a Jacobian σ band and step variance posterior do not combine (the posterior draw needs the diagonal covariance at every step)")
	}
	var pre priors.DiagDenoiser
	if opt.Precondition && opt.Method != "dps" {
		var err error
		if pre, err = priors.DiagCovariance(d); err != nil {
			return nil, fmt.Errorf("sample posterior: precondition: %w", err)
		}
		if opt.DiagCGIter == 0 {
			opt.DiagCGIter = DefaultDiagCGIter
		}
	}
	if opt.Steps == 0 {
		opt.Steps = 64
	}
	if opt.CGIter == 0 {
		opt.CGIter = 3
	}
	if opt.Samples == 0 {
		opt.Samples = DefaultSamples
	}
	switch {
	case opt.Steps < 2 || opt.Steps > 100000:
		return nil, fmt.Errorf("sample posterior: %d steps, want 2 to 100000", opt.Steps)
	case opt.CGIter < 0 || opt.CGIter > 1000 || opt.DiagCGIter < 0 || opt.DiagCGIter > 10000:
		return nil, fmt.Errorf("sample posterior: %d CG iterations (%d with the diagonal covariance), want 1 to 1000 (10000)", opt.CGIter, opt.DiagCGIter)
	case !(opt.CGTol >= 0 && opt.CGTol < 1):
		return nil, fmt.Errorf("sample posterior: CG tolerance %v, want [0, 1)", opt.CGTol)
	case opt.Samples < 1 || opt.Samples > 65536:
		return nil, fmt.Errorf("sample posterior: %d samples, want 1 to 65536", opt.Samples)
	case !(opt.Zeta >= 0) || math.IsInf(opt.Zeta, 0):
		return nil, fmt.Errorf("sample posterior: DPS step %v, want finite and non-negative", opt.Zeta)
	}
	if opt.Method == "dps" && opt.Zeta == 0 && !opt.HardDC {
		return nil, errors.New("sample posterior: dps needs a step size Zeta > 0 or HardDC")
	}
	c, rows, cols := d.Shape()
	if c != 2 || rows < 1 || cols < 1 || rows > mri.MaxDim || cols > mri.MaxDim {
		return nil, fmt.Errorf("sample posterior: denoiser shape %d×%d×%d, want 2 channels (real, imaginary)", c, rows, cols)
	}
	hw := rows * cols
	nb, n := len(probs)*opt.Samples, 2*hw
	grp := make([]*group, len(probs))
	total, mmax := nb*n, 0
	for g, p := range probs {
		gr, err := newGroup(p, hw, opt.Seed)
		if err != nil {
			if len(probs) > 1 {
				return nil, fmt.Errorf("problem %d: %w", g, err)
			}
			return nil, err
		}
		if opt.Antithetic {
			gr.pairs = opt.Samples / 2
		}
		grp[g], mmax = gr, max(mmax, gr.m)
		total += 4 * opt.Samples * gr.m
	}
	if total > maxBatchValues {
		return nil, fmt.Errorf("sample posterior: a batch of %d samples of %d×%d images and %d measurements is too large", nb, rows, cols, mmax)
	}
	rm := 0
	for _, gr := range grp {
		rm += opt.Samples * gr.m
	}
	s := &sampler{
		d: d, dd: dd, pre: pre, opt: opt,
		mmps: opt.Method != "dps", ddim: opt.Sampler == "ddim",
		rows: rows, cols: cols, grp: grp, per: opt.Samples, nb: nb, hw: hw, n: n,
		x: make([]float32, nb*n), e: make([]float32, nb*n), xhat: make([]float32, nb*n),
		bufP: make([]float32, nb*n), bufQ: make([]float32, nb*n),
		sig: make([]float32, nb),
		ci:  make([]complex64, hw), co: make([]complex64, mmax),
		res:   make([]complex64, rm),
		rnorm: make([]float64, nb),
		times: make([]float64, opt.Steps),
	}
	if dd != nil && opt.JacobianSigma[1] > 0 {
		s.jacLo, s.jacHi = opt.JacobianSigma[0], opt.JacobianSigma[1]
	}
	if s.mmps {
		s.newMMPS()
	}
	if opt.StepVariance == StepVariancePosterior {
		s.draw = make([]float32, nb*n)
	}
	if err := TimeGrid(s.times); err != nil {
		return nil, fmt.Errorf("sample posterior: %w", err)
	}
	if opt.HardDC {
		for _, gr := range grp {
			if err := gr.checkPartialIsometry(); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// newGroup checks problem p against images of hw pixels and scales its data.
func newGroup(p Problem, hw int, seed uint64) (*group, error) {
	scale := p.Scale
	if scale == 0 {
		scale = 1
	}
	switch {
	case !(p.NoiseVar >= 0) || math.IsInf(p.NoiseVar, 0):
		return nil, fmt.Errorf("sample posterior: noise variance %v, want finite and non-negative", p.NoiseVar)
	case !(scale > 0) || math.IsInf(scale, 0):
		return nil, fmt.Errorf("sample posterior: scale %v, want finite and positive", p.Scale)
	}
	A, y := p.A, p.Y
	if A.InLen() != hw {
		return nil, fmt.Errorf("sample posterior: operator takes %d values, denoiser images have %d", A.InLen(), hw)
	}
	m := A.OutLen()
	if m < 1 || m > mri.MaxCoils*mri.MaxDim*mri.MaxDim {
		return nil, fmt.Errorf("sample posterior: operator gives %d values", m)
	}
	if len(y) != m {
		return nil, fmt.Errorf("sample posterior: %d measurements, operator gives %d", len(y), m)
	}
	if p.NoiseVarDiag != nil && len(p.NoiseVarDiag) != m {
		return nil, fmt.Errorf("sample posterior: %d noise variances for %d measurements", len(p.NoiseVarDiag), m)
	}
	gr := &group{A: A, m: m, yImage: y, y: make([]complex64, m), noise: make([]float64, m), scale: scale,
		rng: rand.New(rand.NewPCG(seed, 0x6b73706163656421))}
	inv := 1 / scale
	for i, v := range y {
		if !finite64(float64(real(v))) || !finite64(float64(imag(v))) {
			return nil, fmt.Errorf("sample posterior: measurement %d is not finite (%v)", i, v)
		}
		gr.y[i] = complex(float32(float64(real(v))*inv), float32(float64(imag(v))*inv))
	}
	for i := range gr.noise {
		v := p.NoiseVar
		if p.NoiseVarDiag != nil {
			v = float64(p.NoiseVarDiag[i])
			if !(v >= 0) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("sample posterior: noise variance %d is %v, want finite and non-negative", i, v)
			}
		}
		gr.noise[i] = v / 2 * inv * inv
	}
	return gr, nil
}

// maxBatchValues bounds the sampler's largest buffers (about 1 GiB each).
const maxBatchValues = 1 << 28

func finite64(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func (s *sampler) run(ctx context.Context) error {
	s.start()
	return s.loop(ctx)
}

// start draws x_1 ~ N(0, SigmaMax² I), each problem's samples from its
// own stream.
func (s *sampler) start() {
	for g, gr := range s.grp {
		for j := range s.per {
			xs := s.x[(g*s.per+j)*s.n : (g*s.per+j+1)*s.n]
			for k, z := range gr.normals(j, s.n) {
				xs[k] = float32(priors.SigmaMax * z)
			}
		}
	}
}

func (s *sampler) loop(ctx context.Context) error {
	steps := s.opt.Steps
	for i := range steps {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("sample posterior: step %d of %d: %w", i+1, steps, err)
		}
		st := priors.Sigma(s.times[i])
		for j := range s.sig {
			s.sig[j] = float32(st)
		}
		last := i == steps-1
		var err error
		if s.mmps {
			err = s.mmpsEstimate(st)
		} else {
			err = s.dpsEstimate(last)
		}
		if err != nil {
			return fmt.Errorf("sample posterior: step %d of %d (σ = %.3g): %w", i+1, steps, st, err)
		}
		if s.opt.HardDC {
			s.project(s.e)
		}
		if !last {
			if s.draw != nil {
				if err := s.drawPosterior(); err != nil {
					return fmt.Errorf("sample posterior: step %d of %d (σ = %.3g): %w", i+1, steps, st, err)
				}
			}
			s.update(st, priors.Sigma(s.times[i+1]))
			if !s.mmps {
				s.dpsStep()
			}
		}
		if s.opt.Progress != nil {
			s.opt.Progress(i+1, steps)
		}
	}
	for k, v := range s.e {
		if !finite64(float64(v)) {
			return fmt.Errorf("sample posterior: sample value %d is not finite: the sampler diverged", k)
		}
	}
	return nil
}

// update moves every x_t to x_s given the estimate e of E[x | x_t, y]:
// DDPM draws x_s ~ N(e + (σ_s²/σ_t²)(x_t − e), σ_s²(σ_t² − σ_s²)/σ_t² I),
// plus (1 − σ_s²/σ_t²)·s.draw with StepVariancePosterior: with x ~ p(x | x_t, y)
// in x_s = (1 − ρ)x + ρ x_t + noise that is the exact reverse step of a
// Gaussian posterior. DDIM sets x_s = e + (σ_s/σ_t)(x_t − e).
func (s *sampler) update(st, ss float64) {
	if s.ddim {
		rho := ss / st
		for k, x := range s.x {
			e := float64(s.e[k])
			s.x[k] = float32(e + rho*(float64(x)-e))
		}
		return
	}
	rho := ss * ss / (st * st)
	sd := ss * math.Sqrt(1-rho)
	for g, gr := range s.grp {
		lo := g * s.per * s.n
		xs, es := s.x[lo:lo+s.per*s.n], s.e[lo:lo+s.per*s.n]
		for j := range s.per {
			o := j * s.n
			for k, z := range gr.normals(j, s.n) {
				e := float64(es[o+k])
				xs[o+k] = float32(e + rho*(float64(xs[o+k])-e) + sd*z)
			}
		}
		if s.draw != nil {
			for k, w := range s.draw[lo : lo+s.per*s.n] {
				xs[k] += float32((1 - rho) * float64(w))
			}
		}
	}
}

// residual writes y − A·v for sample j's problem into r (its first m
// values) and returns its squared norm; v is one image.
func (s *sampler) residual(j int, r []complex64, v []float32) float64 {
	gr := s.of(j)
	r = r[:gr.m]
	fromChannels(s.ci, v, s.hw)
	gr.A.Forward(r, s.ci)
	var sum float64
	for k, a := range r {
		d := gr.y[k] - a
		r[k] = d
		sum += float64(real(d))*float64(real(d)) + float64(imag(d))*float64(imag(d))
	}
	return sum
}

// project applies hard data consistency x ← x + Aᴴ(y − A x) to every image
// of v; for a partial isometry this replaces the measured part of x by y.
func (s *sampler) project(v []float32) {
	for j := range s.nb {
		vj := v[j*s.n : (j+1)*s.n]
		s.residual(j, s.co, vj)
		s.of(j).A.Adjoint(s.ci, s.co[:s.of(j).m])
		re, im := vj[:s.hw], vj[s.hw:]
		for i, c := range s.ci {
			re[i] += real(c)
			im[i] += imag(c)
		}
	}
}

// checkPartialIsometry verifies A Aᴴ A x ≈ A x on a random x, the condition
// under which HardDC is a projection onto the data.
func (gr *group) checkPartialIsometry() error {
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]complex64, gr.A.InLen())
	ax := make([]complex64, gr.m)
	back := make([]complex64, gr.m)
	for i := range x {
		x[i] = complex(float32(rng.NormFloat64()), float32(rng.NormFloat64()))
	}
	gr.A.Forward(ax, x)
	gr.A.Adjoint(x, ax)
	gr.A.Forward(back, x)
	var num, den float64
	for k := range ax {
		d := back[k] - ax[k]
		num += float64(real(d)*real(d) + imag(d)*imag(d))
		den += float64(real(ax[k])*real(ax[k]) + imag(ax[k])*imag(ax[k]))
	}
	if den == 0 || math.Sqrt(num/den) > 1e-3 {
		return fmt.Errorf("sample posterior: hard data consistency needs A Aᴴ A = A (a masked orthonormal FFT); relative mismatch %.3g", math.Sqrt(num/max(den, math.SmallestNonzeroFloat64)))
	}
	return nil
}

// summarise gives problem g's posterior.
func (s *sampler) summarise(g int) *Posterior {
	gr := s.grp[g]
	nb, hw, sc := s.per, s.hw, gr.scale
	p := &Posterior{
		Rows: s.rows, Cols: s.cols,
		Samples: make([]complex64, nb*hw),
		Mean:    make([]complex64, hw), Std: make([]float32, hw),
		MagMean: make([]float32, hw), MagStd: make([]float32, hw),
		DenoiserEvals: s.evals, VJPs: s.vjps, Scale: sc,
	}
	if s.mmps {
		p.CGIterations = float64(gr.cgIters) / float64(s.opt.Steps*nb)
	}
	fromChannels(p.Samples, s.e[g*nb*s.n:(g+1)*nb*s.n], hw)
	for i := range p.Samples {
		p.Samples[i] = complex(float32(float64(real(p.Samples[i]))*sc), float32(float64(imag(p.Samples[i]))*sc))
	}
	for i := range hw {
		var re, im, mag float64
		for j := range nb {
			v := p.Samples[j*hw+i]
			re += float64(real(v))
			im += float64(imag(v))
			mag += math.Hypot(float64(real(v)), float64(imag(v)))
		}
		re, im, mag = re/float64(nb), im/float64(nb), mag/float64(nb)
		var vc, vm float64
		for j := range nb {
			v := p.Samples[j*hw+i]
			dr, di := float64(real(v))-re, float64(imag(v))-im
			vc += dr*dr + di*di
			dm := math.Hypot(float64(real(v)), float64(imag(v))) - mag
			vm += dm * dm
		}
		p.Mean[i] = complex(float32(re), float32(im))
		p.MagMean[i] = float32(mag)
		if nb > 1 {
			p.Std[i] = float32(math.Sqrt(vc / float64(nb-1)))
			p.MagStd[i] = float32(math.Sqrt(vm / float64(nb-1)))
		}
	}
	co := s.co[:gr.m]
	gr.A.Forward(co, p.Mean)
	var num, den float64
	for k, a := range co {
		d := complex128(gr.yImage[k]) - complex128(a)
		num += real(d)*real(d) + imag(d)*imag(d)
		yk := complex128(gr.yImage[k])
		den += real(yk)*real(yk) + imag(yk)*imag(yk)
	}
	if den > 0 {
		p.Residual = math.Sqrt(num / den)
	}
	return p
}
