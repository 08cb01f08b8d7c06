package pipeline

import (
	"context"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/mri"
)

// classicalFunc reconstructs x from k-space y scaled so the zero-filled
// image peaks at 1, returning the iterations it ran.
type classicalFunc func(ctx context.Context, x, y []complex64, p *Prepared, rc *configs.Recon) (int, error)

// classical runs each non-sampling method of configs.MethodTable; the
// sampling ones all go through samplePosterior.
var classical = map[string]classicalFunc{
	"zero-filled": func(_ context.Context, x, _ []complex64, p *Prepared, _ *configs.Recon) (int, error) {
		inv := complex(float32(1/p.Peak), 0)
		copy(x, p.ZeroFilled)
		for i := range x {
			x[i] *= inv
		}
		return 0, nil
	},
	"cg-sense": func(ctx context.Context, x, y []complex64, p *Prepared, rc *configs.Recon) (int, error) {
		it, _, err := mri.CGSENSE(ctx, x, p.Op, y, rc.Lambda, rc.Iterations, rc.Tolerance, nil)
		return it, err
	},
	"l1-wavelet": func(ctx context.Context, x, y []complex64, p *Prepared, rc *configs.Recon) (int, error) {
		s := p.Scan
		return mri.L1Wavelet(ctx, x, p.Op, y, s.Rows, s.Cols, mri.L1Options{
			Lambda: rc.Lambda, MaxIter: rc.Iterations, Tol: rc.Tolerance, Shift: true, Seed: rc.Sampler.Seed,
		})
	},
}
