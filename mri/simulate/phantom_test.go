package simulate

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/cmplx"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"

	"github.com/kspaced/kspaced/internal/testutil"
	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/mri/espirit"
)

func TestSheppLoganAnalytic(t *testing.T) {
	t.Parallel()
	const n = 512
	img := SheppLogan(n)
	// The image mean tends to the integral over [−1, 1]² / 4 = Σ A·π·a·b/4.
	var want, got float64
	for _, e := range sheppLogan {
		want += e.value * math.Pi * e.a * e.b / 4
	}
	for _, v := range img {
		got += float64(v)
	}
	got /= n * n
	if math.Abs(got-want) > 0.005*want {
		t.Errorf("mean %.5f, analytic %.5f", got, want)
	}
	// Values at points well inside known regions (y up, row 0 at the top).
	at := func(x, y float64) float32 {
		c := int(math.Floor((x + 1) * n / 2))
		r := int(math.Floor((1 - y) * n / 2))
		return img[r*n+c]
	}
	for _, p := range []struct{ x, y, want float64 }{
		{0, 0, 0.2},      // brain
		{0, 0.9, 1},      // skull
		{0.9, 0.9, 0},    // outside
		{0.22, 0, 0},     // right ventricle: 1 − 0.8 − 0.2
		{-0.22, 0.1, 0},  // left ventricle
		{0, 0.35, 0.3},   // upper ellipse
		{0, -0.1, 0.3},   // small disc below the centre
		{0.3, -0.5, 0.2}, // brain, lower right
	} {
		if v := at(p.x, p.y); math.Abs(float64(v)-p.want) > 1e-6 {
			t.Errorf("value at (%v, %v) = %v, want %v", p.x, p.y, v, p.want)
		}
	}
	if SheppLogan(0) != nil || SheppLogan(mri.MaxDim+1) != nil || len(SheppLogan(1)) != 1 {
		t.Error("size checks")
	}
}

func TestRandomEllipses(t *testing.T) {
	t.Parallel()
	const n = 128
	a := RandomEllipses(n, rand.New(rand.NewPCG(7, 1)))
	b := RandomEllipses(n, rand.New(rand.NewPCG(7, 1)))
	c := RandomEllipses(n, rand.New(rand.NewPCG(8, 1)))
	same, diff, nonzero := true, 0, 0
	for i := range a {
		same = same && a[i] == b[i]
		if a[i] != c[i] {
			diff++
		}
		if a[i] < 0 || a[i] > 1.5 {
			t.Fatalf("pixel %d = %v outside [0, 1.5]", i, a[i])
		}
		if a[i] != 0 {
			nonzero++
			r, col := i/n, i%n
			x, y := (2*float64(col)+1)/n-1, 1-(2*float64(r)+1)/n
			if x*x+y*y > 1 {
				t.Fatalf("pixel (%d, %d) outside the unit disc is %v", r, col, a[i])
			}
		}
	}
	if !same || diff < n*n/20 {
		t.Errorf("same seed equal: %v; another seed changes %d pixels", same, diff)
	}
	if nonzero < n*n/5 {
		t.Errorf("only %d of %d pixels nonzero", nonzero, n*n)
	}
	if RandomEllipses(n, nil) != nil || RandomEllipses(0, rand.New(rand.NewPCG(1, 1))) != nil {
		t.Error("bad arguments should give nil")
	}
}

// skimageResize runs skimage.transform.resize (linear, clamped edges, no
// anti-aliasing) on img.
func skimageResize(t *testing.T, img []float32, rows, cols, nr, nc int) []float64 {
	t.Helper()
	py := testutil.PythonWith(t, "numpy", "skimage")
	src, _ := json.Marshal(img)
	script := fmt.Sprintf(`
import json, sys
import numpy as np
from skimage.transform import resize
a = np.array(json.loads(sys.stdin.read()), dtype=np.float64).reshape(%d, %d)
print(json.dumps(resize(a, (%d, %d), order=1, mode='edge', anti_aliasing=False, preserve_range=True).ravel().tolist()))
`, rows, cols, nr, nc)
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = strings.NewReader(string(src))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("skimage: %v", err)
	}
	var ref []float64
	if err := json.Unmarshal(out, &ref); err != nil {
		t.Fatal(err)
	}
	return ref
}

func TestResize(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	img := make([]float32, 7*5)
	for i := range img {
		img[i] = float32(rng.Float64())
	}
	// Upsampling: linear interpolation, as scikit-image does it.
	got := Resize(img, 7, 5, 16, 13)
	ref := skimageResize(t, img, 7, 5, 16, 13)
	for i := range ref {
		if math.Abs(float64(got[i])-ref[i]) > 1e-6 {
			t.Fatalf("upsampled pixel %d = %v, skimage %v", i, got[i], ref[i])
		}
	}
	// Integer downsampling by area is the block mean.
	big := make([]float32, 12*9)
	for i := range big {
		big[i] = float32(rng.NormFloat64())
	}
	small := Resize(big, 12, 9, 4, 3)
	for r := 0; r < 4; r++ {
		for c := 0; c < 3; c++ {
			var s float64
			for y := 3 * r; y < 3*r+3; y++ {
				for x := 3 * c; x < 3*c+3; x++ {
					s += float64(big[y*9+x])
				}
			}
			if math.Abs(float64(small[r*3+c])-s/9) > 1e-6 {
				t.Errorf("block (%d, %d) = %v, block mean %v", r, c, small[r*3+c], s/9)
			}
		}
	}
	// Fractional area downsampling keeps the mean and constants.
	frac := Resize(big, 12, 9, 5, 7)
	var m1, m2 float64
	for _, v := range big {
		m1 += float64(v) / float64(len(big))
	}
	for _, v := range frac {
		m2 += float64(v) / float64(len(frac))
	}
	if math.Abs(m1-m2) > 1e-6 {
		t.Errorf("area downsampling moved the mean from %v to %v", m1, m2)
	}
	ones := make([]float32, 12*9)
	for i := range ones {
		ones[i] = 2.5
	}
	for i, v := range Resize(ones, 12, 9, 5, 20) {
		if math.Abs(float64(v)-2.5) > 1e-6 {
			t.Fatalf("constant image resized to %v at %d", v, i)
		}
	}
	if Resize(img, 7, 5, 0, 3) != nil || Resize(img, 6, 5, 3, 3) != nil {
		t.Error("bad sizes should give nil")
	}
}

func TestSmoothPhase(t *testing.T) {
	t.Parallel()
	const rows, cols = 96, 80
	for seed := uint64(0); seed < 5; seed++ {
		ph := SmoothPhase(rows, cols, rand.New(rand.NewPCG(seed, 9)))
		lo, hi := math.Inf(1), math.Inf(-1)
		var step float64
		for r := 0; r < rows; r++ {
			for c := 0; c < cols; c++ {
				v := float64(ph[r*cols+c])
				lo, hi = math.Min(lo, v), math.Max(hi, v)
				if c > 0 {
					step = math.Max(step, math.Abs(v-float64(ph[r*cols+c-1])))
				}
				if r > 0 {
					step = math.Max(step, math.Abs(v-float64(ph[(r-1)*cols+c])))
				}
			}
		}
		ptp := hi - lo
		if ptp < 2-1e-5 || ptp > 5+1e-5 || math.Abs(hi+lo) > 1e-5 {
			t.Errorf("seed %d: phase range [%v, %v]", seed, lo, hi)
		}
		// A cubic over [−1, 1] scaled to ptp changes by at most a few ptp
		// per unit length; one pixel is 2/cols of it.
		if step > 10*ptp/cols {
			t.Errorf("seed %d: neighbouring pixels differ by %v rad (ptp %v)", seed, step, ptp)
		}
	}
	if SmoothPhase(0, 3, rand.New(rand.NewPCG(1, 1))) != nil || SmoothPhase(3, 3, nil) != nil {
		t.Error("bad arguments should give nil")
	}
}

func TestCoilMaps(t *testing.T) {
	t.Parallel()
	const coils, rows, cols = 8, 64, 48
	maps := CoilMaps(coils, rows, cols)
	npix := rows * cols
	for i := 0; i < npix; i++ {
		var s float64
		for c := 0; c < coils; c++ {
			v := complex128(maps[c*npix+i])
			s += real(v)*real(v) + imag(v)*imag(v)
		}
		if math.Abs(s-1) > 1e-5 {
			t.Fatalf("pixel %d: Σ|S|² = %v", i, s)
		}
	}
	for c := 0; c < coils; c++ {
		// Each coil is brightest at the edge nearest to it and smooth.
		best, bi := 0.0, 0
		var jump float64
		for i := 0; i < npix; i++ {
			m := cmplx.Abs(complex128(maps[c*npix+i]))
			if m > best {
				best, bi = m, i
			}
			if i%cols > 0 {
				jump = math.Max(jump, cmplx.Abs(complex128(maps[c*npix+i]-maps[c*npix+i-1])))
			}
		}
		th := 2*math.Pi*float64(c)/coils + 0.3
		r, col := bi/cols, bi%cols
		x, y := (2*float64(col)+1)/cols-1, 1-(2*float64(r)+1)/rows
		if x*math.Cos(th)+y*math.Sin(th) < 0.5 {
			t.Errorf("coil %d peaks at (%v, %v), not towards its position at angle %.2f", c, x, y, th)
		}
		if jump > 0.15 {
			t.Errorf("coil %d jumps by %v between neighbouring pixels", c, jump)
		}
	}
	if CoilMaps(0, 4, 4) != nil || CoilMaps(2, 0, 4) != nil || CoilMaps(mri.MaxCoils+1, 4, 4) != nil {
		t.Error("bad sizes should give nil")
	}
}

// TestSimulatedScanCalibrates closes the loop: ESPIRiT on simulated
// undersampled, noisy k-space of a phantom recovers the simulated maps.
func TestSimulatedScanCalibrates(t *testing.T) {
	t.Parallel()
	const coils, n = 8, 128
	rng := rand.New(rand.NewPCG(5, 6))
	mag := SheppLogan(n)
	ph := SmoothPhase(n, n, rng)
	img := make([]complex64, n*n)
	for i := range img {
		img[i] = complex64(cmplx.Rect(float64(mag[i]), float64(ph[i])))
	}
	maps := CoilMaps(coils, n, n)
	mask := make([]float32, n*n)
	for y := 0; y < n; y++ {
		if y%4 == 0 || (y >= n/2-12 && y < n/2+12) {
			for x := 0; x < n; x++ {
				mask[y*n+x] = 1
			}
		}
	}
	scan, err := KSpace(img, maps, coils, n, n, mask, 1e-3, rng)
	if err != nil {
		t.Fatal(err)
	}
	if err := scan.Validate(); err != nil {
		t.Fatal(err)
	}
	est, err := espirit.Maps(context.Background(), scan.KSpace, coils, n, n, scan.Mask, espirit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Correlation inside the object up to the per-pixel phase the image absorbs.
	var num, na, nb float64
	for i := 0; i < n*n; i++ {
		if mag[i] < 0.1 {
			continue
		}
		var dot complex128
		for c := 0; c < coils; c++ {
			a, b := complex128(est[c*n*n+i]), complex128(maps[c*n*n+i])
			dot += cmplx.Conj(a) * b
			na += real(a)*real(a) + imag(a)*imag(a)
			nb += real(b)*real(b) + imag(b)*imag(b)
		}
		num += cmplx.Abs(dot)
	}
	corr := num / math.Sqrt(na*nb)
	t.Logf("ESPIRiT on simulated data: correlation with the simulated maps %.5f", corr)
	if corr < 0.98 {
		t.Errorf("correlation %.4f < 0.98", corr)
	}
}
