package mri

import (
	"context"
	"errors"
	"math"
	"math/cmplx"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// solveDense solves the complex n×n system a x = b (row-major) in float64
// through its real embedding [[Re −Im] [Im Re]].
func solveDense(t *testing.T, a []complex128, b []complex128) []complex128 {
	t.Helper()
	n := len(b)
	m := mat.NewDense(2*n, 2*n, nil)
	rhs := mat.NewVecDense(2*n, nil)
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			v := a[i*n+j]
			m.Set(i, j, real(v))
			m.Set(i, n+j, -imag(v))
			m.Set(n+i, j, imag(v))
			m.Set(n+i, n+j, real(v))
		}
		rhs.SetVec(i, real(b[i]))
		rhs.SetVec(n+i, imag(b[i]))
	}
	var x mat.VecDense
	if err := x.SolveVec(m, rhs); err != nil {
		t.Fatal(err)
	}
	out := make([]complex128, n)
	for i := range out {
		out[i] = complex(x.AtVec(i), x.AtVec(n+i))
	}
	return out
}

// denseSENSE is A as a dense (coils·n)×n matrix, column by column from the
// DFT's definition.
func denseSENSE(c senseCase) []complex128 {
	n := c.rows * c.cols
	m := c.coils * n
	a := make([]complex128, m*n)
	for j := 0; j < n; j++ {
		for k := 0; k < c.coils; k++ {
			img := make([]complex128, n)
			img[j] = complex128(c.maps[k*n+j])
			col := naiveDFT2c(img, c.rows, c.cols, false)
			for i, v := range col {
				a[(k*n+i)*n+j] = v * complex(float64(c.mask[i]), 0)
			}
		}
	}
	return a
}

func TestCGAgainstDenseSolve(t *testing.T) {
	t.Parallel()
	rng := testRand(11)
	n := 30
	b := make([]complex128, n*n)
	for i := range b {
		b[i] = complex(rng.NormFloat64(), rng.NormFloat64())
	}
	// HPD: BᴴB + I.
	a := make([]complex128, n*n)
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			var s complex128
			for k := 0; k < n; k++ {
				s += cmplx.Conj(b[k*n+i]) * b[k*n+j]
			}
			if i == j {
				s++
			}
			a[i*n+j] = s
		}
	}
	normal := func(dst, src []complex64) {
		for i := 0; i < n; i++ {
			var s complex128
			for j := 0; j < n; j++ {
				s += a[i*n+j] * complex128(src[j])
			}
			dst[i] = complex64(s)
		}
	}
	rhs := randVec(rng, n)
	x := make([]complex64, n)
	iters, relres, err := CG(context.Background(), normal, x, rhs, 200, 1e-6)
	if err != nil || relres > 1e-6 {
		t.Fatalf("CG: %d iterations, relres %.2g, %v", iters, relres, err)
	}
	rhs128 := make([]complex128, n)
	for i, v := range rhs {
		rhs128[i] = complex128(v)
	}
	want := solveDense(t, a, rhs128)
	got := make([]complex128, n)
	for i, v := range x {
		got[i] = complex128(v)
	}
	var d, w float64
	for i := range got {
		d += cmplx.Abs(got[i]-want[i]) * cmplx.Abs(got[i]-want[i])
		w += cmplx.Abs(want[i]) * cmplx.Abs(want[i])
	}
	if math.Sqrt(d/w) > 1e-5 {
		t.Errorf("CG differs from the dense solve by %.2g", math.Sqrt(d/w))
	}
	// The true residual agrees with the recursively updated one.
	ax := make([]complex64, n)
	normal(ax, x)
	for i := range ax {
		ax[i] = rhs[i] - ax[i]
	}
	if tr := norm64(ax) / norm64(rhs); tr > 1e-5 {
		t.Errorf("true relative residual %.2g", tr)
	}
	// Warm start at the solution: no iterations needed.
	if it, _, _ := CG(context.Background(), normal, x, rhs, 10, 1e-4); it != 0 {
		t.Errorf("warm start at the solution took %d iterations", it)
	}
	// Zero right-hand side gives zero.
	if _, rr, err := CG(context.Background(), normal, x, make([]complex64, n), 10, 1e-6); err != nil || rr != 0 || norm64(x) != 0 {
		t.Errorf("zero rhs: relres %v, ‖x‖ %v, %v", rr, norm64(x), err)
	}
	if _, _, err := CG(context.Background(), normal, make([]complex64, n-1), rhs, 10, 1e-6); err == nil {
		t.Error("length mismatch: no error")
	}
}

func TestCGCancelAndProgress(t *testing.T) {
	c := newSenseCase(4, 4, 16, 16)
	s := NewSENSE(c.maps, c.coils, c.rows, c.cols, c.mask)
	rhs := randVec(testRand(1), s.InLen())
	ctx, cancel := context.WithCancel(context.Background())
	var seen []float64
	solver := NewCGSolver(s.InLen())
	x := make([]complex64, s.InLen())
	it, _, err := solver.Solve(ctx, s.Normal, x, rhs, 100, 0, func(i int, r float64) {
		seen = append(seen, r)
		if i == 3 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || it != 3 || len(seen) != 3 {
		t.Errorf("cancelled at 3: %d iterations, %d callbacks, %v", it, len(seen), err)
	}
	if !(seen[2] < seen[0]) {
		t.Errorf("residual did not fall: %v", seen)
	}
	if a := testing.AllocsPerRun(5, func() {
		clear(x)
		solver.Solve(context.Background(), s.Normal, x, rhs, 5, 0, nil)
	}); a != 0 {
		t.Errorf("Solve allocates %.1f times per call", a)
	}
}

func TestCGSENSEAgainstDenseSolve(t *testing.T) {
	t.Parallel()
	c := newSenseCase(21, 3, 6, 7)
	n := c.rows * c.cols
	a := denseSENSE(c)
	rng := testRand(22)
	y := randVec(rng, c.coils*n)
	for k := 0; k < c.coils; k++ {
		for i, m := range c.mask {
			y[k*n+i] *= complex(m, 0)
		}
	}
	for _, lambda := range []float64{0.5, 0.01} {
		nm := make([]complex128, n*n)
		rhs := make([]complex128, n)
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				var s complex128
				for k := 0; k < c.coils*n; k++ {
					s += cmplx.Conj(a[k*n+i]) * a[k*n+j]
				}
				if i == j {
					s += complex(lambda, 0)
				}
				nm[i*n+j] = s
			}
			for k := 0; k < c.coils*n; k++ {
				rhs[i] += cmplx.Conj(a[k*n+i]) * complex128(y[k])
			}
		}
		want := solveDense(t, nm, rhs)
		for name, op := range map[string]Operator{
			"sense": NewSENSE(c.maps, c.coils, c.rows, c.cols, c.mask),
			"chain": mustChain(t, NewCoilOp(c.maps, c.coils, c.rows, c.cols), NewFFTOp(c.coils, c.rows, c.cols), NewMaskOp(c.mask, c.coils)),
		} {
			x := make([]complex64, n)
			it, rr, err := CGSENSE(context.Background(), x, op, y, lambda, 500, 1e-6, nil)
			if err != nil {
				t.Fatal(err)
			}
			w := make([]complex64, n)
			for i, v := range want {
				w[i] = complex64(v)
			}
			if d := relDiff(x, w); d > 1e-4 {
				t.Errorf("%s λ=%v: %d iterations (relres %.1g), differs from dense solve by %.2g", name, lambda, it, rr, d)
			}
		}
	}
	if _, _, err := CGSENSE(context.Background(), make([]complex64, n), NewSENSE(c.maps, c.coils, c.rows, c.cols, c.mask), y, -1, 5, 0, nil); err == nil {
		t.Error("negative λ accepted")
	}
}

func mustChain(t *testing.T, ops ...Operator) *Chain {
	t.Helper()
	ch, err := NewChain(ops...)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func TestZeroFilledAndRSS(t *testing.T) {
	t.Parallel()
	c := newSenseCase(31, 4, 8, 6)
	n := c.rows * c.cols
	rng := testRand(32)
	ksp := randVec(rng, c.coils*n)
	for k := 0; k < c.coils; k++ {
		for i, m := range c.mask {
			ksp[k*n+i] *= complex(m, 0)
		}
	}
	c.maps[5], c.maps[n+5], c.maps[2*n+5], c.maps[3*n+5] = 0, 0, 0, 0 // a pixel outside every map
	s := &Scan{Coils: c.coils, Rows: c.rows, Cols: c.cols, KSpace: ksp, Mask: c.mask}
	zf := make([]complex64, n)
	if err := ZeroFilled(zf, s, c.maps); err != nil {
		t.Fatal(err)
	}
	rss := make([]float32, n)
	if err := RSS(rss, s); err != nil {
		t.Fatal(err)
	}
	imgs := make([][]complex128, c.coils)
	for k := range imgs {
		in := make([]complex128, n)
		for i := range in {
			in[i] = complex128(ksp[k*n+i])
		}
		imgs[k] = naiveDFT2c(in, c.rows, c.cols, true)
	}
	for i := 0; i < n; i++ {
		var num complex128
		var den, ss float64
		for k := 0; k < c.coils; k++ {
			m := complex128(c.maps[k*n+i])
			num += cmplx.Conj(m) * imgs[k][i]
			den += real(m)*real(m) + imag(m)*imag(m)
			ss += real(imgs[k][i])*real(imgs[k][i]) + imag(imgs[k][i])*imag(imgs[k][i])
		}
		var want complex128
		if den > 0 {
			want = num / complex(den, 0)
		}
		if cmplx.Abs(complex128(zf[i])-want) > 1e-5*(1+cmplx.Abs(want)) {
			t.Errorf("zero-filled pixel %d: %v, want %v", i, zf[i], want)
		}
		if math.Abs(float64(rss[i])-math.Sqrt(ss)) > 1e-5*(1+math.Sqrt(ss)) {
			t.Errorf("rss pixel %d: %v, want %v", i, rss[i], math.Sqrt(ss))
		}
	}
	if zf[5] != 0 {
		t.Errorf("pixel outside the maps: %v", zf[5])
	}
	// Noise-free fully sampled data: zero-filled recovers the image.
	for i := range c.mask {
		c.mask[i] = 1
	}
	x := randVec(rng, n)
	NewSENSE(c.maps, c.coils, c.rows, c.cols, c.mask).Forward(ksp, x)
	ZeroFilled(zf, s, c.maps)
	x[5] = 0
	if d := relDiff(zf, x); d > 1e-5 {
		t.Errorf("fully sampled zero-filled differs from the image by %.2g", d)
	}
	if err := ZeroFilled(zf, s, c.maps[1:]); err == nil {
		t.Error("short maps accepted")
	}
	if err := RSS(rss[1:], s); err == nil {
		t.Error("short dst accepted")
	}
}
