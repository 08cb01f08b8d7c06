package retrain

import (
	"context"
	"fmt"

	"github.com/kspaced/kspaced/posterior"
	"github.com/kspaced/kspaced/priors"
)

// E-steps may draw several posterior samples per observation (the seed
// recipe: 2): the M-step then learns from K·N images, which spreads the
// posterior's uncertainty into the prior instead of one draw's noise.

func (o *EMOptions) samplesPerObservation() int { return max(1, o.SamplesPerObservation) }

// eStepSamplesOf draws per samples of each observation listed in which
// (nil: all) into dst, laid out [sample pass][position in which][2][rows]
// [cols]; pass 0 is EStep with so's seed, so one sample per observation
// reproduces the single-sample E-step.
func eStepSamplesOf(ctx context.Context, d priors.Denoiser, obs []Observation, which []int, so posterior.SampleOptions, workers, per int, dst []float32, progress func(done, total int)) error {
	m := len(obs)
	if which != nil {
		m = len(which)
	}
	if per < 1 || m == 0 || len(dst)%(per*m) != 0 {
		return fmt.Errorf("e-step: %d values for %d samples of %d observations", len(dst), per, m)
	}
	chunk := len(dst) / per
	for j := 0; j < per; j++ {
		s := so
		s.Seed = so.Seed ^ uint64(j)<<52
		var p func(done, total int)
		if progress != nil {
			p = func(done, _ int) { progress(j*m+done, per*m) }
		}
		if err := eStepOf(ctx, d, obs, which, s, workers, dst[j*chunk:(j+1)*chunk], p); err != nil {
			return err
		}
	}
	return nil
}
