package priors

import (
	"fmt"
	"math"
)

// Noise range of the variance-exploding diffusion x_t = x + σ_t z on
// prior-space (normalised) images: σ_t = exp(log SigmaMin + (log SigmaMax − log SigmaMin)·t).
const (
	SigmaMin = 1e-3
	SigmaMax = 1e2
)

// Sigma is σ_t of the VE schedule for t in [0, 1].
func Sigma(t float64) float64 {
	return math.Exp(math.Log(SigmaMin) + (math.Log(SigmaMax)-math.Log(SigmaMin))*t)
}

// TimeGrid writes the sampler's time grid into dst: len(dst) points uniform in
// t from 1 down to 0, t_i = 1 − i/(len(dst)−1). The sampler evaluates the
// denoiser once at each point, so σ runs from SigmaMax to SigmaMin and the
// last evaluation, at SigmaMin, is the returned sample.
func TimeGrid(dst []float64) error {
	n := len(dst)
	if n < 2 {
		return fmt.Errorf("time grid needs at least 2 steps, got %d", n)
	}
	for i := range dst {
		dst[i] = 1 - float64(i)/float64(n-1)
	}
	dst[n-1] = 0
	return nil
}
