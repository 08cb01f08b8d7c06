package simulate

import (
	"math"
	"math/cmplx"
	"math/rand/v2"
	"strings"
	"testing"
)

// naiveKSpace is the centred orthonormal DFT of maps·img in float64, straight
// from its definition (DC at index ⌊N/2⌋ in both domains).
func naiveKSpace(img, maps []complex64, coils, rows, cols int) []complex128 {
	out := make([]complex128, coils*rows*cols)
	norm := 1 / math.Sqrt(float64(rows*cols))
	for c := 0; c < coils; c++ {
		for ky := 0; ky < rows; ky++ {
			for kx := 0; kx < cols; kx++ {
				var s complex128
				for y := 0; y < rows; y++ {
					for x := 0; x < cols; x++ {
						ph := -2 * math.Pi * (float64((ky-rows/2)*(y-rows/2))/float64(rows) + float64((kx-cols/2)*(x-cols/2))/float64(cols))
						v := complex128(maps[(c*rows+y)*cols+x]) * complex128(img[y*cols+x])
						s += v * cmplx.Rect(1, ph)
					}
				}
				out[(c*rows+ky)*cols+kx] = s * complex(norm, 0)
			}
		}
	}
	return out
}

func TestKSpaceMatchesNaiveDFT(t *testing.T) {
	t.Parallel()
	const coils, rows, cols = 3, 6, 5 // odd and even sizes
	rng := rand.New(rand.NewPCG(11, 12))
	img := make([]complex64, rows*cols)
	maps := make([]complex64, coils*rows*cols)
	for i := range img {
		img[i] = complex(float32(rng.NormFloat64()), float32(rng.NormFloat64()))
	}
	for i := range maps {
		maps[i] = complex(float32(rng.NormFloat64()), float32(rng.NormFloat64()))
	}
	mask := make([]float32, rows*cols)
	for i := range mask {
		if rng.IntN(2) == 0 {
			mask[i] = 1
		}
	}
	scan, err := KSpace(img, maps, coils, rows, cols, mask, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := scan.Validate(); err != nil {
		t.Fatal(err)
	}
	ref := naiveKSpace(img, maps, coils, rows, cols)
	for i, want := range ref {
		want *= complex(float64(mask[i%(rows*cols)]), 0)
		if cmplx.Abs(complex128(scan.KSpace[i])-want) > 1e-5*(1+cmplx.Abs(want)) {
			t.Fatalf("sample %d = %v, naive DFT %v", i, scan.KSpace[i], want)
		}
	}
	for i := range scan.NoiseCov {
		if scan.NoiseCov[i] != 0 {
			t.Fatalf("noise-free scan has covariance entry %d = %v", i, scan.NoiseCov[i])
		}
	}
}

func TestKSpaceNoiseStatistics(t *testing.T) {
	t.Parallel()
	const coils, rows, cols, std = 4, 64, 64, 0.3
	npix := rows * cols
	img := make([]complex64, npix)
	maps := CoilMaps(coils, rows, cols)
	mask := make([]float32, npix)
	for i := 0; i < npix; i += 2 {
		mask[i] = 1
	}
	scan, err := KSpace(img, maps, coils, rows, cols, mask, std, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var mean complex128
	var vr, vi float64
	var cross complex128 // coil 0 × coil 1
	for c := 0; c < coils; c++ {
		for i := 0; i < npix; i++ {
			v := complex128(scan.KSpace[c*npix+i])
			if mask[i] == 0 {
				if v != 0 {
					t.Fatalf("unsampled location %d of coil %d holds %v", i, c, v)
				}
				continue
			}
			n++
			mean += v
			vr += real(v) * real(v)
			vi += imag(v) * imag(v)
			if c == 0 {
				cross += v * cmplx.Conj(complex128(scan.KSpace[npix+i]))
			}
		}
	}
	fn := float64(n)
	mean /= complex(fn, 0)
	vr /= fn
	vi /= fn
	half := std * std / 2
	// Variance estimates from n samples have relative sd √(2/n) ≈ 1.6% here.
	if math.Abs(vr-half) > 0.06*half || math.Abs(vi-half) > 0.06*half {
		t.Errorf("noise variance re %v im %v, want %v each", vr, vi, half)
	}
	if cmplx.Abs(mean) > 5*std/math.Sqrt(fn) {
		t.Errorf("noise mean %v", mean)
	}
	if cmplx.Abs(cross)/(fn/coils) > 5*std*std/math.Sqrt(fn/coils) {
		t.Errorf("coils 0 and 1 correlate: %v", cross/complex(fn/coils, 0))
	}
	for a := 0; a < coils; a++ {
		for b := 0; b < coils; b++ {
			want := complex64(0)
			if a == b {
				want = complex(std*std, 0)
			}
			if cmplx.Abs(complex128(scan.NoiseCov[a*coils+b]-want)) > 1e-7 {
				t.Errorf("NoiseCov[%d][%d] = %v, want %v", a, b, scan.NoiseCov[a*coils+b], want)
			}
		}
	}
	again, _ := KSpace(img, maps, coils, rows, cols, mask, std, rand.New(rand.NewPCG(1, 2)))
	for i := range again.KSpace {
		if again.KSpace[i] != scan.KSpace[i] {
			t.Fatal("the same seed gave different noise")
		}
	}
}

func TestKSpaceRejectsBadInput(t *testing.T) {
	t.Parallel()
	img := make([]complex64, 16)
	maps := make([]complex64, 32)
	rng := rand.New(rand.NewPCG(1, 1))
	cases := []struct {
		name string
		run  func() error
		want string
	}{
		{"coils", func() error { _, err := KSpace(img, maps, 0, 4, 4, nil, 0, nil); return err }, "coil count"},
		{"matrix", func() error { _, err := KSpace(img, maps, 2, 0, 4, nil, 0, nil); return err }, "matrix"},
		{"image", func() error { _, err := KSpace(img[:3], maps, 2, 4, 4, nil, 0, nil); return err }, "image has"},
		{"maps", func() error { _, err := KSpace(img, maps[:5], 2, 4, 4, nil, 0, nil); return err }, "maps have"},
		{"mask length", func() error { _, err := KSpace(img, maps, 2, 4, 4, make([]float32, 3), 0, nil); return err }, "mask has"},
		{"mask value", func() error {
			m := make([]float32, 16)
			m[3] = 0.5
			_, err := KSpace(img, maps, 2, 4, 4, m, 0, nil)
			return err
		}, "want 0 or 1"},
		{"negative noise", func() error { _, err := KSpace(img, maps, 2, 4, 4, nil, -1, rng); return err }, "noise std"},
		{"NaN noise", func() error { _, err := KSpace(img, maps, 2, 4, 4, nil, math.NaN(), rng); return err }, "noise std"},
		{"no rng", func() error { _, err := KSpace(img, maps, 2, 4, 4, nil, 1, nil); return err }, "random source"},
	}
	for _, c := range cases {
		if err := c.run(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
	}
}
