package posterior

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
)

// With a Gaussian prior, the diagonal covariance and CG run to convergence,
// every sampler step is affine in x_t and its noise, so a sample is an
// affine function of all its draws and an antithetic pair's mean has no
// sampling error at all: it is the exact posterior mean (up to the start's
// N(0, SigmaMax²) in place of p(x_1 | y), about 1e-5 here). Each sample is
// still a posterior sample, and the 8-sample t interval keeps its coverage.
func TestAntitheticPairsCancelForGaussianPosterior(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 31))
	const h, w, noiseVar = 3, 4, 0.02
	pb := &smpProblem{g: smpPrior(t, rng, h, w, 0, 1), noiseVar: noiseVar, A: smpNewDense(rng, 8, h*w, 0.4)}
	_, pb.y = smpMeasure(t, rng, pb.g, pb.A, noiseVar)
	pb.mu, pb.cov = smpGaussPost(t, pb.g, smpProbe(pb.A), smpWhiteNoise(pb.A.OutLen(), noiseVar), smpRealVec(pb.y), 0, nil)
	sample := func(n int, anti bool, sv string, seed uint64) *Posterior {
		t.Helper()
		p, err := SamplePosterior(context.Background(), pb.g, pb.A, pb.y, SampleOptions{Steps: 8, Covariance: CovDiagonal,
			DiagCGIter: 200, CGTol: 1e-7, StepVariance: sv, Samples: n, NoiseVar: noiseVar, Seed: seed, Antithetic: anti})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	// The mean of one pair against the exact mean, beside two independent samples.
	for _, sv := range []string{StepVarianceDDPM, StepVariancePosterior} {
		var worstPair, iid float64
		for seed := range uint64(5) {
			pair, _, _, _ := pb.compare(sample(2, true, sv, seed))
			ind, _, _, _ := pb.compare(sample(2, false, sv, seed))
			worstPair, iid = max(worstPair, pair), iid+ind/5
		}
		t.Logf("%s: relative error of a 2-sample mean, antithetic (worst of 5) %.2e, independent (average) %.3f", sv, worstPair, iid)
		if worstPair > 1e-3 || iid < 0.05 {
			t.Errorf("%s: antithetic pair mean off by %.2e (want ≤ 1e-3), independent pairs by %.3f (want ≥ 0.05, else the check cannot tell)", sv, worstPair, iid)
		}
	}

	// Every sample is a posterior sample: over many pairs the variances match
	// the exact ones (the posterior step makes the sampler exact in law).
	const runs = 600
	p := sample(8*runs, true, StepVariancePosterior, 7)
	meanRel, _, varAvg, varMax := pb.compare(p)
	t.Logf("%d antithetic samples: mean relative error %.2e, variance ratio − 1: average %+.4f, largest |·| %.4f", 8*runs, meanRel, varAvg, varMax)
	if math.Abs(varAvg) > 0.03 || varMax > 4.5*math.Sqrt(2.0/(8*runs-1)) {
		t.Errorf("antithetic samples' variances off: average ratio %+.4f, largest deviation %.4f", varAvg, varMax)
	}

	// Coverage of mean ± IntervalWidth(8)·std over runs of 8 (4 pairs),
	// the truth drawn from the exact marginals: the interval made for
	// independent samples still holds (its std overstates by at most
	// √(8/7), where the mean's own error vanishes).
	hw := h * w
	k := IntervalWidth(8, 0.90)
	in, total := 0, 0
	for r := range runs {
		for i := range 2 * hw {
			var s, s2 float64
			for j := range 8 {
				v := p.Samples[(8*r+j)*hw+i%hw]
				x := float64(real(v))
				if i >= hw {
					x = float64(imag(v))
				}
				s += x
				s2 += x * x
			}
			m := s / 8
			sd := math.Sqrt(max((s2-8*m*m)/7, 0))
			truth := pb.mu.AtVec(i) + math.Sqrt(pb.cov.At(i, i))*rng.NormFloat64()
			if math.Abs(truth-m) <= k*sd {
				in++
			}
			total++
		}
	}
	cov := float64(in) / float64(total)
	t.Logf("coverage of the 8-sample t interval with antithetic pairs: %.3f (%d values)", cov, total)
	if cov < 0.88 || cov > 0.94 {
		t.Errorf("coverage %.3f, want [0.88, 0.94]", cov)
	}
}
