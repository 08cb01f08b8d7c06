package qc

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/kspaced/kspaced/priors"
)

// TypicalitySettings fix how the score is computed; a calibration is valid
// only for the settings it was made with, so it records them.
type TypicalitySettings struct {
	// Sigmas are the noise levels, in prior space (images divided by the
	// 99th-percentile magnitude of their zero-filled image).
	Sigmas []float64 `json:"sigmas"`
	// Seed draws the noise: the same for every scan of a size.
	Seed uint64 `json:"seed"`
}

// DefaultTypicality is what kspaced calibrates and measures with.
var DefaultTypicality = TypicalitySettings{Sigmas: []float64{0.05, 0.1, 0.2, 0.4, 0.8}, Seed: 16}

// Typicality is how ordinary the reconstruction looks to the prior.
type Typicality struct {
	// Score is the geometric mean over the levels σ of
	// ‖d(x + σz) − x‖² / (N σ²) (N real pixels): the denoising error of the
	// prior on this image relative to the noise added, the quantity the
	// diffusion ELBO integrates. Higher is less typical.
	Score float64 `json:"score"`
	// Levels are the per-σ terms, in Sigmas order.
	Levels []float64 `json:"levels"`
	// Percentile places Score among the calibration scans of the same
	// acceleration and SNR (the calibration is linear in their logs);
	// Threshold is the score above which the slice is flagged (0 without
	// calibration).
	Percentile float64 `json:"percentile"`
	Threshold  float64 `json:"threshold"`
}

// TypicalityScore scores the complex image img (rows×cols, in prior space)
// under denoiser d (two channels; resized with priors.ForSize).
func TypicalityScore(d priors.Denoiser, img []complex64, rows, cols int, set TypicalitySettings) (*Typicality, error) {
	if len(img) != rows*cols {
		return nil, fmt.Errorf("typicality: %d pixels for %d×%d", len(img), rows, cols)
	}
	if len(set.Sigmas) == 0 {
		return nil, fmt.Errorf("typicality: no noise levels")
	}
	if c, _, _ := d.Shape(); c != 2 {
		return nil, fmt.Errorf("typicality: prior has %d channels, want 2", c)
	}
	d, err := priors.ForSize(d, rows, cols)
	if err != nil {
		return nil, fmt.Errorf("typicality: %w", err)
	}
	np := rows * cols
	x := make([]float32, 2*np)
	for i, v := range img {
		x[i], x[np+i] = real(v), imag(v)
	}
	k := len(set.Sigmas)
	xt := make([]float32, k*2*np)
	sig := make([]float32, k)
	for l, s := range set.Sigmas {
		rng := rand.New(rand.NewPCG(set.Seed, uint64(l)))
		sig[l] = float32(s)
		for i, v := range x {
			xt[l*2*np+i] = v + float32(s*rng.NormFloat64())
		}
	}
	den := make([]float32, len(xt))
	if err := d.Denoise(den, xt, sig); err != nil {
		return nil, fmt.Errorf("typicality: %w", err)
	}
	t := &Typicality{Levels: make([]float64, k)}
	var logSum float64
	for l, s := range set.Sigmas {
		var e float64
		for i, v := range x {
			r := float64(den[l*2*np+i]) - float64(v)
			e += r * r
		}
		t.Levels[l] = e / (float64(2*np) * s * s)
		if !(t.Levels[l] > 0) || math.IsInf(t.Levels[l], 0) {
			return nil, fmt.Errorf("typicality: denoising error %v at σ %g", t.Levels[l], s)
		}
		logSum += math.Log(t.Levels[l])
	}
	t.Score = math.Exp(logSum / float64(k))
	return t, nil
}

// foregroundCut returns img's magnitudes and the foreground threshold QC
// uses: a fifth of their 99th percentile.
func foregroundCut(img []complex64) (mag []float64, cut float64) {
	mag = make([]float64, len(img))
	for i, v := range img {
		mag[i] = math.Hypot(float64(real(v)), float64(imag(v)))
	}
	sorted := slices.Clone(mag)
	slices.Sort(sorted)
	return mag, Quantile(sorted, 0.99) / 5
}

// Uncertainty is the posterior spread relative to the signal.
type Uncertainty struct {
	// Relative is the mean posterior std over the foreground divided by the
	// mean magnitude there; the foreground is where the magnitude is at
	// least a fifth of its 99th percentile.
	Relative   float64 `json:"relative"`
	Foreground int     `json:"foreground_pixels"`
	Threshold  float64 `json:"threshold"`
	Percentile float64 `json:"percentile"`
}

func measureUncertainty(img []complex64, std []float32) *Uncertainty {
	mag, cut := foregroundCut(img)
	u := &Uncertainty{}
	var ss, sm float64
	for i, m := range mag {
		if m >= cut && m > 0 {
			ss += float64(std[i])
			sm += m
			u.Foreground++
		}
	}
	if sm > 0 {
		u.Relative = ss / sm
	}
	return u
}
