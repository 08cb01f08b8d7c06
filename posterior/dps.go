package posterior

import "math"

// dpsEstimate is the DPS baseline's estimate: the unconditional x̂ = d(x_t).
// Except on the last step it also takes the VJP that gives the likelihood
// gradient ∇_{x_t}‖y − A x̂‖² = −2 Jᵀ Aᴴ (y − A x̂), kept in s.bufQ (as
// Jᵀ Aᴴ r) for dpsStep.
func (s *sampler) dpsEstimate(last bool) error {
	if last {
		s.evals++
		return s.d.Denoise(s.e, s.x, s.sig)
	}
	vjp, err := s.d.DenoiseVJP(s.xhat, s.x, s.sig)
	s.evals++
	if err != nil {
		return err
	}
	n := s.n
	for j := range s.nb {
		s.rnorm[j] = math.Sqrt(s.residual(j, s.co, s.xhat[j*n:(j+1)*n]))
		s.of(j).A.Adjoint(s.ci, s.co[:s.of(j).m])
		toChannels(s.bufP[j*n:(j+1)*n], s.ci, s.hw)
	}
	if err := vjp(s.bufQ, s.bufP); err != nil {
		return err
	}
	s.vjps++
	copy(s.e, s.xhat)
	return nil
}

// dpsStep applies the DPS correction after the unconditional update:
// x_s ← x_s − ζ/‖r‖ · ∇‖r‖², r = y − A x̂, that is x_s += 2ζ/‖r‖ · Jᵀ Aᴴ r.
func (s *sampler) dpsStep() {
	if s.opt.Zeta == 0 {
		return
	}
	n := s.n
	for j := range s.nb {
		if s.rnorm[j] == 0 {
			continue
		}
		c := 2 * s.opt.Zeta / s.rnorm[j]
		xj, qj := s.x[j*n:(j+1)*n], s.bufQ[j*n:(j+1)*n]
		for k, q := range qj {
			xj[k] = float32(float64(xj[k]) + c*float64(q))
		}
	}
}
