package posterior

// mmpsEstimate writes into s.e the MMPS estimate of E[x | x_t, y] for every
// image of the batch at noise level σ:
//
//	E ≈ x̂ + σ² J Aᴴ u,  (Σ_y + σ² A J Aᴴ) u = y − A x̂,
//
// with x̂ = d(x_t) and J = ∂d/∂x_t (Tweedie: V[x | x_t] = σ² J). C^m is
// treated as R^{2m} with the inner product Re⟨a, b⟩, in which the system is
// symmetric positive definite when J is (exactly so for a Gaussian prior;
// for a network the VJP stands in for J v, as the MMPS paper does). CG runs
// on all images in lockstep, so each iteration is one batched VJP, and it
// accumulates J Aᴴ u from the products it has already made instead of
// spending one more VJP at the end.
func (s *sampler) mmpsEstimate(sigma float64) error {
	vjp, err := s.d.DenoiseVJP(s.xhat, s.x, s.sig)
	s.evals++
	if err != nil {
		return err
	}
	n, m := s.n, s.m
	s2 := sigma * sigma
	tol2 := s.opt.CGTol * s.opt.CGTol
	for j := range s.nb {
		rj := s.res[j*m : (j+1)*m]
		rr := s.residual(rj, s.xhat[j*n:(j+1)*n])
		copy(s.dir[j*m:(j+1)*m], rj)
		s.rr[j], s.rr0[j] = rr, rr
		s.done[j] = rr == 0
	}
	clear(s.bufW)
	for range s.opt.CGIter {
		active := false
		for j := range s.nb {
			pj := s.bufP[j*n : (j+1)*n]
			if s.done[j] {
				clear(pj)
				continue
			}
			active = true
			s.A.Adjoint(s.ci, s.dir[j*m:(j+1)*m])
			toChannels(pj, s.ci, s.hw)
		}
		if !active {
			break
		}
		if err := vjp(s.bufQ, s.bufP); err != nil {
			return err
		}
		s.vjps++
		for j := range s.nb {
			if s.done[j] {
				continue
			}
			qj := s.bufQ[j*n : (j+1)*n]
			dj, rj := s.dir[j*m:(j+1)*m], s.res[j*m:(j+1)*m]
			// co = M p = Σ_y p + σ² A J Aᴴ p.
			fromChannels(s.ci, qj, s.hw)
			s.A.Forward(s.co, s.ci)
			var pmp float64
			for k, a := range s.co {
				p := dj[k]
				mp := complex(float32(s.noise[k]*float64(real(p))+s2*float64(real(a))),
					float32(s.noise[k]*float64(imag(p))+s2*float64(imag(a))))
				s.co[k] = mp
				pmp += float64(real(p))*float64(real(mp)) + float64(imag(p))*float64(imag(mp))
			}
			if !(pmp > 0) {
				// Not positive definite along p (a network's Jacobian need
				// not be): keep what this sample has.
				s.done[j] = true
				continue
			}
			alpha := s.rr[j] / pmp
			wj := s.bufW[j*n : (j+1)*n]
			for k, q := range qj {
				wj[k] += float32(alpha * float64(q))
			}
			a32 := complex(float32(alpha), 0)
			var rr float64
			for k := range rj {
				r := rj[k] - a32*s.co[k]
				rj[k] = r
				rr += float64(real(r))*float64(real(r)) + float64(imag(r))*float64(imag(r))
			}
			if rr <= tol2*s.rr0[j] {
				s.done[j] = true
				continue
			}
			beta := complex(float32(rr/s.rr[j]), 0)
			for k := range dj {
				dj[k] = rj[k] + beta*dj[k]
			}
			s.rr[j] = rr
		}
	}
	for k, xh := range s.xhat {
		s.e[k] = float32(float64(xh) + s2*float64(s.bufW[k]))
	}
	return nil
}
