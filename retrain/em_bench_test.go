package retrain

import (
	"context"
	"fmt"
	"testing"

	"github.com/kspaced/kspaced/posterior"
	"github.com/kspaced/kspaced/priors"
)

// BenchmarkEStep times one E-step (one MMPS posterior sample per
// observation) over 8 simulated 48×48 4-coil scans with the
// small-unshuffle network, on 1 and 2 goroutines, and the exact Gaussian
// E-step on the same scans; report seconds per scan.
//
//	go test -run '^$' -bench EStep -benchtime 2x ./priors/
func BenchmarkEStep(b *testing.B) {
	const size, n = 48, 8
	obs := emObservations(b, n, size, 4, 4, 0.005, 3)
	u, err := priors.NewUNet(priors.SmallUnshuffleUNet(size, size), 1)
	if err != nil {
		b.Fatal(err)
	}
	g, _, err := FitGaussianEM(context.Background(), obs, size, size, GaussianEMOptions{Rank: 4, Laps: 1, Samples: 1})
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]float32, n*2*size*size)
	for _, tc := range []struct {
		name    string
		d       priors.Denoiser
		workers int
	}{{"unet/workers=1", u, 1}, {"unet/workers=2", u, 2}, {"gaussian/workers=1", g, 1}, {"gaussian/workers=2", g, 2}} {
		b.Run(tc.name, func(b *testing.B) {
			for range b.N {
				if err := EStep(context.Background(), tc.d, obs, posterior.SampleOptions{Steps: 16, CGIter: 2, Seed: 1}, tc.workers, dst, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N*n), "s/scan")
		})
	}
	_ = fmt.Sprint()
}

// BenchmarkGaussianPosteriorCG counts the CG iterations an exact Gaussian
// posterior mean needs (relative residual 1e-4) with and without the
// low-rank deflation preconditioner, on 48×48 4-coil scans under a rank-8
// prior fitted to them.
//
//	go test -run '^$' -bench GaussianPosteriorCG -benchtime 1x ./priors/
func BenchmarkGaussianPosteriorCG(b *testing.B) {
	const size = 48
	obs := emObservations(b, 12, size, 4, 4, 0.005, 5)
	g, _, err := FitGaussianEM(context.Background(), obs, size, size, GaussianEMOptions{Rank: 8, Laps: 2, Samples: 1})
	if err != nil {
		b.Fatal(err)
	}
	sup, err := checkObservations(obs, size, size)
	if err != nil {
		b.Fatal(err)
	}
	for _, plain := range []bool{false, true} {
		name := "preconditioned"
		if plain {
			name = "plain"
		}
		b.Run(name, func(b *testing.B) {
			p := newGaussPosterior(g, size, size)
			x := make([]float64, 2*size*size)
			var iters int
			for range b.N {
				for i := range obs {
					if err := p.bind(&obs[i], sup[i]); err != nil {
						b.Fatal(err)
					}
					p.noPrecond = plain
					st, err := p.mean(context.Background(), x, 20000, 1e-4)
					if err != nil {
						b.Fatal(err)
					}
					iters += st.iters
				}
			}
			b.ReportMetric(float64(iters)/float64(b.N*len(obs)), "cg-iters")
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N*len(obs)), "s/solve")
		})
	}
}
