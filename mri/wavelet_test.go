package mri

import (
	"context"
	"math"
	"math/cmplx"
	"testing"
)

func TestWaveletFilters(t *testing.T) {
	t.Parallel()
	for _, k := range []WaveletKind{Haar, Daubechies2} {
		h, err := waveletFilter(k)
		if err != nil {
			t.Fatal(err)
		}
		var s, s2, s4 float64
		for i, v := range h {
			s += v
			s2 += v * v
			if i+2 < len(h) {
				s4 += v * h[i+2]
			}
		}
		if math.Abs(s-math.Sqrt2) > 1e-14 || math.Abs(s2-1) > 1e-14 || math.Abs(s4) > 1e-14 {
			t.Errorf("%v: Σh = %v, Σh² = %v, Σh_k h_{k+2} = %v", k, s, s2, s4)
		}
	}
	if _, err := waveletFilter(WaveletKind(9)); err == nil {
		t.Error("unknown wavelet accepted")
	}
	// Vanishing moments: db2's highpass kills ramps, Haar's constants
	// (away from the periodic wrap).
	for _, c := range []struct {
		k    WaveletKind
		sig  func(i int) float64
		wrap int
	}{{Haar, func(int) float64 { return 3 }, 0}, {Daubechies2, func(i int) float64 { return 2 + 0.5*float64(i) }, 2}} {
		w, _ := NewWavelet(c.k, 32, 32, 1)
		in, out := make([]complex64, 32), make([]complex64, 32)
		for i := range in {
			in[i] = complex(float32(c.sig(i)), float32(-c.sig(i)))
		}
		w.filter(out, in, false)
		for k := 16; k < 32-c.wrap; k++ {
			if cmplx.Abs(complex128(out[k])) > 1e-5 {
				t.Errorf("%v: detail %d = %v on a polynomial it should annihilate", c.k, k-16, out[k])
			}
		}
	}
}

func TestWaveletOrthogonalAnySize(t *testing.T) {
	t.Parallel()
	rng := testRand(41)
	for _, sz := range [][2]int{{16, 16}, {64, 48}, {37, 53}, {128, 128}, {20, 100}, {17, 17}, {8, 8}, {1, 1}, {320, 368}, {33, 16}} {
		for _, k := range []WaveletKind{Haar, Daubechies2} {
			w, err := NewWavelet(k, sz[0], sz[1], 0)
			if err != nil {
				t.Fatal(err)
			}
			n := sz[0] * sz[1]
			x, y := randVec(rng, n), randVec(rng, n)
			wx, wy, back := make([]complex64, n), make([]complex64, n), make([]complex64, n)
			w.Forward(wx, x)
			w.Forward(wy, y)
			w.Inverse(back, wx)
			if d := relDiff(back, x); d > 1e-6 {
				t.Errorf("%v %v: reconstruction error %.2g", k, sz, d)
			}
			if d := math.Abs(norm64(wx)-norm64(x)) / norm64(x); d > 1e-6 {
				t.Errorf("%v %v: ‖Ψx‖ differs from ‖x‖ by %.2g", k, sz, d)
			}
			if d := cmplx.Abs(dot64(wx, wy)-dot64(x, y)) / (norm64(x) * norm64(y)); d > 1e-6 {
				t.Errorf("%v %v: ⟨Ψx,Ψy⟩ differs from ⟨x,y⟩ by %.2g", k, sz, d)
			}
			// ΨΨᴴ = I too (Ψ is square): the inverse is also an isometry.
			w.Inverse(back, y)
			w.Forward(wy, back)
			if d := relDiff(wy, y); d > 1e-6 {
				t.Errorf("%v %v: ΨΨᴴ error %.2g", k, sz, d)
			}
			if sz[0] >= 16 && sz[1] >= 16 && w.Levels() == 0 {
				t.Errorf("%v %v: no levels", k, sz)
			}
			// In place gives the same.
			copy(back, x)
			w.Forward(back, back)
			if relDiff(back, wx) != 0 {
				t.Errorf("%v %v: in-place forward differs", k, sz)
			}
		}
	}
}

func TestWaveletLayout(t *testing.T) {
	t.Parallel()
	// One Haar level by hand: the coarse band holds 2×2 block sums / 2.
	rng := testRand(42)
	w, _ := NewWavelet(Haar, 16, 16, 1)
	if cr, cc := w.Coarse(); cr != 8 || cc != 8 || w.Levels() != 1 {
		t.Fatalf("coarse %d×%d after %d levels", cr, cc, w.Levels())
	}
	x := randVec(rng, 256)
	c := make([]complex64, 256)
	w.Forward(c, x)
	for i := 0; i < 8; i++ {
		for j := 0; j < 8; j++ {
			want := (x[2*i*16+2*j] + x[2*i*16+2*j+1] + x[(2*i+1)*16+2*j] + x[(2*i+1)*16+2*j+1]) / 2
			if cmplx.Abs(complex128(c[i*16+j]-want)) > 1e-5 {
				t.Fatalf("coarse (%d,%d) = %v, want %v", i, j, c[i*16+j], want)
			}
		}
	}
	// A constant image has energy only in the coarse band, for any size.
	for _, sz := range [][2]int{{64, 64}, {45, 70}} {
		for _, k := range []WaveletKind{Haar, Daubechies2} {
			w, _ := NewWavelet(k, sz[0], sz[1], 0)
			n := sz[0] * sz[1]
			x := make([]complex64, n)
			for i := range x {
				x[i] = 1 - 2i
			}
			w.Forward(x, x)
			cr, cc := w.Coarse()
			var detail float64
			for r := 0; r < sz[0]; r++ {
				for cl := 0; cl < sz[1]; cl++ {
					if r >= cr || cl >= cc {
						detail += cmplx.Abs(complex128(x[r*sz[1]+cl]))
					}
				}
			}
			if detail > 1e-3 {
				t.Errorf("%v %v: constant image has detail energy %.2g (coarse %d×%d)", k, sz, detail, cr, cc)
			}
		}
	}
}

func TestL1WaveletKKT(t *testing.T) {
	t.Parallel()
	// FISTA's answer must satisfy the optimality conditions of
	// min ½‖Ax−y‖² + λ‖Ψx‖₁: with g = Ψ Aᴴ(Ax−y) and w = Ψx,
	// g_i = −λ w_i/|w_i| where w_i ≠ 0 and |g_i| ≤ λ where w_i = 0.
	rows, cols, coils := 32, 32, 2
	c := newSenseCase(51, coils, rows, cols)
	normaliseMaps(c.maps, coils, rows*cols)
	op := NewSENSE(c.maps, coils, rows, cols, c.mask)
	rng := testRand(52)
	img := make([]complex64, rows*cols)
	for r := 0; r < rows; r++ {
		for k := 0; k < cols; k++ {
			if (r-16)*(r-16)+(k-14)*(k-14) < 100 {
				img[r*cols+k] = 1 + 0.5i
			}
		}
	}
	y := make([]complex64, op.OutLen())
	op.Forward(y, img)
	noise := randVec(rng, len(y))
	for i := range y {
		if y[i] != 0 {
			y[i] += 0.05 * noise[i]
		}
	}
	lambda := 0.1
	for _, k := range []WaveletKind{Haar, Daubechies2} {
		x := make([]complex64, rows*cols)
		it, err := L1Wavelet(context.Background(), x, op, y, rows, cols, L1Options{Lambda: lambda, MaxIter: 3000, Tol: 1e-6, Wavelet: k})
		if err != nil {
			t.Fatal(err)
		}
		res := make([]complex64, len(y))
		op.Forward(res, x)
		for i := range res {
			res[i] -= y[i]
		}
		g := make([]complex64, rows*cols)
		op.Adjoint(g, res)
		wav, _ := NewWavelet(k, rows, cols, 0)
		wav.Forward(g, g)
		w := make([]complex64, rows*cols)
		wav.Forward(w, x)
		var worst float64
		nz := 0
		for i := range g {
			gi, wi := complex128(g[i]), complex128(w[i])
			var v float64
			if cmplx.Abs(wi) > 1e-5 {
				v = cmplx.Abs(gi + complex(lambda, 0)*wi/complex(cmplx.Abs(wi), 0))
				nz++
			} else {
				v = math.Max(0, cmplx.Abs(gi)-lambda)
			}
			worst = math.Max(worst, v/lambda)
		}
		t.Logf("%v: %d iterations, %d nonzero coefficients, worst KKT violation %.2g·λ", k, it, nz, worst)
		if worst > 0.02 {
			t.Errorf("%v: KKT violated by %.2g·λ", k, worst)
		}
		if nz == 0 || nz > rows*cols/2 {
			t.Errorf("%v: %d nonzero coefficients, expected a sparse but nonzero answer", k, nz)
		}
	}
}

func TestL1WaveletOptions(t *testing.T) {
	c := newSenseCase(61, 2, 32, 32)
	op := NewSENSE(c.maps, 2, 32, 32, c.mask)
	y := randVec(testRand(1), op.OutLen())
	x := make([]complex64, 32*32)
	if _, err := L1Wavelet(context.Background(), x, op, y, 32, 31, L1Options{MaxIter: 1}); err == nil {
		t.Error("wrong image size accepted")
	}
	if _, err := L1Wavelet(context.Background(), x, op, y, 32, 32, L1Options{Lambda: -1, MaxIter: 1}); err == nil {
		t.Error("negative λ accepted")
	}
	// Allocations happen once per solve, never per iteration. AllocsPerRun
	// counts the whole process's mallocs, so another goroutine's (the
	// runtime's, a worker pool's) can only add: the least of three
	// measurements is the solve's own.
	leastAllocs := func(f func()) float64 {
		return min(testing.AllocsPerRun(3, f), testing.AllocsPerRun(3, f), testing.AllocsPerRun(3, f))
	}
	allocs := func(iters int) float64 {
		return leastAllocs(func() {
			L1Wavelet(context.Background(), x, op, y, 32, 32, L1Options{Lambda: 0.01, MaxIter: iters, Shift: true, Step: 0.5})
		})
	}
	if a5, a40 := allocs(5), allocs(40); a40 != a5 {
		t.Errorf("L1Wavelet allocates %v times for 5 iterations, %v for 40", a5, a40)
	}
	cgAllocs := func(iters int) float64 {
		return leastAllocs(func() {
			CGSENSE(context.Background(), x, op, y, 0.01, iters, 0, nil)
		})
	}
	if a5, a40 := cgAllocs(5), cgAllocs(40); a40 != a5 {
		t.Errorf("CGSENSE allocates %v times for 5 iterations, %v for 40", a5, a40)
	}
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	it, err := L1Wavelet(ctx, x, op, y, 32, 32, L1Options{Lambda: 0.01, MaxIter: 50, Shift: true, Progress: func(int, float64) {
		calls++
		if calls == 4 {
			cancel()
		}
	}})
	if err == nil || it != 4 {
		t.Errorf("cancel after 4: %d iterations, %v", it, err)
	}
}
