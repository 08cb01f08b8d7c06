// Package cg is kspaced's one conjugate-gradient solver, for Hermitian
// positive definite systems M u = b over any vector type with the few
// operations of Vectors (BART's iter/conjgrad over vec.h is the model). C^n
// is treated as R^{2n} with the inner product Re⟨a, b⟩. A Solver runs a
// batch of independent systems in lockstep, so that a caller whose M is
// cheaper applied to all of them at once (MMPS: one batched vector–Jacobian
// product of the denoiser) does that once per iteration; a single system is
// a batch of one. It optionally preconditions, and it never holds the
// unknown itself: Step hands the caller each move α·p, so the caller may
// accumulate u, or anything linear in u, where it likes.
package cg

import (
	"context"
	"fmt"
)

// Vectors is the arithmetic CG needs on vectors of type V.
type Vectors[V any] interface {
	// Dot is Re⟨a, b⟩, accumulated in float64.
	Dot(a, b V) float64
	// Axpy sets y += a·x.
	Axpy(y V, a float64, x V)
	// Xpay sets y = x + a·y.
	Xpay(y V, a float64, x V)
	// Copy sets dst = src.
	Copy(dst, src V)
}

// Problem describes the batch of systems; Apply is required.
type Problem[V any] struct {
	// Prepare, when set, is called once per iteration before Apply with
	// the systems still running (done[j] false), for work shared by the
	// batch.
	Prepare func(done []bool) error
	// Apply sets q = M_j p for system j.
	Apply func(j int, q, p V)
	// Precond, when set, sets z = P_j⁻¹ r for a Hermitian positive definite
	// P_j ≈ M_j; nil is no preconditioning.
	Precond func(j int, z, r V)
	// Step is called when system j moves by alpha along its direction p:
	// the caller updates its unknown, u_j += alpha·p (or what it keeps
	// instead, linear in u_j).
	Step func(j int, alpha float64, p V)
	// Progress, when set, is called after each iteration.
	Progress func(iter int)
}

// Solver holds the per-system state of CG over a batch of fixed size, so
// repeated solves allocate nothing. Not safe for concurrent use.
type Solver[V any] struct {
	Vec Vectors[V]
	// RR is ‖r_j‖² and Ref the reference ‖·‖² a system's tolerance is
	// relative to (its ‖r_j‖² at the start unless the caller set it); Iters
	// counts each system's iterations; Breakdown marks the systems stopped
	// because M_j was not positive along p (the last iterate is kept).
	RR, Ref   []float64
	Iters     []int
	Breakdown []bool
	rz        []float64
	done      []bool
}

// NewSolver makes a solver for batches of nb systems.
func NewSolver[V any](vec Vectors[V], nb int) *Solver[V] {
	return &Solver[V]{Vec: vec, RR: make([]float64, nb), Ref: make([]float64, nb), Iters: make([]int, nb),
		Breakdown: make([]bool, nb), rz: make([]float64, nb), done: make([]bool, nb)}
}

// Solve runs at most maxIter iterations on every system, stopping a system
// once ‖r_j‖² ≤ tol²·Ref_j. r holds each system's initial residual
// b − M u₀ (it is updated in place), p one direction vector per system,
// q and z one scratch vector each (z is unused without a preconditioner).
// When keepRef is false Ref_j is set to ‖r_j‖² at the start. On
// cancellation it returns ctx.Err() with the iterates as they are.
func (s *Solver[V]) Solve(ctx context.Context, pr *Problem[V], r, p []V, q, z V, maxIter int, tol float64, keepRef bool) error {
	nb := len(s.RR)
	if len(r) != nb || len(p) != nb {
		return fmt.Errorf("cg: %d residuals and %d directions for a batch of %d", len(r), len(p), nb)
	}
	v := s.Vec
	tol2 := tol * tol
	for j := range nb {
		rr := v.Dot(r[j], r[j])
		s.RR[j], s.Iters[j], s.Breakdown[j] = rr, 0, false
		if !keepRef {
			s.Ref[j] = rr
		}
		if pr.Precond != nil {
			pr.Precond(j, z, r[j])
			v.Copy(p[j], z)
			s.rz[j] = v.Dot(r[j], z)
		} else {
			v.Copy(p[j], r[j])
			s.rz[j] = rr
		}
		s.done[j] = rr <= tol2*s.Ref[j]
	}
	for it := 1; it <= maxIter; it++ {
		active := false
		for _, d := range s.done {
			active = active || !d
		}
		if !active {
			break
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if pr.Prepare != nil {
			if err := pr.Prepare(s.done); err != nil {
				return err
			}
		}
		for j := range nb {
			if s.done[j] {
				continue
			}
			pr.Apply(j, q, p[j])
			pq := v.Dot(p[j], q)
			if !(pq > 0) {
				s.done[j], s.Breakdown[j] = true, true
				continue
			}
			alpha := s.rz[j] / pq
			pr.Step(j, alpha, p[j])
			v.Axpy(r[j], -alpha, q)
			rr := v.Dot(r[j], r[j])
			s.RR[j] = rr
			s.Iters[j]++
			if rr <= tol2*s.Ref[j] {
				s.done[j] = true
				continue
			}
			if it == maxIter { // no next direction: skip the preconditioner
				continue
			}
			rz := rr
			next := r[j]
			if pr.Precond != nil {
				pr.Precond(j, z, r[j])
				rz, next = v.Dot(r[j], z), z
			}
			v.Xpay(p[j], rz/s.rz[j], next)
			s.rz[j] = rz
		}
		if pr.Progress != nil {
			pr.Progress(it)
		}
	}
	return nil
}

// Complex64 is Vectors on []complex64 (float32 arithmetic, float64 sums).
type Complex64 struct{}

func (Complex64) Dot(a, b []complex64) float64 {
	b = b[:len(a)]
	var s float64
	for i, x := range a {
		s += float64(real(x))*float64(real(b[i])) + float64(imag(x))*float64(imag(b[i]))
	}
	return s
}

func (Complex64) Axpy(y []complex64, a float64, x []complex64) {
	x = x[:len(y)]
	c := complex(float32(a), 0)
	for i := range y {
		y[i] += c * x[i]
	}
}

func (Complex64) Xpay(y []complex64, a float64, x []complex64) {
	x = x[:len(y)]
	c := complex(float32(a), 0)
	for i := range y {
		y[i] = x[i] + c*y[i]
	}
}

func (Complex64) Copy(dst, src []complex64) { copy(dst, src) }

// Complex128 is Vectors on []complex128.
type Complex128 struct{}

func (Complex128) Dot(a, b []complex128) float64 {
	b = b[:len(a)]
	var s float64
	for i, x := range a {
		s += real(x)*real(b[i]) + imag(x)*imag(b[i])
	}
	return s
}

func (Complex128) Axpy(y []complex128, a float64, x []complex128) {
	x = x[:len(y)]
	c := complex(a, 0)
	for i := range y {
		y[i] += c * x[i]
	}
}

func (Complex128) Xpay(y []complex128, a float64, x []complex128) {
	x = x[:len(y)]
	c := complex(a, 0)
	for i := range y {
		y[i] = x[i] + c*y[i]
	}
}

func (Complex128) Copy(dst, src []complex128) { copy(dst, src) }
