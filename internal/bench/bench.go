// Package bench measures kspaced's headline figures for `kspaced bench`: the
// FFT, the SENSE operator and classical reconstruction, ESPIRiT, the network
// engine, and (optionally) posterior sampling. Each figure is the best of a
// few repetitions, since the machines it runs on are often shared.
package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"time"

	"github.com/kspaced/kspaced/fft"
	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/mri/espirit"
	"github.com/kspaced/kspaced/mri/simulate"
	"github.com/kspaced/kspaced/posterior"
	"github.com/kspaced/kspaced/priors"
	"github.com/kspaced/kspaced/priors/nn"
)

// Options select what to measure.
type Options struct {
	Reps int // repetitions per figure (best is reported); default 3
	// Sampling also times posterior sampling with a small U-Net (minutes on
	// a CPU); Steps and CG configure it.
	Sampling  bool
	Steps, CG int
}

// Run writes the figures to w.
func Run(ctx context.Context, w io.Writer, opt Options) error {
	if opt.Reps <= 0 {
		opt.Reps = 3
	}
	fmt.Fprintf(w, "kspaced bench: %s/%s, GOMAXPROCS %d, best of %d\n", runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), opt.Reps)
	benchFFT(w, opt.Reps)
	if err := benchMRI(ctx, w, opt.Reps); err != nil {
		return err
	}
	if err := nn.BenchEngine(w); err != nil {
		return err
	}
	if opt.Sampling {
		return benchSampling(ctx, w, opt)
	}
	return nil
}

// best runs f reps times and returns the shortest duration.
func best(reps int, f func()) time.Duration {
	b := time.Duration(1<<63 - 1)
	for i := 0; i < reps; i++ {
		t := time.Now()
		f()
		b = min(b, time.Since(t))
	}
	return b
}

func randomComplex(n int, rng *rand.Rand) []complex64 {
	x := make([]complex64, n)
	for i := range x {
		x[i] = complex(float32(rng.NormFloat64()), float32(rng.NormFloat64()))
	}
	return x
}

func benchFFT(w io.Writer, reps int) {
	rng := rand.New(rand.NewPCG(1, 2))
	fmt.Fprintln(w, "fft: centred orthonormal 2-D, 16-coil batch, forward")
	for _, sz := range [][2]int{{320, 320}, {640, 368}} {
		x := randomComplex(16*sz[0]*sz[1], rng)
		y := make([]complex64, len(x))
		fft.Forward(y, x, sz[0], sz[1]) // plan and scratch
		d := best(reps, func() { fft.Forward(y, x, sz[0], sz[1]) })
		fmt.Fprintf(w, "  16×%d×%d  %8.2f ms per batch\n", sz[0], sz[1], d.Seconds()*1e3)
	}
}

// brainSlice is an 8-coil 128×128 simulated scan at 4× (random 1-D mask).
func brainSlice(rows, cols, coils int) (*mri.Scan, []complex64, error) {
	img := make([]complex64, rows*cols)
	for i, v := range simulate.Resize(simulate.SheppLogan(256), 256, 256, rows, cols) {
		img[i] = complex(v, 0)
	}
	mask, err := mri.RandomMask(rows, cols, 0.08, 4, 1)
	if err != nil {
		return nil, nil, err
	}
	maps := simulate.CoilMaps(coils, rows, cols)
	s, err := simulate.KSpace(img, maps, coils, rows, cols, mask, 0.005, rand.New(rand.NewPCG(3, 4)))
	return s, maps, err
}

func benchMRI(ctx context.Context, w io.Writer, reps int) error {
	fmt.Fprintln(w, "mri: 8 coils, 4× random 1-D mask")
	for _, n := range []int{128, 320} {
		s, maps, err := brainSlice(n, n, 8)
		if err != nil {
			return err
		}
		op := mri.NewSENSE(maps, 8, n, n, s.Mask)
		x, y := make([]complex64, n*n), make([]complex64, n*n)
		op.Normal(y, x)
		d := best(reps, func() { op.Normal(y, x) })
		fmt.Fprintf(w, "  SENSE AᴴA %d×%d           %8.2f ms\n", n, n, d.Seconds()*1e3)
		var ferr error
		d = best(reps, func() {
			_, ferr = espirit.Maps(ctx, s.KSpace, 8, n, n, s.Mask, espirit.Options{Kernel: 5})
		})
		if ferr != nil {
			return ferr
		}
		fmt.Fprintf(w, "  ESPIRiT maps %d×%d        %8.2f s\n", n, n, d.Seconds())
		d = best(reps, func() {
			clear(x)
			_, _, ferr = mri.CGSENSE(ctx, x, op, s.KSpace, 0.01, 50, 0, nil)
		})
		if ferr != nil {
			return ferr
		}
		fmt.Fprintf(w, "  CG-SENSE 50 it %d×%d      %8.2f s per slice\n", n, n, d.Seconds())
		d = best(reps, func() {
			clear(x)
			_, ferr = mri.L1Wavelet(ctx, x, op, s.KSpace, n, n, mri.L1Options{Lambda: 0.001, MaxIter: 50})
		})
		if ferr != nil {
			return ferr
		}
		fmt.Fprintf(w, "  L1-wavelet 50 it %d×%d    %8.2f s per slice\n", n, n, d.Seconds())
	}
	return nil
}

func benchSampling(ctx context.Context, w io.Writer, opt Options) error {
	const n, coils = 128, 8
	s, maps, err := brainSlice(n, n, coils)
	if err != nil {
		return err
	}
	op := mri.NewSENSE(maps, coils, n, n, s.Mask)
	u, err := priors.NewUNet(priors.SmallUNet(n, n), 1)
	if err != nil {
		return err
	}
	steps := max(opt.Steps, 2)
	fmt.Fprintf(w, "sampling: 128×128, 8 coils, SmallUNet (untrained weights; cost does not depend on them), %d steps\n", steps)
	for _, c := range []struct {
		method string
		cg     int
	}{{"mmps", 1}, {"mmps", max(opt.CG, 1)}, {"dps", 0}} {
		var post *posterior.Posterior
		t := time.Now()
		post, err = posterior.SamplePosterior(ctx, u, op, s.KSpace, posterior.SampleOptions{
			Method: c.method, Steps: steps, CGIter: c.cg, Samples: 1, Seed: 1, NoiseVar: 2.5e-5,
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "  %-4s CG %d  %8.2f s per sample  (%d evaluations, %d VJPs)\n",
			c.method, c.cg, time.Since(t).Seconds(), post.DenoiserEvals, post.VJPs)
	}
	return nil
}
