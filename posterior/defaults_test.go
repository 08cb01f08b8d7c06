package posterior

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/kspaced/kspaced/configs"
)

// The library's defaults are recon.sampler's in configs/default.yaml, so a
// caller of SamplePosterior and `kspaced recon` draw the same thing. The
// config's automatic choices (covariance auto, steps 0) resolve, for a prior
// without a covariance head, to the library's defaults (pipeline's
// samplerSettings).
func TestDefaultsMatchConfig(t *testing.T) {
	sp := configs.Default().Recon.Sampler
	s, err := newSampler(smpPrior(t, rand.New(rand.NewPCG(1, 1)), 2, 2, 0, 0), smpNewDense(rand.New(rand.NewPCG(2, 2)), 3, 4, 1), make([]complex64, 3), SampleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	o := s.opt
	if o.Samples != sp.Samples || o.Steps != configs.DefaultSteps || sp.Steps != 0 || o.CGIter != sp.CGIterations ||
		o.Covariance != CovJacobian || sp.Covariance != "auto" {
		t.Errorf("library defaults: %d samples, %d steps, CG %d, covariance %s; config: %d, %d (0 = %d), %d, %s",
			o.Samples, o.Steps, o.CGIter, o.Covariance, sp.Samples, sp.Steps, configs.DefaultSteps, sp.CGIterations, sp.Covariance)
	}
	if want := []string{"auto", CovJacobian, CovDiagonal}; !slices.Equal(configs.Covariances, want) {
		t.Errorf("configs.Covariances = %v, want %v", configs.Covariances, want)
	}
}
