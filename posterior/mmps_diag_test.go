package posterior

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/priors"
)

// With a diagonal Gaussian prior the posterior covariance of x given x_t is
// diagonal, so MMPS with the prior's exact diagonal (and converged CG) is
// the exact posterior mean E[x | x_t, y] (dense float64 reference); with a
// low-rank part the diagonal is only an approximation, and the same check
// must fail there.
func TestDiagonalMMPSIsExactForDiagonalGaussian(t *testing.T) {
	rng := rand.New(rand.NewPCG(20, 20))
	const h, w = 4, 5
	sense := smpProjectSENSE(rng, 3, h, w, 0.3)
	for _, tc := range []struct {
		name  string
		A     mri.Operator
		rank  int
		exact bool
	}{
		{"dense", smpNewDense(rng, 12, h*w, 0.4), 0, true},
		{"mri.SENSE", sense, 0, true},
		{"dense, low-rank prior", smpNewDense(rng, 12, h*w, 0.4), 3, false},
	} {
		g := smpPrior(t, rng, h, w, tc.rank, 1)
		m := tc.A.OutLen()
		opt := SampleOptions{Steps: 2, Covariance: CovDiagonal, DiagCGIter: 8 * m, CGTol: 1e-7, Samples: 3, NoiseVar: 0.02}
		noise := smpWhiteNoise(m, opt.NoiseVar)
		_, y := smpMeasure(t, rng, g, tc.A, 0.02)
		ar := smpProbe(tc.A)
		s, err := newSampler(g, tc.A, y, opt)
		if err != nil {
			t.Fatal(err)
		}
		worst := slices.Max(smpEstimateErr(t, rng, s, g, ar, noise, y))
		if tc.exact && worst > 2e-4 {
			t.Errorf("%s: relative error up to %.2e against the dense posterior mean", tc.name, worst)
		}
		if !tc.exact && worst < 1e-2 {
			t.Errorf("%s: relative error only %.2e: the diagonal approximation should show", tc.name, worst)
		}
	}
}

// The diagonal covariance makes no VJP and one denoiser call per step for
// the whole batch; a prior without a diagonal is refused up front.
func TestDiagonalMMPSCostAndRefusal(t *testing.T) {
	g, A, y := smpCostProblem(t, 21)
	c := &smpCountingDiag{smpCounting: smpCounting{Denoiser: g}, g: g}
	p, err := SamplePosterior(context.Background(), c, A, y, SampleOptions{Steps: 7, Covariance: CovDiagonal, Samples: 5, NoiseVar: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	if p.CGIterations < 1 || p.CGIterations > DefaultDiagCGIter {
		t.Errorf("diagonal covariance: %.1f CG iterations per step reported, want 1 to the default cap %d", p.CGIterations, DefaultDiagCGIter)
	}
	if q, err := SamplePosterior(context.Background(), g, A, y, SampleOptions{Steps: 4, CGIter: 3, Samples: 2, NoiseVar: 0.01}); err != nil || q.CGIterations != 3 {
		t.Errorf("jacobian CG 3: %v CG iterations per step reported (%v), want 3", q.CGIterations, err)
	}
	if c.diags != 7 || c.evals != 0 || c.vjps != 0 || p.VJPs != 0 || p.DenoiserEvals != 7 {
		t.Errorf("%d diagonal calls, %d other evaluations, %d VJPs (reported %d evaluations, %d VJPs); want 7, 0, 0", c.diags, c.evals, c.vjps, p.DenoiserEvals, p.VJPs)
	}
	for _, b := range c.batch {
		if b != 5 {
			t.Fatalf("denoiser called with a batch of %d, want 5", b)
		}
	}
	_, err = SamplePosterior(context.Background(), &smpCounting{Denoiser: g}, A, y, SampleOptions{Steps: 3, Covariance: CovDiagonal, NoiseVar: 0.01})
	if !errors.Is(err, priors.ErrNoCovariance) {
		t.Errorf("a denoiser without a diagonal: %v, want ErrNoCovariance", err)
	}
	if _, err := SamplePosterior(context.Background(), g, A, y, SampleOptions{Steps: 3, Covariance: "full", NoiseVar: 0.01}); err == nil {
		t.Error("unknown covariance accepted")
	}
}

type smpCountingDiag struct {
	smpCounting
	g     *priors.Gaussian
	diags int
}

func (c *smpCountingDiag) DenoiseDiag(dst, diag, xt, sigma []float32) error {
	c.diags++
	c.batch = append(c.batch, len(sigma))
	return c.g.DenoiseDiag(dst, diag, xt, sigma)
}

func (c *smpCountingDiag) CovDiag(diag, xt, sigma []float32) error {
	c.diags++
	return c.g.CovDiag(diag, xt, sigma)
}

// With a diagonal Gaussian prior MMPS's Gaussian posterior at each step is
// exact, so DDPM with StepVariancePosterior draws each reverse step from the
// true p(x_s | x_t, y) and its samples follow the exact posterior (dense
// float64 reference) at any number of steps; the plain DDPM step at the same
// 8 steps must show its variance deficit. N = 6000: a component's sample
// variance has relative standard deviation √(2/(N−1)) = 1.8 %; bounds 4.5 of
// those per component (Bonferroni over 24) and 3 % on the average.
func TestPosteriorStepVarianceIsExactForDiagonalGaussian(t *testing.T) {
	rng := rand.New(rand.NewPCG(22, 22))
	const h, w, N, noiseVar = 3, 4, 6000, 0.02
	pb := &smpProblem{g: smpPrior(t, rng, h, w, 0, 1), noiseVar: noiseVar, A: smpNewDense(rng, 8, h*w, 0.4)}
	_, pb.y = smpMeasure(t, rng, pb.g, pb.A, noiseVar)
	pb.mu, pb.cov = smpGaussPost(t, pb.g, smpProbe(pb.A), smpWhiteNoise(pb.A.OutLen(), noiseVar), smpRealVec(pb.y), 0, nil)
	for _, sv := range []string{StepVariancePosterior, StepVarianceDDPM} {
		p, err := SamplePosterior(context.Background(), pb.g, pb.A, pb.y, SampleOptions{Steps: 8, Covariance: CovDiagonal,
			DiagCGIter: 200, CGTol: 1e-7, StepVariance: sv, Samples: N, NoiseVar: noiseVar, Seed: 11})
		if err != nil {
			t.Fatal(err)
		}
		meanRel, zMax, varAvg, varMax := pb.compare(p)
		t.Logf("%s, 8 steps: mean relative error %.4f, largest z %.2f, variance ratio − 1: average %+.4f, largest |·| %.4f", sv, meanRel, zMax, varAvg, varMax)
		if sv == StepVarianceDDPM {
			if varAvg > -0.2 {
				t.Errorf("plain DDPM at 8 steps lost only %.3f of the variance: the check cannot tell the step variances apart", -varAvg)
			}
			continue
		}
		if meanRel >= 1e-2 || zMax > 5 {
			t.Errorf("posterior mean off: relative error %.4f, largest z-score %.2f", meanRel, zMax)
		}
		if math.Abs(varAvg) > 0.03 || varMax > 4.5*math.Sqrt(2.0/(N-1)) {
			t.Errorf("posterior variances off: average ratio %+.4f, largest deviation %.4f", varAvg, varMax)
		}
	}
}
