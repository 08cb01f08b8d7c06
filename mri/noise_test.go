package mri

import (
	"math"
	"math/cmplx"
	"math/rand/v2"
	"testing"
)

// randomCov is a well-conditioned Hermitian positive definite coils×coils
// matrix BBᴴ/coils + 0.2 I, in float64.
func randomCov(rng *rand.Rand, coils int) []complex128 {
	b := make([]complex128, coils*coils)
	for i := range b {
		b[i] = complex(rng.NormFloat64(), rng.NormFloat64())
	}
	cov := make([]complex128, coils*coils)
	for i := 0; i < coils; i++ {
		for j := 0; j < coils; j++ {
			var s complex128
			for k := 0; k < coils; k++ {
				s += b[i*coils+k] * cmplx.Conj(b[j*coils+k])
			}
			cov[i*coils+j] = s / complex(float64(coils), 0)
		}
		cov[i*coils+i] += 0.2
	}
	return cov
}

// correlatedNoise draws n samples per coil ([coil][n]) of CN(0, cov) as
// C z with C a square root of cov computed independently of the package
// (Hermitian Jacobi-free: Cholesky in float64 written out here).
func correlatedNoise(rng *rand.Rand, cov []complex128, coils, n int) []complex64 {
	l := make([]complex128, coils*coils)
	for i := 0; i < coils; i++ {
		for j := 0; j <= i; j++ {
			s := cov[i*coils+j]
			for k := 0; k < j; k++ {
				s -= l[i*coils+k] * cmplx.Conj(l[j*coils+k])
			}
			if i == j {
				l[i*coils+i] = complex(math.Sqrt(real(s)), 0)
			} else {
				l[i*coils+j] = s / l[j*coils+j]
			}
		}
	}
	out := make([]complex64, coils*n)
	z := make([]complex128, coils)
	for k := 0; k < n; k++ {
		for c := range z {
			z[c] = complex(rng.NormFloat64(), rng.NormFloat64()) / complex(math.Sqrt2, 0)
		}
		for c := 0; c < coils; c++ {
			var s complex128
			for d := 0; d <= c; d++ {
				s += l[c*coils+d] * z[d]
			}
			out[c*n+k] = complex64(s)
		}
	}
	return out
}

// maxCovErr is max |a−b| relative to the largest diagonal entry of b.
func maxCovErr(a []complex64, b []complex128, coils int) float64 {
	var e, d float64
	for i := range b {
		e = math.Max(e, cmplx.Abs(complex128(a[i])-b[i]))
	}
	for i := 0; i < coils; i++ {
		d = math.Max(d, real(b[i*coils+i]))
	}
	return e / d
}

func TestNoiseCovarianceAndWhitening(t *testing.T) {
	t.Parallel()
	rng := testRand(71)
	coils, n := 8, 100000
	cov := randomCov(rng, coils)
	x := correlatedNoise(rng, cov, coils, n)
	// A receiver DC offset must not show up as noise.
	for c := 0; c < coils; c++ {
		for k := 0; k < n; k++ {
			x[c*n+k] += complex(float32(c), -1)
		}
	}
	est, err := NoiseCovariance(x, coils)
	if err != nil {
		t.Fatal(err)
	}
	e := maxCovErr(est, cov, coils)
	t.Logf("noise-scan estimate off by %.3g of the largest variance", e)
	if e > 0.02 {
		t.Errorf("estimated covariance off by %.3g of the largest variance", e)
	}
	for i := 0; i < coils; i++ {
		if imag(est[i*coils+i]) != 0 || est[i*coils+(i+1)%coils] != complex64(cmplx.Conj(complex128(est[((i+1)%coils)*coils+i]))) {
			t.Fatalf("estimate is not Hermitian at row %d", i)
		}
	}
	w, err := NewWhitener(est, coils)
	if err != nil {
		t.Fatal(err)
	}
	// L⁻¹ Σ L⁻ᴴ = I for the matrix it was built from, in float64.
	for i := 0; i < coils; i++ {
		for j := 0; j < coils; j++ {
			var s complex128
			for a := 0; a < coils; a++ {
				for b := 0; b < coils; b++ {
					s += w.linv[i*coils+a] * complex128(est[a*coils+b]) * cmplx.Conj(w.linv[j*coils+b])
				}
			}
			want := 0.0
			if i == j {
				want = 1
			}
			if cmplx.Abs(s-complex(want, 0)) > 1e-5 {
				t.Fatalf("L⁻¹ΣL⁻ᴴ[%d][%d] = %v", i, j, s)
			}
		}
	}
	// Fresh noise from the true covariance, whitened with the estimate, in
	// place: covariance ≈ identity.
	fresh := correlatedNoise(rng, cov, coils, n)
	if err := w.Apply(fresh, fresh); err != nil {
		t.Fatal(err)
	}
	white, _ := NoiseCovariance(fresh, coils)
	id := make([]complex128, coils*coils)
	for i := 0; i < coils; i++ {
		id[i*coils+i] = 1
	}
	if e := maxCovErr(white, id, coils); e > 0.03 {
		t.Errorf("whitened noise covariance off identity by %.3g", e)
	}
	// Out of place gives the same as in place.
	again := correlatedNoise(testRand(5), cov, coils, 10)
	out := make([]complex64, len(again))
	w.Apply(out, again)
	w.Apply(again, again)
	if relDiff(out, again) != 0 {
		t.Error("in-place and out-of-place whitening differ")
	}
}

func TestNoiseErrors(t *testing.T) {
	t.Parallel()
	if _, err := NoiseCovariance(make([]complex64, 7), 2); err == nil {
		t.Error("7 samples for 2 coils accepted")
	}
	if _, err := NoiseCovariance(make([]complex64, 2), 2); err == nil {
		t.Error("1 sample per coil accepted")
	}
	if _, err := NewWhitener([]complex64{1, 2, 2, 1}, 2); err == nil {
		t.Error("indefinite covariance accepted")
	}
	if _, err := NewWhitener([]complex64{1, 0, 0, complex(float32(math.NaN()), 0)}, 2); err == nil {
		t.Error("NaN covariance accepted")
	}
	if _, err := NewWhitener([]complex64{1, 0, 0}, 2); err == nil {
		t.Error("short covariance accepted")
	}
	w, _ := NewWhitener([]complex64{1, 0, 0, 1}, 2)
	if err := w.Apply(make([]complex64, 4), make([]complex64, 5)); err == nil {
		t.Error("mismatched whitening lengths accepted")
	}
	if err := Prewhiten(&Scan{Coils: 1, Rows: 1, Cols: 1, KSpace: []complex64{1}}, nil); err == nil {
		t.Error("prewhiten without covariance accepted")
	}
	s := &Scan{Coils: 2, Rows: 8, Cols: 8, KSpace: make([]complex64, 128), Mask: make([]float32, 64)}
	if _, err := NoiseFromCorners(s, 0.1); err == nil {
		t.Error("corners with no samples accepted")
	}
	if _, err := NoiseFromCorners(s, 0.7); err == nil {
		t.Error("corner fraction 0.7 accepted")
	}
}

// smoothScan simulates a multi-coil scan of a smooth object (a Gaussian
// blob, whose k-space decays fast) plus correlated noise.
func smoothScan(rng *rand.Rand, cov []complex128, coils, rows, cols int, mask []float32) (*Scan, []complex64, []complex64) {
	n := rows * cols
	img := make([]complex64, n)
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			dy, dx := float64(r-rows/2)/(0.12*float64(rows)), float64(c-cols/2)/(0.12*float64(cols))
			img[r*cols+c] = complex64(complex(30*math.Exp(-(dy*dy+dx*dx)/2), 0) * cmplx.Exp(complex(0, 0.01*float64(r))))
		}
	}
	maps := make([]complex64, coils*n)
	for k := 0; k < coils; k++ {
		th := 2 * math.Pi * float64(k) / float64(coils)
		for r := 0; r < rows; r++ {
			for c := 0; c < cols; c++ {
				dy, dx := float64(r)/float64(rows)-0.5-0.4*math.Sin(th), float64(c)/float64(cols)-0.5-0.4*math.Cos(th)
				maps[k*n+r*cols+c] = complex64(complex(math.Exp(-(dy*dy+dx*dx)/0.3), 0) * cmplx.Exp(complex(0, th)))
			}
		}
	}
	normaliseMaps(maps, coils, n)
	ksp := make([]complex64, coils*n)
	NewSENSE(maps, coils, rows, cols, mask).Forward(ksp, img)
	noise := correlatedNoise(rng, cov, coils, n)
	for k := 0; k < coils; k++ {
		for i, m := range mask {
			ksp[k*n+i] += complex(m, 0) * noise[k*n+i]
		}
	}
	return &Scan{Coils: coils, Rows: rows, Cols: cols, KSpace: ksp, Mask: mask}, maps, img
}

func TestNoiseFromCorners(t *testing.T) {
	t.Parallel()
	rng := testRand(81)
	coils, rows, cols := 6, 256, 192
	cov := randomCov(rng, coils)
	for i := range cov {
		cov[i] *= 0.01
	}
	mask, err := RandomMask(rows, cols, 0.08, 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	s, _, _ := smoothScan(rng, cov, coils, rows, cols, mask)
	est, err := NoiseFromCorners(s, 0.25)
	if err != nil {
		t.Fatal(err)
	}
	// Sampling error of a covariance entry from m samples is about
	// 1/√m of the largest variance; allow 4 of those.
	m := 0
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			if (r < rows/4 || r >= rows-rows/4) && (c < cols/4 || c >= cols-cols/4) && mask[r*cols+c] != 0 {
				m++
			}
		}
	}
	e, tol := maxCovErr(est, cov, coils), 4/math.Sqrt(float64(m))
	t.Logf("corner estimate from %d samples off by %.3g of the largest variance (tolerance %.3g)", m, e, tol)
	if e > tol {
		t.Errorf("corner estimate off by %.3g of the largest variance", e)
	}
	// The signal really is there: the centre of k-space is not noise-like.
	n := rows * cols
	centre := cmplx.Abs(complex128(s.KSpace[n/2+cols/2]))
	if centre < 100*math.Sqrt(real(cov[0])) {
		t.Fatalf("test signal too weak: centre %.3g", centre)
	}
}

func TestPrewhitenKeepsModelConsistent(t *testing.T) {
	t.Parallel()
	// Whitening k-space and maps with the same L⁻¹ must give k-space that
	// the whitened operator reproduces: y' − A'x = L⁻¹(y − Ax), and the
	// whitened residual (pure noise) must have identity covariance.
	rng := testRand(91)
	coils, rows, cols := 4, 64, 64
	cov := randomCov(rng, coils)
	full := make([]float32, rows*cols)
	for i := range full {
		full[i] = 1
	}
	s, maps, img := smoothScan(rng, cov, coils, rows, cols, full)
	est := make([]complex64, len(cov))
	for i, v := range cov {
		est[i] = complex64(v)
	}
	s.NoiseCov = est
	if err := Prewhiten(s, maps); err != nil {
		t.Fatal(err)
	}
	if s.NoiseCov[0] != 1 || s.NoiseCov[1] != 0 {
		t.Errorf("noise covariance after whitening: %v", s.NoiseCov[:coils])
	}
	res := make([]complex64, len(s.KSpace))
	NewSENSE(maps, coils, rows, cols, full).Forward(res, img)
	for i := range res {
		res[i] = s.KSpace[i] - res[i]
	}
	white, _ := NoiseCovariance(res, coils)
	id := make([]complex128, coils*coils)
	for i := 0; i < coils; i++ {
		id[i*coils+i] = 1
	}
	if e := maxCovErr(white, id, coils); e > 0.1 {
		t.Errorf("whitened residual covariance off identity by %.3g", e)
	}
}
