package retrain

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/mri/cg"
	"github.com/kspaced/kspaced/priors"
)

// The initial prior of EM is a Gaussian N(μ, D + UUᵀ) fitted to the
// observations themselves by Monte-Carlo EM. Under a Gaussian prior the
// posterior of each observation is Gaussian, so the E-step is exact: the
// posterior mean mᵢ comes from a conjugate-gradient solve in measurement
// space and exact posterior samples from the same solve on perturbed data
// (Matheron's rule: x = x̃ + ΣAᴴ(AΣAᴴ + R)⁻¹(y − Ax̃ − ñ) with x̃ ~ N(μ, Σ),
// ñ ~ N(0, R)). The M-step sets μ to the mean of the mᵢ and fits D + UUᵀ
// to the expected second moment
//
//	S = 1/N Σᵢ [(mᵢ − μ)(mᵢ − μ)ᵀ + Cᵢ],
//
// with each posterior covariance Cᵢ replaced by the unbiased estimate
// 1/K Σₖ (xᵢₖ − mᵢ)(xᵢₖ − mᵢ)ᵀ from K posterior samples (the mean part is
// exact, so only the covariance part carries Monte-Carlo noise). D + UUᵀ is
// fitted to S by iterations of the EM algorithm for factor analysis, warm
// started from the current prior: each raises the expected complete-data
// log-likelihood, which makes the whole a generalised (Monte-Carlo) EM.
// S is never formed: every product goes through the N·(K+1) rows that
// define it, O(N·K·n·r) per factor-analysis iteration.

// GaussianEMOptions configure FitGaussianEM. Zero values take the defaults
// noted.
type GaussianEMOptions struct {
	Rank    int     // columns of the low-rank factor U (16)
	Laps    int     // EM iterations (8)
	Samples int     // exact posterior samples per observation and lap (2)
	CGIter  int     // most CG iterations per posterior solve (300)
	CGTol   float64 // CG stops at this relative residual (1e-4)
	FAIter  int     // factor-analysis iterations per M-step (20)
	// Floor bounds the diagonal variances below, relative to their mean
	// (1e-4): a pixel the data never constrain must keep some variance.
	Floor   float64
	Seed    uint64
	Workers int // goroutines for the E-step (GOMAXPROCS)
	// Init, when set, is the prior the first lap starts from; otherwise a
	// probabilistic PCA of the zero-filled images (Aᴴy/Scale) is.
	Init *priors.Gaussian
	// FirstLap numbers the first lap run (resuming a fit: Init is the prior
	// after lap FirstLap−1); laps FirstLap…Laps are run. Default 1.
	FirstLap int
	// AfterLap, when set, is called with each lap's prior and record (to
	// save it); an error stops the fit.
	AfterLap func(g *priors.Gaussian, rec GaussianLap) error
	// Progress, when set, receives (done, total) observations of each E-step.
	Progress func(done, total int)
}

func (o *GaussianEMOptions) defaults() error {
	if o.Rank == 0 {
		o.Rank = 16
	}
	if o.Laps == 0 {
		o.Laps = 8
	}
	if o.Samples == 0 {
		o.Samples = 2
	}
	if o.CGIter == 0 {
		o.CGIter = 300
	}
	if o.CGTol == 0 {
		o.CGTol = 1e-4
	}
	if o.FAIter == 0 {
		o.FAIter = 20
	}
	if o.Floor == 0 {
		o.Floor = 1e-4
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.FirstLap == 0 {
		o.FirstLap = 1
	}
	switch {
	case o.Rank < 0 || o.Rank > 4096:
		return fmt.Errorf("gaussian EM: rank %d, want 0 to 4096", o.Rank)
	case o.Laps < 0 || o.Laps > 10000:
		return fmt.Errorf("gaussian EM: %d laps", o.Laps)
	case o.Samples < 1 || o.Samples > 1024:
		return fmt.Errorf("gaussian EM: %d samples per observation, want 1 to 1024", o.Samples)
	case o.CGIter < 1 || o.CGIter > 100000 || !(o.CGTol > 0 && o.CGTol < 1):
		return fmt.Errorf("gaussian EM: CG %d iterations, tolerance %g", o.CGIter, o.CGTol)
	case o.FAIter < 1 || o.FAIter > 100000:
		return fmt.Errorf("gaussian EM: %d factor-analysis iterations", o.FAIter)
	case !(o.Floor > 0 && o.Floor < 1):
		return fmt.Errorf("gaussian EM: variance floor %g, want in (0, 1)", o.Floor)
	case o.FirstLap < 1:
		return fmt.Errorf("gaussian EM: first lap %d", o.FirstLap)
	}
	return nil
}

// GaussianLap records one lap of FitGaussianEM.
type GaussianLap struct {
	Lap int `json:"lap"`
	// DataConsistency is the mean over observations of ‖y − A·mᵢ‖²/(M σ_y²)
	// for the posterior means under the prior the lap started from (M
	// measured values): about 1 when prior and noise level fit the data.
	DataConsistency float64 `json:"data_consistency"`
	// CGIterations is the mean, CGResidual the worst relative residual of
	// the posterior solves.
	CGIterations float64 `json:"cg_iterations"`
	CGResidual   float64 `json:"cg_residual"`
	// MeanVariance is the mean diagonal of the new covariance, tr(Σ)/n.
	MeanVariance float64 `json:"mean_variance"`
	Seconds      float64 `json:"seconds"`
}

// FitGaussianEM fits N(μ, D + UUᵀ) on the 2×rows×cols real layout of
// prior-space images (image/Scale, real plane then imaginary plane) to the
// observations by Monte-Carlo EM with exact Gaussian E-steps. It returns the
// prior after the last lap and each lap's record.
func FitGaussianEM(ctx context.Context, obs []Observation, rows, cols int, opt GaussianEMOptions) (*priors.Gaussian, []GaussianLap, error) {
	if err := opt.defaults(); err != nil {
		return nil, nil, err
	}
	sup, err := checkObservations(obs, rows, cols)
	if err != nil {
		return nil, nil, fmt.Errorf("gaussian EM: %w", err)
	}
	n := 2 * rows * cols
	if len(obs) <= opt.Rank {
		return nil, nil, fmt.Errorf("gaussian EM: %d observations cannot determine a rank-%d covariance", len(obs), opt.Rank)
	}
	g := opt.Init
	if g == nil {
		if g, err = initGaussian(obs, sup, rows, cols, opt); err != nil {
			return nil, nil, err
		}
	} else if c, h, w := g.Shape(); c != 2 || h != rows || w != cols || g.Rank() != opt.Rank {
		return nil, nil, fmt.Errorf("gaussian EM: initial prior is %d×%d×%d of rank %d, want 2×%d×%d of rank %d", c, h, w, g.Rank(), rows, cols, opt.Rank)
	}
	var laps []GaussianLap
	K := opt.Samples
	// rows of the second moment: per observation its centred mean, then K
	// sample deviations.
	moments := make([]float32, len(obs)*(K+1)*n)
	means := make([]float64, n)
	for lap := opt.FirstLap; lap <= opt.Laps; lap++ {
		start := time.Now()
		rec := GaussianLap{Lap: lap}
		stats := make([]solveStats, len(obs))
		err := parallelObs(ctx, len(obs), opt.Workers, opt.Progress, func(w *obsWorker, i int) error {
			if w.post == nil || w.post.g != g {
				w.post = newGaussPosterior(g, rows, cols)
			}
			if err := w.post.bind(&obs[i], sup[i]); err != nil {
				return fmt.Errorf("observation %d: %w", i, err)
			}
			rng := rand.New(rand.NewPCG(opt.Seed^0x67617573, uint64(lap)<<32|uint64(i)))
			base := moments[i*(K+1)*n : (i+1)*(K+1)*n]
			st, err := w.post.moments(ctx, base, K, opt.CGIter, opt.CGTol, rng)
			stats[i] = st
			return err
		})
		if err != nil {
			return nil, nil, fmt.Errorf("gaussian EM lap %d: %w", lap, err)
		}
		for _, st := range stats {
			rec.DataConsistency += st.dc / float64(len(obs))
			rec.CGIterations += float64(st.iters) / float64(len(obs)*(K+1))
			rec.CGResidual = math.Max(rec.CGResidual, st.relres)
		}
		// μ = mean of the posterior means; centre them in place.
		clear(means)
		for i := range obs {
			m := moments[i*(K+1)*n : i*(K+1)*n+n]
			for j, v := range m {
				means[j] += float64(v)
			}
		}
		for j := range means {
			means[j] /= float64(len(obs))
		}
		for i := range obs {
			m := moments[i*(K+1)*n : i*(K+1)*n+n]
			for j := range m {
				m[j] = float32(float64(m[j]) - means[j])
			}
		}
		weights := make([]float64, len(obs)*(K+1))
		for i := range obs {
			weights[i*(K+1)] = 1 / float64(len(obs))
			for k := 1; k <= K; k++ {
				weights[i*(K+1)+k] = 1 / float64(len(obs)*K)
			}
		}
		u, d := clone64(g.Factor()), clone64(g.Diag())
		if err := faIterate(u, d, n, opt.Rank, moments, weights, opt.FAIter, opt.Floor); err != nil {
			return nil, nil, fmt.Errorf("gaussian EM lap %d: %w", lap, err)
		}
		if g, err = gaussianFrom64(means, d, u, rows, cols); err != nil {
			return nil, nil, fmt.Errorf("gaussian EM lap %d: %w", lap, err)
		}
		rec.MeanVariance = meanVariance(g)
		rec.Seconds = time.Since(start).Seconds()
		laps = append(laps, rec)
		if opt.AfterLap != nil {
			if err := opt.AfterLap(g, rec); err != nil {
				return nil, nil, err
			}
		}
	}
	return g, laps, nil
}

// meanVariance is tr(D + UUᵀ)/n.
func meanVariance(g *priors.Gaussian) float64 {
	var s float64
	for _, v := range g.Diag() {
		s += v
	}
	for _, v := range g.Factor() {
		s += v * v
	}
	return s / float64(len(g.Mean()))
}

func clone64(x []float64) []float64 { return append([]float64(nil), x...) }

// gaussianFrom64 builds a Gaussian from float64 parameters (NewGaussian
// checks them on the float32 values a checkpoint would hold).
func gaussianFrom64(mu, d, u []float64, rows, cols int) (*priors.Gaussian, error) {
	f := func(x []float64) []float32 {
		y := make([]float32, len(x))
		for i, v := range x {
			y[i] = float32(v)
		}
		return y
	}
	return priors.NewGaussian(f(mu), f(d), f(u), 2, rows, cols)
}

// initGaussian fits the starting prior to the zero-filled images by
// probabilistic PCA (closed form, Tipping & Bishop) refined by
// factor-analysis iterations.
func initGaussian(obs []Observation, sup [][]bool, rows, cols int, opt GaussianEMOptions) (*priors.Gaussian, error) {
	hw, n := rows*cols, 2*rows*cols
	N := len(obs)
	x := make([]float32, N*n)
	img := make([]complex64, hw)
	mu := make([]float64, n)
	for i := range obs {
		o := &obs[i]
		y := make([]complex64, len(o.Y))
		inv := float32(1 / o.Scale)
		for k, v := range o.Y {
			if sup[i][k] {
				y[k] = v * complex(inv, 0)
			}
		}
		o.A.Adjoint(img, y)
		xi := x[i*n : (i+1)*n]
		for j, v := range img {
			xi[j], xi[hw+j] = real(v), imag(v)
			mu[j] += float64(real(v)) / float64(N)
			mu[hw+j] += float64(imag(v)) / float64(N)
		}
	}
	for i := range N {
		xi := x[i*n : (i+1)*n]
		for j := range xi {
			xi[j] = float32(float64(xi[j]) - mu[j])
		}
	}
	w := make([]float64, N)
	for i := range w {
		w[i] = 1 / float64(N)
	}
	u, d, err := ppca(x, w, n, opt.Rank, opt.Floor)
	if err != nil {
		return nil, fmt.Errorf("gaussian EM: initial fit: %w", err)
	}
	if err := faIterate(u, d, n, opt.Rank, x, w, opt.FAIter, opt.Floor); err != nil {
		return nil, fmt.Errorf("gaussian EM: initial fit: %w", err)
	}
	return gaussianFrom64(mu, d, u, rows, cols)
}

// ppca is the maximum-likelihood probabilistic PCA of S = Σₖ wₖ xₖxₖᵀ (rows
// xₖ of length n): U = E_r (Λ_r − σ²I)^½ with σ² the mean of the remaining
// eigenvalues, D = max(diag(S) − diag(UUᵀ), floor·mean diag S). The
// eigenvectors come from the rows' weighted Gram matrix.
func ppca(rows []float32, w []float64, n, r int, floor float64) (u, d []float64, err error) {
	N := len(w)
	if N*n != len(rows) {
		return nil, nil, fmt.Errorf("ppca: %d values for %d rows of %d", len(rows), N, n)
	}
	gram := mat.NewSymDense(N, nil)
	for a := range N {
		xa := rows[a*n : (a+1)*n]
		for b := a; b < N; b++ {
			xb := rows[b*n : (b+1)*n]
			var s float64
			for j := range xa {
				s += float64(xa[j]) * float64(xb[j])
			}
			gram.SetSym(a, b, s*math.Sqrt(w[a]*w[b]))
		}
	}
	var eig mat.EigenSym
	if !eig.Factorize(gram, true) {
		return nil, nil, errors.New("ppca: eigendecomposition failed")
	}
	vals := eig.Values(nil) // ascending
	var vecs mat.Dense
	eig.VectorsTo(&vecs)
	diag := make([]float64, n)
	var trace float64
	for k := range N {
		xk := rows[k*n : (k+1)*n]
		for j, v := range xk {
			diag[j] += w[k] * float64(v) * float64(v)
		}
	}
	for _, v := range diag {
		trace += v
	}
	var top float64
	for p := 0; p < r && p < N; p++ {
		top += math.Max(vals[N-1-p], 0)
	}
	sigma2 := math.Max(trace-top, 0) / float64(max(n-r, 1))
	u = make([]float64, n*r)
	for p := 0; p < r && p < N; p++ {
		lam := vals[N-1-p]
		if !(lam > sigma2) {
			continue
		}
		// Eigenvector of S: Xᵀ W^½ v / √λ.
		scale := math.Sqrt(lam-sigma2) / math.Sqrt(lam)
		for k := range N {
			c := vecs.At(k, N-1-p) * math.Sqrt(w[k]) * scale
			if c == 0 {
				continue
			}
			xk := rows[k*n : (k+1)*n]
			for j, v := range xk {
				u[j*r+p] += c * float64(v)
			}
		}
	}
	lo := floor * trace / float64(n)
	if !(lo > 0) {
		lo = math.SmallestNonzeroFloat64
	}
	d = make([]float64, n)
	for j := range d {
		s := diag[j]
		for p := range r {
			s -= u[j*r+p] * u[j*r+p]
		}
		d[j] = math.Max(s, lo)
	}
	return u, d, nil
}

// faIterate runs iters EM iterations of factor analysis for the second
// moment S = Σₖ wₖ xₖxₖᵀ of the rows xₖ (each n values, centred), updating
// u ([n][r]) and d in place (Ghahramani & Hinton 1996):
//
//	β = (I + UᵀD⁻¹U)⁻¹UᵀD⁻¹,  E[zzᵀ] = (I + UᵀD⁻¹U)⁻¹ + βSβᵀ,
//	U ← Sβᵀ E[zzᵀ]⁻¹,  D ← diag(S − U βS),
//
// with D bounded below by floor times the mean of diag(S).
func faIterate(u, d []float64, n, r int, rows []float32, w []float64, iters int, floor float64) error {
	N := len(w)
	if len(rows) != N*n || len(u) != n*r || len(d) != n {
		return fmt.Errorf("factor analysis: %d values for %d rows of %d, factor %d, diagonal %d", len(rows), N, n, len(u), len(d))
	}
	diagS := make([]float64, n)
	for k := range N {
		for j, v := range rows[k*n : (k+1)*n] {
			diagS[j] += w[k] * float64(v) * float64(v)
		}
	}
	var tr float64
	for _, v := range diagS {
		tr += v
	}
	lo := floor * tr / float64(n)
	if !(lo > 0) {
		lo = math.SmallestNonzeroFloat64
	}
	for j := range d {
		d[j] = math.Max(d[j], lo)
	}
	if r == 0 {
		copy(d, diagS)
		for j := range d {
			d[j] = math.Max(d[j], lo)
		}
		return nil
	}
	cinv := make([]float64, r*r)
	bt := make([]float64, n*r) // βᵀ, [n][r]
	sb := make([]float64, n*r) // Sβᵀ
	tt := make([]float64, r*r) // βSβᵀ
	t := make([]float64, r)
	for range iters {
		// C = I + UᵀD⁻¹U, then βᵀ = D⁻¹U C⁻¹.
		clear(cinv)
		for j := range n {
			uj := u[j*r : (j+1)*r]
			dj := 1 / d[j]
			for p := range r {
				a := uj[p] * dj
				for q := 0; q <= p; q++ {
					cinv[p*r+q] += a * uj[q]
				}
			}
		}
		for p := range r {
			cinv[p*r+p]++
			for q := 0; q < p; q++ {
				cinv[q*r+p] = cinv[p*r+q]
			}
		}
		if err := invertSPD(cinv, r); err != nil {
			return fmt.Errorf("factor analysis: %w", err)
		}
		for j := range n {
			uj, bj := u[j*r:(j+1)*r], bt[j*r:(j+1)*r]
			dj := 1 / d[j]
			for p := range r {
				var s float64
				for q := range r {
					s += uj[q] * cinv[q*r+p]
				}
				bj[p] = s * dj
			}
		}
		clear(sb)
		clear(tt)
		for k := range N {
			xk := rows[k*n : (k+1)*n]
			clear(t)
			for j, v := range xk {
				if v == 0 {
					continue
				}
				x := float64(v)
				for p, b := range bt[j*r : (j+1)*r] {
					t[p] += x * b
				}
			}
			wk := w[k]
			for p := range r {
				for q := range r {
					tt[p*r+q] += wk * t[p] * t[q]
				}
			}
			for p := range t {
				t[p] *= wk
			}
			for j, v := range xk {
				if v == 0 {
					continue
				}
				x := float64(v)
				sj := sb[j*r : (j+1)*r]
				for p, c := range t {
					sj[p] += x * c
				}
			}
		}
		// E[zzᵀ] = C⁻¹ + βSβᵀ; U ← Sβᵀ E[zzᵀ]⁻¹.
		for i := range tt {
			tt[i] += cinv[i]
		}
		if err := invertSPD(tt, r); err != nil {
			return fmt.Errorf("factor analysis: %w", err)
		}
		for j := range n {
			sj, uj := sb[j*r:(j+1)*r], u[j*r:(j+1)*r]
			var dd float64
			for p := range r {
				var s float64
				for q := range r {
					s += sj[q] * tt[q*r+p]
				}
				uj[p] = s
			}
			for p := range r {
				dd += uj[p] * sj[p]
			}
			d[j] = math.Max(diagS[j]-dd, lo)
		}
	}
	for _, v := range u {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return errors.New("factor analysis diverged")
		}
	}
	return nil
}

// invertSPD overwrites the symmetric positive definite r×r matrix a with its
// inverse (Cholesky).
func invertSPD(a []float64, r int) error {
	var c mat.Cholesky
	if !c.Factorize(mat.NewSymDense(r, a)) {
		return errors.New("matrix not positive definite")
	}
	inv := mat.NewSymDense(r, nil)
	// An ill-conditioned inverse is still the best there is (mat.Condition
	// is a warning).
	if err := c.InverseTo(inv); err != nil && !errors.As(err, new(mat.Condition)) {
		return err
	}
	for i := range r {
		for j := range r {
			a[i*r+j] = inv.At(i, j)
		}
	}
	return nil
}

// gaussPosterior computes exact posterior means and samples of one
// observation under a Gaussian prior, in prior space. The linear system
// (AΣAᴴ + R)u = r lives in measurement space, where R = σ²/2·I per real
// component is well conditioned next to Σ's small eigenvalues; CG runs there
// on C^M as R^{2M} with the inner product Re⟨a, b⟩ and in float64 (only the
// operator is float32). It is bound to one observation at a time and not
// safe for concurrent use; the prior is only read.
type gaussPosterior struct {
	g          *priors.Gaussian
	hw, n      int
	obs        *Observation
	sup        []bool
	m          int
	measured   int         // entries of sup that are true
	y          []complex64 // prior-space data, zero off the support
	s2         float64     // noise variance per real component, prior space
	cu, cr, cp []complex128
	cmp        []complex128 // (AΣAᴴ + R)p
	cz         []complex128 // preconditioned residual
	cg         *cg.Solver[[]complex128]
	cgProblem  cg.Problem[[]complex128]
	cgR, cgP   [][]complex128
	cq, c64    []complex64
	// Preconditioner (see preparePrecond), built on first use per binding.
	precReady bool
	noPrecond bool        // plain CG (tests)
	wlr       []complex64 // W = AU, [M][r]
	precA     float64
	precG     []float64 // (aI + WᴴW)⁻¹
	pt, ps    []float64
	img       []complex64
	v, w      []float64 // n
	tb        []float64 // r
}

func newGaussPosterior(g *priors.Gaussian, rows, cols int) *gaussPosterior {
	hw := rows * cols
	return &gaussPosterior{g: g, hw: hw, n: 2 * hw, img: make([]complex64, hw),
		v: make([]float64, 2*hw), w: make([]float64, 2*hw), tb: make([]float64, g.Rank())}
}

// bind points the solver at observation o with measurement support sup.
func (p *gaussPosterior) bind(o *Observation, sup []bool) error {
	m := o.A.OutLen()
	if cap(p.y) < m {
		p.y, p.cq, p.c64 = make([]complex64, m), make([]complex64, m), make([]complex64, m)
		p.cu, p.cr, p.cp = make([]complex128, m), make([]complex128, m), make([]complex128, m)
		p.cmp = make([]complex128, m)
	}
	p.m = m
	p.y, p.cq, p.c64 = p.y[:m], p.cq[:m], p.c64[:m]
	p.cu, p.cr, p.cp, p.cmp = p.cu[:m], p.cr[:m], p.cp[:m], p.cmp[:m]
	p.obs, p.sup = o, sup
	p.precReady = false
	inv := 1 / o.Scale
	p.measured = 0
	for k, v := range o.Y {
		if sup[k] {
			p.y[k] = complex(float32(float64(real(v))*inv), float32(float64(imag(v))*inv))
			p.measured++
		} else {
			p.y[k] = 0
		}
	}
	p.s2 = o.NoiseVar / 2 * inv * inv
	if !(p.s2 > 0) || math.IsInf(p.s2, 0) {
		return fmt.Errorf("noise variance %g in prior space, want finite and positive", 2*p.s2)
	}
	return nil
}

// sigma overwrites v with Σv = d⊙v + U(Uᵀv).
func (p *gaussPosterior) sigma(v []float64) {
	g, r := p.g, p.g.Rank()
	tb := p.tb
	clear(tb)
	if r > 0 {
		for j, x := range v {
			if x == 0 {
				continue
			}
			for q, y := range g.Factor()[j*r : (j+1)*r] {
				tb[q] += y * x
			}
		}
	}
	for j, x := range v {
		s := g.Diag()[j] * x
		if r > 0 {
			for q, y := range g.Factor()[j*r : (j+1)*r] {
				s += y * tb[q]
			}
		}
		v[j] = s
	}
}

// forward writes A·x (x real [2][hw]) into dst, zero off the support.
func (p *gaussPosterior) forward(dst []complex64, x []float64) {
	for j := range p.img {
		p.img[j] = complex(float32(x[j]), float32(x[p.hw+j]))
	}
	p.obs.A.Forward(dst, p.img)
	for k := range dst {
		if !p.sup[k] {
			dst[k] = 0
		}
	}
}

// sigmaAdjoint writes ΣAᴴc (c on the support) into v.
func (p *gaussPosterior) sigmaAdjoint(v []float64, c []complex128) {
	for k, z := range c {
		p.c64[k] = complex64(z)
	}
	p.obs.A.Adjoint(p.img, p.c64)
	for j, z := range p.img {
		v[j], v[p.hw+j] = float64(real(z)), float64(imag(z))
	}
	p.sigma(v)
}

// solve overwrites x with x + ΣAᴴ(AΣAᴴ + R)⁻¹ res (res on the support).
func (p *gaussPosterior) solve(ctx context.Context, x []float64, res []complex64, maxIter int, tol float64) (int, float64, error) {
	if !p.precReady {
		if err := p.preparePrecond(); err != nil {
			return 0, 0, err
		}
	}
	for k, v := range res {
		p.cr[k] = complex128(v)
		p.cu[k] = 0
	}
	if p.cg == nil {
		p.cg = cg.NewSolver[[]complex128](cg.Complex128{}, 1)
		p.cgR, p.cgP = make([][]complex128, 1), make([][]complex128, 1)
		p.cgProblem = cg.Problem[[]complex128]{
			Apply:   func(_ int, q, d []complex128) { p.apply(q, d) },
			Precond: func(_ int, z, r []complex128) { p.precondition(z, r) },
			Step: func(_ int, alpha float64, d []complex128) {
				for k, v := range d {
					p.cu[k] += complex(alpha, 0) * v
				}
			},
		}
	}
	p.cgR[0], p.cgP[0] = p.cr, p.cp
	c := p.cg
	err := c.Solve(ctx, &p.cgProblem, p.cgR, p.cgP, p.cmp, p.cz, maxIter, tol, false)
	iters, rr, rr0 := c.Iters[0], c.RR[0], c.Ref[0]
	if err != nil {
		return iters, 0, err
	}
	if c.Breakdown[0] {
		return iters, math.Sqrt(rr / rr0), errors.New("posterior system is not positive definite")
	}
	p.sigmaAdjoint(p.w, p.cu)
	for j, v := range p.w {
		x[j] += v
	}
	rel := 0.0
	if rr0 > 0 {
		rel = math.Sqrt(rr / rr0)
	}
	return iters, rel, nil
}

// apply sets q = (AΣAᴴ + R) d on the measured entries, 0 off them.
func (p *gaussPosterior) apply(q, d []complex128) {
	p.sigmaAdjoint(p.w, d)
	p.forward(p.cq, p.w)
	for k, v := range p.cq {
		c := complex128(v) + complex(p.s2, 0)*d[k]
		if !p.sup[k] {
			c = 0
		}
		q[k] = c
	}
}

// The preconditioner approximates AΣAᴴ + R by P = aI + WWᴴ with W = AU (the
// prior's low-rank part seen through the operator, exact) and a = s2 + δ,
// δ the mean diagonal of ADAᴴ over the measured entries (Hutchinson
// estimate from four probes). The low-rank part holds the eigenvalues
// that dwarf the noise level; taking it out exactly leaves CG the
// diagonal part's spread. P⁻¹ comes from the Woodbury identity,
// P⁻¹v = (v − W(aI + WᴴW)⁻¹Wᴴv)/a, with C^M as R^{2M} (Re⟨·,·⟩).
func (p *gaussPosterior) preparePrecond() error {
	g, r, m := p.g, p.g.Rank(), p.m
	if cap(p.wlr) < m*r {
		p.wlr = make([]complex64, m*r)
	}
	p.wlr = p.wlr[:m*r]
	col := make([]float64, p.n)
	out := make([]complex64, m)
	for q := range r {
		for j := range col {
			col[j] = g.Factor()[j*r+q]
		}
		p.forward(out, col)
		for k, v := range out {
			p.wlr[k*r+q] = v
		}
	}
	// δ: E‖A D^½ z‖²/M for z ~ N(0, I).
	rng := rand.New(rand.NewPCG(0x707265, uint64(m)))
	var tot float64
	const probes = 4
	for range probes {
		for j := range col {
			col[j] = math.Sqrt(g.Diag()[j]) * rng.NormFloat64()
		}
		p.forward(out, col)
		for _, v := range out {
			tot += float64(real(v))*float64(real(v)) + float64(imag(v))*float64(imag(v))
		}
	}
	// Per real component: half of E|·|².
	p.precA = p.s2 + tot/(2*probes*float64(max(p.measured, 1)))
	// G = aI + WᴴW, inverted once.
	if cap(p.precG) < r*r {
		p.precG = make([]float64, r*r)
	}
	p.precG = p.precG[:r*r]
	clear(p.precG)
	for k := range m {
		wk := p.wlr[k*r : (k+1)*r]
		for a := range r {
			for b := 0; b <= a; b++ {
				p.precG[a*r+b] += float64(real(wk[a]))*float64(real(wk[b])) + float64(imag(wk[a]))*float64(imag(wk[b]))
			}
		}
	}
	for a := range r {
		p.precG[a*r+a] += p.precA
		for b := 0; b < a; b++ {
			p.precG[b*r+a] = p.precG[a*r+b]
		}
	}
	if r > 0 {
		if err := invertSPD(p.precG, r); err != nil {
			return fmt.Errorf("preconditioner: %w", err)
		}
	}
	if cap(p.cz) < m {
		p.cz = make([]complex128, m)
	}
	p.cz = p.cz[:m]
	if cap(p.pt) < r {
		p.pt, p.ps = make([]float64, r), make([]float64, r)
	}
	p.pt, p.ps = p.pt[:r], p.ps[:r]
	p.precReady = true
	return nil
}

// precondition writes P⁻¹v into z (zero off the support).
func (p *gaussPosterior) precondition(z, v []complex128) {
	r := p.g.Rank()
	if p.noPrecond {
		copy(z, v)
		return
	}
	clear(p.pt)
	for k, x := range v {
		if x == 0 {
			continue
		}
		wk := p.wlr[k*r : (k+1)*r]
		for a, w := range wk {
			p.pt[a] += float64(real(w))*real(x) + float64(imag(w))*imag(x)
		}
	}
	for a := range r {
		var s float64
		for b := range r {
			s += p.precG[a*r+b] * p.pt[b]
		}
		p.ps[a] = s
	}
	inv := 1 / p.precA
	for k, x := range v {
		if !p.sup[k] {
			z[k] = 0
			continue
		}
		var re, im float64
		for a, w := range p.wlr[k*r : (k+1)*r] {
			re += float64(real(w)) * p.ps[a]
			im += float64(imag(w)) * p.ps[a]
		}
		z[k] = complex((real(x)-re)*inv, (imag(x)-im)*inv)
	}
}

type solveStats struct {
	iters  int
	relres float64
	dc     float64
}

// mean writes the posterior mean into x and returns the solve's statistics
// and its data consistency ‖y − A x‖²/(M·2s2).
func (p *gaussPosterior) mean(ctx context.Context, x []float64, maxIter int, tol float64) (solveStats, error) {
	copy(x, p.g.Mean())
	p.forward(p.cq, x)
	for k := range p.cq {
		p.cq[k] = p.y[k] - p.cq[k]
	}
	it, rel, err := p.solve(ctx, x, p.cq, maxIter, tol)
	if err != nil {
		return solveStats{}, err
	}
	p.forward(p.cq, x)
	var res float64
	for k, v := range p.cq {
		if p.sup[k] {
			d := p.y[k] - v
			res += float64(real(d))*float64(real(d)) + float64(imag(d))*float64(imag(d))
		}
	}
	return solveStats{iters: it, relres: rel, dc: res / (float64(p.measured) * 2 * p.s2)}, nil
}

// sample writes an exact posterior sample into x (Matheron's rule).
func (p *gaussPosterior) sample(ctx context.Context, x []float64, maxIter int, tol float64, rng *rand.Rand) (int, float64, error) {
	g, r := p.g, p.g.Rank()
	for q := range p.tb {
		p.tb[q] = rng.NormFloat64()
	}
	for j := range x {
		s := g.Mean()[j] + math.Sqrt(g.Diag()[j])*rng.NormFloat64()
		for q, y := range g.Factor()[j*r : (j+1)*r] {
			s += y * p.tb[q]
		}
		x[j] = s
	}
	p.forward(p.cq, x)
	sd := math.Sqrt(p.s2)
	for k := range p.cq {
		if !p.sup[k] {
			continue
		}
		n := complex(float32(sd*rng.NormFloat64()), float32(sd*rng.NormFloat64()))
		p.cq[k] = p.y[k] - p.cq[k] - n
	}
	return p.solve(ctx, x, p.cq, maxIter, tol)
}

// moments writes the posterior mean and K samples' deviations from it into
// dst ([K+1][n]) and returns the mean's statistics (iterations summed over
// all K+1 solves, worst residual).
func (p *gaussPosterior) moments(ctx context.Context, dst []float32, K, maxIter int, tol float64, rng *rand.Rand) (solveStats, error) {
	n := p.n
	mean := make([]float64, n)
	st, err := p.mean(ctx, mean, maxIter, tol)
	if err != nil {
		return st, err
	}
	for j, v := range mean {
		dst[j] = float32(v)
	}
	x := make([]float64, n)
	for k := 1; k <= K; k++ {
		it, rel, err := p.sample(ctx, x, maxIter, tol, rng)
		if err != nil {
			return st, err
		}
		st.iters += it
		st.relres = math.Max(st.relres, rel)
		row := dst[k*n : (k+1)*n]
		for j := range row {
			row[j] = float32(x[j] - mean[j])
		}
	}
	return st, nil
}

// obsWorker is one E-step goroutine's state: a Gaussian posterior solver or a denoiser copy.
type obsWorker struct {
	post *gaussPosterior
	d    priors.Denoiser
}

// parallelObs runs fn over observation indices 0…n−1 on workers goroutines;
// each observation is handled by exactly one goroutine, so its operator is
// never used concurrently. The first error stops the rest.
func parallelObs(ctx context.Context, n, workers int, progress func(done, total int), fn func(w *obsWorker, i int) error) error {
	return parallelObsWith(ctx, n, workers, progress, func(int) *obsWorker { return &obsWorker{} }, fn)
}

func parallelObsWith(ctx context.Context, n, workers int, progress func(done, total int), mk func(int) *obsWorker, fn func(w *obsWorker, i int) error) error {
	workers = max(1, min(workers, n))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		next     int
		done     int
		firstErr error
		wg       sync.WaitGroup
	)
	for wi := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := mk(wi)
			for {
				mu.Lock()
				if firstErr != nil || next >= n {
					mu.Unlock()
					return
				}
				i := next
				next++
				mu.Unlock()
				err := ctx.Err()
				if err == nil {
					err = fn(w, i)
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
					cancel()
				}
				if err == nil {
					done++
					if progress != nil {
						progress(done, n)
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// checkObservations validates observations against the image size and
// returns each one's measurement support: the entries A can make non-zero,
// found by applying A to a random image (an entry that is zero there is
// zero for almost every image).
func checkObservations(obs []Observation, rows, cols int) ([][]bool, error) {
	if rows < 1 || cols < 1 || rows > mri.MaxDim || cols > mri.MaxDim {
		return nil, fmt.Errorf("image size %d×%d", rows, cols)
	}
	if len(obs) == 0 {
		return nil, errors.New("no observations")
	}
	hw := rows * cols
	rng := rand.New(rand.NewPCG(0x73757070, 0x6f7274))
	x := make([]complex64, hw)
	for i := range x {
		x[i] = complex(float32(rng.NormFloat64()), float32(rng.NormFloat64()))
	}
	sup := make([][]bool, len(obs))
	for i := range obs {
		o := &obs[i]
		if o.A == nil {
			return nil, fmt.Errorf("observation %d (%s): no operator", i, o.Name)
		}
		if o.A.InLen() != hw {
			return nil, fmt.Errorf("observation %d (%s): operator takes %d values, images are %d×%d", i, o.Name, o.A.InLen(), rows, cols)
		}
		m := o.A.OutLen()
		if m < 1 || m > mri.MaxCoils*mri.MaxDim*mri.MaxDim || len(o.Y) != m {
			return nil, fmt.Errorf("observation %d (%s): %d measurements for an operator giving %d", i, o.Name, len(o.Y), m)
		}
		if !(o.Scale > 0) || math.IsInf(o.Scale, 0) || !(o.NoiseVar > 0) || math.IsInf(o.NoiseVar, 0) {
			return nil, fmt.Errorf("observation %d (%s): scale %g and noise variance %g, want both finite and positive", i, o.Name, o.Scale, o.NoiseVar)
		}
		if o.Truth != nil && len(o.Truth) != hw {
			return nil, fmt.Errorf("observation %d (%s): truth has %d values, images are %d×%d", i, o.Name, len(o.Truth), rows, cols)
		}
		ax := make([]complex64, m)
		o.A.Forward(ax, x)
		s := make([]bool, m)
		cnt := 0
		for k, v := range ax {
			if v != 0 {
				s[k] = true
				cnt++
			}
			if y := o.Y[k]; math.IsNaN(float64(real(y))) || math.IsNaN(float64(imag(y))) ||
				math.IsInf(float64(real(y)), 0) || math.IsInf(float64(imag(y)), 0) {
				return nil, fmt.Errorf("observation %d (%s): measurement %d is not finite", i, o.Name, k)
			}
		}
		if cnt == 0 {
			return nil, fmt.Errorf("observation %d (%s): the operator measures nothing", i, o.Name)
		}
		sup[i] = s
	}
	return sup, nil
}
