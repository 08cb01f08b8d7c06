//go:build cuda

package posterior

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/kspaced/kspaced/internal/gpu"
	"github.com/kspaced/kspaced/internal/gpu/gputest"
	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/priors"
	"github.com/kspaced/kspaced/priors/nn"
)

// cudaBenchScan is a rows×cols slice with smooth, normalised coil maps,
// every 4th phase-encoding line plus 16 central ones, and k-space of a
// smooth random image with noise of variance 1e-4.
func cudaBenchScan(rows, cols, coils int) (maps []complex64, mask []float32, y []complex64) {
	rng := rand.New(rand.NewPCG(80, 80))
	hw := rows * cols
	maps = make([]complex64, coils*hw)
	for c := range coils {
		a := 2 * math.Pi * float64(c) / float64(coils)
		cr, cc := float64(rows)*(0.5+0.4*math.Sin(a)), float64(cols)*(0.5+0.4*math.Cos(a))
		for i := range hw {
			dr, dc := float64(i/cols)-cr, float64(i%cols)-cc
			m := math.Exp(-(dr*dr + dc*dc) / (0.5 * float64(rows*cols)))
			maps[c*hw+i] = complex64(complex(m*math.Cos(a+dr/float64(rows)), m*math.Sin(a+dc/float64(cols))))
		}
	}
	for i := range hw {
		var s float64
		for c := range coils {
			v := maps[c*hw+i]
			s += float64(real(v)*real(v) + imag(v)*imag(v))
		}
		f := complex(float32(1/math.Sqrt(s)), 0)
		for c := range coils {
			maps[c*hw+i] *= f
		}
	}
	mask = make([]float32, hw)
	for r := range rows {
		if r%4 == 0 || (r >= rows/2-8 && r < rows/2+8) {
			for c := range cols {
				mask[r*cols+c] = 1
			}
		}
	}
	x := make([]complex64, hw)
	for i := range x {
		dr, dc := float64(i/cols)/float64(rows)-0.5, float64(i%cols)/float64(cols)-0.5
		x[i] = complex(float32(math.Exp(-8*(dr*dr+dc*dc))+0.05*rng.NormFloat64()), 0)
	}
	y = make([]complex64, coils*hw)
	mri.NewSENSE(maps, coils, rows, cols, mask).Forward(y, x)
	for i := range y {
		y[i] += complex(float32(0.007*rng.NormFloat64()), float32(0.007*rng.NormFloat64()))
		y[i] *= complex(mask[i%hw], 0)
	}
	return maps, mask, y
}

// cudaBenchNet is SmallUNet, with a 2× pixel-unshuffle stem above 256
// pixels a side so that attention at the coarsest level stays affordable.
func cudaBenchNet(rows, cols int) priors.UNetConfig {
	c := priors.SmallUNet(rows, cols)
	if rows > 256 || cols > 256 {
		c.Unshuffle = 2
	}
	return c
}

// BenchmarkSamplePosteriorCUDA times MMPS posterior samples (64 steps, CG 3,
// random network weights: the cost does not depend on them) at 128×128
// with 8 coils and 320×320 with 16 coils, on the GPU (U-Net on the CUDA
// backend in TF32 and in FP32, SENSE on the device) with 1 and 8 samples
// per batch, and on the CPU backend for the ratio. It reports s/sample
// normalised to 64 steps and samples/s. The CPU runs take minutes per
// sample; KSPACED_BENCH_CPU_STEPS (default 64) shortens them, the cost
// per step being constant. Run with -benchtime 1x; it skips without a GPU.
func BenchmarkSamplePosteriorCUDA(b *testing.B) {
	ctx := gputest.Device(b)
	cpuSteps := 64
	if v, err := strconv.Atoi(os.Getenv("KSPACED_BENCH_CPU_STEPS")); err == nil && v >= 2 {
		cpuSteps = v
	}
	b.Logf("device: %v", ctx.Info())
	for _, sc := range []struct{ rows, cols, coils int }{{128, 128, 8}, {320, 320, 16}} {
		maps, mask, y := cudaBenchScan(sc.rows, sc.cols, sc.coils)
		for _, dev := range []string{"cuda-tf32", "cuda", "cpu"} {
			for _, batch := range []int{1, 8} {
				if dev == "cpu" && batch > 1 {
					continue
				}
				name := fmt.Sprintf("%dx%dx%d/%s/batch%d", sc.rows, sc.cols, sc.coils, dev, batch)
				b.Run(name, func(b *testing.B) {
					benchSampleOn(b, ctx, dev, sc.rows, sc.cols, sc.coils, maps, mask, y, batch, cpuSteps)
				})
			}
		}
	}
}

func benchSampleOn(b *testing.B, ctx *gpu.Context, dev string, rows, cols, coils int, maps []complex64, mask []float32,
	y []complex64, batch, cpuSteps int) {
	cfg := cudaBenchNet(rows, cols)
	var net *priors.UNet
	var A mri.Operator
	var be *nn.CUDA
	steps := 64
	var err error
	if dev == "cpu" {
		steps = cpuSteps
		if net, err = priors.NewUNet(cfg, 1); err != nil {
			b.Fatal(err)
		}
		A = mri.NewSENSE(maps, coils, rows, cols, mask)
	} else {
		if be, err = nn.NewCUDA(ctx, nn.CUDAOptions{TF32: dev == "cuda-tf32"}); err != nil {
			b.Fatal(err)
		}
		defer be.Close()
		if net, err = priors.NewUNetOn(be, cfg, 1); err != nil {
			b.Fatal(err)
		}
		net.MemoryBudget = 32 << 30
		d, err := mri.NewDeviceSENSE(ctx, maps, coils, rows, cols, mask)
		if err != nil {
			b.Fatal(err)
		}
		defer d.Close()
		A = d
	}
	opt := SampleOptions{Steps: steps, CGIter: 3, NoiseVar: 1e-4, Samples: batch}
	// One untimed step compiles, plans and allocates everything once.
	warm := opt
	warm.Steps = 2
	if _, err := SamplePosterior(context.Background(), net, A, y, warm); err != nil {
		b.Fatal(err)
	}
	n := 0
	t0 := time.Now()
	for b.Loop() {
		opt.Seed = uint64(n)
		n++
		if _, err := SamplePosterior(context.Background(), net, A, y, opt); err != nil {
			b.Fatal(err)
		}
	}
	if be != nil {
		if err := be.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	per := time.Since(t0).Seconds() / float64(n*batch) * 64 / float64(steps)
	b.ReportMetric(per, "s/sample")
	b.ReportMetric(1/per, "samples/s")
	b.ReportMetric(float64(steps), "steps-run")
}
