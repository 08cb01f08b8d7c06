package posterior

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/priors"
)

// smpBenchScan is a 128×128, 8-coil Cartesian slice: smooth coil maps
// normalised to Σ_c|S_c|² = 1, every 4th phase-encoding line plus 16 central
// ones, and k-space of a prior sample with complex noise of variance 1e-4.
func smpBenchScan(b *testing.B, g *priors.Gaussian, rows, cols, coils int) (*mri.SENSE, []complex64) {
	rng := rand.New(rand.NewPCG(60, 60))
	maps := smpNewSENSE(rng, coils, rows, cols, nil).maps
	hw := rows * cols
	for i := range hw {
		var s float64
		for c := range coils {
			v := maps[c*hw+i]
			s += float64(real(v)*real(v) + imag(v)*imag(v))
		}
		f := float32(1 / math.Sqrt(s))
		for c := range coils {
			maps[c*hw+i] *= complex(f, 0)
		}
	}
	mask := make([]float32, hw)
	for y := range rows {
		if y%4 == 0 || (y >= rows/2-8 && y < rows/2+8) {
			for x := range cols {
				mask[y*cols+x] = 1
			}
		}
	}
	A := mri.NewSENSE(maps, coils, rows, cols, mask)
	_, y := smpMeasure(b, rng, g, A, 1e-4)
	for i := range y {
		if mask[i%hw] == 0 {
			y[i] = 0
		}
	}
	return A, y
}

// BenchmarkSamplePosterior times posterior samples (s/sample) of a
// 128×128 8-coil slice with 64 steps, for MMPS with 1 and 3 CG iterations
// and DPS, one sample per call, and MMPS with 4 samples as one batch, under a rank-16 Gaussian prior and the small U-Net (random
// weights: the cost does not depend on them). The U-Net runs take minutes
// per sample on a CPU, so they run only with KSPACED_BENCH_UNET=1.
func BenchmarkSamplePosterior(b *testing.B) {
	const rows, cols, coils, steps = 128, 128, 8, 64
	rng := rand.New(rand.NewPCG(61, 61))
	gauss := smpPrior(b, rng, rows, cols, 16, 0)
	A, y := smpBenchScan(b, gauss, rows, cols, coils)
	priors := []struct {
		name string
		d    func() (priors.Denoiser, error)
	}{
		{"gaussian", func() (priors.Denoiser, error) { return gauss, nil }},
		{"unet", func() (priors.Denoiser, error) { return priors.NewUNet(priors.SmallUNet(rows, cols), 1) }},
	}
	for _, pr := range priors {
		for _, run := range []struct {
			name    string
			method  string
			cg      int
			samples int
		}{{"mmps-cg1", "mmps", 1, 1}, {"mmps-cg3", "mmps", 3, 1}, {"dps", "dps", 0, 1}, {"mmps-cg1-batch4", "mmps", 1, 4}} {
			b.Run(fmt.Sprintf("%s/%s", pr.name, run.name), func(b *testing.B) {
				if pr.name == "unet" && os.Getenv("KSPACED_BENCH_UNET") != "1" {
					b.Skip("U-Net sampling takes minutes per sample on a CPU: set KSPACED_BENCH_UNET=1")
				}
				d, err := pr.d()
				if err != nil {
					b.Fatal(err)
				}
				opt := SampleOptions{Method: run.method, Steps: steps, CGIter: run.cg, Zeta: 1, NoiseVar: 1e-4, Samples: run.samples}
				var p *Posterior
				cpu0, wall0 := smpCPUTime(), time.Now()
				n := 0
				for b.Loop() {
					opt.Seed = uint64(n)
					n++
					if p, err = SamplePosterior(context.Background(), d, A, y, opt); err != nil {
						b.Fatal(err)
					}
				}
				// CPU seconds of the whole process (all threads): on a shared
				// machine this moves less with other load than wall time.
				per := float64(n * run.samples)
				b.ReportMetric(time.Since(wall0).Seconds()/per, "s/sample")
				b.ReportMetric((smpCPUTime()-cpu0).Seconds()/per, "cpu-s/sample")
				b.ReportMetric(float64(p.DenoiserEvals), "evals/sample")
				b.ReportMetric(float64(p.VJPs), "vjps/sample")
			})
		}
	}
}

// smpCPUTime is the process's user plus system CPU time.
func smpCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
