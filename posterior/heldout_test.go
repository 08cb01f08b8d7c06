package posterior

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kspaced/kspaced/priors"
)

// The held-out check against a Gaussian prior whose posterior MMPS samples
// exactly: with the true prior the ratio is 1; with a prior whose spread is
// halved (every std × 0.5, the same mean) the samples are too alike and the
// ratio says so, and with a doubled one it falls below 1.
func TestCheckSpreadGaussian(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 41))
	const h, w, r, noiseVar = 8, 8, 3, 0.02
	n := 2 * h * w
	mu, d, u := make([]float32, n), make([]float32, n), make([]float32, n*r)
	for i := range mu {
		mu[i], d[i] = float32(0.5*rng.NormFloat64()), 0.05
	}
	for i := range u {
		u[i] = float32(0.3 * rng.NormFloat64())
	}
	scaled := func(s float32) *priors.Gaussian {
		ds, us := make([]float32, n), make([]float32, n*r)
		for i := range d {
			ds[i] = d[i] * s * s
		}
		for i := range u {
			us[i] = u[i] * s
		}
		g, err := priors.NewGaussian(mu, ds, us, 2, h, w)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	truth := scaled(1)
	// Columns 0, 2, 3, 4 (the centre, never held out) and 6 measured: a 1-D mask.
	mask := make([]float32, h*w)
	for y := range h {
		for _, x := range []int{0, 2, 3, 4, 6} {
			mask[y*w+x] = 1
		}
	}
	full := make([]bool, h*w)
	for i := range full {
		full[i] = true
	}
	A := smpNewMaskedFFT(h, w, full)
	const images, S = 48, 8
	ratio := func(g *priors.Gaussian) (float64, SpreadCheck) {
		var res, spread float64
		var last SpreadCheck
		for im := range images {
			_, y := smpMeasure(t, rand.New(rand.NewPCG(uint64(im), 7)), truth, A, noiseVar)
			sc, err := CheckSpread(context.Background(), g, A, y, mask, h, w, 1,
				SampleOptions{Steps: 256, CGIter: r + 1, Samples: S, NoiseVar: noiseVar, Seed: uint64(im)},
				HoldOutOptions{Fraction: 0.5, Seed: uint64(im)})
			if err != nil {
				t.Fatal(err)
			}
			res += sc.Residual - sc.NoiseVar
			spread += (1 + 1.0/S) * sc.Spread
			last = sc
		}
		return math.Sqrt(res / spread), last
	}
	exact, sc := ratio(truth)
	if sc.Lines != 2 || sc.Held != 2*h {
		t.Errorf("held out %d lines, %d values; want 2 columns of %d (half of the 4 outside the centre)", sc.Lines, sc.Held, h)
	}
	narrow, _ := ratio(scaled(0.5))
	wide, _ := ratio(scaled(2))
	t.Logf("pooled ratio over %d images: true prior %.3f, std halved %.3f, std doubled %.3f", images, exact, narrow, wide)
	if math.Abs(exact-1) > 0.12 {
		t.Errorf("true prior: ratio %.3f, want 1 ± 0.12", exact)
	}
	if narrow < 1.4 {
		t.Errorf("halved prior: ratio %.3f, want ≥ 1.4 (its samples are too alike)", narrow)
	}
	if wide > 0.75 {
		t.Errorf("doubled prior: ratio %.3f, want ≤ 0.75", wide)
	}
}

func TestHoldOut(t *testing.T) {
	const rows, cols = 20, 10
	count := func(h heldOut) (n int) { return len(h.pos) }
	// Rows 0, 5, 9, 10 (centre), 15 measured in full: row lines.
	rowMask := make([]float32, rows*cols)
	for _, r := range []int{0, 5, 9, 10, 15} {
		for c := range cols {
			rowMask[r*cols+c] = 1
		}
	}
	h := holdOut(rowMask, rows, cols, HoldOutOptions{Fraction: 0.5, Seed: 3})
	if h.lines != 2 || count(h) != 2*cols {
		t.Errorf("row mask: %d lines, %d positions; want 2 of the 4 outside the centre, %d positions", h.lines, count(h), 2*cols)
	}
	for _, p := range h.pos {
		if r := p / cols; r == 10 || rowMask[p] == 0 {
			t.Errorf("row mask: held out position %d (row %d), the centre or unmeasured", p, r)
		}
	}
	// Columns 1, 5 (centre), 8 in full: column lines.
	colMask := make([]float32, rows*cols)
	for r := range rows {
		for _, c := range []int{1, 5, 8} {
			colMask[r*cols+c] = 1
		}
	}
	h = holdOut(colMask, rows, cols, HoldOutOptions{Fraction: 0.01})
	if h.lines != 1 || count(h) != rows {
		t.Errorf("column mask: %d lines, %d positions; want at least 1 line of %d", h.lines, count(h), rows)
	}
	for _, p := range h.pos {
		if c := p % cols; c == 5 {
			t.Errorf("column mask: held out the centre column")
		}
	}
	// Scattered points: single points, never in the centre in both axes.
	ptMask := make([]float32, rows*cols)
	for _, p := range []int{3, 47, 10*cols + 5, 150, 199} {
		ptMask[p] = 1
	}
	h = holdOut(ptMask, rows, cols, HoldOutOptions{Fraction: 1})
	if h.lines != 4 || count(h) != 4 {
		t.Errorf("point mask: %d points; want the 4 outside the centre", h.lines)
	}
	if h = holdOut(make([]float32, rows*cols), rows, cols, HoldOutOptions{}); h.lines != 0 {
		t.Errorf("empty mask: held out %d", h.lines)
	}
}

// A mask of calibration lines alone leaves nothing to hold out: a sentinel
// error the pipeline turns into "no ratio" and a warning.
func TestCheckSpreadNothingToHoldOut(t *testing.T) {
	const h, w = 8, 8
	g := smpPrior(t, rand.New(rand.NewPCG(1, 1)), h, w, 2, 1)
	full := make([]bool, h*w)
	for i := range full {
		full[i] = true
	}
	A := smpNewMaskedFFT(h, w, full)
	mask := make([]float32, h*w)
	for y := range h {
		mask[y*w+w/2] = 1 // the centre column only
	}
	_, y := smpMeasure(t, rand.New(rand.NewPCG(2, 2)), g, A, 0.01)
	_, err := CheckSpread(context.Background(), g, A, y, mask, h, w, 1, SampleOptions{Steps: 4, Samples: 2, NoiseVar: 0.01}, HoldOutOptions{})
	if !errors.Is(err, ErrNothingToHoldOut) {
		t.Fatalf("centre-only mask: %v, want ErrNothingToHoldOut", err)
	}
}
