package posterior

import (
	"context"
	"math"

	"github.com/kspaced/kspaced/mri/cg"
)

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
// spending one more VJP at the end. A sample whose system is not positive
// along a direction (a network's Jacobian need not be) keeps what it has.
// With SampleOptions.Precondition the CG is preconditioned by the diagonal
// covariance's system (precondDiag).
func (s *sampler) mmpsEstimate(sigma float64) error {
	if s.dd != nil && !s.jacobianAt(sigma) {
		return s.mmpsDiagEstimate()
	}
	if s.pre != nil { // before DenoiseVJP: the vjp must outlive this call
		if err := s.pre.CovDiag(s.cdiag, s.x, s.sig); err != nil {
			return err
		}
	}
	vjp, err := s.d.DenoiseVJP(s.xhat, s.x, s.sig)
	s.evals++
	if err != nil {
		return err
	}
	n := s.n
	s.vjp, s.s2 = vjp, sigma*sigma
	for j := range s.nb {
		s.residual(j, s.resJ[j], s.xhat[j*n:(j+1)*n])
	}
	clear(s.bufW)
	tol := s.opt.CGTol
	if s.dd != nil { // a hybrid's Jacobian step: CGIter iterations, as without the diagonal
		tol = 0
	}
	err = s.cg.Solve(context.Background(), &s.cgJac, s.resJ, s.dirJ, s.co, s.cz, s.opt.CGIter, tol, false)
	s.vjp = nil
	if err != nil {
		return err
	}
	s.countCG()
	s2 := s.s2
	for k, xh := range s.xhat {
		s.e[k] = float32(float64(xh) + s2*float64(s.bufW[k]))
	}
	return nil
}

// mmpsDiagEstimate is mmpsEstimate with Cov[x | x_t] = diag(c) from the
// prior (OCM):
//
//	E ≈ x̂ + diag(c) Aᴴ u,  (Σ_y + A diag(c) Aᴴ) u = y − A x̂,
//
// one denoiser and head pass per step; CG needs only A and Aᴴ and runs to
// CGTol (at most DiagCGIter iterations).
func (s *sampler) mmpsDiagEstimate() error {
	if err := s.dd.DenoiseDiag(s.xhat, s.cdiag, s.x, s.sig); err != nil {
		return err
	}
	s.evals++
	n := s.n
	for j := range s.nb {
		s.residual(j, s.resJ[j], s.xhat[j*n:(j+1)*n])
	}
	if err := s.solveDiag(); err != nil {
		return err
	}
	for k, xh := range s.xhat {
		s.e[k] = xh + s.bufW[k]
	}
	return nil
}

// solveDiag solves (Σ_y + A diag(c) Aᴴ) u = s.resJ for every sample and
// leaves diag(c) Aᴴ u in s.bufW: the one system the diagonal mean and its
// posterior draw share (same iteration cap and tolerance).
func (s *sampler) solveDiag() error {
	clear(s.bufW)
	if err := s.cg.Solve(context.Background(), &s.cgDiag, s.resJ, s.dirJ, s.co, nil, s.opt.DiagCGIter, s.opt.CGTol, false); err != nil {
		return err
	}
	s.countCG()
	return nil
}

// drawPosterior writes into s.draw, per sample, a draw w ~ N(0, C) with
// C = D − D Aᴴ (Σ_y + A D Aᴴ)⁻¹ A D and D = diag(c) of this step: the
// covariance of the Gaussian posterior whose mean mmpsDiagEstimate found.
// Matheron's rule: z ~ N(0, D), ε ~ N(0, Σ_y), w = z − D Aᴴ v with
// (Σ_y + A D Aᴴ) v = A z + ε, by the mean's solveDiag.
func (s *sampler) drawPosterior() error {
	n := s.n
	for j := range s.nb {
		gr := s.of(j)
		// z's draws, then ε's (real, imaginary per measurement)
		nz := gr.normals(j%s.per, n+2*gr.m)
		zj := s.draw[j*n : (j+1)*n]
		for k, c := range s.cdiag[j*n : (j+1)*n] {
			zj[k] = float32(math.Sqrt(max(float64(c), 0)) * nz[k])
		}
		fromChannels(s.ci, zj, s.hw)
		r := s.resJ[j]
		gr.A.Forward(r, s.ci)
		eps := nz[n:]
		for k, v := range gr.noise {
			sd := math.Sqrt(v)
			r[k] += complex(float32(sd*eps[2*k]), float32(sd*eps[2*k+1]))
		}
	}
	if err := s.solveDiag(); err != nil {
		return err
	}
	for k, w := range s.bufW {
		s.draw[k] -= w
	}
	return nil
}

// newMMPS sets up the lockstep CG of mmpsEstimate: u_j is never formed;
// each step α·p_j adds α·J Aᴴ p_j, the VJP already computed, to bufW (with
// the diagonal covariance α·diag(c) Aᴴ p_j, kept from Apply).
func (s *sampler) newMMPS() {
	n := s.n
	s.bufW = make([]float32, s.nb*n)
	s.dir = make([]complex64, len(s.res))
	s.resJ, s.dirJ = make([][]complex64, s.nb), make([][]complex64, s.nb)
	off := 0
	for j := range s.nb {
		m := s.of(j).m
		s.resJ[j], s.dirJ[j] = s.res[off:off+m], s.dir[off:off+m]
		off += m
	}
	s.cg = cg.NewSolver[[]complex64](cg.Complex64{}, s.nb)
	if s.dd != nil || s.pre != nil {
		s.newDiagMMPS()
		if s.dd != nil && s.jacHi == 0 {
			return
		}
	}
	s.cgJac = cg.Problem[[]complex64]{
		// One batched VJP per iteration: bufQ = J Aᴴ p for the running samples.
		Prepare: func(done []bool) error {
			for j := range s.nb {
				pj := s.bufP[j*n : (j+1)*n]
				if done[j] {
					clear(pj)
					continue
				}
				s.of(j).A.Adjoint(s.ci, s.dirJ[j])
				toChannels(pj, s.ci, s.hw)
			}
			if err := s.vjp(s.bufQ, s.bufP); err != nil {
				return err
			}
			s.vjps++
			return nil
		},
		// q = Σ_y p + σ² A J Aᴴ p.
		Apply: func(j int, q, p []complex64) {
			gr := s.of(j)
			q = q[:gr.m]
			fromChannels(s.ci, s.bufQ[j*n:(j+1)*n], s.hw)
			gr.A.Forward(q, s.ci)
			for k, a := range q {
				d := p[k]
				q[k] = complex(float32(gr.noise[k]*float64(real(d))+s.s2*float64(real(a))),
					float32(gr.noise[k]*float64(imag(d))+s.s2*float64(imag(a))))
			}
		},
		Step: func(j int, alpha float64, _ []complex64) {
			wj := s.bufW[j*n : (j+1)*n]
			for k, q := range s.bufQ[j*n : (j+1)*n] {
				wj[k] += float32(alpha * float64(q))
			}
		},
	}
	if s.pre != nil {
		s.newPrecond()
	}
}

// newDiagMMPS is newMMPS's problem for the diagonal covariance: bufQ_j keeps
// diag(c_j) Aᴴ p_j from Apply for Step.
func (s *sampler) newDiagMMPS() {
	n := s.n
	s.cdiag = make([]float32, s.nb*n)
	s.cgDiag = cg.Problem[[]complex64]{
		// q = Σ_y p + A diag(c) Aᴴ p.
		Apply: func(j int, q, p []complex64) {
			gr := s.of(j)
			q = q[:gr.m]
			qj, cj := s.bufQ[j*n:(j+1)*n], s.cdiag[j*n:(j+1)*n]
			gr.A.Adjoint(s.ci, p)
			toChannels(qj, s.ci, s.hw)
			for k, c := range cj {
				qj[k] *= c
			}
			fromChannels(s.ci, qj, s.hw)
			gr.A.Forward(q, s.ci)
			for k, a := range q {
				d := p[k]
				q[k] = complex(float32(gr.noise[k]*float64(real(d))+float64(real(a))),
					float32(gr.noise[k]*float64(imag(d))+float64(imag(a))))
			}
		},
		Step: func(j int, alpha float64, _ []complex64) {
			wj := s.bufW[j*n : (j+1)*n]
			for k, q := range s.bufQ[j*n : (j+1)*n] {
				wj[k] += float32(alpha * float64(q))
			}
		},
	}
}

// jacobianAt reports whether the step at noise level σ runs with the
// Jacobian covariance although the diagonal one is set
// (SampleOptions.JacobianSigma).
func (s *sampler) jacobianAt(sigma float64) bool {
	return s.jacHi > 0 && sigma >= s.jacLo && sigma <= s.jacHi
}

func (s *sampler) countCG() {
	for j, it := range s.cg.Iters {
		s.of(j).cgIters += it
	}
}

// precondDiag is the Jacobian CG's preconditioner for sample j: z = P⁻¹ r
// with P = Σ_y + A diag(c) Aᴴ, the diagonal covariance's system, which
// differs from the Jacobian's only by the correlations the diagonal leaves
// out. It is solved by an inner CG (no network call) to the diagonal
// sampler's tolerance and iteration cap, so P⁻¹ is applied inexactly; with
// the few outer iterations MMPS runs that does not matter (measured,
// docs/bench/sampling.md). bufQ_j is free here: the outer CG has used it
// for this iteration.
func (s *sampler) precondDiag(j int, z, r []complex64) {
	m := s.of(j).m
	z = z[:m]
	clear(z)
	s.inJ, s.inZ = j, z
	rr, pp := [][]complex64{s.inR[:m]}, [][]complex64{s.inP[:m]}
	copy(rr[0], r[:m])
	tol := s.opt.CGTol
	if tol == 0 {
		tol = DiagCGTol
	}
	// The inner problem's callbacks never fail and it has no context to
	// cancel, so Solve cannot return an error here.
	_ = s.cgIn.Solve(context.Background(), &s.cgInP, rr, pp, s.inQ, nil, s.opt.DiagCGIter, tol, false)
}

// newPrecond sets up precondDiag's inner CG (a batch of one, reusing the
// diagonal system's Apply for sample inJ).
func (s *sampler) newPrecond() {
	mm := len(s.co)
	s.cz, s.inQ = make([]complex64, mm), make([]complex64, mm)
	s.inR, s.inP = make([]complex64, mm), make([]complex64, mm)
	s.cgIn = cg.NewSolver[[]complex64](cg.Complex64{}, 1)
	s.cgInP = cg.Problem[[]complex64]{
		Apply: func(_ int, q, p []complex64) { s.cgDiag.Apply(s.inJ, q, p) },
		Step:  func(_ int, alpha float64, p []complex64) { cg.Complex64{}.Axpy(s.inZ, alpha, p) },
	}
	s.cgJac.Precond = s.precondDiag
}
