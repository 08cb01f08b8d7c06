package posterior

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/priors"
)

// Several problems sampled as one batch give, for each problem, the samples
// SamplePosterior draws for it alone with the same seed: per-problem random
// streams keep the draws in the sequential order. Exact (to float rounding)
// for the Gaussian prior, whose denoiser treats each image alone; for a
// U-Net with a covariance head, up to the engine's batch invariance.
func TestSamplePosteriorsEqualsOneAtATime(t *testing.T) {
	rng := rand.New(rand.NewPCG(40, 40))
	const coils, h, w = 2, 16, 16
	g := smpPrior(t, rng, h, w, 2, 1)
	net, err := priors.NewUNet(priors.UNetConfig{Channels: 2, Rows: h, Cols: w, Widths: []int{8, 16}, Blocks: 1,
		Attention: []int{1}, Heads: 1, EmbedDim: 8, EmbedMaxPeriod: 1000, Unshuffle: 1, Groups: 4}, 3)
	if err != nil {
		t.Fatal(err)
	}
	head, err := priors.NewCovHead("head-narrow", 2, h, w, 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := net.SetCovariance(head); err != nil {
		t.Fatal(err)
	}
	var probs []Problem
	for i := range 3 { // different masks (so measurement counts), noise and scales
		A, mask := restrictSENSE(rng, coils, h, w)
		R, err := Restrict(A, Measured(mask, coils))
		if err != nil {
			t.Fatal(err)
		}
		_, y := smpMeasure(t, rng, g, A, 0.01)
		yr := make([]complex64, R.OutLen())
		R.Gather(yr, y)
		probs = append(probs, Problem{A: R, Y: yr, NoiseVar: 0.01 * float64(i+1), Scale: 1 + 0.5*float64(i)})
	}
	if probs[0].A.OutLen() == probs[1].A.OutLen() && probs[1].A.OutLen() == probs[2].A.OutLen() {
		t.Fatal("the problems have equal measurement counts: the test would not cover unequal ones")
	}
	for _, tc := range []struct {
		name string
		d    priors.Denoiser
		opt  SampleOptions
		tol  float64
	}{
		{"gaussian, diagonal", g, SampleOptions{Steps: 5, Covariance: CovDiagonal, Samples: 3, Seed: 7}, 1e-6},
		{"gaussian, jacobian", g, SampleOptions{Steps: 5, Covariance: CovJacobian, CGIter: 2, Samples: 3, Seed: 7}, 1e-6},
		{"gaussian, dps", g, SampleOptions{Method: "dps", Steps: 5, Zeta: 0.5, Samples: 2, Seed: 7}, 1e-6},
		{"unet, diagonal", net, SampleOptions{Steps: 4, Covariance: CovDiagonal, Samples: 2, Seed: 8}, 1e-4},
	} {
		got, err := SamplePosteriors(context.Background(), tc.d, probs, tc.opt)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		worst := 0.0
		for i, p := range probs {
			o := tc.opt
			o.NoiseVar, o.Scale = p.NoiseVar, p.Scale
			want, err := SamplePosterior(context.Background(), tc.d, p.A, p.Y, o)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range want.Samples {
				worst = max(worst, cabs64(got[i].Samples[k]-v)/max(cabs64(v), 1e-2))
			}
			if d := got[i].Residual - want.Residual; d > 1e-4 || d < -1e-4 {
				t.Errorf("%s, problem %d: residual %v, alone %v", tc.name, i, got[i].Residual, want.Residual)
			}
			if tc.opt.Method != "dps" && got[i].CGIterations != want.CGIterations {
				t.Errorf("%s, problem %d: %v CG iterations per step, alone %v", tc.name, i, got[i].CGIterations, want.CGIterations)
			}
		}
		t.Logf("%s: largest relative difference to one problem at a time %.2e", tc.name, worst)
		if worst > tc.tol {
			t.Errorf("%s: batched samples differ from one problem at a time by up to %.2e (relative), want ≤ %.0e", tc.name, worst, tc.tol)
		}
	}
	if _, err := SamplePosteriors(context.Background(), g, []Problem{probs[0], {A: mri.NewSENSE(make([]complex64, 4*4), 1, 4, 4, make([]float32, 16)), Y: make([]complex64, 16)}}, SampleOptions{Steps: 2}); err == nil {
		t.Error("a problem of another image size accepted")
	}
}
