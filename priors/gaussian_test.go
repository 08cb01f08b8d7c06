package priors

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// smpDenseDenoise is μ + Σ(Σ + σ²I)⁻¹(x − μ) by a dense float64 solve.
func smpDenseDenoise(t *testing.T, g *Gaussian, x []float32, sigma float64) []float64 {
	t.Helper()
	cov, mu := gaussCov(g)
	k := mat.NewSymDense(g.n, nil)
	k.CopySym(cov)
	for i := range g.n {
		k.SetSym(i, i, k.At(i, i)+sigma*sigma)
	}
	var ch mat.Cholesky
	if !ch.Factorize(k) {
		t.Fatal("Σ + σ²I not positive definite")
	}
	dx := mat.NewVecDense(g.n, nil)
	for i := range g.n {
		dx.SetVec(i, float64(x[i])-mu.AtVec(i))
	}
	var sol, out mat.VecDense
	if err := ch.SolveVecTo(&sol, dx); err != nil {
		t.Fatal(err)
	}
	out.MulVec(cov, &sol)
	out.AddVec(&out, mu)
	return out.RawVector().Data
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

func TestGaussianDenoiseMatchesDenseSolve(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, r := range []int{0, 1, 4} {
		g := gaussRandom(t, rng, 3, 4, r, 1)
		n := g.n
		sigmas := []float32{1e-3, 0.07, 1, 30, 100}
		xt := make([]float32, len(sigmas)*n)
		for i, s := range sigmas {
			for j := range n {
				xt[i*n+j] = float32(g.mu[j] + float64(s)*rng.NormFloat64() + rng.NormFloat64())
			}
		}
		got := make([]float32, len(xt))
		vjp, err := g.DenoiseVJP(got, xt, sigmas)
		if err != nil {
			t.Fatal(err)
		}
		v := make([]float32, len(xt))
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		jv := make([]float32, len(xt))
		if err := vjp(jv, v); err != nil {
			t.Fatal(err)
		}
		for i, s := range sigmas {
			want := smpDenseDenoise(t, g, xt[i*n:(i+1)*n], float64(s))
			if e := smpRelErr(got[i*n:(i+1)*n], want); e > 1e-5 {
				t.Errorf("rank %d σ=%g: denoise relative error %.2e", r, s, e)
			}
			// The Jacobian is the linear part: J v = d(μ + v) − μ.
			probe := make([]float32, n)
			for j := range n {
				probe[j] = float32(g.mu[j]) + v[i*n+j]
			}
			wantJ := smpDenseDenoise(t, g, probe, float64(s))
			for j := range wantJ {
				wantJ[j] -= g.mu[j]
			}
			if e := smpRelErr(jv[i*n:(i+1)*n], wantJ); e > 1e-5 {
				t.Errorf("rank %d σ=%g: VJP relative error %.2e", r, s, e)
			}
		}
	}
}

// The VJP must agree with finite differences of Denoise (the map is affine,
// so central differences are exact up to float32 rounding) and be symmetric:
// uᵀ(J v) = (J u)ᵀ v.
func TestGaussianVJPFiniteDifferenceAndSymmetry(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	g := gaussRandom(t, rng, 4, 4, 3, 0)
	n := g.n
	for _, s := range []float32{0.01, 0.3, 5} {
		sig := []float32{s}
		xt := make([]float32, n)
		u, v := make([]float32, n), make([]float32, n)
		for j := range n {
			xt[j] = float32(rng.NormFloat64())
			u[j], v[j] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
		}
		d0 := make([]float32, n)
		vjp, err := g.DenoiseVJP(d0, xt, sig)
		if err != nil {
			t.Fatal(err)
		}
		jv, ju := make([]float32, n), make([]float32, n)
		if err := vjp(jv, v); err != nil {
			t.Fatal(err)
		}
		if err := vjp(ju, u); err != nil {
			t.Fatal(err)
		}
		const h = 0.5
		plus, minus := make([]float32, n), make([]float32, n)
		dp, dm := make([]float32, n), make([]float32, n)
		for j := range n {
			plus[j], minus[j] = xt[j]+h*v[j], xt[j]-h*v[j]
		}
		if err := g.Denoise(dp, plus, sig); err != nil {
			t.Fatal(err)
		}
		if err := g.Denoise(dm, minus, sig); err != nil {
			t.Fatal(err)
		}
		fd := make([]float64, n)
		var uJv, Juv float64
		for j := range n {
			fd[j] = (float64(dp[j]) - float64(dm[j])) / (2 * h)
			uJv += float64(u[j]) * float64(jv[j])
			Juv += float64(ju[j]) * float64(v[j])
		}
		if e := smpRelErr(jv, fd); e > 1e-4 {
			t.Errorf("σ=%g: VJP vs finite differences relative error %.2e", s, e)
		}
		if math.Abs(uJv-Juv) > 1e-5*(math.Abs(uJv)+math.Abs(Juv)+1e-3) {
			t.Errorf("σ=%g: Jacobian not symmetric: uᵀJv = %g, (Ju)ᵀv = %g", s, uJv, Juv)
		}
	}
}

// Tweedie for an exact prior: the mean of the denoiser over x_t = x + σz
// equals μ, and σ²·trace(J) equals the trace of the posterior covariance
// Σ − Σ(Σ+σ²I)⁻¹Σ, computed densely.
func TestGaussianTweedieTrace(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	g := gaussRandom(t, rng, 2, 3, 2, 0.5)
	n := g.n
	const s = 0.4
	sig := []float32{s}
	xt := make([]float32, n)
	out := make([]float32, n)
	vjp, err := g.DenoiseVJP(out, xt, sig)
	if err != nil {
		t.Fatal(err)
	}
	var tr float64
	e, je := make([]float32, n), make([]float32, n)
	for j := range n {
		clear(e)
		e[j] = 1
		if err := vjp(je, e); err != nil {
			t.Fatal(err)
		}
		tr += s * s * float64(je[j])
	}
	cov, _ := gaussCov(g)
	k := mat.NewSymDense(n, nil)
	k.CopySym(cov)
	for i := range n {
		k.SetSym(i, i, k.At(i, i)+s*s)
	}
	var ch mat.Cholesky
	ch.Factorize(k)
	var sol, prod mat.Dense
	if err := ch.SolveTo(&sol, cov); err != nil {
		t.Fatal(err)
	}
	prod.Mul(cov, &sol)
	var want float64
	for i := range n {
		want += cov.At(i, i) - prod.At(i, i)
	}
	if math.Abs(tr-want) > 1e-5*want {
		t.Errorf("σ² trace J = %g, posterior variance trace = %g", tr, want)
	}
}

func TestGaussianSampleMoments(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	g := gaussRandom(t, rng, 2, 2, 2, 1)
	n := g.n
	const N = 20000
	xs := make([]float32, N*n)
	if err := g.Sample(xs, rng); err != nil {
		t.Fatal(err)
	}
	cov, mu := gaussCov(g)
	mean := make([]float64, n)
	for k := range N {
		for i := range n {
			mean[i] += float64(xs[k*n+i]) / N
		}
	}
	for i := range n {
		se := math.Sqrt(cov.At(i, i) / N)
		if math.Abs(mean[i]-mu.AtVec(i)) > 5*se {
			t.Errorf("mean[%d] = %g, want %g ± %g", i, mean[i], mu.AtVec(i), se)
		}
	}
	for i := range n {
		for j := range n {
			var c float64
			for k := range N {
				c += (float64(xs[k*n+i]) - mean[i]) * (float64(xs[k*n+j]) - mean[j])
			}
			c /= N - 1
			// Standard error of a sample covariance: √((Σii Σjj + Σij²)/N).
			se := math.Sqrt((cov.At(i, i)*cov.At(j, j) + cov.At(i, j)*cov.At(i, j)) / N)
			if math.Abs(c-cov.At(i, j)) > 5*se {
				t.Errorf("cov[%d,%d] = %g, want %g ± %g", i, j, c, cov.At(i, j), se)
			}
		}
	}
}

func TestGaussianRejectsBadInput(t *testing.T) {
	ok := []float32{0, 0, 0, 0}
	for _, tc := range []struct {
		name     string
		mu, d, u []float32
		c, h, w  int
		want     string
	}{
		{"shape", ok, ok, nil, 0, 2, 2, "shape"},
		{"huge", ok, ok, nil, 64, 4096, 4096, "shape"},
		{"mean length", ok[:3], ok, nil, 1, 2, 2, "mean"},
		{"factor length", ok, ok, make([]float32, 5), 1, 2, 2, "multiple"},
		{"negative diagonal", ok, []float32{0, -1, 0, 0}, nil, 1, 2, 2, "diagonal[1]"},
		{"nan mean", []float32{0, float32(math.NaN()), 0, 0}, ok, nil, 1, 2, 2, "mean[1]"},
		{"inf factor", ok, ok, []float32{0, 0, float32(math.Inf(1)), 0}, 1, 2, 2, "factor[2]"},
	} {
		_, err := NewGaussian(tc.mu, tc.d, tc.u, tc.c, tc.h, tc.w)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
	g, err := NewGaussian(ok, []float32{1, 1, 1, 1}, nil, 1, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, 4)
	if err := g.Denoise(out, ok, []float32{0}); err == nil {
		t.Error("σ = 0 accepted")
	}
	if err := g.Denoise(out, ok, []float32{1, 1}); err == nil {
		t.Error("two sigmas for one image accepted")
	}
	if err := g.Denoise(out[:3], ok, []float32{1}); err == nil {
		t.Error("short output accepted")
	}
	vjp, err := g.DenoiseVJP(out, ok, []float32{1})
	if err != nil {
		t.Fatal(err)
	}
	if err := vjp(out, make([]float32, 8)); err == nil {
		t.Error("VJP of the wrong length accepted")
	}
	if err := g.Sample(make([]float32, 3), rand.New(rand.NewPCG(1, 1))); err == nil {
		t.Error("partial image accepted by Sample")
	}
}

func TestGaussianNoAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	g := gaussRandom(t, rng, 4, 4, 3, 0)
	xt := make([]float32, 2*g.n)
	dst := make([]float32, 2*g.n)
	sig := []float32{0.5, 2}
	if _, err := g.DenoiseVJP(dst, xt, sig); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		vjp, err := g.DenoiseVJP(dst, xt, sig)
		if err != nil {
			t.Fatal(err)
		}
		if err := vjp(dst, xt); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per DenoiseVJP + VJP", allocs)
	}
}

// gaussRandom is a random 2×h×w prior of rank r with mean around level.
func gaussRandom(t testing.TB, rng *rand.Rand, h, w, r int, level float64) *Gaussian {
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
	g, err := NewGaussian(mu, d, u, 2, h, w)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// gaussCov is the prior's dense covariance diag(d) + U Uᵀ and mean.
func gaussCov(g *Gaussian) (*mat.SymDense, *mat.VecDense) {
	cov := mat.NewSymDense(g.n, nil)
	for i := range g.n {
		for j := i; j < g.n; j++ {
			var s float64
			for p := range g.r {
				s += g.u[i*g.r+p] * g.u[j*g.r+p]
			}
			if i == j {
				s += g.d[i]
			}
			cov.SetSym(i, j, s)
		}
	}
	return cov, mat.NewVecDense(g.n, append([]float64(nil), g.mu...))
}
