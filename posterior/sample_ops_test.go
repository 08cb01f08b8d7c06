package posterior

// Test helpers for the samplers: small operators of our own (any
// mri.Operator must work) and a dense float64 Gaussian posterior to compare
// against. Names carry an smp prefix: other files of package priors have
// their own test helpers.

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/kspaced/kspaced/fft"
	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/priors"
)

// smpDense is a dense complex m×n matrix operator.
type smpDense struct {
	m, n int
	a    []complex128 // [m][n]
}

func smpNewDense(rng *rand.Rand, m, n int, scale float64) *smpDense {
	d := &smpDense{m: m, n: n, a: make([]complex128, m*n)}
	for i := range d.a {
		d.a[i] = complex(scale*rng.NormFloat64(), scale*rng.NormFloat64())
	}
	return d
}

func (d *smpDense) InLen() int  { return d.n }
func (d *smpDense) OutLen() int { return d.m }
func (d *smpDense) Forward(dst, src []complex64) {
	for i := range d.m {
		var s complex128
		for j, a := range d.a[i*d.n : (i+1)*d.n] {
			s += a * complex128(src[j])
		}
		dst[i] = complex64(s)
	}
}
func (d *smpDense) Adjoint(dst, src []complex64) {
	for j := range d.n {
		var s complex128
		for i := range d.m {
			a := d.a[i*d.n+j]
			s += complex(real(a), -imag(a)) * complex128(src[i])
		}
		dst[j] = complex64(s)
	}
}

// realRep is the real representation [[Re A, −Im A], [Im A, Re A]] that maps
// [Re x; Im x] to [Re y; Im y], built from the entries.
func (d *smpDense) realRep() *mat.Dense {
	r := mat.NewDense(2*d.m, 2*d.n, nil)
	for i := range d.m {
		for j := range d.n {
			a := d.a[i*d.n+j]
			r.Set(i, j, real(a))
			r.Set(i, d.n+j, -imag(a))
			r.Set(d.m+i, j, imag(a))
			r.Set(d.m+i, d.n+j, real(a))
		}
	}
	return r
}

// smpMaskedFFT is single-coil Cartesian sampling: the centred orthonormal
// FFT followed by keeping the sampled locations, listed compactly
// (OutLen = number sampled), so A Aᴴ = I.
type smpMaskedFFT struct {
	rows, cols int
	idx        []int
	buf        []complex64
}

func smpNewMaskedFFT(rows, cols int, mask []bool) *smpMaskedFFT {
	o := &smpMaskedFFT{rows: rows, cols: cols, buf: make([]complex64, rows*cols)}
	for i, m := range mask {
		if m {
			o.idx = append(o.idx, i)
		}
	}
	return o
}

func (o *smpMaskedFFT) InLen() int  { return o.rows * o.cols }
func (o *smpMaskedFFT) OutLen() int { return len(o.idx) }
func (o *smpMaskedFFT) Forward(dst, src []complex64) {
	fft.Forward(o.buf, src, o.rows, o.cols)
	for k, i := range o.idx {
		dst[k] = o.buf[i]
	}
}
func (o *smpMaskedFFT) Adjoint(dst, src []complex64) {
	clear(o.buf)
	for k, i := range o.idx {
		o.buf[i] = src[k]
	}
	fft.Inverse(dst, o.buf, o.rows, o.cols)
}

// smpSENSE is multi-coil Cartesian sampling: coil maps, FFT, and a mask
// applied in place (OutLen = coils·rows·cols, zeros where not sampled).
type smpSENSE struct {
	coils, rows, cols int
	maps              []complex64 // [coil][rows][cols]
	mask              []bool
	buf               []complex64
}

func smpNewSENSE(rng *rand.Rand, coils, rows, cols int, mask []bool) *smpSENSE {
	o := &smpSENSE{coils: coils, rows: rows, cols: cols, mask: mask,
		maps: make([]complex64, coils*rows*cols), buf: make([]complex64, coils*rows*cols)}
	// Smooth coil maps: a Gaussian blob at a random centre with a linear phase.
	hw := rows * cols
	for c := range coils {
		cy, cx := rng.Float64()*float64(rows), rng.Float64()*float64(cols)
		ph := rng.Float64() * 2 * math.Pi
		for y := range rows {
			for x := range cols {
				dy, dx := (float64(y)-cy)/float64(rows), (float64(x)-cx)/float64(cols)
				a := math.Exp(-2 * (dy*dy + dx*dx))
				p := ph + 3*dx
				o.maps[c*hw+y*cols+x] = complex(float32(a*math.Cos(p)), float32(a*math.Sin(p)))
			}
		}
	}
	return o
}

func (o *smpSENSE) InLen() int  { return o.rows * o.cols }
func (o *smpSENSE) OutLen() int { return o.coils * o.rows * o.cols }
func (o *smpSENSE) Forward(dst, src []complex64) {
	hw := o.rows * o.cols
	for c := range o.coils {
		d, m := dst[c*hw:(c+1)*hw], o.maps[c*hw:(c+1)*hw]
		for i, v := range src {
			d[i] = m[i] * v
		}
	}
	fft.Forward(dst, dst, o.rows, o.cols)
	for c := range o.coils {
		d := dst[c*hw : (c+1)*hw]
		for i, s := range o.mask {
			if !s {
				d[i] = 0
			}
		}
	}
}
func (o *smpSENSE) Adjoint(dst, src []complex64) {
	hw := o.rows * o.cols
	for c := range o.coils {
		b, s := o.buf[c*hw:(c+1)*hw], src[c*hw:(c+1)*hw]
		for i, m := range o.mask {
			if m {
				b[i] = s[i]
			} else {
				b[i] = 0
			}
		}
	}
	fft.Inverse(o.buf, o.buf, o.rows, o.cols)
	clear(dst)
	for c := range o.coils {
		b, m := o.buf[c*hw:(c+1)*hw], o.maps[c*hw:(c+1)*hw]
		for i := range dst {
			dst[i] += complex(real(m[i]), -imag(m[i])) * b[i]
		}
	}
}

// smpProbe builds the real representation of any operator by applying it to
// the unit vectors e_k and i·e_k.
func smpProbe(A mri.Operator) *mat.Dense {
	n, m := A.InLen(), A.OutLen()
	r := mat.NewDense(2*m, 2*n, nil)
	x := make([]complex64, n)
	y := make([]complex64, m)
	for k := range 2 * n {
		clear(x)
		if k < n {
			x[k] = 1
		} else {
			x[k-n] = 1i
		}
		A.Forward(y, x)
		for i, v := range y {
			r.Set(i, k, float64(real(v)))
			r.Set(m+i, k, float64(imag(v)))
		}
	}
	return r
}

// smpRandomMask samples each location with probability p, and the centre.
func smpRandomMask(rng *rand.Rand, rows, cols int, p float64) []bool {
	mask := make([]bool, rows*cols)
	for i := range mask {
		y, x := i/cols, i%cols
		mask[i] = rng.Float64() < p || (smpAbs(y-rows/2) <= 1 && smpAbs(x-cols/2) <= 1)
	}
	return mask
}

func smpAbs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// smpPrior is a random diagonal-plus-low-rank Gaussian prior on 2×h×w
// images with mean around `level`.
func smpPrior(t testing.TB, rng *rand.Rand, h, w, r int, level float64) *priors.Gaussian {
	t.Helper()
	n := 2 * h * w
	mu, d, u := make([]float32, n), make([]float32, n), make([]float32, n*r)
	for i := range n {
		mu[i] = float32(level + 0.5*rng.NormFloat64())
		d[i] = float32(0.05 + 0.15*rng.Float64())
	}
	for i := range u {
		u[i] = float32(0.3 * rng.NormFloat64())
	}
	g, err := priors.NewGaussian(mu, d, u, 2, h, w)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// smpCov is the prior's dense covariance diag(d) + U Uᵀ and mean.
func smpCov(g *priors.Gaussian) (*mat.SymDense, *mat.VecDense) {
	mu, d, u := g.Mean(), g.Diag(), g.Factor()
	n, r := len(mu), g.Rank()
	cov := mat.NewSymDense(n, nil)
	for i := range n {
		for j := i; j < n; j++ {
			var s float64
			for p := range r {
				s += u[i*r+p] * u[j*r+p]
			}
			if i == j {
				s += d[i]
			}
			cov.SetSym(i, j, s)
		}
	}
	return cov, mat.NewVecDense(n, append([]float64(nil), mu...))
}

// smpGaussPost is the exact Gaussian posterior of x ~ N(μ, Σ) given
// y_r = A_r x + n, n ~ N(0, diag(noise)), and, when sigma > 0, also
// x_t = x + σ z: precision P = Σ⁻¹ + I/σ² + A_rᵀ N⁻¹ A_r, mean
// P⁻¹(Σ⁻¹μ + x_t/σ² + A_rᵀ N⁻¹ y_r). All dense float64.
func smpGaussPost(t testing.TB, g *priors.Gaussian, ar *mat.Dense, noise, yr []float64, sigma float64, xt []float64) (*mat.VecDense, *mat.SymDense) {
	t.Helper()
	cov, mu := smpCov(g)
	var ch mat.Cholesky
	if !ch.Factorize(cov) {
		t.Fatal("prior covariance not positive definite")
	}
	var prec mat.SymDense
	if err := ch.InverseTo(&prec); err != nil {
		t.Fatal(err)
	}
	n := len(g.Mean())
	m2, _ := ar.Dims()
	// A_rᵀ N⁻¹ A_r and A_rᵀ N⁻¹ y_r.
	wa := mat.NewDense(m2, n, nil)
	wy := mat.NewVecDense(m2, nil)
	for i := range m2 {
		for j := range n {
			wa.Set(i, j, ar.At(i, j)/noise[i])
		}
		wy.SetVec(i, yr[i]/noise[i])
	}
	var ata mat.Dense
	ata.Mul(ar.T(), wa)
	p := mat.NewSymDense(n, nil)
	for i := range n {
		for j := i; j < n; j++ {
			v := prec.At(i, j) + 0.5*(ata.At(i, j)+ata.At(j, i))
			if i == j && sigma > 0 {
				v += 1 / (sigma * sigma)
			}
			p.SetSym(i, j, v)
		}
	}
	rhs := mat.NewVecDense(n, nil)
	rhs.MulVec(&prec, mu)
	var aty mat.VecDense
	aty.MulVec(ar.T(), wy)
	rhs.AddVec(rhs, &aty)
	if sigma > 0 {
		for i := range n {
			rhs.SetVec(i, rhs.AtVec(i)+xt[i]/(sigma*sigma))
		}
	}
	var pc mat.Cholesky
	if !pc.Factorize(p) {
		t.Fatal("posterior precision not positive definite")
	}
	var post mat.SymDense
	if err := pc.InverseTo(&post); err != nil {
		t.Fatal(err)
	}
	var mean mat.VecDense
	mean.MulVec(&post, rhs)
	return &mean, &post
}

// smpRealVec is [Re v; Im v] in float64.
func smpRealVec(v []complex64) []float64 {
	r := make([]float64, 2*len(v))
	for i, c := range v {
		r[i], r[len(v)+i] = float64(real(c)), float64(imag(c))
	}
	return r
}

// smpMeasure draws x from the prior and y = A x + n with complex noise of
// variance noiseVar (noiseVar/2 per part); it returns x as a complex image.
func smpMeasure(t testing.TB, rng *rand.Rand, g *priors.Gaussian, A mri.Operator, noiseVar float64) (x, y []complex64) {
	t.Helper()
	_, h, w := g.Shape()
	hw := h * w
	xr := make([]float32, 2*hw)
	if err := g.Sample(xr, rng); err != nil {
		t.Fatal(err)
	}
	x = make([]complex64, hw)
	fromChannels(x, xr, hw)
	y = make([]complex64, A.OutLen())
	A.Forward(y, x)
	s := math.Sqrt(noiseVar / 2)
	for i := range y {
		y[i] += complex(float32(s*rng.NormFloat64()), float32(s*rng.NormFloat64()))
	}
	return x, y
}

// smpCounting wraps a Denoiser and counts calls.
type smpCounting struct {
	priors.Denoiser
	evals, vjps int
	batch       []int
}

func (c *smpCounting) Denoise(dst, xt, sigma []float32) error {
	c.evals++
	c.batch = append(c.batch, len(sigma))
	return c.Denoiser.Denoise(dst, xt, sigma)
}

func (c *smpCounting) DenoiseVJP(dst, xt, sigma []float32) (func(dst, v []float32) error, error) {
	c.evals++
	c.batch = append(c.batch, len(sigma))
	f, err := c.Denoiser.DenoiseVJP(dst, xt, sigma)
	if err != nil {
		return nil, err
	}
	return func(dst, v []float32) error { c.vjps++; return f(dst, v) }, nil
}

// smpPixels measures a few pixels with complex gains: y_k = g_k x[idx_k].
// With a diagonal prior the posterior stays diagonal.
type smpPixels struct {
	n    int
	idx  []int
	gain []complex64
}

func (o *smpPixels) InLen() int  { return o.n }
func (o *smpPixels) OutLen() int { return len(o.idx) }
func (o *smpPixels) Forward(dst, src []complex64) {
	for k, i := range o.idx {
		dst[k] = o.gain[k] * src[i]
	}
}
func (o *smpPixels) Adjoint(dst, src []complex64) {
	clear(dst)
	for k, i := range o.idx {
		g := o.gain[k]
		dst[i] += complex(real(g), -imag(g)) * src[k]
	}
}

// smpSchedule is the sampler's σ grid, written out independently:
// σ_i = 1e-3·1e5^(1 − i/(S−1)).
func smpSchedule(steps int) []float64 {
	s := make([]float64, steps)
	for i := range s {
		s[i] = 1e-3 * math.Pow(1e5, 1-float64(i)/float64(steps-1))
	}
	return s
}

// smpRecursion follows one component of a Gaussian posterior N(m, v)
// through the sampler with an exact denoiser E = m + k(x_t − m),
// k = v/(v + σ_t²). It returns the factor φ with output − m = φ·(x_1 − m) +
// (noise), and the output variance when x_1 ~ N(0, SigmaMax²) (DDPM adds
// σ_s²(1 − σ_s²/σ_t²) per step; DDIM adds none).
func smpRecursion(v float64, steps int, ddim bool) (phi, variance float64) {
	s := smpSchedule(steps)
	phi, V := 1.0, s[0]*s[0]
	for i := 0; i < steps-1; i++ {
		st, ss := s[i], s[i+1]
		k := v / (v + st*st)
		rho := ss * ss / (st * st)
		if ddim {
			rho = ss / st
		}
		a := k + rho*(1-k)
		phi *= a
		V *= a * a
		if !ddim {
			V += ss * ss * (1 - rho)
		}
	}
	k := v / (v + s[steps-1]*s[steps-1])
	return phi * k, V * k * k
}

func smpRelErr(got []float32, want []float64) float64 {
	var num, den float64
	for i, w := range want {
		d := float64(got[i]) - w
		num += d * d
		den += w * w
	}
	return math.Sqrt(num / den)
}

// The MMPS tests' shared problem (mmps_test.go, mmps_diag_test.go).

// smpSigmas are the noise levels at which MMPS estimates are checked.
var smpSigmas = []float64{1e-3, 0.05, 0.5, 3, 100}

// smpProjectSENSE is mri.NewSENSE over smpNewSENSE's coil maps and a random
// mask sampling a fraction p: the project's operator on the test's coils.
func smpProjectSENSE(rng *rand.Rand, coils, rows, cols int, p float64) *mri.SENSE {
	o := smpNewSENSE(rng, coils, rows, cols, smpRandomMask(rng, rows, cols, p))
	maskF := make([]float32, rows*cols)
	for i, m := range o.mask {
		if m {
			maskF[i] = 1
		}
	}
	return mri.NewSENSE(o.maps, coils, rows, cols, maskF)
}

// smpWhiteNoise is the per-component noise variance of m complex
// measurements with complex noise of variance v.
func smpWhiteNoise(m int, v float64) []float64 {
	noise := make([]float64, 2*m)
	for k := range noise {
		noise[k] = v / 2
	}
	return noise
}

// smpEstimateErr puts every sample of s at a random x_t around the prior
// mean at each of smpSigmas and returns, per level, the largest relative
// error of s.mmpsEstimate against the dense posterior mean E[x | x_t, y]
// (ar: the operator's real representation, noise: per component).
func smpEstimateErr(t *testing.T, rng *rand.Rand, s *sampler, g *priors.Gaussian, ar *mat.Dense, noise []float64, y []complex64) []float64 {
	t.Helper()
	worst := make([]float64, len(smpSigmas))
	for i, sigma := range smpSigmas {
		for j := range s.sig {
			s.sig[j] = float32(sigma)
		}
		for k := range s.x {
			s.x[k] = float32(g.Mean()[k%s.n] + (sigma+0.3)*rng.NormFloat64())
		}
		if err := s.mmpsEstimate(sigma); err != nil {
			t.Fatal(err)
		}
		for j := range s.nb {
			xt := make([]float64, s.n)
			for k := range xt {
				xt[k] = float64(s.x[j*s.n+k])
			}
			want, _ := smpGaussPost(t, g, ar, noise, smpRealVec(y), sigma, xt)
			worst[i] = max(worst[i], smpRelErr(s.e[j*s.n:(j+1)*s.n], want.RawVector().Data))
		}
	}
	return worst
}

// smpCostProblem is the 4×4 problem (rank-2 prior, 8 dense measurements)
// on which the cost tests count denoiser calls.
func smpCostProblem(t *testing.T, seed uint64) (*priors.Gaussian, mri.Operator, []complex64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed))
	const h, w = 4, 4
	g := smpPrior(t, rng, h, w, 2, 1)
	A := smpNewDense(rng, 8, h*w, 0.4)
	_, y := smpMeasure(t, rng, g, A, 0.01)
	return g, A, y
}
