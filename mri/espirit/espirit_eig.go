package espirit

import (
	"errors"
	"math"
	"math/cmplx"

	"gonum.org/v1/gonum/lapack"
	"gonum.org/v1/gonum/lapack/gonum"
)

// espHermEig is the eigen-decomposition of a dense Hermitian matrix.
//
// gonum has no complex eigensolver, and embedding the n×n Hermitian matrix in
// a real symmetric 2n×2n one costs 8× the work (5 s for n = 576 here), so the
// matrix is reduced to tridiagonal form with complex Householder reflectors,
// a diagonal unitary scaling makes the tridiagonal real, gonum's Dsteqr
// solves that, and eigenvectors are transformed back only when asked for.
type espHermEig struct {
	n     int
	vals  []float64    // ascending
	z     []float64    // n×n row-major; column j is the tridiagonal eigenvector j
	phase []complex128 // diagonal unitary D with T = D·T_real·Dᴴ
	refl  []complex128 // row k holds the unit Householder vector of step k (entries k+1…n-1)
	// workspace
	off, p  []complex128
	e, work []float64
}

// espNewHermEig decomposes the n×n Hermitian matrix a (row-major, both
// triangles filled), which it overwrites.
func espNewHermEig(a []complex128, n int) (*espHermEig, error) {
	if n < 1 || len(a) != n*n {
		return nil, errors.New("hermitian eigensolver: bad matrix size")
	}
	h := espEigWorkspace(n)
	if err := h.decompose(a); err != nil {
		return nil, err
	}
	return h, nil
}

// espEigWorkspace allocates a solver for n×n matrices that decompose reuses.
func espEigWorkspace(n int) *espHermEig {
	return &espHermEig{n: n, vals: make([]float64, n), z: make([]float64, n*n),
		phase: make([]complex128, n), refl: make([]complex128, n*n),
		off: make([]complex128, max(n-1, 1)), p: make([]complex128, n),
		e: make([]float64, max(n-1, 1)), work: make([]float64, max(1, 2*n-2))}
}

// decompose overwrites a (n×n Hermitian, both triangles) and h's previous
// decomposition; it allocates nothing.
func (h *espHermEig) decompose(a []complex128) error {
	n := h.n
	off, p := h.off, h.p
	clear(off)
	clear(h.refl)
	for k := 0; k+2 < n; k++ {
		// Reflector H = I − 2vvᴴ maps column k below the diagonal onto e₁·alpha.
		var xn float64
		for i := k + 1; i < n; i++ {
			xn += espAbs2(a[i*n+k])
		}
		xn = math.Sqrt(xn)
		x0 := a[(k+1)*n+k]
		if xn == 0 {
			continue // column already zero: H = I
		}
		ph := complex(1, 0)
		if x0 != 0 {
			ph = x0 / complex(cmplx.Abs(x0), 0)
		}
		alpha := -ph * complex(xn, 0)
		v := h.refl[k*n : (k+1)*n]
		v[k+1] = x0 - alpha
		for i := k + 2; i < n; i++ {
			v[i] = a[i*n+k]
		}
		var vn float64
		for i := k + 1; i < n; i++ {
			vn += espAbs2(v[i])
		}
		s := complex(1/math.Sqrt(vn), 0)
		for i := k + 1; i < n; i++ {
			v[i] *= s
		}
		// Trailing block B ← H B H = B − 2vqᴴ − 2qvᴴ with p = Bv, q = p − (vᴴp)v.
		var kk complex128
		for i := k + 1; i < n; i++ {
			var sum complex128
			row := a[i*n : (i+1)*n]
			for j := k + 1; j < n; j++ {
				sum += row[j] * v[j]
			}
			p[i] = sum
			kk += cmplx.Conj(v[i]) * sum
		}
		kr := complex(real(kk), 0)
		for i := k + 1; i < n; i++ {
			p[i] -= kr * v[i]
		}
		for i := k + 1; i < n; i++ {
			row := a[i*n : (i+1)*n]
			vi2, qi2 := 2*v[i], 2*p[i]
			for j := k + 1; j < n; j++ {
				row[j] -= vi2*cmplx.Conj(p[j]) + qi2*cmplx.Conj(v[j])
			}
		}
		off[k] = alpha
	}
	if n >= 2 {
		off[n-2] = a[(n-1)*n+n-2] // the last 2×2 block needs no reflector
	}
	e := h.e
	h.phase[0] = 1
	for k := 0; k+1 < n; k++ {
		h.vals[k] = real(a[k*n+k])
		m := cmplx.Abs(off[k])
		e[k] = m
		h.phase[k+1] = h.phase[k]
		if m > 0 {
			h.phase[k+1] = h.phase[k] * off[k] / complex(m, 0)
		}
	}
	h.vals[n-1] = real(a[(n-1)*n+n-1])
	if !(gonum.Implementation{}).Dsteqr(lapack.EVTridiag, n, h.vals, e, h.z, n, h.work) {
		return errors.New("hermitian eigensolver: tridiagonal QL did not converge")
	}
	return nil
}

// vector writes the unit eigenvector j (eigenvalues ascending) into dst.
func (h *espHermEig) vector(dst []complex128, j int) {
	n := h.n
	for i := 0; i < n; i++ {
		dst[i] = h.phase[i] * complex(h.z[i*n+j], 0)
	}
	// Q = H₀H₁…H_{n−3}: apply the last reflector first.
	for k := n - 3; k >= 0; k-- {
		v := h.refl[k*n : (k+1)*n]
		var s complex128
		for i := k + 1; i < n; i++ {
			s += cmplx.Conj(v[i]) * dst[i]
		}
		if s == 0 {
			continue
		}
		s *= 2
		for i := k + 1; i < n; i++ {
			dst[i] -= s * v[i]
		}
	}
}

func espAbs2(v complex128) float64 { return real(v)*real(v) + imag(v)*imag(v) }
