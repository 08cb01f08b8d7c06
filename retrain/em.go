package retrain

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"

	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/posterior"
	"github.com/kspaced/kspaced/priors"
)

// Observation is one undersampled scan as expectation-maximisation and the
// evaluation of priors see it: y = A x + n in image units, and the scale
// that maps the image into the prior's space.
type Observation struct {
	Name string
	// A maps a rows×cols complex image (image units) to the measurements.
	// It is only ever used by one goroutine at a time.
	A mri.Operator
	// Y holds A.OutLen() measurements; entries A never measures are ignored.
	Y []complex64
	// NoiseVar is σ_y² = E|n|² of each measurement in image units (> 0).
	NoiseVar float64
	// Scale maps image units to prior space: prior image = image / Scale.
	Scale float64
	// Truth is the image behind the data when known (simulations), else nil.
	Truth []complex64
}

// obsSeed derives observation i's sampler seed from a run seed.
func obsSeed(seed uint64, i int) uint64 {
	z := seed + 0x9e3779b97f4a7c15*uint64(i+1)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// denoisers returns up to workers denoisers computing what d does, d first
// and copies after it; a Denoiser of a type this package cannot copy runs
// alone (UNet and Gaussian are not safe for concurrent use).
func denoisers(d priors.Denoiser, workers int) ([]priors.Denoiser, error) {
	out := []priors.Denoiser{d}
	for len(out) < workers {
		switch v := d.(type) {
		case *priors.Gaussian:
			out = append(out, v.Clone())
		case *priors.UNet:
			c, err := v.Clone()
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		default:
			return out, nil
		}
	}
	return out, nil
}

// EStep draws one posterior sample per observation under the prior d into
// dst, as prior-space images [len(obs)][2][rows][cols]. A *Gaussian prior
// is sampled exactly (Matheron's rule with a converged CG solve); any other
// prior by MMPS with opt's Method, Steps, CGIter and Sampler (Samples,
// NoiseVar, Scale and Seed are set per observation; the seed from opt.Seed
// and the observation's index, so the result does not depend on workers).
// Observations are spread over workers goroutines, each with its own copy
// of the denoiser (workers ≤ 0: one per CPU for a Gaussian, one for a
// network, whose evaluations are already parallel).
func EStep(ctx context.Context, d priors.Denoiser, obs []Observation, opt posterior.SampleOptions, workers int, dst []float32, progress func(done, total int)) error {
	return eStepOf(ctx, d, obs, nil, opt, workers, dst, progress)
}

// eStepOf is EStep for the observations listed in which (nil: all), into dst
// in which's order. Seeds follow the index in obs, so an E-step split across
// shards (EStepShard) draws exactly the samples of an unsplit one.
func eStepOf(ctx context.Context, d priors.Denoiser, obs []Observation, which []int, opt posterior.SampleOptions, workers int, dst []float32, progress func(done, total int)) error {
	if which == nil {
		which = make([]int, len(obs))
		for i := range which {
			which[i] = i
		}
	}
	c, rows, cols := d.Shape()
	if c != 2 {
		return fmt.Errorf("e-step: prior has %d channels, want 2", c)
	}
	n := 2 * rows * cols
	if len(dst) != len(which)*n {
		return fmt.Errorf("e-step: %d values for %d images of %d", len(dst), len(which), n)
	}
	sup, err := checkObservations(obs, rows, cols)
	if err != nil {
		return fmt.Errorf("e-step: %w", err)
	}
	workers = autoWorkers(d, workers)
	if g, ok := d.(*priors.Gaussian); ok {
		return parallelObs(ctx, len(which), workers, progress, func(w *obsWorker, k int) error {
			i := which[k]
			if w.post == nil {
				w.post = newGaussPosterior(g, rows, cols)
			}
			if err := w.post.bind(&obs[i], sup[i]); err != nil {
				return fmt.Errorf("e-step: %s: %w", obs[i].Name, err)
			}
			x := make([]float64, n)
			rng := rand.New(rand.NewPCG(obsSeed(opt.Seed, i), 0x65))
			if _, _, err := w.post.sample(ctx, x, gaussCGIter, gaussCGTol, rng); err != nil {
				return fmt.Errorf("e-step: %s: %w", obs[i].Name, err)
			}
			for j, v := range x {
				dst[k*n+j] = float32(v)
			}
			return nil
		})
	}
	ds, err := denoisers(d, min(workers, len(which)))
	if err != nil {
		return fmt.Errorf("e-step: %w", err)
	}
	return parallelObsWith(ctx, len(which), len(ds), progress, func(wi int) *obsWorker { return &obsWorker{d: ds[wi]} },
		func(w *obsWorker, k int) error {
			i := which[k]
			o := &obs[i]
			so := opt
			so.Samples, so.NoiseVar, so.Scale, so.Seed = 1, o.NoiseVar, o.Scale, obsSeed(opt.Seed, i)
			so.Covariance = posterior.CovJacobian // EM keeps the exact covariance (seed 000: cheaper ones hurt EM)
			so.NoiseVarDiag, so.Progress = nil, nil
			p, err := posterior.SamplePosterior(ctx, w.d, o.A, o.Y, so)
			if err != nil {
				return fmt.Errorf("e-step: %s: %w", o.Name, err)
			}
			hw := rows * cols
			inv := 1 / o.Scale
			for j, v := range p.Samples[:hw] {
				dst[k*n+j] = float32(float64(real(v)) * inv)
				dst[k*n+hw+j] = float32(float64(imag(v)) * inv)
			}
			return nil
		})
}

// Converged CG settings for exact Gaussian posteriors outside the fit.
const (
	gaussCGIter = 500
	gaussCGTol  = 1e-5
)

// PosteriorMeans reconstructs every observation under the prior d and
// returns the images in image units: the exact posterior mean for a
// *Gaussian prior, otherwise the mean of opt.Samples MMPS samples (opt as
// for EStep). Observations are spread over workers goroutines.
func PosteriorMeans(ctx context.Context, d priors.Denoiser, obs []Observation, opt posterior.SampleOptions, workers int, progress func(done, total int)) ([][]complex64, error) {
	c, rows, cols := d.Shape()
	if c != 2 {
		return nil, fmt.Errorf("posterior means: prior has %d channels, want 2", c)
	}
	sup, err := checkObservations(obs, rows, cols)
	if err != nil {
		return nil, fmt.Errorf("posterior means: %w", err)
	}
	workers = autoWorkers(d, workers)
	hw := rows * cols
	out := make([][]complex64, len(obs))
	if g, ok := d.(*priors.Gaussian); ok {
		err := parallelObs(ctx, len(obs), workers, progress, func(w *obsWorker, i int) error {
			if w.post == nil {
				w.post = newGaussPosterior(g, rows, cols)
			}
			if err := w.post.bind(&obs[i], sup[i]); err != nil {
				return fmt.Errorf("posterior mean: %s: %w", obs[i].Name, err)
			}
			x := make([]float64, 2*hw)
			if _, err := w.post.mean(ctx, x, gaussCGIter, gaussCGTol); err != nil {
				return fmt.Errorf("posterior mean: %s: %w", obs[i].Name, err)
			}
			img := make([]complex64, hw)
			s := obs[i].Scale
			for j := range img {
				img[j] = complex(float32(x[j]*s), float32(x[hw+j]*s))
			}
			out[i] = img
			return nil
		})
		return out, err
	}
	ds, err := denoisers(d, min(workers, len(obs)))
	if err != nil {
		return nil, fmt.Errorf("posterior means: %w", err)
	}
	err = parallelObsWith(ctx, len(obs), len(ds), progress, func(wi int) *obsWorker { return &obsWorker{d: ds[wi]} },
		func(w *obsWorker, i int) error {
			o := &obs[i]
			so := opt
			so.NoiseVar, so.Scale, so.Seed = o.NoiseVar, o.Scale, obsSeed(opt.Seed, i)
			so.NoiseVarDiag, so.Progress = nil, nil
			p, err := posterior.SamplePosterior(ctx, w.d, o.A, o.Y, so)
			if err != nil {
				return fmt.Errorf("posterior mean: %s: %w", o.Name, err)
			}
			out[i] = p.Mean
			return nil
		})
	return out, err
}

// Score measures one reconstruction x (image units) of an observation.
type Score struct {
	// DataConsistency is ‖y − A x‖²/(M σ_y²) over the M measured values:
	// about 1 when x explains the data down to the noise, above 1 when it
	// does not fit them, below 1 when it fits the noise too.
	DataConsistency float64 `json:"data_consistency"`
	// PSNR (dB) and SSIM of |x| against |Truth| as fastMRI computes them
	// (data range = max |Truth|); NaN without a truth.
	PSNR float64 `json:"psnr"`
	SSIM float64 `json:"ssim"`
}

// ScoreReconstructions scores x[i] as a reconstruction of obs[i].
func ScoreReconstructions(obs []Observation, x [][]complex64, rows, cols int) ([]Score, error) {
	if len(x) != len(obs) {
		return nil, fmt.Errorf("score: %d reconstructions for %d observations", len(x), len(obs))
	}
	sup, err := checkObservations(obs, rows, cols)
	if err != nil {
		return nil, fmt.Errorf("score: %w", err)
	}
	hw := rows * cols
	out := make([]Score, len(obs))
	for i := range obs {
		o := &obs[i]
		if len(x[i]) != hw {
			return nil, fmt.Errorf("score: %s: reconstruction has %d values, want %d", o.Name, len(x[i]), hw)
		}
		ax := make([]complex64, o.A.OutLen())
		o.A.Forward(ax, x[i])
		var res float64
		M := 0
		for k, v := range ax {
			if !sup[i][k] {
				continue
			}
			d := complex128(o.Y[k]) - complex128(v)
			res += real(d)*real(d) + imag(d)*imag(d)
			M++
		}
		s := Score{DataConsistency: res / (float64(M) * o.NoiseVar), PSNR: math.NaN(), SSIM: math.NaN()}
		if o.Truth != nil {
			tm, xm := make([]float32, hw), make([]float32, hw)
			mri.Magnitude(tm, o.Truth)
			mri.Magnitude(xm, x[i])
			dr := mri.MaxOf(tm)
			if dr > 0 {
				if s.PSNR, err = mri.PSNR(tm, xm, dr); err != nil {
					return nil, fmt.Errorf("score: %s: %w", o.Name, err)
				}
				if s.SSIM, err = mri.SSIM(tm, xm, rows, cols, dr); err != nil {
					return nil, fmt.Errorf("score: %s: %w", o.Name, err)
				}
			}
		}
		out[i] = s
	}
	return out, nil
}

// ScoreSummary is the mean and standard deviation of scores over
// observations (PSNR and SSIM over those with a truth; NaN when none has
// one, null in JSON).
type ScoreSummary struct {
	N                                  int
	DataConsistency, DataConsistencySD float64
	WithTruth                          int
	PSNR, PSNRSD, SSIM, SSIMSD         float64
}

// scores is the summary in words: data consistency, and PSNR and SSIM
// where scans had truth.
func (s ScoreSummary) scores() string {
	w := fmt.Sprintf("data consistency %.3f", s.DataConsistency)
	if s.WithTruth > 0 {
		w += fmt.Sprintf(", PSNR %.2f dB, SSIM %.4f", s.PSNR, s.SSIM)
	}
	return w
}

type scoreSummaryJSON struct {
	N                 int      `json:"n"`
	DataConsistency   *float64 `json:"data_consistency"`
	DataConsistencySD *float64 `json:"data_consistency_sd"`
	WithTruth         int      `json:"with_truth"`
	PSNR              *float64 `json:"psnr"`
	PSNRSD            *float64 `json:"psnr_sd"`
	SSIM              *float64 `json:"ssim"`
	SSIMSD            *float64 `json:"ssim_sd"`
}

func finiteOrNil(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

func nilToNaN(v *float64) float64 {
	if v == nil {
		return math.NaN()
	}
	return *v
}

// MarshalJSON writes NaN as null.
func (s ScoreSummary) MarshalJSON() ([]byte, error) {
	return json.Marshal(scoreSummaryJSON{N: s.N, WithTruth: s.WithTruth,
		DataConsistency: finiteOrNil(s.DataConsistency), DataConsistencySD: finiteOrNil(s.DataConsistencySD),
		PSNR: finiteOrNil(s.PSNR), PSNRSD: finiteOrNil(s.PSNRSD), SSIM: finiteOrNil(s.SSIM), SSIMSD: finiteOrNil(s.SSIMSD)})
}

// UnmarshalJSON reads null as NaN.
func (s *ScoreSummary) UnmarshalJSON(b []byte) error {
	var j scoreSummaryJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*s = ScoreSummary{N: j.N, WithTruth: j.WithTruth,
		DataConsistency: nilToNaN(j.DataConsistency), DataConsistencySD: nilToNaN(j.DataConsistencySD),
		PSNR: nilToNaN(j.PSNR), PSNRSD: nilToNaN(j.PSNRSD), SSIM: nilToNaN(j.SSIM), SSIMSD: nilToNaN(j.SSIMSD)}
	return nil
}

// Summarise averages scores.
func Summarise(s []Score) ScoreSummary {
	out := ScoreSummary{N: len(s)}
	var dc, psnr, ssim []float64
	for _, v := range s {
		dc = append(dc, v.DataConsistency)
		if !math.IsNaN(v.PSNR) && !math.IsInf(v.PSNR, 0) {
			psnr = append(psnr, v.PSNR)
			ssim = append(ssim, v.SSIM)
		}
	}
	out.DataConsistency, out.DataConsistencySD = meanSD(dc)
	out.WithTruth = len(psnr)
	out.PSNR, out.PSNRSD = meanSD(psnr)
	out.SSIM, out.SSIMSD = meanSD(ssim)
	return out
}

func meanSD(x []float64) (float64, float64) {
	if len(x) == 0 {
		return math.NaN(), math.NaN()
	}
	var m float64
	for _, v := range x {
		m += v
	}
	m /= float64(len(x))
	if len(x) < 2 {
		return m, 0
	}
	var s float64
	for _, v := range x {
		s += (v - m) * (v - m)
	}
	return m, math.Sqrt(s / float64(len(x)-1))
}

// defaultWorkers is the E-step parallelism when none is given.
func defaultWorkers() int { return runtime.GOMAXPROCS(0) }

// autoWorkers resolves workers ≤ 0: a Gaussian's solves are single-threaded,
// so one goroutine per CPU; a network on the CPU backend already spreads
// each evaluation over every core, and on two cores two concurrent copies
// were no faster than one (docs/bench/em.md), so one, with one copy's memory.
func autoWorkers(d priors.Denoiser, workers int) int {
	if workers > 0 {
		return workers
	}
	if _, ok := d.(*priors.Gaussian); ok {
		return defaultWorkers()
	}
	return 1
}
