package posterior

import "fmt"

// Covariances MMPS can use (SampleOptions.Covariance).
const (
	CovJacobian = "jacobian"
	CovDiagonal = "diagonal"
)

// Step variances of the DDPM sampler (SampleOptions.StepVariance).
const (
	StepVarianceDDPM      = "ddpm"
	StepVariancePosterior = "posterior"
)

// Library defaults, equal to recon.sampler's in configs/default.yaml
// (TestDefaultsMatchConfig).
const (
	DefaultCovariance = CovJacobian
	DefaultSamples    = 8
	// DiagCGTol is the relative residual the diagonal covariance's CG stops
	// at: its iterations cost no network call.
	DiagCGTol = 1e-3
	// DefaultDiagCGIter caps those iterations: about 24 reach DiagCGTol on
	// 128², 8-coil scans, but 10 give the same quality (docs/bench/sampling.md)
	// for a quarter less CPU.
	DefaultDiagCGIter = 10
)

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
