package posterior

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kspaced/kspaced/mri"
)

// With a Gaussian prior and a linear operator, the MMPS posterior denoiser
// with converged CG is exact: it must equal E[x | x_t, y] computed densely in
// float64, at every noise level, for a dense random operator and a masked
// FFT, with scalar and diagonal noise.
func TestMMPSEstimateIsExactGaussianPosteriorMean(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 10))
	const h, w = 4, 5
	g := smpPrior(t, rng, h, w, 3, 1)
	dense := smpNewDense(rng, 12, h*w, 0.4)
	fftOp := smpNewMaskedFFT(h, w, smpRandomMask(rng, h, w, 0.3))
	sense := smpProjectSENSE(rng, 3, h, w, 0.3)
	for _, tc := range []struct {
		name string
		A    mri.Operator
		diag bool
	}{
		{"dense", dense, false},
		{"dense/diagonal noise", dense, true},
		{"masked fft", fftOp, false},
		{"mri.SENSE", sense, false},
	} {
		m := tc.A.OutLen()
		opt := SampleOptions{Steps: 2, CGIter: 4 * m, CGTol: 1e-6, Samples: 3, NoiseVar: 0.02}
		noise := smpWhiteNoise(m, opt.NoiseVar)
		if tc.diag {
			opt.NoiseVarDiag = make([]float32, m)
			for k := range m {
				opt.NoiseVarDiag[k] = float32(0.005 + 0.1*rng.Float64())
				noise[k] = float64(opt.NoiseVarDiag[k]) / 2
				noise[m+k] = noise[k]
			}
		}
		_, y := smpMeasure(t, rng, g, tc.A, 0.02)
		ar := smpProbe(tc.A)
		if d, ok := tc.A.(*smpDense); ok {
			// Cross-check the probe against the matrix entries.
			ar2 := d.realRep()
			r, c := ar.Dims()
			for i := range r {
				for j := range c {
					if math.Abs(ar.At(i, j)-ar2.At(i, j)) > 1e-6 {
						t.Fatalf("probed real representation differs at %d,%d", i, j)
					}
				}
			}
		}
		s, err := newSampler(g, tc.A, y, opt)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range smpEstimateErr(t, rng, s, g, ar, noise, y) {
			if e > 2e-4 {
				t.Errorf("%s σ=%g: relative error %.2e against the dense posterior mean", tc.name, smpSigmas[i], e)
			}
		}
	}
}

// One CG iteration is one VJP, whatever the batch; the denoiser sees the
// whole batch in one call; CGTol stops CG early.
func TestMMPSCost(t *testing.T) {
	g, A, y := smpCostProblem(t, 11)
	for _, cg := range []int{1, 3} {
		c := &smpCounting{Denoiser: g}
		p, err := SamplePosterior(context.Background(), c, A, y, SampleOptions{Steps: 7, CGIter: cg, Samples: 5, NoiseVar: 0.01})
		if err != nil {
			t.Fatal(err)
		}
		if c.evals != 7 || c.vjps != 7*cg || p.DenoiserEvals != 7 || p.VJPs != 7*cg {
			t.Errorf("CG %d: %d/%d evaluations and %d/%d VJPs (counted/reported), want 7 and %d", cg, c.evals, p.DenoiserEvals, c.vjps, p.VJPs, 7*cg)
		}
		for _, b := range c.batch {
			if b != 5 {
				t.Fatalf("denoiser called with a batch of %d, want 5", b)
			}
		}
	}
	// A loose tolerance converges in fewer iterations than allowed.
	c := &smpCounting{Denoiser: g}
	p, err := SamplePosterior(context.Background(), c, A, y, SampleOptions{Steps: 7, CGIter: 50, CGTol: 0.1, NoiseVar: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	if p.VJPs >= 7*50 || p.VJPs < 7 {
		t.Errorf("CGTol 0.1 with at most 50 iterations made %d VJPs in 7 steps", p.VJPs)
	}
}
