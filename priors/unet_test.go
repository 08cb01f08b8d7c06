package priors

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kspaced/kspaced/priors/nn"
)

func unetTinyConfig(unshuffle int) UNetConfig {
	return UNetConfig{Channels: 2, Rows: 16, Cols: 16, Widths: []int{8, 16}, Blocks: 1,
		Attention: []int{1}, Heads: 2, EmbedDim: 16, EmbedMaxPeriod: 1000, Unshuffle: unshuffle, Groups: 4}
}

// unetRandomised returns a tiny network whose every parameter (biases and
// norm affines too) is random, so no path is trivially zero or identity.
func unetRandomised(t *testing.T, cfg UNetConfig, seed uint64) *UNet {
	t.Helper()
	u, err := NewUNet(cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(seed, 1))
	for _, p := range u.Params() {
		v := make([]float32, p.Len())
		u.be.Download(v, p.Value)
		for i := range v {
			v[i] += float32(0.1 * r.NormFloat64())
		}
		u.be.Upload(p.Value, v)
	}
	return u
}

func unetRand(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func unetDot(a, b []float32) float64 {
	s := 0.0
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// DenoiseVJP against the directional derivative of Denoise: for random v
// and w, vᵀ(J w) by central differences must equal (vᵀJ)·w.
func TestUNetVJPFiniteDifferences(t *testing.T) {
	for _, r := range []int{1, 2} {
		u := unetRandomised(t, unetTinyConfig(r), 11)
		c, h, w := u.Shape()
		n := 3
		per := c * h * w
		rng := rand.New(rand.NewPCG(5, uint64(r)))
		x := unetRand(rng, n*per)
		v := unetRand(rng, n*per)
		dir := unetRand(rng, n*per)
		sigma := []float32{0.05, 1, 20}
		for i, s := range sigma {
			for k := i * per; k < (i+1)*per; k++ {
				x[k] *= 1 + s
			}
		}
		d := make([]float32, n*per)
		vjp, err := u.DenoiseVJP(d, x, sigma)
		if err != nil {
			t.Fatal(err)
		}
		g := make([]float32, n*per)
		if err := vjp(g, v); err != nil {
			t.Fatal(err)
		}
		// Per image, so each noise level is checked on its own, along a
		// random direction and along the network part of the VJP itself,
		// q = vᵀJ − c_skip·v, where vᵀJq is large and a wrong gradient shows.
		for i, s := range sigma {
			lo, hi := i*per, (i+1)*per
			cSkip, _, _, _ := Precond(float64(s))
			q := make([]float32, n*per)
			for k := lo; k < hi; k++ {
				q[k] = g[k] - float32(cSkip)*v[k]
			}
			for j, w := range [][]float32{dir, q} {
				rms := float32(math.Sqrt(unetDot(w[lo:hi], w[lo:hi]) / float64(per)))
				for k := lo; k < hi; k++ {
					w[k] /= rms
				}
				analytic := unetDot(g[lo:hi], w[lo:hi])
				// The network sees c_in·x_t, so the step scales with x_t's size;
				// Richardson extrapolation removes the O(ε²) error of central
				// differences.
				eps := 1e-2 * (1 + float64(s))
				num := (4*unetDirDeriv(t, u, x, sigma, v, w, lo, hi, eps/2) - unetDirDeriv(t, u, x, sigma, v, w, lo, hi, eps)) / 3
				den := math.Abs(analytic)
				if j == 0 {
					den = math.Sqrt(unetDot(g[lo:hi], g[lo:hi]) * unetDot(w[lo:hi], w[lo:hi]))
				}
				if e := math.Abs(num-analytic) / den; e > 1e-4 {
					t.Errorf("unshuffle %d, σ=%g, direction %d: vᵀJw %g by VJP, %g by differences (error %.2g)", r, s, j, analytic, num, e)
				}
			}
		}
		// The vjp was invalidated by the Denoise calls above.
		if err := vjp(g, v); err == nil {
			t.Error("stale vjp ran")
		}
	}
}

// unetDirDeriv is vᵀ(d(x+εw) − d(x−εw))/(2ε) over images [lo, hi).
func unetDirDeriv(t *testing.T, u *UNet, x, sigma, v, w []float32, lo, hi int, eps float64) float64 {
	t.Helper()
	xp, xm := append([]float32(nil), x...), append([]float32(nil), x...)
	for k := lo; k < hi; k++ {
		xp[k] += float32(eps) * w[k]
		xm[k] -= float32(eps) * w[k]
	}
	dp, dm := make([]float32, len(x)), make([]float32, len(x))
	if err := u.Denoise(dp, xp, sigma); err != nil {
		t.Fatal(err)
	}
	if err := u.Denoise(dm, xm, sigma); err != nil {
		t.Fatal(err)
	}
	s := 0.0
	for k := lo; k < hi; k++ {
		s += float64(v[k]) * (float64(dp[k]) - float64(dm[k]))
	}
	return s / (2 * eps)
}

// Parameter gradients of the whole network against differences along a
// random parameter direction.
func TestUNetParamGradient(t *testing.T) {
	u := unetRandomised(t, unetTinyConfig(1), 3)
	c, h, w := u.Shape()
	n, per := 2, c*h*w
	rng := rand.New(rand.NewPCG(8, 8))
	ug, err := u.graph(n)
	if err != nil {
		t.Fatal(err)
	}
	x := unetRand(rng, n*per)
	sigma := []float32{0.3, 4}
	weights := unetRand(rng, n*per)
	be := u.be
	loss := func() float64 {
		if err := u.forward(ug, nil, x, sigma); err != nil {
			t.Fatal(err)
		}
		return unetDot(weights, ug.hostIn[:n*per])
	}
	loss()
	for _, p := range u.Params() {
		be.Fill(p.Grad, 0)
	}
	be.Upload(ug.seed, weights)
	if err := ug.g.Backward(ug.out, ug.seed, true); err != nil {
		t.Fatal(err)
	}
	dirs := make([][]float32, len(u.Params()))
	vals := make([][]float32, len(u.Params()))
	analytic := 0.0
	for i, p := range u.Params() {
		dirs[i] = unetRand(rng, p.Len())
		vals[i] = make([]float32, p.Len())
		be.Download(vals[i], p.Value)
		gr := make([]float32, p.Len())
		be.Download(gr, p.Grad)
		analytic += unetDot(gr, dirs[i])
	}
	shift := func(eps float32) {
		for i, p := range u.Params() {
			v := make([]float32, p.Len())
			for k := range v {
				v[k] = vals[i][k] + eps*dirs[i][k]
			}
			be.Upload(p.Value, v)
		}
	}
	const eps = 2e-3
	shift(eps)
	lp := loss()
	shift(-eps)
	lm := loss()
	shift(0)
	num := (lp - lm) / (2 * eps)
	if e := math.Abs(num-analytic) / math.Max(1, math.Abs(analytic)); e > 5e-3 {
		t.Errorf("directional parameter derivative %g by backprop, %g by differences (rel %.2g)", analytic, num, e)
	}
}

// Images in a batch must not interact (group norm is per image), and a batch
// split into chunks must give the same results and VJPs as one graph.
func TestUNetBatchIndependence(t *testing.T) {
	u := unetRandomised(t, unetTinyConfig(2), 4)
	c, h, w := u.Shape()
	n, per := 5, c*h*w
	rng := rand.New(rand.NewPCG(2, 2))
	x, v := unetRand(rng, n*per), unetRand(rng, n*per)
	sigma := []float32{0.01, 0.1, 1, 10, 100}
	whole, wv := make([]float32, n*per), make([]float32, n*per)
	vjp, err := u.DenoiseVJP(whole, x, sigma)
	if err != nil {
		t.Fatal(err)
	}
	if err := vjp(wv, v); err != nil {
		t.Fatal(err)
	}
	u.MaxBatch = 2
	split, sv := make([]float32, n*per), make([]float32, n*per)
	vjp, err = u.DenoiseVJP(split, x, sigma)
	if err != nil {
		t.Fatal(err)
	}
	if err := vjp(sv, v); err != nil {
		t.Fatal(err)
	}
	if err := vjp(sv, v); err != nil { // callable repeatedly
		t.Fatal(err)
	}
	for k := range whole {
		if d := math.Abs(float64(whole[k] - split[k])); d > 1e-4*(1+math.Abs(float64(whole[k]))) {
			t.Fatalf("denoised value %d: %g whole, %g in chunks", k, whole[k], split[k])
		}
		if d := math.Abs(float64(wv[k] - sv[k])); d > 1e-4*(1+math.Abs(float64(wv[k]))) {
			t.Fatalf("vjp value %d: %g whole, %g in chunks", k, wv[k], sv[k])
		}
	}
}

// DenoiseVJP's automatic chunk must hold a VJP's whole footprint (values,
// workspace and gradient pool) under VJPMemoryBudget, and use the budget: a
// graph of the chosen size, after a backward pass, fits it, and one image
// more would not. Forward passes keep their own, smaller chunks.
func TestUNetVJPChunkFitsFootprint(t *testing.T) {
	u := unetRandomised(t, unetTinyConfig(2), 5)
	u.chunk(1)
	per := u.perImageVJP
	if per <= 1 || u.perImage <= 1 {
		t.Fatalf("per-image footprints %d (forward) and %d (VJP)", u.perImage, per)
	}
	u.VJPMemoryBudget = 3*per + per/2
	const n = 8
	if got := u.vjpChunk(n); got != 3 {
		t.Fatalf("VJP chunk of %d images under a budget of 3.5 images: %d, want 3", n, got)
	}
	c, h, w := u.Shape()
	rng := rand.New(rand.NewPCG(3, 3))
	x, v := unetRand(rng, n*c*h*w), unetRand(rng, n*c*h*w)
	sigma := make([]float32, n)
	for i := range sigma {
		sigma[i] = 0.5
	}
	dst := make([]float32, len(x))
	vjp, err := u.DenoiseVJP(dst, x, sigma)
	if err != nil {
		t.Fatal(err)
	}
	if err := vjp(dst, v); err != nil {
		t.Fatal(err)
	}
	g := u.graphs[3].g
	if b := g.Bytes(); b > u.VJPMemoryBudget || b < 3*per*9/10 {
		t.Errorf("a 3-image graph after its backward holds %d bytes; budget %d, estimate %d", b, u.VJPMemoryBudget, 3*per)
	}
}

func TestUNetRejectsBadInput(t *testing.T) {
	u, err := NewUNet(unetTinyConfig(1), 1)
	if err != nil {
		t.Fatal(err)
	}
	per := 2 * 16 * 16
	good := make([]float32, per)
	for _, tc := range []struct {
		name    string
		dst, xt []float32
		sigma   []float32
	}{
		{"no images", good, good, nil},
		{"short x", good, good[:per-1], []float32{1}},
		{"short dst", good[:10], good, []float32{1}},
		{"zero sigma", good, good, []float32{0}},
		{"negative sigma", good, good, []float32{-1}},
		{"NaN sigma", good, good, []float32{float32(math.NaN())}},
		{"Inf sigma", good, good, []float32{float32(math.Inf(1))}},
	} {
		if err := u.Denoise(tc.dst, tc.xt, tc.sigma); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
		if _, err := u.DenoiseVJP(tc.dst, tc.xt, tc.sigma); err == nil {
			t.Errorf("%s: VJP accepted", tc.name)
		}
	}
	vjp, err := u.DenoiseVJP(good, good, []float32{1})
	if err != nil {
		t.Fatal(err)
	}
	if err := vjp(good, good[:5]); err == nil {
		t.Error("short v accepted")
	}
}

func TestUNetConfigValidation(t *testing.T) {
	if err := SmallUNet(64, 64).Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	bad := []func(c *UNetConfig){
		func(c *UNetConfig) { c.Rows = 62 },      // not divisible by 4
		func(c *UNetConfig) { c.Widths = nil },   // no levels
		func(c *UNetConfig) { c.Widths[1] = 60 }, // not divisible by 8 groups
		func(c *UNetConfig) { c.Attention = []int{5} },
		func(c *UNetConfig) { c.EmbedDim = 7 },
		func(c *UNetConfig) { c.Heads = 0 },
		func(c *UNetConfig) { c.Unshuffle = 0 },
		func(c *UNetConfig) { c.Unshuffle = 3 }, // 64 is not divisible by 3·4
		func(c *UNetConfig) { c.Widths = []int{4096, 4096, 4096} },
		func(c *UNetConfig) { c.Channels = 0 },
		func(c *UNetConfig) { c.EmbedMaxPeriod = float32(math.NaN()) },
	}
	for i, f := range bad {
		c := SmallUNet(64, 64)
		c.Widths = append([]int(nil), c.Widths...)
		f(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("bad config %d accepted: %+v", i, c)
		}
		if _, err := NewUNet(c, 1); err == nil {
			t.Errorf("bad config %d built", i)
		}
	}
}

// At σ → ∞ the preconditioned denoiser's output is dominated by c_out·F,
// at σ → 0 by c_skip·x_t = x_t: the skip path must pass the input through.
func TestUNetSmallSigmaIsIdentity(t *testing.T) {
	u := unetRandomised(t, unetTinyConfig(1), 9)
	per := 2 * 16 * 16
	rng := rand.New(rand.NewPCG(1, 1))
	x := unetRand(rng, per)
	d := make([]float32, per)
	if err := u.Denoise(d, x, []float32{1e-4}); err != nil {
		t.Fatal(err)
	}
	for k := range x {
		if math.Abs(float64(d[k]-x[k])) > 1e-3 {
			t.Fatalf("σ=1e-4: d[%d]=%g, x=%g", k, d[k], x[k])
		}
	}
}

func TestUNetDenoiseNoAllocs(t *testing.T) {
	u := unetRandomised(t, unetTinyConfig(2), 9)
	per := 2 * 16 * 16
	x, d, v, g := make([]float32, 2*per), make([]float32, 2*per), make([]float32, 2*per), make([]float32, 2*per)
	sigma := []float32{0.5, 2}
	vjp, err := u.DenoiseVJP(d, x, sigma)
	if err != nil {
		t.Fatal(err)
	}
	if a := testing.AllocsPerRun(5, func() { _ = u.Denoise(d, x, sigma) }); a != 0 {
		t.Errorf("Denoise allocates %v times per call", a)
	}
	vjp, _ = u.DenoiseVJP(d, x, sigma)
	if a := testing.AllocsPerRun(5, func() { _ = vjp(g, v) }); a != 0 {
		t.Errorf("vjp allocates %v times per call", a)
	}
}

var _ Denoiser = (*UNet)(nil)
var _ = nn.NewCPU

// BenchmarkDenoise and BenchmarkDenoiseVJP time the evidence network on 8
// complex 64×64 images: one forward pass, and one vjp call after it (MMPS
// makes one per CG iteration).
func BenchmarkDenoise(b *testing.B) {
	u, err := NewUNet(SmallUnshuffleUNet(64, 64), 1)
	if err != nil {
		b.Fatal(err)
	}
	n, per := 8, 2*64*64
	x, d := make([]float32, n*per), make([]float32, n*per)
	sig := make([]float32, n)
	for i := range sig {
		sig[i] = 0.5
	}
	_ = u.Denoise(d, x, sig)
	for b.Loop() {
		_ = u.Denoise(d, x, sig)
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "images/s")
}

func BenchmarkDenoiseVJP(b *testing.B) {
	u, err := NewUNet(SmallUnshuffleUNet(64, 64), 1)
	if err != nil {
		b.Fatal(err)
	}
	n, per := 8, 2*64*64
	x, d, g := make([]float32, n*per), make([]float32, n*per), make([]float32, n*per)
	sig := make([]float32, n)
	for i := range sig {
		sig[i] = 0.5
	}
	vjp, err := u.DenoiseVJP(d, x, sig)
	if err != nil {
		b.Fatal(err)
	}
	_ = vjp(g, x)
	for b.Loop() {
		_ = vjp(g, x)
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "images/s")
}
