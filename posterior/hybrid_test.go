package posterior

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/priors"
)

// JacobianSigma switches exactly the steps whose σ lies in the band from the
// diagonal covariance to the Jacobian one: a band holding every σ gives the
// Jacobian sampler's samples bit for bit, an empty one the diagonal
// sampler's, and a band in between spends CGIter VJPs on each of its steps
// and nothing on the others. The prior is a low-rank Gaussian, whose
// diagonal covariance leaves out correlations, so the two samplers differ.
func TestJacobianSigmaBandSwitchesSteps(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 41))
	const h, w, noiseVar, steps, cgIter = 3, 4, 0.02, 16, 3
	g := smpPrior(t, rng, h, w, 3, 1)
	A := smpNewDense(rng, 8, h*w, 0.4)
	_, y := smpMeasure(t, rng, g, A, noiseVar)
	run := func(cov string, band [2]float64) *Posterior {
		t.Helper()
		p, err := SamplePosterior(context.Background(), g, A, y, SampleOptions{Steps: steps, CGIter: cgIter, Covariance: cov,
			JacobianSigma: band, Samples: 4, NoiseVar: noiseVar, Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	jac, diag := run(CovJacobian, [2]float64{}), run(CovDiagonal, [2]float64{})
	if slices.Equal(jac.Samples, diag.Samples) {
		t.Fatal("the Jacobian and diagonal samplers agree: the check cannot tell them apart")
	}
	if all := run(CovDiagonal, [2]float64{0, 1e9}); !slices.Equal(all.Samples, jac.Samples) || all.VJPs != jac.VJPs {
		t.Errorf("band holding every σ: samples equal to the Jacobian sampler's %v, VJPs %d and %d", slices.Equal(all.Samples, jac.Samples), all.VJPs, jac.VJPs)
	}
	if none := run(CovDiagonal, [2]float64{1e6, 1e7}); !slices.Equal(none.Samples, diag.Samples) || none.VJPs != 0 {
		t.Errorf("band holding no σ: samples equal to the diagonal sampler's %v, VJPs %d", slices.Equal(none.Samples, diag.Samples), none.VJPs)
	}
	times := make([]float64, steps)
	if err := TimeGrid(times); err != nil {
		t.Fatal(err)
	}
	in := 0
	for _, tm := range times {
		if sg := priors.Sigma(tm); sg >= 0.01 && sg <= 1 {
			in++
		}
	}
	mid := run(CovDiagonal, [2]float64{0.01, 1})
	if in == 0 || in == steps || mid.VJPs != cgIter*in || mid.DenoiserEvals != steps {
		t.Errorf("band [0.01, 1]: %d VJPs and %d denoiser evaluations per sample, want %d·%d and %d", mid.VJPs, mid.DenoiserEvals, cgIter, in, steps)
	}
	for _, bad := range []SampleOptions{
		{Covariance: CovDiagonal, JacobianSigma: [2]float64{1, 0.5}},
		{Covariance: CovDiagonal, JacobianSigma: [2]float64{-1, 1}},
		{Covariance: CovDiagonal, JacobianSigma: [2]float64{0.01, 1}, StepVariance: StepVariancePosterior},
	} {
		bad.NoiseVar = noiseVar
		if _, err := SamplePosterior(context.Background(), g, A, y, bad); err == nil || !strings.Contains(err.Error(), "Jacobian σ band") {
			t.Errorf("%v: error %v, want a refusal naming the Jacobian σ band", bad.JacobianSigma, err)
		}
	}
}

// Precondition solves the Jacobian steps' system with CG preconditioned by
// the diagonal covariance's: for a diagonal Gaussian prior that system is
// the Jacobian's own, so one preconditioned iteration already gives the
// exact posterior mean (dense float64 reference), where one plain iteration
// is far off; with a low-rank prior the preconditioner is only approximate,
// but converged CG still reaches the exact mean (whether a few iterations
// gain is a property of the prior, measured on the network in
// docs/bench/sampling.md, not of the algebra). Both the band of
// the diagonal covariance and the Jacobian covariance take it, at CGIter
// VJPs per step and one head pass; a prior without a diagonal is refused.
func TestPreconditionedJacobianCG(t *testing.T) {
	rng := rand.New(rand.NewPCG(43, 43))
	const h, w, noiseVar = 4, 5, 0.02
	estimateErr := func(g *priors.Gaussian, A mri.Operator, y []complex64, opt SampleOptions) float64 {
		t.Helper()
		opt.Steps, opt.Samples, opt.NoiseVar = 2, 3, noiseVar
		s, err := newSampler(g, A, y, opt)
		if err != nil {
			t.Fatal(err)
		}
		return slices.Max(smpEstimateErr(t, rng, s, g, smpProbe(A), smpWhiteNoise(A.OutLen(), noiseVar), y))
	}
	A := smpNewDense(rng, 12, h*w, 0.4)
	m := A.OutLen()
	diagG := smpPrior(t, rng, h, w, 0, 1)
	_, y := smpMeasure(t, rng, diagG, A, noiseVar)
	for _, cov := range []string{CovDiagonal, CovJacobian} {
		opt := SampleOptions{Covariance: cov, CGIter: 1, DiagCGIter: 8 * m, CGTol: 1e-7}
		if cov == CovDiagonal {
			opt.JacobianSigma = [2]float64{0, 1e9}
		}
		plain := estimateErr(diagG, A, y, opt)
		opt.Precondition = true
		if pc := estimateErr(diagG, A, y, opt); pc > 2e-4 || plain < 1e-2 {
			t.Errorf("%s, diagonal prior, one CG iteration: relative error %.2e preconditioned (want ≤ 2e-4), %.2e plain (want ≥ 1e-2)", cov, pc, plain)
		}
	}
	lowG := smpPrior(t, rng, h, w, 3, 1)
	_, y = smpMeasure(t, rng, lowG, A, noiseVar)
	band := SampleOptions{Covariance: CovDiagonal, JacobianSigma: [2]float64{0, 1e9}, DiagCGIter: 8 * m, CGTol: 1e-7}
	band.CGIter, band.Precondition = 4*m, true
	if e := estimateErr(lowG, A, y, band); e > 2e-4 {
		t.Errorf("low-rank prior, converged preconditioned CG: relative error %.2e, want ≤ 2e-4", e)
	}

	// Cost: CGIter VJPs and one denoiser call per step, the head's pass
	// besides; refused without a diagonal covariance.
	c := &smpCountingDiag{smpCounting: smpCounting{Denoiser: lowG}, g: lowG}
	const steps, cgIter = 6, 2
	p, err := SamplePosterior(context.Background(), c, A, y, SampleOptions{Covariance: CovJacobian, Precondition: true,
		Steps: steps, CGIter: cgIter, Samples: 2, NoiseVar: noiseVar, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if p.VJPs != steps*cgIter || p.DenoiserEvals != steps || c.diags != steps {
		t.Errorf("preconditioned Jacobian sampler: %d VJPs, %d denoiser evaluations, %d head passes; want %d, %d, %d",
			p.VJPs, p.DenoiserEvals, c.diags, steps*cgIter, steps, steps)
	}
	if _, err := SamplePosterior(context.Background(), &smpCounting{Denoiser: lowG}, A, y, SampleOptions{Covariance: CovJacobian,
		Precondition: true, NoiseVar: noiseVar}); !errors.Is(err, priors.ErrNoCovariance) {
		t.Errorf("precondition without a diagonal covariance: error %v, want ErrNoCovariance", err)
	}
}
