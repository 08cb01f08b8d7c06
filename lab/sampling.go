package lab

import (
	"context"
	"fmt"
	"io"
	"math"
	"syscall"
	"time"

	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/posterior"
	"github.com/kspaced/kspaced/priors"
	"github.com/kspaced/kspaced/retrain"
)

// SamplerConfig is one MMPS configuration of SamplingSteps.
type SamplerConfig struct {
	Covariance string // posterior.CovJacobian or CovDiagonal
	Steps      int
	CGIter     int // Jacobian: iterations (VJPs) per step
	DiagCGIter int // diagonal: cap on iterations per step (0: the library's)
}

func (c SamplerConfig) String() string {
	if c.Covariance == posterior.CovDiagonal {
		s := fmt.Sprintf("diagonal, %d steps", c.Steps)
		if c.DiagCGIter > 0 {
			s += fmt.Sprintf(", CG ≤ %d", c.DiagCGIter)
		}
		return s
	}
	return fmt.Sprintf("jacobian CG %d, %d steps", c.CGIter, c.Steps)
}

// SamplingRow is one configuration on one observation.
type SamplingRow struct {
	Config     SamplerConfig
	Scan       string
	PSNR, SSIM float64 // of |mean| against |truth| (fastMRI conventions)
	// Coverage is the fraction of foreground pixels (|truth| > 0.1·max)
	// with ||mean| − |truth|| ≤ k·(std of the samples' magnitudes), k =
	// posterior.IntervalWidth(samples, 0.90): the 90 % interval of n samples.
	Coverage float64
	Seconds  float64 // SamplePosterior's wall time
	CPU      float64 // the process's CPU seconds meanwhile (steadier under outside load)
	Evals    int     // denoiser evaluations per sample
	VJPs     int
	CGIters  float64 // per step and sample
}

// SamplingSteps draws samples posterior samples of every observation
// (with a truth) under prior d for each configuration and scores the mean
// and the 90 % intervals against the truth: quality and time against steps
// and covariance (docs/bench/sampling.md).
func SamplingSteps(ctx context.Context, d priors.Denoiser, obs []retrain.Observation, rows, cols int, cfgs []SamplerConfig, samples int, seed uint64, log io.Writer) ([]SamplingRow, error) {
	var out []SamplingRow
	hw := rows * cols
	for _, o := range obs {
		if o.Truth == nil {
			continue
		}
		dd, err := priors.ForSize(d, rows, cols)
		if err != nil {
			return nil, err
		}
		tm := make([]float32, hw)
		mri.Magnitude(tm, o.Truth)
		dr := float64(mri.MaxOf(tm))
		k := posterior.IntervalWidth(samples, 0.90)
		for _, c := range cfgs {
			start, cpu := time.Now(), cpuSeconds()
			p, err := posterior.SamplePosterior(ctx, dd, o.A, o.Y, posterior.SampleOptions{
				Method: "mmps", Covariance: c.Covariance, Steps: c.Steps, CGIter: c.CGIter, DiagCGIter: c.DiagCGIter,
				Samples: samples, Seed: seed, NoiseVar: o.NoiseVar, Scale: o.Scale})
			if err != nil {
				return nil, fmt.Errorf("%s, %v: %w", o.Name, c, err)
			}
			r := SamplingRow{Config: c, Scan: o.Name, Seconds: time.Since(start).Seconds(), CPU: cpuSeconds() - cpu, Evals: p.DenoiserEvals, VJPs: p.VJPs, CGIters: p.CGIterations}
			xm := make([]float32, hw)
			mri.Magnitude(xm, p.Mean)
			if r.PSNR, err = mri.PSNR(tm, xm, dr); err != nil {
				return nil, err
			}
			if r.SSIM, err = mri.SSIM(tm, xm, rows, cols, dr); err != nil {
				return nil, err
			}
			in, fg := 0, 0
			for i, t := range tm {
				if float64(t) > 0.1*dr {
					fg++
					if math.Abs(float64(xm[i]-t)) <= k*float64(p.MagStd[i]) {
						in++
					}
				}
			}
			r.Coverage = float64(in) / float64(max(fg, 1))
			if log != nil {
				fmt.Fprintf(log, "%s | %v | PSNR %.2f dB, SSIM %.4f, coverage %.3f | %.1f s (CPU %.1f s), CG %.1f/step\n", o.Name, c, r.PSNR, r.SSIM, r.Coverage, r.Seconds, r.CPU, r.CGIters)
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// SamplingTable averages rows by configuration, in the order of cfgs, as a
// Markdown table.
func SamplingTable(w io.Writer, rows []SamplingRow, cfgs []SamplerConfig) {
	fmt.Fprintln(w, "| configuration | scans | PSNR dB | SSIM | coverage 90 % | sampling wall s | CPU s | evals | VJPs | CG iter./step |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, c := range cfgs {
		var n int
		var ps, ss, cv, sec, cpu float64
		var ev, vj int
		var cgi float64
		for _, r := range rows {
			if r.Config == c {
				n++
				ps += r.PSNR
				ss += r.SSIM
				cv += r.Coverage
				sec += r.Seconds
				cpu += r.CPU
				ev, vj = r.Evals, r.VJPs
				cgi += r.CGIters
			}
		}
		if n == 0 {
			continue
		}
		f := float64(n)
		fmt.Fprintf(w, "| %v | %d | %.2f | %.4f | %.3f | %.1f | %.1f | %d | %d | %.1f |\n", c, n, ps/f, ss/f, cv/f, sec/f, cpu/f, ev, vj, cgi/f)
	}
}

// cpuSeconds is the process's user and system CPU time so far.
func cpuSeconds() float64 {
	var r syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &r) != nil {
		return math.NaN()
	}
	return float64(r.Utime.Nano()+r.Stime.Nano()) / 1e9
}
