package espirit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/cmplx"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/kspaced/kspaced/fft"
	"github.com/kspaced/kspaced/mri"
)

// espRandHermitian fills an n×n Hermitian matrix with Gaussian entries.
func espRandHermitian(rng *rand.Rand, n int) []complex128 {
	a := make([]complex128, n*n)
	for i := 0; i < n; i++ {
		a[i*n+i] = complex(rng.NormFloat64(), 0)
		for j := i + 1; j < n; j++ {
			v := complex(rng.NormFloat64(), rng.NormFloat64())
			a[i*n+j], a[j*n+i] = v, cmplx.Conj(v)
		}
	}
	return a
}

// espCheckEig checks A·v = λ·v, orthonormality and ascending order for every
// eigenpair, and compares the eigenvalues with gonum's real symmetric solver
// on the 2n×2n embedding [[Re, −Im], [Im, Re]], which holds each eigenvalue twice.
func espCheckEig(t *testing.T, name string, a []complex128, n int) {
	t.Helper()
	orig := append([]complex128(nil), a...)
	var fro float64
	for _, v := range a {
		fro += espAbs2(v)
	}
	fro = math.Sqrt(fro)
	h, err := espNewHermEig(a, n)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	vecs := make([][]complex128, n)
	for j := 0; j < n; j++ {
		vecs[j] = make([]complex128, n)
		h.vector(vecs[j], j)
		if j > 0 && h.vals[j] < h.vals[j-1] {
			t.Fatalf("%s: eigenvalues not ascending at %d", name, j)
		}
		var res float64
		for i := 0; i < n; i++ {
			var s complex128
			for l := 0; l < n; l++ {
				s += orig[i*n+l] * vecs[j][l]
			}
			res += espAbs2(s - complex(h.vals[j], 0)*vecs[j][i])
		}
		if math.Sqrt(res) > 1e-11*max(fro, 1) {
			t.Errorf("%s: residual of eigenpair %d is %.3g (‖A‖ %.3g)", name, j, math.Sqrt(res), fro)
		}
	}
	for i := 0; i < n; i++ {
		for j := 0; j <= i; j++ {
			var s complex128
			for l := 0; l < n; l++ {
				s += cmplx.Conj(vecs[i][l]) * vecs[j][l]
			}
			want := complex(0, 0)
			if i == j {
				want = 1
			}
			if cmplx.Abs(s-want) > 1e-12 {
				t.Errorf("%s: ⟨v%d, v%d⟩ = %v", name, i, j, s)
			}
		}
	}
	emb := mat.NewSymDense(2*n, nil)
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			re, im := real(orig[i*n+j]), imag(orig[i*n+j])
			emb.SetSym(i, j, re)
			emb.SetSym(n+i, n+j, re)
			if i <= j {
				emb.SetSym(i, n+j, -im)
				emb.SetSym(j, n+i, im)
			}
		}
	}
	var es mat.EigenSym
	if !es.Factorize(emb, false) {
		t.Fatalf("%s: gonum EigenSym failed", name)
	}
	ref := es.Values(nil)
	sort.Float64s(ref)
	for j := 0; j < n; j++ {
		if math.Abs(ref[2*j]-h.vals[j]) > 1e-11*max(fro, 1) || math.Abs(ref[2*j+1]-h.vals[j]) > 1e-11*max(fro, 1) {
			t.Errorf("%s: eigenvalue %d = %.15g, real embedding gives %.15g and %.15g", name, j, h.vals[j], ref[2*j], ref[2*j+1])
		}
	}
}

func TestESPIRiTHermitianEigensolver(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 3, 5, 17, 64} {
		espCheckEig(t, "random", espRandHermitian(rng, n), n)
	}
	// Rank 3 (a Gram matrix like the calibration one), a diagonal, an already
	// tridiagonal matrix with a zero off-diagonal, and zero.
	n := 12
	low := make([]complex128, n*n)
	for r := 0; r < 3; r++ {
		v := make([]complex128, n)
		for i := range v {
			v[i] = complex(rng.NormFloat64(), rng.NormFloat64())
		}
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				low[i*n+j] += v[i] * cmplx.Conj(v[j])
			}
		}
	}
	espCheckEig(t, "rank 3", low, n)
	diag := make([]complex128, n*n)
	for i := 0; i < n; i++ {
		diag[i*n+i] = complex(float64(i%5)-2, 0)
	}
	espCheckEig(t, "diagonal", diag, n)
	tri := make([]complex128, n*n)
	for i := 0; i < n; i++ {
		tri[i*n+i] = complex(float64(i), 0)
		if i+1 < n && i != 4 {
			tri[(i+1)*n+i] = complex(0.5, float64(i)/7)
			tri[i*n+i+1] = cmplx.Conj(tri[(i+1)*n+i])
		}
	}
	espCheckEig(t, "tridiagonal", tri, n)
	espCheckEig(t, "zero", make([]complex128, n*n), n)
}

// espSynthetic makes smooth, unit-RSS coil maps (Gaussian falloff from
// coils on a circle, each with its own linear phase), an object of nested
// ellipses with a smooth phase, and the fully sampled k-space F(S·x).
func espSynthetic(coils, rows, cols int) (maps, img, ksp []complex64) {
	npix := rows * cols
	maps = make([]complex64, coils*npix)
	img = make([]complex64, npix)
	for y := 0; y < rows; y++ {
		for x := 0; x < cols; x++ {
			py := 2*(float64(y)+0.5)/float64(rows) - 1
			px := 2*(float64(x)+0.5)/float64(cols) - 1
			var rss float64
			s := make([]complex128, coils)
			for c := 0; c < coils; c++ {
				th := 2 * math.Pi * float64(c) / float64(coils)
				cy, cx := 1.3*math.Sin(th), 1.3*math.Cos(th)
				d2 := (py-cy)*(py-cy) + (px-cx)*(px-cx)
				mag := math.Exp(-d2 / (2 * 0.8 * 0.8))
				ph := 0.7*float64(c) + 0.6*math.Sin(th)*px - 0.5*math.Cos(th)*py
				s[c] = cmplx.Rect(mag, ph)
				rss += mag * mag
			}
			for c := 0; c < coils; c++ {
				maps[c*npix+y*cols+x] = complex64(s[c] / complex(math.Sqrt(rss), 0))
			}
			var v float64
			if px*px/0.72/0.72+py*py/0.85/0.85 < 1 {
				v = 1
				if (px-0.2)*(px-0.2)/0.04+(py+0.1)*(py+0.1)/0.1 < 1 {
					v = 0.4
				}
				if (px+0.3)*(px+0.3)+(py-0.3)*(py-0.3) < 0.02 {
					v = 1.6
				}
				if px*px/0.5/0.5+py*py/0.65/0.65 > 1 {
					v = 0.7
				}
			}
			img[y*cols+x] = complex64(cmplx.Rect(v, 0.8*px-0.4*py*py))
		}
	}
	ksp = make([]complex64, coils*npix)
	for c := 0; c < coils; c++ {
		for i := 0; i < npix; i++ {
			ksp[c*npix+i] = maps[c*npix+i] * img[i]
		}
	}
	fft.Forward(ksp, ksp, rows, cols)
	return maps, img, ksp
}

// espLineMask samples acs centred ky lines and every step-th line except
// the two bordering the centre block, so the fully sampled block is exactly
// acs lines high.
func espLineMask(rows, cols, step, acs int) []float32 {
	m := make([]float32, rows*cols)
	lo := (rows - acs + 1) / 2
	for y := 0; y < rows; y++ {
		if (y >= lo && y < lo+acs) || (y%step == 0 && y != lo-1 && y != lo+acs) {
			for x := 0; x < cols; x++ {
				m[y*cols+x] = 1
			}
		}
	}
	return m
}

func TestESPIRiTRecoversSyntheticMaps(t *testing.T) {
	t.Parallel()
	// The whole 26-line centre (more patches than kernel entries: the
	// n×n Gram matrix), and a 24×24 region with an 8×8 kernel (fewer
	// patches: the patch Gram matrix).
	for _, c := range []struct {
		rows, cols int
		opt        Options
	}{
		{96, 80, Options{Calib: AutoCalib}},
		{75, 91, Options{Calib: AutoCalib}},
		{96, 80, Options{Calib: 24, Kernel: 8}},
	} {
		t.Run(fmt.Sprintf("%dx%d_calib%d_kernel%d", c.rows, c.cols, c.opt.Calib, c.opt.Kernel), func(t *testing.T) {
			espRecoverSynthetic(t, c.rows, c.cols, c.opt)
		})
	}
}

func espRecoverSynthetic(t *testing.T, rows, cols int, opt Options) {
	const coils = 8
	truth, img, ksp := espSynthetic(coils, rows, cols)
	mask := espLineMask(rows, cols, 3, 26)
	for i := range ksp {
		ksp[i] *= complex64(complex(mask[i%(rows*cols)], 0))
	}
	maps := make([]complex64, len(ksp))
	ev := make([]float32, rows*cols)
	if err := estimate(context.Background(), maps, ev, ksp, coils, rows, cols, mask, opt); err != nil {
		t.Fatal(err)
	}
	npix := rows * cols
	// Without the mask, the zeros of k-space locate the same region.
	again, err := Maps(context.Background(), ksp, coils, rows, cols, nil, opt)
	if err != nil {
		t.Fatal(err)
	}
	for i := range again {
		if again[i] != maps[i] {
			t.Fatalf("maps from the k-space zeros differ from maps from the mask at %d", i)
		}
	}
	var peak float64
	for _, v := range img {
		peak = max(peak, cmplx.Abs(complex128(v)))
	}
	// Inside the object: maps equal the truth up to a per-pixel phase (which
	// the image absorbs), the eigenvalue is 1, and each pixel's coil images
	// lie in the span of its map.
	var num, na, nb, resid, energy float64
	inside, lowEV := 0, 0
	limit, wantH := MaxAutoCalib, 26
	if opt.Calib > 0 {
		limit, wantH = opt.Calib, opt.Calib
	}
	h, w := espCalibRegion(mask, nil, 0, rows, cols, limit)
	if h != wantH || w != min(cols, limit) {
		t.Fatalf("calibration region %d×%d, want %d×%d", h, w, wantH, min(cols, limit))
	}
	rot := espFirstComponent(espCalibForTest(ksp, coils, rows, cols, h, w), coils, h*w)
	for i := 0; i < npix; i++ {
		if cmplx.Abs(complex128(img[i])) < 0.1*peak {
			continue
		}
		inside++
		if ev[i] < 0.95 || ev[i] > 1.0001 {
			lowEV++
		}
		var dot, proj complex128
		var a2, b2 float64
		for c := 0; c < coils; c++ {
			a, b := complex128(maps[c*npix+i]), complex128(truth[c*npix+i])
			dot += cmplx.Conj(a) * b
			a2 += espAbs2(a)
			b2 += espAbs2(b)
			proj += cmplx.Conj(rot[c]) * a
		}
		num += cmplx.Abs(dot)
		na += a2
		nb += b2
		if a2 > 0 && (math.Abs(imag(proj)) > 1e-4*real(proj) || real(proj) <= 0) {
			t.Fatalf("pixel %d: projection on the first principal component %v is not real positive", i, proj)
		}
		// Residual of the coil images S·x after projecting on the map.
		var pc complex128
		for c := 0; c < coils; c++ {
			pc += cmplx.Conj(complex128(maps[c*npix+i])) * complex128(truth[c*npix+i]*img[i])
		}
		for c := 0; c < coils; c++ {
			v := complex128(truth[c*npix+i] * img[i])
			resid += espAbs2(v - pc*complex128(maps[c*npix+i]))
			energy += espAbs2(v)
		}
	}
	corr := num / math.Sqrt(na*nb)
	t.Logf("%d pixels inside: correlation up to per-pixel phase %.5f, relative residual %.2e, %d eigenvalues outside [0.95, 1]", inside, corr, math.Sqrt(resid/energy), lowEV)
	if corr < 0.98 {
		t.Errorf("correlation with the true maps %.4f < 0.98", corr)
	}
	if math.Sqrt(resid/energy) > 0.05 {
		t.Errorf("coil images leave a relative residual %.3g outside the span of the maps", math.Sqrt(resid/energy))
	}
	if lowEV > inside/50 {
		t.Errorf("%d of %d object pixels have an eigenvalue outside [0.95, 1]", lowEV, inside)
	}
	for i := 0; i < npix; i++ {
		var n2 float64
		for c := 0; c < coils; c++ {
			n2 += espAbs2(complex128(maps[c*npix+i]))
		}
		kept := float64(ev[i]) > espDefaultCrop
		if (kept && math.Abs(n2-1) > 1e-5) || (!kept && n2 != 0) {
			t.Fatalf("pixel %d: eigenvalue %v, map norm² %v", i, ev[i], n2)
		}
	}
}

func espCalibForTest(ksp []complex64, coils, rows, cols, h, w int) []complex128 {
	cal := make([]complex128, 0, coils*h*w)
	for c := 0; c < coils; c++ {
		for y := (rows - h + 1) / 2; y < (rows-h+1)/2+h; y++ {
			for x := (cols - w + 1) / 2; x < (cols-w+1)/2+w; x++ {
				cal = append(cal, complex128(ksp[(c*rows+y)*cols+x]))
			}
		}
	}
	return cal
}

func TestACSWidth(t *testing.T) {
	t.Parallel()
	// 64 ky lines: 20 central ones (22…41) plus every 4th; line 20 is sampled
	// but 21 is not, so the centred square stops at 20.
	mask := espLineMask(64, 48, 4, 20)
	if w := ACSWidth(mask, 64, 48); w != 20 {
		t.Errorf("ACSWidth = %d, want 20", w)
	}
	full := make([]float32, 30*40)
	for i := range full {
		full[i] = 1
	}
	if w := ACSWidth(full, 30, 40); w != 30 {
		t.Errorf("fully sampled 30×40: ACSWidth = %d, want 30", w)
	}
	full[15*40+20] = 0 // the centre location itself
	if w := ACSWidth(full, 30, 40); w != 0 {
		t.Errorf("unsampled centre: ACSWidth = %d, want 0", w)
	}
	if w := ACSWidth(full, 31, 40); w != 0 {
		t.Errorf("wrong shape: ACSWidth = %d, want 0", w)
	}
	// Calibration region: the line mask limits rows to 20 while columns grow
	// to the limit.
	if h, w := espCalibRegion(mask, nil, 0, 64, 48, 24); h != 20 || w != 24 {
		t.Errorf("calibration region %d×%d, want 20×24", h, w)
	}
	if h, w := espCalibRegion(mask, nil, 0, 64, 48, 64); h != 20 || w != 48 {
		t.Errorf("calibration region %d×%d, want 20×48", h, w)
	}
}

func TestESPIRiTRejectsBadInput(t *testing.T) {
	t.Parallel()
	const coils, rows, cols = 4, 32, 32
	_, _, ksp := espSynthetic(coils, rows, cols)
	ctx := context.Background()
	cases := []struct {
		name              string
		ksp               []complex64
		coils, rows, cols int
		mask              []float32
		opt               Options
		want              string
	}{
		{"no coils", ksp, 0, rows, cols, nil, Options{}, "coil count"},
		{"huge matrix", ksp, coils, mri.MaxDim + 1, cols, nil, Options{}, "matrix"},
		{"short k-space", ksp[1:], coils, rows, cols, nil, Options{}, "k-space has"},
		{"short mask", ksp, coils, rows, cols, make([]float32, 5), Options{}, "mask has"},
		{"kernel too big", ksp, coils, rows, cols, nil, Options{Kernel: 40}, "kernel size"},
		{"kernel beyond calibration", ksp, coils, rows, cols, nil, Options{Calib: 5, Kernel: 6}, "smaller than"},
		{"threshold", ksp, coils, rows, cols, nil, Options{Threshold: 2}, "threshold"},
		{"crop", ksp, coils, rows, cols, nil, Options{Crop: math.NaN()}, "crop"},
		{"calib", ksp, coils, rows, cols, nil, Options{Calib: -7}, "calibration size"},
		{"empty mask", ksp, coils, rows, cols, make([]float32, rows*cols), Options{}, "smaller than"},
		{"no signal", make([]complex64, len(ksp)), coils, rows, cols, nil, Options{}, "smaller than"},
	}
	for _, c := range cases {
		if _, err := Maps(ctx, c.ksp, c.coils, c.rows, c.cols, c.mask, c.opt); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
	}
	ones := make([]float32, rows*cols)
	for i := range ones {
		ones[i] = 1
	}
	if _, err := Maps(ctx, make([]complex64, len(ksp)), coils, rows, cols, ones, Options{}); err == nil || !strings.Contains(err.Error(), "no signal") {
		t.Errorf("zero k-space with a full mask: error %v, want no signal", err)
	}
	bad := append([]complex64(nil), ksp...)
	bad[(rows/2)*cols+cols/2] = complex(float32(math.Inf(1)), 0)
	if _, err := Maps(ctx, bad, coils, rows, cols, ones, Options{}); err == nil || !strings.Contains(err.Error(), "not finite") {
		t.Errorf("infinite sample: error %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Maps(cctx, ksp, coils, rows, cols, nil, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: error %v", err)
	}
}

// BenchmarkESPIRiT times a 16-coil 320×320 calibration (calib 24, kernel 6).
func BenchmarkESPIRiT(b *testing.B) {
	const coils, rows, cols = 16, 320, 320
	_, _, ksp := espSynthetic(coils, rows, cols)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if _, err := Maps(ctx, ksp, coils, rows, cols, nil, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestESPIRiTDominantEigenvector(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 3))
	const n = 12
	eig := espEigWorkspace(n)
	// Eigenvalues 1 and gap·1 on top of a small random spectrum: a wide gap
	// converges by power iteration, a narrow one falls back to the exact
	// decomposition; both must return the dominant pair.
	for _, gap := range []float64{0.3, 0.999} {
		q, err := espNewHermEig(espRandHermitian(rng, n), n) // a random unitary basis
		if err != nil {
			t.Fatal(err)
		}
		basis := make([][]complex128, n)
		for j := range basis {
			basis[j] = make([]complex128, n)
			q.vector(basis[j], j)
		}
		vals := make([]float64, n)
		for j := range vals {
			vals[j] = 0.2 * rng.Float64()
		}
		vals[0], vals[1] = 1, gap
		a := make([]complex128, n*n)
		for j, lam := range vals {
			for r := 0; r < n; r++ {
				for c := 0; c < n; c++ {
					a[r*n+c] += complex(lam, 0) * basis[j][r] * cmplx.Conj(basis[j][c])
				}
			}
		}
		v := make([]complex128, n)
		for i := range v {
			v[i] = complex(1/math.Sqrt(n), 0)
		}
		lam := espDominant(a, v, make([]complex128, n), eig)
		var dot complex128
		for i := range v {
			dot += cmplx.Conj(basis[0][i]) * v[i]
		}
		if math.Abs(lam-1) > 1e-9 || math.Abs(cmplx.Abs(dot)-1) > 1e-6 {
			t.Errorf("gap %v: eigenvalue %v, |⟨v, v₁⟩| = %v; want 1 and 1", gap, lam, cmplx.Abs(dot))
		}
	}
}
