package posterior

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

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
