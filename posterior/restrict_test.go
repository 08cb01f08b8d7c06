package posterior

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kspaced/kspaced/mri"
)

// Restrict(A) is G·A: its forward is A's output at Keep and its adjoint
// passes the dot test against the forward.
func TestRestrictIsRowSelection(t *testing.T) {
	rng := rand.New(rand.NewPCG(30, 30))
	const coils, h, w = 3, 6, 5
	A, mask := restrictSENSE(rng, coils, h, w)
	keep := Measured(mask, coils)
	if _, err := Restrict(A, []int{3, 2}); err == nil {
		t.Error("indices out of order accepted")
	}
	if _, err := Restrict(A, []int{A.OutLen()}); err == nil {
		t.Error("index past the output accepted")
	}
	R, err := Restrict(A, keep)
	if err != nil {
		t.Fatal(err)
	}
	x := randComplex(rng, h*w)
	full := make([]complex64, A.OutLen())
	A.Forward(full, x)
	got := make([]complex64, R.OutLen())
	R.Forward(got, x)
	nonzero := 0
	for _, v := range full {
		if v != 0 {
			nonzero++
		}
	}
	if len(keep) != nonzero {
		t.Fatalf("Measured keeps %d values, A's output has %d non-zero ones", len(keep), nonzero)
	}
	for i, k := range keep {
		if got[i] != full[k] {
			t.Fatalf("output %d: %v, A gives %v at %d", i, got[i], full[k], k)
		}
	}
	for range 3 { // the dot test, twice reusing the scatter buffer
		v := randComplex(rng, R.OutLen())
		back := make([]complex64, h*w)
		R.Adjoint(back, v)
		R.Forward(got, x)
		lhs, rhs := cdot(got, v), cdot(x, back)
		if math.Abs(real(lhs-rhs)) > 1e-5*math.Abs(real(lhs)) || math.Abs(imag(lhs-rhs)) > 1e-5*math.Abs(real(lhs)) {
			t.Fatalf("⟨Rx, v⟩ = %v, ⟨x, Rᴴv⟩ = %v", lhs, rhs)
		}
	}
	// Keeping only some measured values (CheckSpread holds the others out),
	// A's output is non-zero outside Keep: a Forward must not leak into the
	// next Adjoint.
	var half []int
	for i, k := range keep {
		if i%2 == 0 {
			half = append(half, k)
		}
	}
	H, err := Restrict(A, half)
	if err != nil {
		t.Fatal(err)
	}
	hv, hx := make([]complex64, H.OutLen()), make([]complex64, h*w)
	for range 2 {
		v := randComplex(rng, H.OutLen())
		H.Forward(hv, x)
		H.Adjoint(hx, v)
		lhs, rhs := cdot(hv, v), cdot(x, hx)
		if math.Abs(real(lhs-rhs)) > 1e-5*math.Abs(real(lhs)) || math.Abs(imag(lhs-rhs)) > 1e-5*math.Abs(real(lhs)) {
			t.Fatalf("half kept, after a Forward: ⟨Rx, v⟩ = %v, ⟨x, Rᴴv⟩ = %v", lhs, rhs)
		}
	}
}

// Sampling with the restricted operator and the measured values of y gives
// the same samples as with the full operator, for both covariances: the
// unsampled values are zeros that add nothing to any CG inner product.
func TestRestrictedSamplingEqualsFull(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 31))
	const coils, h, w = 3, 6, 5
	A, mask := restrictSENSE(rng, coils, h, w)
	g := smpPrior(t, rng, h, w, 0, 1)
	_, y := smpMeasure(t, rng, g, A, 0.02)
	for i := range y { // unsampled k-space is zero in a scan
		if mask[i%(h*w)] == 0 {
			y[i] = 0
		}
	}
	R, err := Restrict(A, Measured(mask, coils))
	if err != nil {
		t.Fatal(err)
	}
	yr := make([]complex64, R.OutLen())
	R.Gather(yr, y)
	for _, cov := range []string{CovDiagonal, CovJacobian} {
		opt := SampleOptions{Steps: 6, Covariance: cov, Samples: 3, NoiseVar: 0.02, Seed: 5}
		want, err := SamplePosterior(context.Background(), g, A, y, opt)
		if err != nil {
			t.Fatal(err)
		}
		got, err := SamplePosterior(context.Background(), g, R, yr, opt)
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for i, v := range want.Samples {
			worst = max(worst, cabs64(got.Samples[i]-v)/max(cabs64(v), 1e-3))
		}
		if worst > 1e-5 {
			t.Errorf("%s: restricted samples differ from the full operator's by up to %.2e (relative)", cov, worst)
		}
		if math.Abs(got.Residual-want.Residual) > 1e-6 {
			t.Errorf("%s: residual %v, full operator %v", cov, got.Residual, want.Residual)
		}
	}
}

func restrictSENSE(rng *rand.Rand, coils, h, w int) (*mri.SENSE, []float32) {
	op := smpNewSENSE(rng, coils, h, w, smpRandomMask(rng, h, w, 0.3))
	mask := make([]float32, h*w)
	for i, m := range op.mask {
		if m {
			mask[i] = 1
		}
	}
	return mri.NewSENSE(op.maps, coils, h, w, mask), mask
}

func randComplex(rng *rand.Rand, n int) []complex64 {
	v := make([]complex64, n)
	for i := range v {
		v[i] = complex(float32(rng.NormFloat64()), float32(rng.NormFloat64()))
	}
	return v
}

func cdot(a, b []complex64) complex128 {
	var s complex128
	for i := range a {
		s += complex128(a[i]) * complex(real(complex128(b[i])), -imag(complex128(b[i])))
	}
	return s
}

func cabs64(v complex64) float64 { return math.Hypot(float64(real(v)), float64(imag(v))) }
