package priors

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack/lapack64"
)

// Gaussian is the prior x ~ N(μ, Σ) on the real vector of an image in the
// denoiser layout [channels][rows][cols], with Σ = diag(d) + U Uᵀ and U of low
// rank r. It implements Denoiser exactly:
//
//	E[x | x_t] = μ + Σ(Σ + σ²I)⁻¹(x_t − μ),  ∂E/∂x_t = Σ(Σ + σ²I)⁻¹ (symmetric),
//
// with (Σ + σ²I)⁻¹ applied through the Woodbury identity: O(n r²) to factor
// for a new σ, O(n r) per image after that. Arithmetic is float64 inside.
//
// A Gaussian keeps scratch space and a cached factorisation, so one value
// must not be used from several goroutines at once.
type Gaussian struct {
	c, h, w, n, r int
	mu, d         []float64
	u             []float64 // [n][r]

	// Factorisation of (Σ + σ²I) for the σ last used.
	fSigma float64
	dinv   []float64 // 1/(d + σ²)
	chol   []float64 // upper Cholesky factor of I_r + Uᵀ diag(dinv) U, [r][r]

	a, k []float64 // per-image scratch, n
	b    []float64 // scratch, r

	vjpSigma []float64 // σ of each image at the last DenoiseVJP
	vjpFn    func(dst, v []float32) error
}

// maxPriorLen bounds the length of a prior vector (a 2×4096×4096 image).
const maxPriorLen = 2 * 4096 * 4096

// NewGaussian builds the prior from its mean mu and diagonal diag (each of
// length n = c·h·w, the layout [c][h][w]) and the factor u, stored [n][r]
// row-major (len(u) = n·r; r = 0 for a diagonal covariance). The values are
// copied. diag must be non-negative; every value must be finite.
func NewGaussian(mu, diag, u []float32, c, h, w int) (*Gaussian, error) {
	if c < 1 || h < 1 || w < 1 || c > 64 || h > 4096 || w > 4096 || c*h*w > maxPriorLen {
		return nil, fmt.Errorf("gaussian prior: shape %d×%d×%d out of range", c, h, w)
	}
	n := c * h * w
	if len(mu) != n || len(diag) != n {
		return nil, fmt.Errorf("gaussian prior: mean has %d and diagonal %d values, want %d", len(mu), len(diag), n)
	}
	if len(u)%n != 0 {
		return nil, fmt.Errorf("gaussian prior: factor has %d values, not a multiple of %d", len(u), n)
	}
	r := len(u) / n
	if r > n {
		return nil, fmt.Errorf("gaussian prior: rank %d exceeds dimension %d", r, n)
	}
	g := &Gaussian{
		c: c, h: h, w: w, n: n, r: r,
		mu: make([]float64, n), d: make([]float64, n), u: make([]float64, n*r),
		fSigma: math.NaN(),
		dinv:   make([]float64, n), chol: make([]float64, r*r),
		a: make([]float64, n), k: make([]float64, n),
		b: make([]float64, r),
	}
	for i := range n {
		m, v := float64(mu[i]), float64(diag[i])
		if math.IsNaN(m) || math.IsInf(m, 0) {
			return nil, fmt.Errorf("gaussian prior: mean[%d] = %v is not finite", i, m)
		}
		if !(v >= 0) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("gaussian prior: diagonal[%d] = %v is not finite and non-negative", i, v)
		}
		g.mu[i], g.d[i] = m, v
	}
	for i, v := range u {
		x := float64(v)
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("gaussian prior: factor[%d] = %v is not finite", i, x)
		}
		g.u[i] = x
	}
	g.vjpFn = g.applyVJP
	return g, nil
}

// Mean, Diag and Factor return μ, d and U ([n][r] row-major) of
// Σ = diag(d) + UUᵀ as float64. They are g's own storage: read only.
func (g *Gaussian) Mean() []float64   { return g.mu }
func (g *Gaussian) Diag() []float64   { return g.d }
func (g *Gaussian) Factor() []float64 { return g.u }

// Clone returns a Gaussian sharing g's parameters (read only) with its own
// scratch space, for use from another goroutine.
func (g *Gaussian) Clone() *Gaussian {
	c := &Gaussian{
		c: g.c, h: g.h, w: g.w, n: g.n, r: g.r,
		mu: g.mu, d: g.d, u: g.u,
		fSigma: math.NaN(),
		dinv:   make([]float64, g.n), chol: make([]float64, g.r*g.r),
		a: make([]float64, g.n), k: make([]float64, g.n), b: make([]float64, g.r),
	}
	c.vjpFn = c.applyVJP
	return c
}

// Shape reports the image layout the prior is defined on.
func (g *Gaussian) Shape() (channels, rows, cols int) { return g.c, g.h, g.w }

// Rank is the number of columns of the low-rank factor U.
func (g *Gaussian) Rank() int { return g.r }

// Denoise writes E[x | x_t] for each image of xt at its noise level sigma[i].
func (g *Gaussian) Denoise(dst, xt, sigma []float32) error {
	if err := g.check(dst, xt, sigma); err != nil {
		return err
	}
	for i, s := range sigma {
		g.denoiseOne(dst[i*g.n:(i+1)*g.n], xt[i*g.n:(i+1)*g.n], float64(s))
	}
	return nil
}

// DenoiseVJP denoises like Denoise and returns the product with the
// (symmetric) Jacobian Σ(Σ + σ_i²I)⁻¹ at each image's noise level. The
// returned function is valid until the next call on g.
func (g *Gaussian) DenoiseVJP(dst, xt, sigma []float32) (func(dst, v []float32) error, error) {
	if err := g.Denoise(dst, xt, sigma); err != nil {
		return nil, err
	}
	if cap(g.vjpSigma) < len(sigma) {
		g.vjpSigma = make([]float64, len(sigma))
	}
	g.vjpSigma = g.vjpSigma[:len(sigma)]
	for i, s := range sigma {
		g.vjpSigma[i] = float64(s)
	}
	return g.vjpFn, nil
}

func (g *Gaussian) applyVJP(dst, v []float32) error {
	m := len(g.vjpSigma)
	if len(v) != m*g.n || len(dst) != m*g.n {
		return fmt.Errorf("gaussian prior vjp: %d and %d values for %d images of %d", len(dst), len(v), m, g.n)
	}
	for i, s := range g.vjpSigma {
		g.factor(s)
		vi, di := v[i*g.n:(i+1)*g.n], dst[i*g.n:(i+1)*g.n]
		for j, x := range vi {
			g.a[j] = float64(x)
		}
		g.jacobian(g.a)
		for j, x := range g.a {
			di[j] = float32(x)
		}
	}
	return nil
}

func (g *Gaussian) check(dst, xt, sigma []float32) error {
	if len(sigma) == 0 {
		return errors.New("gaussian prior: no images")
	}
	if len(xt) != len(sigma)*g.n || len(dst) != len(xt) {
		return fmt.Errorf("gaussian prior: %d inputs and %d outputs for %d images of %d values", len(xt), len(dst), len(sigma), g.n)
	}
	for i, s := range sigma {
		if !(s > 0) || math.IsInf(float64(s), 0) {
			return fmt.Errorf("gaussian prior: sigma[%d] = %v, want finite and positive", i, s)
		}
	}
	return nil
}

func (g *Gaussian) denoiseOne(dst, xt []float32, s float64) {
	g.factor(s)
	for j, x := range xt {
		g.a[j] = float64(x) - g.mu[j]
	}
	g.jacobian(g.a)
	for j, x := range g.a {
		dst[j] = float32(g.mu[j] + x)
	}
}

// factor prepares (Σ + σ²I)⁻¹ = D⁻¹ − D⁻¹U C⁻¹ UᵀD⁻¹ with D = diag(d) + σ²I and
// C = I + UᵀD⁻¹U, unless σ is the one already factored.
func (g *Gaussian) factor(s float64) {
	if s == g.fSigma {
		return
	}
	s2 := s * s
	for i, v := range g.d {
		g.dinv[i] = 1 / (v + s2)
	}
	r := g.r
	c := g.chol
	clear(c)
	// The upper triangle of C, row-major: element (q, p), q ≤ p.
	for i := range g.n {
		row := g.u[i*r : (i+1)*r]
		di := g.dinv[i]
		for p := range r {
			x := di * row[p]
			if x == 0 {
				continue
			}
			for q := range p + 1 {
				c[q*r+p] += x * row[q]
			}
		}
	}
	for p := range r {
		c[p*r+p]++
	}
	// C is the identity plus a positive semi-definite matrix, so the
	// Cholesky factorisation (gonum's LAPACK, C = UᵀU) cannot break down.
	lapack64.Potrf(blas64.Symmetric{Uplo: blas.Upper, N: r, Stride: max(1, r), Data: c})
	g.fSigma = s
}

// jacobian overwrites v with Σ(Σ + σ²I)⁻¹v = v − σ²(Σ + σ²I)⁻¹v for the
// factored σ: two passes over U. The subtraction loses nothing that matters
// in float64 (relative error ~1e-16·σ²/λ_min(Σ) at worst).
func (g *Gaussian) jacobian(v []float64) {
	r, s2 := g.r, g.fSigma*g.fSigma
	b := g.b
	clear(b)
	for i, x := range v {
		a := x * g.dinv[i]
		g.k[i] = a
		if r > 0 && a != 0 {
			for p, y := range g.u[i*r : (i+1)*r] {
				b[p] += a * y
			}
		}
	}
	if r > 0 {
		g.cholSolve(b)
	}
	for i, x := range v {
		k := g.k[i]
		if r > 0 {
			var s float64
			for p, y := range g.u[i*r : (i+1)*r] {
				s += y * b[p]
			}
			k -= g.dinv[i] * s
		}
		v[i] = x - s2*k
	}
}

// cholSolve overwrites b with C⁻¹b using the cached factor (C = UᵀU).
func (g *Gaussian) cholSolve(b []float64) {
	r := g.r
	lapack64.Potrs(blas64.Triangular{Uplo: blas.Upper, Diag: blas.NonUnit, N: r, Stride: max(1, r), Data: g.chol},
		blas64.General{Rows: r, Cols: 1, Stride: 1, Data: b})
}

// Sample draws len(dst)/n independent images x = μ + √d⊙z + U ζ from the
// prior into dst, using rng.
func (g *Gaussian) Sample(dst []float32, rng *rand.Rand) error {
	if len(dst) == 0 || len(dst)%g.n != 0 {
		return fmt.Errorf("gaussian prior: %d values is not a whole number of %d-value images", len(dst), g.n)
	}
	for b := 0; b < len(dst); b += g.n {
		for p := range g.r {
			g.b[p] = rng.NormFloat64()
		}
		for i := range g.n {
			x := g.mu[i] + math.Sqrt(g.d[i])*rng.NormFloat64()
			row := g.u[i*g.r : (i+1)*g.r]
			for p, y := range row {
				x += y * g.b[p]
			}
			dst[b+i] = float32(x)
		}
	}
	return nil
}
