package priors

import "math"

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
