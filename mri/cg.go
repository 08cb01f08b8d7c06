package mri

import (
	"context"
	"fmt"
	"math"

	"github.com/kspaced/kspaced/mri/cg"
)

// Progress, when not nil, is called after each solver iteration with the
// iteration number (from 1) and the solver's convergence measure (relative
// residual for CG, relative change of the iterate for FISTA).
type Progress func(iter int, value float64)

// CGSolver solves N x = b for Hermitian positive (semi)definite N by
// conjugate gradients (package cg), reusing its work vectors across calls.
// Not safe for concurrent use.
type CGSolver struct {
	r, p, q []complex64
	rs, ps  [][]complex64 // r and p as a batch of one
	cg      *cg.Solver[[]complex64]
}

// NewCGSolver makes a solver for vectors of length n.
func NewCGSolver(n int) *CGSolver {
	s := &CGSolver{r: make([]complex64, n), p: make([]complex64, n), q: make([]complex64, n),
		cg: cg.NewSolver[[]complex64](cg.Complex64{}, 1)}
	s.rs, s.ps = [][]complex64{s.r}, [][]complex64{s.p}
	return s
}

// CG solves normal(x) = rhs into dst, starting from dst's contents (zero it
// for a cold start), with a CGSolver made for this call. It stops after
// maxIter iterations or when ‖rhs − normal(dst)‖/‖rhs‖ ≤ tol, and returns the
// iterations done and that relative residual (as updated by the recursion).
func CG(ctx context.Context, normal func(dst, src []complex64), dst, rhs []complex64, maxIter int, tol float64) (iters int, relres float64, err error) {
	return NewCGSolver(len(rhs)).Solve(ctx, normal, dst, rhs, maxIter, tol, nil)
}

// Solve is CG with the solver's work vectors and an optional progress
// callback; it allocates nothing. On cancellation it returns ctx.Err() with
// dst holding the current iterate. Where N is not positive along a search
// direction it stops with the iterate it has.
func (s *CGSolver) Solve(ctx context.Context, normal func(dst, src []complex64), dst, rhs []complex64, maxIter int, tol float64, progress Progress) (iters int, relres float64, err error) {
	n := len(rhs)
	if len(dst) != n || len(s.r) != n {
		return 0, math.NaN(), fmt.Errorf("cg: x has %d values, rhs %d, solver sized for %d", len(dst), n, len(s.r))
	}
	bb := norm2(rhs)
	if bb == 0 {
		clear(dst)
		return 0, 0, nil
	}
	bnorm := math.Sqrt(bb)
	normal(s.q, dst)
	for i := range s.r {
		s.r[i] = rhs[i] - s.q[i]
	}
	c := s.cg
	c.Ref[0] = bb
	pr := cg.Problem[[]complex64]{
		Apply: func(_ int, q, p []complex64) { normal(q, p) },
		Step:  func(_ int, alpha float64, p []complex64) { axpy(dst, complex(float32(alpha), 0), p) },
		Progress: func(it int) {
			if progress != nil && c.Iters[0] == it {
				progress(it, math.Sqrt(c.RR[0])/bnorm)
			}
		},
	}
	err = c.Solve(ctx, &pr, s.rs, s.ps, s.q, nil, maxIter, tol, true)
	return c.Iters[0], math.Sqrt(c.RR[0]) / bnorm, err
}

// normalOf returns op's AᴴA, allocating one OutLen scratch vector if op has
// no Normal method.
func normalOf(op Operator) func(dst, src []complex64) {
	if n, ok := op.(NormalOperator); ok {
		return n.Normal
	}
	tmp := make([]complex64, op.OutLen())
	return func(dst, src []complex64) {
		op.Forward(tmp, src)
		op.Adjoint(dst, tmp)
	}
}

// MaxEigen estimates the largest eigenvalue of the Hermitian positive
// semidefinite normal operator on vectors of length n by iters power
// iterations from a seeded random start. Power iteration approaches it from
// below.
func MaxEigen(ctx context.Context, normal func(dst, src []complex64), n, iters int, seed uint64) (float64, error) {
	v, w := make([]complex64, n), make([]complex64, n)
	rng := newRand(seed)
	for i := range v {
		v[i] = complex(float32(rng.NormFloat64()), float32(rng.NormFloat64()))
	}
	scale(v, 1/math.Sqrt(norm2(v)))
	lambda := 0.0
	for it := 0; it < iters; it++ {
		if err := ctx.Err(); err != nil {
			return lambda, err
		}
		normal(w, v)
		lambda = real(dotc(v, w))
		nw := math.Sqrt(norm2(w))
		if nw == 0 {
			return 0, nil
		}
		scale(w, 1/nw)
		v, w = w, v
	}
	return lambda, nil
}

// Vector helpers: float64 accumulation, so inner products of long complex64
// vectors keep their digits.

func norm2(x []complex64) float64 {
	var s float64
	for _, v := range x {
		r, i := float64(real(v)), float64(imag(v))
		s += r*r + i*i
	}
	return s
}

// dotc is ⟨a, b⟩ = Σ conj(a)·b.
func dotc(a, b []complex64) complex128 {
	b = b[:len(a)]
	var sr, si float64
	for i, x := range a {
		ar, ai := float64(real(x)), float64(imag(x))
		br, bi := float64(real(b[i])), float64(imag(b[i]))
		sr += ar*br + ai*bi
		si += ar*bi - ai*br
	}
	return complex(sr, si)
}

// axpy sets y += a·x.
func axpy(y []complex64, a complex64, x []complex64) {
	x = x[:len(y)]
	for i := range y {
		y[i] += a * x[i]
	}
}

func scale(x []complex64, a float64) {
	f := float32(a)
	for i, v := range x {
		x[i] = complex(f*real(v), f*imag(v))
	}
}
