package priors

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"gonum.org/v1/gonum/mat"
)

func covGaussian(t *testing.T, rng *rand.Rand, c, h, w, r int) *Gaussian {
	t.Helper()
	n := c * h * w
	mu, d, u := make([]float32, n), make([]float32, n), make([]float32, n*r)
	for i := range n {
		mu[i] = float32(rng.NormFloat64())
		d[i] = float32(0.05 + 0.5*rng.Float64())
	}
	for i := range u {
		u[i] = float32(0.4 * rng.NormFloat64())
	}
	g, err := NewGaussian(mu, d, u, c, h, w)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// covDenseJacobian is Σ(Σ + σ²I)⁻¹ in float64 from the dense covariance.
func covDenseJacobian(g *Gaussian, sigma float64) *mat.Dense {
	n, r := g.n, g.r
	cov := mat.NewDense(n, n, nil)
	for i := range n {
		for j := range n {
			var s float64
			for p := range r {
				s += g.u[i*r+p] * g.u[j*r+p]
			}
			if i == j {
				s += g.d[i]
			}
			cov.Set(i, j, s)
		}
	}
	shifted := mat.DenseCopyOf(cov)
	for i := range n {
		shifted.Set(i, i, shifted.At(i, i)+sigma*sigma)
	}
	var inv, jac mat.Dense
	if err := inv.Inverse(shifted); err != nil {
		panic(err)
	}
	jac.Mul(cov, &inv)
	return &jac
}

// The Gaussian's exact diagonal is σ²·diag(Σ(Σ + σ²I)⁻¹), against a dense
// float64 inverse, at every noise level; its denoised output is Denoise's.
func TestGaussianDenoiseDiagDense(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	g := covGaussian(t, rng, 2, 3, 4, 3)
	n := g.n
	for _, sigma := range []float64{1e-3, 0.1, 0.7, 5, 100} {
		xt := make([]float32, 2*n)
		for k := range xt {
			xt[k] = float32(rng.NormFloat64())
		}
		sig := []float32{float32(sigma), float32(sigma)}
		dst, diag, want := make([]float32, 2*n), make([]float32, 2*n), make([]float32, 2*n)
		if err := g.DenoiseDiag(dst, diag, xt, sig); err != nil {
			t.Fatal(err)
		}
		if err := g.Denoise(want, xt, sig); err != nil {
			t.Fatal(err)
		}
		jac := covDenseJacobian(g, float64(sig[0]))
		s2 := float64(sig[0]) * float64(sig[0])
		for k := range 2 * n {
			if dst[k] != want[k] {
				t.Fatalf("σ=%g: denoised value %d is %g, Denoise gives %g", sigma, k, dst[k], want[k])
			}
			ref := s2 * jac.At(k%n, k%n)
			if math.Abs(float64(diag[k])-ref) > 1e-5*ref+1e-12 {
				t.Errorf("σ=%g: diagonal %d is %g, dense %g", sigma, k, diag[k], ref)
			}
		}
	}
}

// The probe σ²·v ⊙ Jᵀv averages to the exact diagonal: the mean of many
// Rademacher probes stays within 5 standard errors (the variance of one
// probe is σ⁴·Σ_{j≠k} J_kj², from the dense Jacobian).
func TestProbeDiagUnbiased(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	g := covGaussian(t, rng, 2, 3, 3, 4)
	n, b, reps := g.n, 1000, 10
	const sigma = 0.6
	xt := make([]float32, b*n)
	x1 := make([]float32, n)
	for k := range x1 {
		x1[k] = float32(rng.NormFloat64())
	}
	sig := make([]float32, b)
	for j := range b {
		copy(xt[j*n:], x1)
		sig[j] = sigma
	}
	dst, v, jv, est := make([]float32, b*n), make([]float32, b*n), make([]float32, b*n), make([]float32, b*n)
	mean := make([]float64, n)
	for range reps {
		vjp, err := g.DenoiseVJP(dst, xt, sig)
		if err != nil {
			t.Fatal(err)
		}
		for k := range v {
			v[k] = float32(2*rng.IntN(2) - 1)
		}
		if err := ProbeDiag(est, jv, vjp, v, sig); err != nil {
			t.Fatal(err)
		}
		for k, e := range est {
			mean[k%n] += float64(e) / float64(b*reps)
		}
	}
	jac := covDenseJacobian(g, sigma)
	s2 := float64(float32(sigma)) * float64(float32(sigma))
	var worst float64
	for k := range n {
		var off float64
		for j := range n {
			if j != k {
				off += jac.At(j, k) * jac.At(j, k)
			}
		}
		se := s2 * math.Sqrt(off/float64(b*reps))
		z := math.Abs(mean[k]-s2*jac.At(k, k)) / se
		worst = max(worst, z)
	}
	if worst > 5 {
		t.Errorf("probe mean is %.1f standard errors from the exact diagonal", worst)
	}
}

// For a network (Jᵀ ≠ J) the probe's Jᵀv is the gradient of vᵀd(x_t):
// check it against central finite differences of Denoise.
func TestProbeDiagFiniteDifference(t *testing.T) {
	cfg := unetTinyConfig(1)
	cfg.Rows, cfg.Cols = 8, 8
	u := unetRandomised(t, cfg, 11)
	rng := rand.New(rand.NewPCG(5, 6))
	n := 2 * 8 * 8
	const sigma, eps = 0.7, 1e-2
	xt, v := make([]float32, n), make([]float32, n)
	for k := range xt {
		xt[k] = float32(rng.NormFloat64())
		v[k] = float32(2*rng.IntN(2) - 1)
	}
	dst, jv, est := make([]float32, n), make([]float32, n), make([]float32, n)
	vjp, err := u.DenoiseVJP(dst, xt, []float32{sigma})
	if err != nil {
		t.Fatal(err)
	}
	if err := ProbeDiag(est, jv, vjp, v, []float32{sigma}); err != nil {
		t.Fatal(err)
	}
	// All 2n perturbed images in one batch.
	batch := make([]float32, 2*n*n)
	sig := make([]float32, 2*n)
	for k := range n {
		for s, sign := range []float32{1, -1} {
			img := batch[(2*k+s)*n : (2*k+s+1)*n]
			copy(img, xt)
			img[k] += sign * eps
			sig[2*k+s] = sigma
		}
	}
	out := make([]float32, len(batch))
	if err := u.Denoise(out, batch, sig); err != nil {
		t.Fatal(err)
	}
	var worst, scale float64
	for k := range n {
		var fp, fm float64
		for i := range n {
			fp += float64(v[i]) * float64(out[2*k*n+i])
			fm += float64(v[i]) * float64(out[(2*k+1)*n+i])
		}
		ref := sigma * sigma * float64(v[k]) * (fp - fm) / (2 * eps)
		worst = max(worst, math.Abs(float64(est[k])-ref))
		scale = max(scale, math.Abs(ref))
	}
	if worst > 2e-2*scale {
		t.Errorf("probe differs from finite differences by %.3g (largest value %.3g)", worst, scale)
	}
}

// Trained against the probe on a diagonal Gaussian prior (where one probe
// is exact), the head learns the exact diagonal σ²d/(d+σ²) across the noise
// range; the untrained head is measurably off.
func TestCovHeadFitsGaussianDiagonal(t *testing.T) {
	const c, h, w = 2, 8, 8
	n := c * h * w
	d := make([]float32, n)
	for k := range d {
		d[k] = 0.3
		if k >= h*w {
			d[k] = 1.5
		}
	}
	g, err := NewGaussian(make([]float32, n), d, nil, c, h, w)
	if err != nil {
		t.Fatal(err)
	}
	data := &SliceDataset{C: c, H: h, W: w, Data: make([]float32, 64*n)}
	if err := g.Sample(data.Data, rand.New(rand.NewPCG(7, 8))); err != nil {
		t.Fatal(err)
	}
	head, err := NewCovHead("tiny", c, h, w, 1)
	if err != nil {
		t.Fatal(err)
	}
	logErr := func(sigma float64) float64 {
		rng := rand.New(rand.NewPCG(9, uint64(sigma*1000)))
		const b = 4
		xt, sig := make([]float32, b*n), make([]float32, b)
		for j := range b {
			sig[j] = float32(sigma)
		}
		if err := g.Sample(xt, rng); err != nil {
			t.Fatal(err)
		}
		for k := range xt {
			xt[k] += float32(sigma * rng.NormFloat64())
		}
		got, want, den := make([]float32, b*n), make([]float32, b*n), make([]float32, b*n)
		if err := head.Diag(got, xt, sig); err != nil {
			t.Fatal(err)
		}
		if err := g.DenoiseDiag(den, want, xt, sig); err != nil {
			t.Fatal(err)
		}
		var e float64
		for k := range got {
			e += math.Abs(math.Log(float64(got[k]) / float64(want[k])))
		}
		return e / float64(len(got))
	}
	if e := logErr(1); e < 0.2 {
		t.Fatalf("untrained head is already within %.3f in log of the exact diagonal: the test cannot fail", e)
	}
	st, err := FitCovariance(context.Background(), g, head, data, CovTrainOptions{Steps: 250, BatchSize: 4, LR: 5e-3, Seed: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, sigma := range []float64{0.01, 0.1, 0.5, 1, 3, 20} {
		if e := logErr(sigma); e > 0.1 {
			t.Errorf("σ=%g: mean |log(head/exact)| = %.3f after %d steps (loss %.4f)", sigma, e, st.Steps, st.Loss)
		}
	}
}

// A head is stored with its prior and read back as it was; a prior without
// one loads as before and offers no diagonal; views at other sizes carry it.
func TestCovHeadCheckpoint(t *testing.T) {
	dir := t.TempDir()
	p1, p2 := filepath.Join(dir, "prior.safetensors"), filepath.Join(dir, "with-head.safetensors")
	u := unetRandomised(t, unetTinyConfig(1), 3)
	if err := u.Save(p1, CheckpointMeta{Provenance: Provenance{Data: "test"}}); err != nil {
		t.Fatal(err)
	}
	d, info, err := LoadPrior(p1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DiagCovariance(d); !errors.Is(err, ErrNoCovariance) || info.Covariance != nil {
		t.Fatalf("prior without a head: %v, info %+v", err, info.Covariance)
	}
	head, err := NewCovHead("head", 2, 16, 16, 4)
	if err != nil {
		t.Fatal(err)
	}
	unetPerturb(head.net, 5)
	if err := SaveCovariance(p1, p2, head, Provenance{Data: "probe test"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	d2, info2, err := LoadPrior(p2)
	if err != nil {
		t.Fatal(err)
	}
	if info2.Covariance == nil || info2.Covariance.Network != "head" || info2.Covariance.Provenance.Data != "probe test" {
		t.Fatalf("head metadata %+v", info2.Covariance)
	}
	dd, err := DiagCovariance(d2)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	n := 2 * 16 * 16
	xt := unetRand(rng, 2*n)
	sig := []float32{0.05, 2}
	den, diag, wantDen, wantDiag := make([]float32, 2*n), make([]float32, 2*n), make([]float32, 2*n), make([]float32, 2*n)
	if err := dd.DenoiseDiag(den, diag, xt, sig); err != nil {
		t.Fatal(err)
	}
	if err := u.Denoise(wantDen, xt, sig); err != nil {
		t.Fatal(err)
	}
	if err := head.Diag(wantDiag, xt, sig); err != nil {
		t.Fatal(err)
	}
	for k := range den {
		if den[k] != wantDen[k] || diag[k] != wantDiag[k] {
			t.Fatalf("value %d: loaded prior gives %g, %g; saved one %g, %g", k, den[k], diag[k], wantDen[k], wantDiag[k])
		}
	}
	// A 15×15 view reflect-pads to 16×16 and crops back.
	view, err := ForSize(d2, 15, 15)
	if err != nil {
		t.Fatal(err)
	}
	vd, err := DiagCovariance(view)
	if err != nil {
		t.Fatal(err)
	}
	small := make([]float32, 2*15*15)
	for ch := range 2 {
		for r := range 15 {
			copy(small[(ch*15+r)*15:(ch*15+r+1)*15], xt[(ch*16+r)*16:])
		}
	}
	padded := make([]float32, n)
	reflectPad(padded, small, 2, 15, 15, 16, 16)
	full := make([]float32, n)
	if err := head.Diag(full, padded, sig[:1]); err != nil {
		t.Fatal(err)
	}
	vden, vdiag := make([]float32, len(small)), make([]float32, len(small))
	if err := vd.DenoiseDiag(vden, vdiag, small, sig[:1]); err != nil {
		t.Fatal(err)
	}
	want := make([]float32, len(small))
	crop(want, full, 2, 15, 15, 16, 16)
	for k := range want {
		if vdiag[k] != want[k] {
			t.Fatalf("15×15 view: diagonal %d is %g, cropped head %g", k, vdiag[k], want[k])
		}
	}
}

func unetPerturb(u *UNet, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 1))
	for _, p := range u.Params() {
		v := make([]float32, p.Len())
		u.be.Download(v, p.Value)
		for i := range v {
			v[i] += float32(0.05 * r.NormFloat64())
		}
		u.be.Upload(p.Value, v)
	}
}

// A run stopped part way and resumed from its checkpoint ends with exactly
// the weights of an uninterrupted run.
func TestFitCovarianceResume(t *testing.T) {
	dir := t.TempDir()
	prior := filepath.Join(dir, "prior.safetensors")
	u := unetRandomised(t, unetTinyConfig(1), 3)
	if err := u.Save(prior, CheckpointMeta{}); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(2, 2))
	data := &SliceDataset{C: 2, H: 16, W: 16, Data: unetRand(rng, 6*2*16*16)}
	fit := func(out string, stopAt int) CovTrainStats {
		h, err := NewCovHead("tiny", 2, 16, 16, 1)
		if err != nil {
			t.Fatal(err)
		}
		st, err := FitCovariance(context.Background(), u, h, data, CovTrainOptions{Steps: 6, BatchSize: 2, Seed: 3,
			CropRows: 8, CropCols: 8, PriorPath: prior, OutPath: out, stopAt: stopAt}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	a, b := filepath.Join(dir, "a.safetensors"), filepath.Join(dir, "b.safetensors")
	fit(a, 0)
	if st := fit(b, 3); st.Steps != 3 {
		t.Fatalf("stopped run at step %d, want 3", st.Steps)
	}
	if st := fit(b, 0); st.ResumedFrom != 3 || st.Steps != 6 {
		t.Fatalf("resumed from %d to %d, want 3 to 6", st.ResumedFrom, st.Steps)
	}
	ta, ma, err := readSafetensorsFile(a)
	if err != nil {
		t.Fatal(err)
	}
	tb, mb, err := readSafetensorsFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := mb[covStateKey]; ok || len(ta) != len(tb) || ma[covMetaKey] != mb[covMetaKey] {
		t.Fatalf("finished files differ in layout: %d and %d tensors", len(ta), len(tb))
	}
	for name, x := range ta {
		y := tb[name]
		for i := range x.data {
			if x.data[i] != y.data[i] {
				t.Fatalf("tensor %s differs at %d: %g and %g", name, i, x.data[i], y.data[i])
			}
		}
	}
}

// head-narrow is head with widths 32/32: same shape of output, fewer weights.
func TestCovHeadNarrow(t *testing.T) {
	count := func(name string) int {
		h, err := NewCovHead(name, 2, 32, 32, 1)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, p := range h.Network().Params() {
			n += p.Value.N
		}
		return n
	}
	h, err := NewCovHead("head-narrow", 2, 32, 32, 1)
	if err != nil {
		t.Fatal(err)
	}
	if w := h.Network().Config().Widths; len(w) != 2 || w[0] != 32 || w[1] != 32 {
		t.Errorf("head-narrow widths %v, want [32 32]", w)
	}
	if wide, narrow := count("head"), count("head-narrow"); narrow >= wide/2 {
		t.Errorf("head-narrow has %d weights, head %d: want well under half", narrow, wide)
	}
}
