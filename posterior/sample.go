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
	return s.summarise(), nil
}

type sampler struct {
	d      priors.Denoiser
	dd     priors.DiagDenoiser // the diagonal covariance's prior, nil with the Jacobian one
	cdiag  []float32           // [nb][n]: diag Cov[x | x_t] (diagonal covariance)
	A      mri.Operator
	opt    SampleOptions
	mmps   bool
	ddim   bool
	rows   int
	cols   int
	nb     int // batch: samples
	hw     int // pixels per image
	n      int // real values per image, 2·hw
	m      int // measurements per image
	yImage []complex64
	y      []complex64 // y / Scale
	noise  []float64   // per-component noise variance σ_y²/(2 Scale²) per measurement
	x, e   []float32   // [nb][n]: current x_t, (posterior) estimate
	xhat   []float32   // [nb][n]: unconditional estimate
	bufP   []float32   // [nb][n]: VJP input
	bufQ   []float32   // [nb][n]: VJP output
	bufW   []float32   // [nb][n]: MMPS running J Aᴴ u
	sig    []float32   // [nb]
	ci     []complex64 // [hw]
	co     []complex64 // [m]
	res    []complex64 // [nb][m]
	dir    []complex64 // [nb][m]: CG search directions
	// MMPS's lockstep CG (newMMPS): per-sample views of res and dir, the
	// step's VJP and σ².
	resJ, dirJ [][]complex64
	cg         *cg.Solver[[]complex64]
	cgProblem  cg.Problem[[]complex64]
	vjp        func(dst, v []float32) error
	s2         float64
	rnorm      []float64 // [nb]: DPS ‖y − A x̂‖
	times      []float64
	rng        *rand.Rand
	evals      int
	vjps       int
	cgIters    int // summed over steps and samples
}

func newSampler(d priors.Denoiser, A mri.Operator, y []complex64, opt SampleOptions) (*sampler, error) {
	if d == nil || A == nil {
		return nil, errors.New("sample posterior: nil denoiser or operator")
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
	if opt.Steps == 0 {
		opt.Steps = 64
	}
	if opt.CGIter == 0 {
		opt.CGIter = 3
	}
	if opt.Samples == 0 {
		opt.Samples = DefaultSamples
	}
	if opt.Scale == 0 {
		opt.Scale = 1
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
	case !(opt.NoiseVar >= 0) || math.IsInf(opt.NoiseVar, 0):
		return nil, fmt.Errorf("sample posterior: noise variance %v, want finite and non-negative", opt.NoiseVar)
	case !(opt.Scale > 0) || math.IsInf(opt.Scale, 0):
		return nil, fmt.Errorf("sample posterior: scale %v, want finite and positive", opt.Scale)
	}
	if opt.Method == "dps" && opt.Zeta == 0 && !opt.HardDC {
		return nil, errors.New("sample posterior: dps needs a step size Zeta > 0 or HardDC")
	}
	c, rows, cols := d.Shape()
	if c != 2 || rows < 1 || cols < 1 || rows > mri.MaxDim || cols > mri.MaxDim {
		return nil, fmt.Errorf("sample posterior: denoiser shape %d×%d×%d, want 2 channels (real, imaginary)", c, rows, cols)
	}
	hw := rows * cols
	if A.InLen() != hw {
		return nil, fmt.Errorf("sample posterior: operator takes %d values, denoiser images have %d×%d", A.InLen(), rows, cols)
	}
	m := A.OutLen()
	if m < 1 || m > mri.MaxCoils*mri.MaxDim*mri.MaxDim {
		return nil, fmt.Errorf("sample posterior: operator gives %d values", m)
	}
	if len(y) != m {
		return nil, fmt.Errorf("sample posterior: %d measurements, operator gives %d", len(y), m)
	}
	if opt.NoiseVarDiag != nil && len(opt.NoiseVarDiag) != m {
		return nil, fmt.Errorf("sample posterior: %d noise variances for %d measurements", len(opt.NoiseVarDiag), m)
	}
	nb, n := opt.Samples, 2*hw
	if nb*(n+4*m) > maxBatchValues {
		return nil, fmt.Errorf("sample posterior: a batch of %d samples of %d×%d images and %d measurements is too large", nb, rows, cols, m)
	}
	s := &sampler{
		d: d, dd: dd, A: A, opt: opt,
		mmps: opt.Method != "dps", ddim: opt.Sampler == "ddim",
		rows: rows, cols: cols, nb: nb, hw: hw, n: n, m: m,
		yImage: y, y: make([]complex64, m), noise: make([]float64, m),
		x: make([]float32, nb*n), e: make([]float32, nb*n), xhat: make([]float32, nb*n),
		bufP: make([]float32, nb*n), bufQ: make([]float32, nb*n),
		sig: make([]float32, nb),
		ci:  make([]complex64, hw), co: make([]complex64, m),
		res:   make([]complex64, nb*m),
		rnorm: make([]float64, nb),
		times: make([]float64, opt.Steps),
		rng:   rand.New(rand.NewPCG(opt.Seed, 0x6b73706163656421)),
	}
	if s.mmps {
		s.newMMPS()
	}
	inv := 1 / opt.Scale
	for i, v := range y {
		if !finite64(float64(real(v))) || !finite64(float64(imag(v))) {
			return nil, fmt.Errorf("sample posterior: measurement %d is not finite (%v)", i, v)
		}
		s.y[i] = complex(float32(float64(real(v))*inv), float32(float64(imag(v))*inv))
	}
	for i := range s.noise {
		v := opt.NoiseVar
		if opt.NoiseVarDiag != nil {
			v = float64(opt.NoiseVarDiag[i])
			if !(v >= 0) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("sample posterior: noise variance %d is %v, want finite and non-negative", i, v)
			}
		}
		s.noise[i] = v / 2 * inv * inv
	}
	if err := TimeGrid(s.times); err != nil {
		return nil, fmt.Errorf("sample posterior: %w", err)
	}
	if opt.HardDC {
		if err := s.checkPartialIsometry(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// maxBatchValues bounds the sampler's largest buffers (about 1 GiB each).
const maxBatchValues = 1 << 28

func finite64(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func (s *sampler) run(ctx context.Context) error {
	s.start()
	return s.loop(ctx)
}

// start draws x_1 ~ N(0, SigmaMax² I).
func (s *sampler) start() {
	for k := range s.x {
		s.x[k] = float32(priors.SigmaMax * s.rng.NormFloat64())
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
// DDPM draws x_s ~ N(e + (σ_s²/σ_t²)(x_t − e), σ_s²(σ_t² − σ_s²)/σ_t² I);
// DDIM sets x_s = e + (σ_s/σ_t)(x_t − e).
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
	for k, x := range s.x {
		e := float64(s.e[k])
		s.x[k] = float32(e + rho*(float64(x)-e) + sd*s.rng.NormFloat64())
	}
}

// residual writes y − A·(image j of v) into r and returns its squared norm.
func (s *sampler) residual(r []complex64, v []float32) float64 {
	fromChannels(s.ci, v, s.hw)
	s.A.Forward(r, s.ci)
	var sum float64
	for k, a := range r {
		d := s.y[k] - a
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
		s.residual(s.co, vj)
		s.A.Adjoint(s.ci, s.co)
		re, im := vj[:s.hw], vj[s.hw:]
		for i, c := range s.ci {
			re[i] += real(c)
			im[i] += imag(c)
		}
	}
}

// checkPartialIsometry verifies A Aᴴ A x ≈ A x on a random x, the condition
// under which HardDC is a projection onto the data.
func (s *sampler) checkPartialIsometry() error {
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]complex64, s.hw)
	ax := make([]complex64, s.m)
	back := make([]complex64, s.m)
	for i := range x {
		x[i] = complex(float32(rng.NormFloat64()), float32(rng.NormFloat64()))
	}
	s.A.Forward(ax, x)
	s.A.Adjoint(x, ax)
	s.A.Forward(back, x)
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

func (s *sampler) summarise() *Posterior {
	nb, hw, sc := s.nb, s.hw, s.opt.Scale
	p := &Posterior{
		Rows: s.rows, Cols: s.cols,
		Samples: make([]complex64, nb*hw),
		Mean:    make([]complex64, hw), Std: make([]float32, hw),
		MagMean: make([]float32, hw), MagStd: make([]float32, hw),
		DenoiserEvals: s.evals, VJPs: s.vjps, Scale: sc,
	}
	if s.mmps {
		p.CGIterations = float64(s.cgIters) / float64(s.opt.Steps*nb)
	}
	fromChannels(p.Samples, s.e, hw)
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
	s.A.Forward(s.co, p.Mean)
	var num, den float64
	for k, a := range s.co {
		d := complex128(s.yImage[k]) - complex128(a)
		num += real(d)*real(d) + imag(d)*imag(d)
		yk := complex128(s.yImage[k])
		den += real(yk)*real(yk) + imag(yk)*imag(yk)
	}
	if den > 0 {
		p.Residual = math.Sqrt(num / den)
	}
	return p
}
