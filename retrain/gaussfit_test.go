package retrain

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/kspaced/kspaced/posterior"
	"github.com/kspaced/kspaced/priors"
)

// denseOp is a complex matrix operator [m][hw]; rows listed in off are
// never measured (all zero), as a mask's unsampled locations are.
type denseOp struct {
	m, hw int
	a     []complex64
}

func (o *denseOp) InLen() int  { return o.hw }
func (o *denseOp) OutLen() int { return o.m }
func (o *denseOp) Forward(dst, src []complex64) {
	for i := range o.m {
		var s complex128
		for j, x := range src {
			s += complex128(o.a[i*o.hw+j]) * complex128(x)
		}
		dst[i] = complex64(s)
	}
}
func (o *denseOp) Adjoint(dst, src []complex64) {
	for j := range o.hw {
		var s complex128
		for i, y := range src {
			a := complex128(o.a[i*o.hw+j])
			s += complex(real(a), -imag(a)) * complex128(y)
		}
		dst[j] = complex64(s)
	}
}

func randomDenseOp(m, hw int, off []int, rng *rand.Rand) *denseOp {
	o := &denseOp{m: m, hw: hw, a: make([]complex64, m*hw)}
	for i := range o.a {
		o.a[i] = complex(float32(rng.NormFloat64()/math.Sqrt(float64(hw))), float32(rng.NormFloat64()/math.Sqrt(float64(hw))))
	}
	for _, i := range off {
		clear(o.a[i*hw : (i+1)*hw])
	}
	return o
}

// realOp is A as a real matrix from [re; im] (2hw) to [re; im] (2m),
// keeping only the rows of measured entries.
func realOp(o *denseOp, sup []bool) *mat.Dense {
	var rows []int
	for i, s := range sup {
		if s {
			rows = append(rows, i)
		}
	}
	M := len(rows)
	a := mat.NewDense(2*M, 2*o.hw, nil)
	for r, i := range rows {
		for j := range o.hw {
			v := o.a[i*o.hw+j]
			ar, ai := float64(real(v)), float64(imag(v))
			a.Set(r, j, ar)
			a.Set(r, o.hw+j, -ai)
			a.Set(M+r, j, ai)
			a.Set(M+r, o.hw+j, ar)
		}
	}
	return a
}

func realData(y []complex64, sup []bool, scale float64) *mat.VecDense {
	var re, im []float64
	for i, s := range sup {
		if s {
			re = append(re, float64(real(y[i]))/scale)
			im = append(im, float64(imag(y[i]))/scale)
		}
	}
	return mat.NewVecDense(2*len(re), append(re, im...))
}

func randomGaussian(t *testing.T, rows, cols, r int, rng *rand.Rand) *priors.Gaussian {
	t.Helper()
	n := 2 * rows * cols
	mu, d, u := make([]float32, n), make([]float32, n), make([]float32, n*r)
	for i := range mu {
		mu[i] = float32(rng.NormFloat64())
		d[i] = float32(0.05 + 0.2*rng.Float64())
	}
	for i := range u {
		u[i] = float32(rng.NormFloat64() * 0.7)
	}
	g, err := priors.NewGaussian(mu, d, u, 2, rows, cols)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func denseSigma(g *priors.Gaussian) *mat.SymDense {
	n, r := len(g.Mean()), g.Rank()
	s := mat.NewSymDense(n, nil)
	for i := range n {
		for j := i; j < n; j++ {
			var v float64
			for p := range r {
				v += g.Factor()[i*r+p] * g.Factor()[j*r+p]
			}
			if i == j {
				v += g.Diag()[i]
			}
			s.SetSym(i, j, v)
		}
	}
	return s
}

// densePosterior is the textbook Gaussian posterior in prior space:
// m = μ + ΣAᵀ(AΣAᵀ + s²I)⁻¹(y − Aμ), C = Σ − ΣAᵀ(AΣAᵀ + s²I)⁻¹AΣ.
func densePosterior(t *testing.T, g *priors.Gaussian, o *Observation, op *denseOp, sup []bool) (*mat.VecDense, *mat.Dense) {
	t.Helper()
	a := realOp(op, sup)
	y := realData(o.Y, sup, o.Scale)
	sig := denseSigma(g)
	s2 := o.NoiseVar / 2 / (o.Scale * o.Scale)
	var as, asat mat.Dense
	as.Mul(a, sig)
	asat.Mul(&as, a.T())
	for i := range asat.RawMatrix().Rows {
		asat.Set(i, i, asat.At(i, i)+s2)
	}
	var inv mat.Dense
	if err := inv.Inverse(&asat); err != nil {
		t.Fatal(err)
	}
	mu := mat.NewVecDense(len(g.Mean()), clone64(g.Mean()))
	var amu, res mat.VecDense
	amu.MulVec(a, mu)
	res.SubVec(y, &amu)
	var k mat.Dense // ΣAᵀ(AΣAᵀ+R)⁻¹
	k.Mul(as.T(), &inv)
	var m mat.VecDense
	m.MulVec(&k, &res)
	m.AddVec(&m, mu)
	var c, kas mat.Dense
	kas.Mul(&k, &as)
	c.Sub(sig, &kas)
	return &m, &c
}

// tinyProblem is one observation of a random Gaussian through a dense
// operator with some entries never measured.
func tinyProblem(t *testing.T, rng *rand.Rand) (*priors.Gaussian, *Observation, *denseOp) {
	g := randomGaussian(t, 3, 4, 3, rng)
	op := randomDenseOp(20, 12, []int{2, 7, 11}, rng)
	x := make([]float32, len(g.Mean()))
	if err := g.Sample(x, rng); err != nil {
		t.Fatal(err)
	}
	scale, nv := 2.0, 0.02
	img := make([]complex64, 12)
	for j := range img {
		img[j] = complex(float32(float64(x[j])*scale), float32(float64(x[12+j])*scale))
	}
	y := make([]complex64, 20)
	op.Forward(y, img)
	sd := math.Sqrt(nv / 2)
	for i := range y {
		y[i] += complex(float32(sd*rng.NormFloat64()), float32(sd*rng.NormFloat64()))
	}
	return g, &Observation{Name: "tiny", A: op, Y: y, NoiseVar: nv, Scale: scale}, op
}

func TestGaussianPosteriorMeanMatchesDense(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	g, o, op := tinyProblem(t, rng)
	sup, err := checkObservations([]Observation{*o}, 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	if n := countTrue(sup[0]); n != 17 {
		t.Fatalf("support has %d entries, want 17", n)
	}
	want, _ := densePosterior(t, g, o, op, sup[0])
	got, err := PosteriorMeans(context.Background(), g, []Observation{*o}, posterior.SampleOptions{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	var num, den float64
	for j, v := range got[0] {
		re, im := float64(real(v))/o.Scale, float64(imag(v))/o.Scale
		num += sq64(re-want.AtVec(j)) + sq64(im-want.AtVec(12+j))
		den += sq64(want.AtVec(j)) + sq64(want.AtVec(12+j))
	}
	if rel := math.Sqrt(num / den); rel > 1e-5 {
		t.Fatalf("posterior mean differs from the dense solution by %.3g (relative)", rel)
	}
	// The mean is pulled towards the data: it must differ from the prior mean.
	var dm float64
	for j := range len(g.Mean()) {
		dm += sq64(g.Mean()[j] - want.AtVec(j))
	}
	if math.Sqrt(dm/den) < 0.05 {
		t.Fatal("test problem too weak: posterior mean ≈ prior mean")
	}
}

func TestGaussianPosteriorSamplesMatchDense(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	g, o, op := tinyProblem(t, rng)
	sup, err := checkObservations([]Observation{*o}, 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	wantM, wantC := densePosterior(t, g, o, op, sup[0])
	p := newGaussPosterior(g, 3, 4)
	if err := p.bind(o, sup[0]); err != nil {
		t.Fatal(err)
	}
	const K = 8000
	n := len(g.Mean())
	mean := make([]float64, n)
	cov := mat.NewDense(n, n, nil)
	x := make([]float64, n)
	xs := make([][]float64, K)
	for k := range K {
		if _, rel, err := p.sample(context.Background(), x, 200, 1e-10, rng); err != nil || rel > 1e-6 {
			t.Fatalf("sample %d: relres %g, %v", k, rel, err)
		}
		xs[k] = clone64(x)
		for j, v := range x {
			mean[j] += v / K
		}
	}
	for _, x := range xs {
		for i := range n {
			for j := range n {
				cov.Set(i, j, cov.At(i, j)+(x[i]-mean[i])*(x[j]-mean[j])/(K-1))
			}
		}
	}
	var dmean float64
	for j := range n {
		// Standard error of the mean per coordinate: √(C_jj/K).
		z := (mean[j] - wantM.AtVec(j)) / math.Sqrt(wantC.At(j, j)/K)
		dmean = math.Max(dmean, math.Abs(z))
	}
	if dmean > 4.5 {
		t.Errorf("sample mean off by %.2f standard errors", dmean)
	}
	var diff mat.Dense
	diff.Sub(cov, wantC)
	rel := mat.Norm(&diff, 2) / mat.Norm(wantC, 2)
	// Sampling error of a covariance from K draws is about √(n/K) ≈ 0.05 here.
	if rel > 0.1 {
		t.Errorf("sample covariance differs from the dense posterior covariance by %.3f (spectral, relative)", rel)
	}
	// The check can fail: the prior covariance is far from the posterior's.
	var dp mat.Dense
	dp.Sub(denseSigma(g), wantC)
	if r := mat.Norm(&dp, 2) / mat.Norm(wantC, 2); r < 1 {
		t.Fatalf("test problem too weak: prior and posterior covariance differ by only %.2f", r)
	}
}

// denseFA is one textbook factor-analysis EM iteration on a dense S.
func denseFA(s *mat.SymDense, u *mat.Dense, d []float64) (*mat.Dense, []float64) {
	n, r := u.Dims()
	sig := mat.NewDense(n, n, nil)
	sig.Mul(u, u.T())
	for i := range n {
		sig.Set(i, i, sig.At(i, i)+d[i])
	}
	var sinv mat.Dense
	if err := sinv.Inverse(sig); err != nil {
		panic(err)
	}
	var beta mat.Dense
	beta.Mul(u.T(), &sinv) // r×n
	var bu, bs, bsb mat.Dense
	bu.Mul(&beta, u)
	bs.Mul(&beta, s)
	bsb.Mul(&bs, beta.T())
	ezz := mat.NewDense(r, r, nil)
	for i := range r {
		for j := range r {
			v := bsb.At(i, j) - bu.At(i, j)
			if i == j {
				v++
			}
			ezz.Set(i, j, v)
		}
	}
	var ezzInv, un mat.Dense
	if err := ezzInv.Inverse(ezz); err != nil {
		panic(err)
	}
	un.Mul(bs.T(), &ezzInv)
	var ubs mat.Dense
	ubs.Mul(&un, &bs)
	dn := make([]float64, n)
	for i := range n {
		dn[i] = s.At(i, i) - ubs.At(i, i)
	}
	return &un, dn
}

// faLogLik is the Gaussian log-likelihood per observation (up to a
// constant) of S under D + UUᵀ: −½[log det Σ + tr(Σ⁻¹S)].
func faLogLik(s *mat.SymDense, u []float64, d []float64, n, r int) float64 {
	sig := mat.NewSymDense(n, nil)
	for i := range n {
		for j := i; j < n; j++ {
			var v float64
			for p := range r {
				v += u[i*r+p] * u[j*r+p]
			}
			if i == j {
				v += d[i]
			}
			sig.SetSym(i, j, v)
		}
	}
	var ch mat.Cholesky
	if !ch.Factorize(sig) {
		return math.Inf(-1)
	}
	var x mat.Dense
	if err := ch.SolveTo(&x, s); err != nil {
		return math.Inf(-1)
	}
	return -0.5 * (ch.LogDet() + mat.Trace(&x))
}

func faRows(N, n int, rng *rand.Rand) ([]float32, []float64, *mat.SymDense) {
	rows := make([]float32, N*n)
	basis := make([]float64, 4*n)
	for i := range basis {
		basis[i] = rng.NormFloat64()
	}
	w := make([]float64, N)
	for k := range N {
		w[k] = (0.5 + rng.Float64()) / float64(N)
		for j := range n {
			v := 0.3 * rng.NormFloat64()
			for p := range 4 {
				v += basis[p*n+j] * rng.NormFloat64() * float64(4-p)
			}
			rows[k*n+j] = float32(v)
		}
	}
	s := mat.NewSymDense(n, nil)
	for k := range N {
		for i := range n {
			for j := i; j < n; j++ {
				s.SetSym(i, j, s.At(i, j)+w[k]*float64(rows[k*n+i])*float64(rows[k*n+j]))
			}
		}
	}
	return rows, w, s
}

func TestFactorAnalysisMatchesDense(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const N, n, r = 40, 18, 3
	rows, w, s := faRows(N, n, rng)
	u := make([]float64, n*r)
	d := make([]float64, n)
	for i := range u {
		u[i] = rng.NormFloat64()
	}
	for i := range d {
		d[i] = 1 + rng.Float64()
	}
	du := mat.NewDense(n, r, clone64(u))
	dd := clone64(d)
	prev := faLogLik(s, u, d, n, r)
	for it := range 12 {
		if err := faIterate(u, d, n, r, rows, w, 1, 1e-12); err != nil {
			t.Fatal(err)
		}
		du, dd = denseFA(s, du, dd)
		var num, den float64
		for i := range n {
			for p := range r {
				num += sq64(u[i*r+p] - du.At(i, p))
				den += sq64(du.At(i, p))
			}
			num += sq64(d[i] - dd[i])
			den += sq64(dd[i])
		}
		if rel := math.Sqrt(num / den); rel > 1e-9 {
			t.Fatalf("iteration %d: factor analysis differs from the dense reference by %.3g", it, rel)
		}
		ll := faLogLik(s, u, d, n, r)
		if ll < prev-1e-9*math.Abs(prev) {
			t.Fatalf("iteration %d: likelihood fell from %.9g to %.9g", it, prev, ll)
		}
		prev = ll
	}
}

func TestPPCAMatchesEigendecomposition(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const N, n, r = 30, 16, 3
	rows, w, s := faRows(N, n, rng)
	u, _, err := ppca(rows, w, n, r, 1e-12)
	if err != nil {
		t.Fatal(err)
	}
	var eig mat.EigenSym
	if !eig.Factorize(s, true) {
		t.Fatal("eigen")
	}
	vals := eig.Values(nil)
	var vecs mat.Dense
	eig.VectorsTo(&vecs)
	var rest float64
	for i := 0; i < n-r; i++ {
		rest += vals[i]
	}
	s2 := rest / float64(n-r)
	for i := range n {
		for j := range n {
			var want, got float64
			for p := range r {
				k := n - 1 - p
				want += vecs.At(i, k) * vecs.At(j, k) * (vals[k] - s2)
				got += u[i*r+p] * u[j*r+p]
			}
			if math.Abs(want-got) > 1e-9*vals[n-1] {
				t.Fatalf("UUᵀ[%d,%d] = %g, eigendecomposition gives %g", i, j, got, want)
			}
		}
	}
}

// emProblem draws N observations of images from a known Gaussian through
// random dense operators with random unmeasured entries.
func emProblem(t *testing.T, N int, rng *rand.Rand) (*priors.Gaussian, []Observation, []*denseOp) {
	t.Helper()
	truth := randomGaussian(t, 3, 3, 2, rng)
	hw, m := 9, 14
	obs := make([]Observation, N)
	ops := make([]*denseOp, N)
	x := make([]float32, len(truth.Mean()))
	for i := range obs {
		var off []int
		for k := range m {
			if rng.Float64() < 0.3 {
				off = append(off, k)
			}
		}
		op := randomDenseOp(m, hw, off, rng)
		if err := truth.Sample(x, rng); err != nil {
			t.Fatal(err)
		}
		scale := 0.5 + rng.Float64()
		img := make([]complex64, hw)
		for j := range img {
			img[j] = complex(float32(float64(x[j])*scale), float32(float64(x[hw+j])*scale))
		}
		y := make([]complex64, m)
		op.Forward(y, img)
		nv := 0.01 * scale * scale
		sd := math.Sqrt(nv / 2)
		for k := range y {
			if y[k] != 0 {
				y[k] += complex(float32(sd*rng.NormFloat64()), float32(sd*rng.NormFloat64()))
			}
		}
		obs[i] = Observation{Name: "o", A: op, Y: y, NoiseVar: nv, Scale: scale}
		ops[i] = op
	}
	return truth, obs, ops
}

// marginalLogLik is Σᵢ log N(yᵢ; Aᵢμ, AᵢΣAᵢᵀ + R) in prior space, dense.
func marginalLogLik(t *testing.T, g *priors.Gaussian, obs []Observation, ops []*denseOp) float64 {
	_, h, w := g.Shape()
	sup, err := checkObservations(obs, h, w)
	if err != nil {
		t.Fatal(err)
	}
	sig := denseSigma(g)
	mu := mat.NewVecDense(len(g.Mean()), clone64(g.Mean()))
	var ll float64
	for i, o := range obs {
		a := realOp(ops[i], sup[i])
		y := realData(o.Y, sup[i], o.Scale)
		var as, c mat.Dense
		as.Mul(a, sig)
		c.Mul(&as, a.T())
		m, _ := c.Dims()
		s2 := o.NoiseVar / 2 / (o.Scale * o.Scale)
		cs := mat.NewSymDense(m, nil)
		for p := range m {
			for q := p; q < m; q++ {
				v := c.At(p, q)
				if p == q {
					v += s2
				}
				cs.SetSym(p, q, v)
			}
		}
		var ch mat.Cholesky
		if !ch.Factorize(cs) {
			t.Fatal("marginal covariance not positive definite")
		}
		var r, z mat.VecDense
		r.MulVec(a, mu)
		r.SubVec(y, &r)
		if err := ch.SolveVecTo(&z, &r); err != nil {
			t.Fatal(err)
		}
		ll += -0.5*(ch.LogDet()+mat.Dot(&r, &z)) - 0.5*float64(m)*math.Log(2*math.Pi)
	}
	return ll
}

// TestGaussianEMLapMatchesDense runs one lap from a given prior and compares
// it with exact EM in dense float64: the mean update is exact (posterior
// means only), the covariance carries the Monte-Carlo error of K samples.
func TestGaussianEMLapMatchesDense(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	_, obs, ops := emProblem(t, 24, rng)
	init := randomGaussian(t, 3, 3, 2, rng)
	const K = 600
	got, laps, err := FitGaussianEM(context.Background(), obs, 3, 3, GaussianEMOptions{
		Rank: 2, Laps: 1, Samples: K, CGIter: 200, CGTol: 1e-9, FAIter: 5, Floor: 1e-9, Init: init, Seed: 1, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(laps) != 1 || !(laps[0].DataConsistency > 0) {
		t.Fatalf("lap records %+v", laps)
	}
	sup, _ := checkObservations(obs, 3, 3)
	n := len(init.Mean())
	N := len(obs)
	ms := make([]*mat.VecDense, N)
	mu := make([]float64, n)
	smat := mat.NewSymDense(n, nil)
	for i := range obs {
		m, c := densePosterior(t, init, &obs[i], ops[i], sup[i])
		ms[i] = m
		for j := range n {
			mu[j] += m.AtVec(j) / float64(N)
		}
		for p := range n {
			for q := p; q < n; q++ {
				smat.SetSym(p, q, smat.At(p, q)+c.At(p, q)/float64(N))
			}
		}
	}
	for i := range obs {
		for p := range n {
			for q := p; q < n; q++ {
				smat.SetSym(p, q, smat.At(p, q)+(ms[i].AtVec(p)-mu[p])*(ms[i].AtVec(q)-mu[q])/float64(N))
			}
		}
	}
	for j := range n {
		if d := math.Abs(float64(float32(mu[j])) - got.Mean()[j]); d > 1e-5*(1+math.Abs(mu[j])) {
			t.Fatalf("μ[%d] = %.8g, exact EM gives %.8g", j, got.Mean()[j], mu[j])
		}
	}
	du := mat.NewDense(n, 2, clone64(init.Factor()))
	dd := clone64(init.Diag())
	for range 5 {
		du, dd = denseFA(smat, du, dd)
	}
	want := mat.NewDense(n, n, nil)
	want.Mul(du, du.T())
	for j := range n {
		want.Set(j, j, want.At(j, j)+dd[j])
	}
	var diff mat.Dense
	diff.Sub(denseSigma(got), want)
	rel := mat.Norm(&diff, 2) / mat.Norm(want, 2)
	t.Logf("one lap, %d samples per observation: covariance within %.4f of exact EM", K, rel)
	if rel > 0.01 {
		t.Errorf("covariance after one lap differs from exact EM by %.3f (spectral, relative)", rel)
	}
	var moved mat.Dense
	moved.Sub(denseSigma(init), want)
	if r := mat.Norm(&moved, 2) / mat.Norm(want, 2); r < 0.3 {
		t.Fatalf("test too weak: one lap moves the covariance by only %.2f", r)
	}
}

// TestGaussianEMIncreasesLikelihood fits from the zero-filled start and
// checks the exact marginal likelihood of the observations climbs to about
// that of the true prior.
func TestGaussianEMIncreasesLikelihood(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	truth, obs, ops := emProblem(t, 80, rng)
	var lls []float64
	_, _, err := FitGaussianEM(context.Background(), obs, 3, 3, GaussianEMOptions{
		Rank: 2, Laps: 25, Samples: 8, FAIter: 10, Seed: 3, Workers: 2,
		AfterLap: func(g *priors.Gaussian, _ GaussianLap) error {
			lls = append(lls, marginalLogLik(t, g, obs, ops))
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	llTrue := marginalLogLik(t, truth, obs, ops)
	first, last := lls[0], lls[len(lls)-1]
	t.Logf("log-likelihood: after lap 1 %.2f, after lap %d %.2f, true prior %.2f", first, len(lls), last, llTrue)
	if !(last > first+5) {
		t.Errorf("EM did not raise the likelihood: %.2f → %.2f", first, last)
	}
	// A maximum-likelihood fit should explain the data at least about as
	// well as the prior that generated them.
	if last < llTrue-0.02*math.Abs(llTrue)-5 {
		t.Errorf("final log-likelihood %.2f well below the true prior's %.2f", last, llTrue)
	}
}

func countTrue(b []bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}

func sq64(x float64) float64 { return x * x }
