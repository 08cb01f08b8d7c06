package cg

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
)

// spd is a random Hermitian positive definite n×n matrix B Bᴴ + n·I.
func spd(rng *rand.Rand, n int) [][]complex128 {
	b := make([][]complex128, n)
	for i := range b {
		b[i] = make([]complex128, n)
		for j := range b[i] {
			b[i][j] = complex(rng.NormFloat64(), rng.NormFloat64())
		}
	}
	m := make([][]complex128, n)
	for i := range m {
		m[i] = make([]complex128, n)
		for j := range m[i] {
			for k := range n {
				m[i][j] += b[i][k] * complex(real(b[j][k]), -imag(b[j][k]))
			}
		}
		m[i][i] += complex(float64(n), 0)
	}
	return m
}

func mul(m [][]complex128, dst, src []complex128) {
	for i := range m {
		var s complex128
		for j, v := range src {
			s += m[i][j] * v
		}
		dst[i] = s
	}
}

// A batch of systems, with and without a (diagonal) preconditioner, solves
// each system to the tolerance, as solving them one at a time does.
func TestBatchSolves(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	const n, nb = 12, 3
	ms := make([][][]complex128, nb)
	bs := make([][]complex128, nb)
	for j := range nb {
		ms[j] = spd(rng, n)
		bs[j] = make([]complex128, n)
		for i := range bs[j] {
			bs[j][i] = complex(rng.NormFloat64(), rng.NormFloat64())
		}
	}
	solve := func(js []int, precond bool) [][]complex128 {
		s := NewSolver[[]complex128](Complex128{}, len(js))
		u := make([][]complex128, len(js))
		r, p := make([][]complex128, len(js)), make([][]complex128, len(js))
		for b, j := range js {
			u[b], p[b] = make([]complex128, n), make([]complex128, n)
			r[b] = append([]complex128(nil), bs[j]...)
		}
		prepared := 0
		pr := Problem[[]complex128]{
			Prepare: func([]bool) error { prepared++; return nil },
			Apply:   func(b int, q, d []complex128) { mul(ms[js[b]], q, d) },
			Step: func(b int, alpha float64, d []complex128) {
				Complex128{}.Axpy(u[b], alpha, d)
			},
		}
		if precond {
			pr.Precond = func(b int, z, r []complex128) {
				for i, v := range r {
					z[i] = v / ms[js[b]][i][i]
				}
			}
		}
		if err := s.Solve(context.Background(), &pr, r, p, make([]complex128, n), make([]complex128, n), 100, 1e-10, false); err != nil {
			t.Fatal(err)
		}
		if prepared != slicesMax(s.Iters) {
			t.Errorf("Prepare ran %d times for %v iterations", prepared, s.Iters)
		}
		return u
	}
	for _, precond := range []bool{false, true} {
		batch := solve([]int{0, 1, 2}, precond)
		for j := range nb {
			one := solve([]int{j}, precond)[0]
			mu := make([]complex128, n)
			mul(ms[j], mu, batch[j])
			var res, bb float64
			for i := range mu {
				d := mu[i] - bs[j][i]
				res += real(d)*real(d) + imag(d)*imag(d)
				bb += real(bs[j][i])*real(bs[j][i]) + imag(bs[j][i])*imag(bs[j][i])
			}
			if math.Sqrt(res/bb) > 1e-9 {
				t.Errorf("precond %v system %d: relative residual %g", precond, j, math.Sqrt(res/bb))
			}
			for i := range one {
				if one[i] != batch[j][i] {
					t.Fatalf("precond %v system %d: batched and single solves differ at %d", precond, j, i)
				}
			}
		}
	}
}

func slicesMax(x []int) int {
	m := 0
	for _, v := range x {
		m = max(m, v)
	}
	return m
}

// A system that is not positive along p stops with Breakdown set.
func TestBreakdown(t *testing.T) {
	t.Parallel()
	s := NewSolver[[]complex64](Complex64{}, 1)
	r := [][]complex64{{1, 2}}
	p := [][]complex64{make([]complex64, 2)}
	pr := Problem[[]complex64]{
		Apply: func(_ int, q, d []complex64) { q[0], q[1] = -d[0], -d[1] },
		Step:  func(int, float64, []complex64) { t.Error("stepped along a direction of negative curvature") },
	}
	if err := s.Solve(context.Background(), &pr, r, p, make([]complex64, 2), nil, 10, 0, false); err != nil {
		t.Fatal(err)
	}
	if !s.Breakdown[0] || s.Iters[0] != 0 {
		t.Fatalf("breakdown %v after %d iterations", s.Breakdown[0], s.Iters[0])
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	pr.Apply = func(_ int, q, d []complex64) { copy(q, d) }
	if err := s.Solve(ctx, &pr, [][]complex64{{1, 2}}, p, make([]complex64, 2), nil, 10, 0, false); err == nil {
		t.Fatal("cancelled solve returned no error")
	}
}
