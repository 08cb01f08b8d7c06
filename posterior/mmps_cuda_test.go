//go:build cuda

package posterior

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kspaced/kspaced/internal/gpu"
	"github.com/kspaced/kspaced/internal/gpu/gputest"
	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/priors"
	"github.com/kspaced/kspaced/priors/nn"
)

// cudaTestNet is small but has every op the sampler's network uses:
// unshuffle stem, two levels, attention, group norm, embeddings.
func cudaTestNet(h, w int) priors.UNetConfig {
	return priors.UNetConfig{Channels: 2, Rows: h, Cols: w, Widths: []int{8, 16}, Blocks: 1, Attention: []int{1},
		Heads: 2, EmbedDim: 16, EmbedMaxPeriod: 1000, Unshuffle: 2, Groups: 4}
}

type mmpsProblem struct {
	cfg  priors.UNetConfig
	maps []complex64
	mask []float32
	y    []complex64
	c    int
}

func newMMPSProblem(seed uint64, coils, h, w int) *mmpsProblem {
	rng := rand.New(rand.NewPCG(seed, 5))
	p := &mmpsProblem{cfg: cudaTestNet(h, w), c: coils}
	p.maps = make([]complex64, coils*h*w)
	for i := range p.maps {
		p.maps[i] = complex(float32(0.5*rng.NormFloat64()), float32(0.5*rng.NormFloat64()))
	}
	p.mask = make([]float32, h*w)
	for i := range p.mask {
		if rng.Float64() < 0.4 || (i/w >= h/2-1 && i/w <= h/2) {
			p.mask[i] = 1
		}
	}
	p.y = make([]complex64, coils*h*w)
	for i := range p.y {
		p.y[i] = complex(p.mask[i%(h*w)]*float32(rng.NormFloat64()), p.mask[i%(h*w)]*float32(rng.NormFloat64()))
	}
	return p
}

func relErr(got, want []float32) float64 {
	var d, s float64
	for i := range want {
		d = math.Max(d, math.Abs(float64(got[i])-float64(want[i])))
		s = math.Max(s, math.Abs(float64(want[i])))
	}
	return d / math.Max(s, 1e-30)
}

// TestMMPSStepCUDA runs one MMPS step (denoiser, CG with three VJPs,
// the posterior estimate) with the U-Net on the CUDA backend and the SENSE
// operator on the device, against the same step on the CPU backend and
// mri.SENSE, for a batch of samples at several noise levels.
func TestMMPSStepCUDA(t *testing.T) {
	gputest.Both(t, func(t *testing.T, ctx *gpu.Context) {
		const coils, h, w = 3, 16, 16
		p := newMMPSProblem(1, coils, h, w)
		cpuNet, err := priors.NewUNet(p.cfg, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, tf32 := range []bool{false, true} {
			be, err := nn.NewCUDA(ctx, nn.CUDAOptions{TF32: tf32})
			if err != nil {
				t.Fatal(err)
			}
			defer be.Close()
			gpuNet, err := priors.NewUNetOn(be, p.cfg, 7)
			if err != nil {
				t.Fatal(err)
			}
			devA, err := mri.NewDeviceSENSE(ctx, p.maps, coils, h, w, p.mask)
			if err != nil {
				t.Fatal(err)
			}
			defer devA.Close()
			tol := 1e-5
			if tf32 {
				tol = 1e-3
			}
			for _, sigma := range []float64{priors.Sigma(0.2), priors.Sigma(0.5), priors.Sigma(0.8)} {
				var e [2][]float32
				for side, net := range []*priors.UNet{cpuNet, gpuNet} {
					var A mri.Operator = mri.NewSENSE(p.maps, coils, h, w, p.mask)
					if side == 1 {
						A = devA
					}
					s, err := newSampler(net, A, p.y, SampleOptions{CGIter: 3, Samples: 2, NoiseVar: 0.05, Seed: 3})
					if err != nil {
						t.Fatal(err)
					}
					s.start()
					for k := range s.x {
						s.x[k] *= float32(sigma / priors.SigmaMax)
					}
					for j := range s.sig {
						s.sig[j] = float32(sigma)
					}
					if err := s.mmpsEstimate(sigma); err != nil {
						t.Fatal(err)
					}
					e[side] = s.e
				}
				if err := be.Err(); err != nil {
					t.Fatal(err)
				}
				if err := devA.Err(); err != nil {
					t.Fatal(err)
				}
				if d := relErr(e[1], e[0]); d > tol {
					t.Errorf("tf32 %v, σ = %.3g: MMPS estimate differs from the CPU by %.3g (tolerance %g)", tf32, sigma, d, tol)
				} else {
					t.Logf("tf32 %v, σ = %.3g: relative difference %.2g", tf32, sigma, d)
				}
			}
		}
	})
}

// TestSamplePosteriorCUDA runs a short complete sampling on the GPU path
// and checks it against the CPU run. Rounding differences grow over the
// steps (the DDPM update feeds each step's estimate into the next), so
// the bound is looser than the single-step one.
func TestSamplePosteriorCUDA(t *testing.T) {
	gputest.Both(t, func(t *testing.T, ctx *gpu.Context) {
		const coils, h, w = 2, 16, 16
		p := newMMPSProblem(2, coils, h, w)
		be, err := nn.NewCUDA(ctx, nn.CUDAOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer be.Close()
		cpuNet, err := priors.NewUNet(p.cfg, 9)
		if err != nil {
			t.Fatal(err)
		}
		gpuNet, err := priors.NewUNetOn(be, p.cfg, 9)
		if err != nil {
			t.Fatal(err)
		}
		devA, err := mri.NewDeviceSENSE(ctx, p.maps, coils, h, w, p.mask)
		if err != nil {
			t.Fatal(err)
		}
		defer devA.Close()
		opt := SampleOptions{Steps: 4, CGIter: 2, Samples: 2, NoiseVar: 0.05, Seed: 4}
		want, err := SamplePosterior(context.Background(), cpuNet, mri.NewSENSE(p.maps, coils, h, w, p.mask), p.y, opt)
		if err != nil {
			t.Fatal(err)
		}
		got, err := SamplePosterior(context.Background(), gpuNet, devA, p.y, opt)
		if err != nil {
			t.Fatal(err)
		}
		flat := func(v []complex64) []float32 {
			o := make([]float32, 2*len(v))
			for i, c := range v {
				o[2*i], o[2*i+1] = real(c), imag(c)
			}
			return o
		}
		d := relErr(flat(got.Samples), flat(want.Samples))
		t.Logf("%d steps: samples differ by %.2g relative", opt.Steps, d)
		if d > 1e-4 {
			t.Errorf("samples differ from the CPU run by %.3g", d)
		}
		if got.DenoiserEvals != want.DenoiserEvals || got.VJPs != want.VJPs {
			t.Errorf("work differs: %d/%d evaluations, %d/%d VJPs", got.DenoiserEvals, want.DenoiserEvals, got.VJPs, want.VJPs)
		}
		if err := be.Err(); err != nil {
			t.Fatal(fmt.Errorf("backend: %w", err))
		}
	})
}
