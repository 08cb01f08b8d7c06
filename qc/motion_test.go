package qc

import (
	"math"
	"math/cmplx"
	"math/rand/v2"
	"testing"

	"github.com/kspaced/kspaced/mri/simulate"
)

// translateLine multiplies sampled column l of s's data by the k-space
// phase of a translation by (dy, dx) pixels (centred k-space).
func translateLine(s *Slice, l int, dy, dx float64) {
	n := s.Rows * s.Cols
	for r := 0; r < s.Rows; r++ {
		ph := -2 * math.Pi * (float64(r-s.Rows/2)*dy/float64(s.Rows) + float64(l-s.Cols/2)*dx/float64(s.Cols))
		f := complex64(cmplx.Exp(complex(0, ph)))
		for c := 0; c < s.Coils; c++ {
			s.KSpace[c*n+r*s.Cols+l] *= f
		}
	}
}

// A translation of some lines by shifts on the search grid is the whole
// residual, and the fit removes all of it; of pure noise it removes about
// what two fitted parameters per line remove (a few per cent here).
func TestLineMotionAnalytic(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	s := testSlice(t, rng, 1e-12)
	lines, _ := lineLayout(s.Mask, s.Rows, s.Cols)
	for k, l := range lines {
		if k%2 == 0 {
			translateLine(s, l, float64(k%7)*0.5-1.5, 1.3)
		}
	}
	m := measureLineMotion(s, s.predict())
	if m == nil || m.Lines != len(lines) || m.Explained < 0.999 {
		t.Fatalf("translated lines: %+v, want all of the residual explained over %d lines", m, len(lines))
	}
	var mean float64
	const draws = 20
	for k := 0; k < draws; k++ {
		s := testSlice(t, rng, 0.1)
		mean += measureLineMotion(s, s.predict()).Explained / draws
	}
	// A line holds 2·coils·rows = 128 real noise terms of variance σ²/2;
	// fitting θ removes one of them (σ²/2 of the line's 64σ²) on average,
	// and the shift none: the data are far above the noise, so the shift
	// that best fits noise is far below the 0.1-pixel grid. Expect 1/128,
	// within ±3 sd of a mean of 160 χ²(1) terms.
	if mean < 0.7/128 || mean > 1.35/128 {
		t.Errorf("pure noise: %.5f of the residual explained, want %.5f", mean, 1.0/128)
	}
}

// The closed-form minimum over the constant phase equals a brute-force
// search over phases and shifts in float64.
func TestLineMotionAgainstBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	s := testSlice(t, rng, 0.05)
	lines, _ := lineLayout(s.Mask, s.Rows, s.Cols)
	for _, l := range lines[:3] {
		translateLine(s, l, 2*rng.Float64()-1, 2*rng.Float64()-1)
	}
	ax := s.predict()
	got := measureLineMotion(s, ax)
	n := s.Rows * s.Cols
	var gain, res float64
	for _, l := range lines {
		resid := func(theta, shift float64) float64 {
			var e float64
			for c := 0; c < s.Coils; c++ {
				for r := 0; r < s.Rows; r++ {
					i := c*n + r*s.Cols + l
					p := complex128(ax[i]) * cmplx.Exp(complex(0, theta-2*math.Pi*float64(r)*shift/float64(s.Rows)))
					d := complex128(s.KSpace[i]) - p
					e += real(d)*real(d) + imag(d)*imag(d)
				}
			}
			return e
		}
		r0 := resid(0, 0)
		best := r0
		for k := -40; k <= 40; k++ {
			// 1° grid, then 0.01° steps around its best phase
			th := 0.0
			for j, b := 0, math.Inf(1); j < 360; j++ {
				if e := resid(2*math.Pi*float64(j)/360, float64(k)/10); e < b {
					b, th = e, 2*math.Pi*float64(j)/360
				}
			}
			for j := -100; j <= 100; j++ {
				best = math.Min(best, resid(th+math.Pi/180*float64(j)/100, float64(k)/10))
			}
		}
		gain += r0 - best
		res += r0
	}
	want := gain / res
	// The 0.01° phase steps leave a relative error of about 1e-8 of ‖A x̂‖².
	if math.Abs(got.Explained-want) > 1e-5+1e-4*want {
		t.Errorf("explained %.6f, brute force %.6f", got.Explained, want)
	}
}

// A ramp has one gradient everywhere (score 1); a quadratic has gradients
// linear in the column, whose quantile ratio is computed here directly; a
// noiseless piecewise-constant phantom scores far above both; a speck has too little
// foreground.
func TestEdgeSparsity(t *testing.T) {
	const n = 128
	img := func(f func(r, c int) float64) []complex64 {
		x := make([]complex64, n*n)
		for r := 0; r < n; r++ {
			for c := 0; c < n; c++ {
				x[r*n+c] = complex(float32(f(r, c)), 0)
			}
		}
		return x
	}
	e := measureEdgeSparsity(img(func(r, c int) float64 { return 1 + 0.01*float64(c) }), n, n)
	if e == nil || math.Abs(e.Score-1) > 1e-4 || e.Pixels != (n/2-2)*(n/2-2) {
		t.Fatalf("ramp: %+v, want score 1 over %d pixels", e, (n/2-2)*(n/2-2))
	}
	const a = 1e-4
	e = measureEdgeSparsity(img(func(r, c int) float64 { return 1 + a*float64(c*c) }), n, n)
	// Binned column u holds 1 + a(4u² + 2u + 1/2); its central difference is a(8u + 2).
	var g []float64
	for u := 1; u < n/2-1; u++ {
		for k := 0; k < n/2-2; k++ {
			g = append(g, a*(8*float64(u)+2))
		}
	}
	q := func(p float64) float64 { // linear interpolation between order statistics (g is sorted)
		h := p * float64(len(g)-1)
		lo := int(h)
		return g[lo] + (h-float64(lo))*(g[lo+1]-g[lo])
	}
	if want := q(0.9) / q(0.25); e == nil || math.Abs(e.Score-want) > 1e-3*want {
		t.Errorf("quadratic: %+v, want score %.4f", e, want)
	}
	ph := simulate.RandomEllipses(n, rand.New(rand.NewPCG(9, 10)))
	e = measureEdgeSparsity(img(func(r, c int) float64 { return float64(ph[r*n+c]) }), n, n)
	if e == nil || e.Score < 10 {
		t.Errorf("random ellipses: %+v, want a score far above a head's 3–5 (lab's calibration)", e)
	}
	if e := measureEdgeSparsity(img(func(r, c int) float64 {
		if r > 60 && r < 68 && c > 60 && c < 68 {
			return 1
		}
		return 0
	}), n, n); e != nil {
		t.Errorf("8×8 speck: %+v, want no score", e)
	}
}
