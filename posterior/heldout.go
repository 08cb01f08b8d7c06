package posterior

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/cmplx"
	"math/rand/v2"

	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/priors"
)

// SpreadCheck is a truth-free check of a posterior's spread: some measured
// k-space is held out, samples are drawn from the rest, and the held-out
// values' residuals from the sample mean are compared with the spread the
// samples predict there. For a calibrated posterior
//
//	E|y_h − mean_s(A_h x_s)|² = (1 + 1/N)·Var_s(A_h x_s) + σ_y²
//
// so Ratio = √((Σ|r|² − H·σ_y²) / ((1 + 1/N)·Σ var)) is 1; above 1 the
// samples are too alike (intervals too narrow), below 1 too spread.
type SpreadCheck struct {
	// Ratio is the factor the posterior std would need at the held-out
	// frequencies (NaN when the noise alone explains the residuals).
	Ratio float64
	// Held is the number of held-out measurements (coils × positions) and
	// Lines the number of held-out k-space lines (or points, for a mask
	// without full lines).
	Held, Lines int
	// Residual is Σ|r|²/H, Spread Σ var/H and NoiseVar σ_y², per measurement.
	Residual, Spread, NoiseVar float64
}

// ErrNothingToHoldOut is CheckSpread's error for a mask that measured
// nothing outside the centre band (its calibration lines alone).
var ErrNothingToHoldOut = errors.New("spread check: no measured k-space outside the centre to hold out")

// HoldOutOptions says what CheckSpread holds out.
type HoldOutOptions struct {
	// Fraction of the measured lines (or points) outside the centre to hold
	// out (default 0.2; at least one is held out).
	Fraction float64
	// Centre is the half-width, as a fraction of the matrix, of the band
	// around k = 0 that is never held out (default 0.05): the calibration
	// region every mask keeps, where the posterior is nearly certain.
	Centre float64
	// Seed picks the held-out lines.
	Seed uint64
}

// CheckSpread runs the held-out check on one scan: A is the scan's full
// operator to [coil][ky][kx] k-space (rows×cols per coil), kspace the
// measurements in that layout, mask the [ky][kx] sampling mask. opt is
// what SamplePosterior would get for the whole scan (its Samples ≥ 2); the
// check costs one such run.
func CheckSpread(ctx context.Context, d priors.Denoiser, A mri.Operator, kspace []complex64, mask []float32, rows, cols, coils int, opt SampleOptions, ho HoldOutOptions) (SpreadCheck, error) {
	if opt.Samples < 2 {
		return SpreadCheck{}, errors.New("spread check: needs at least 2 samples")
	}
	if len(mask) != rows*cols || A.OutLen() != coils*rows*cols || len(kspace) != A.OutLen() {
		return SpreadCheck{}, fmt.Errorf("spread check: mask %d, k-space %d and operator %d values do not fit %d coils of %d×%d", len(mask), len(kspace), A.OutLen(), coils, rows, cols)
	}
	if !(opt.NoiseVar > 0) || opt.NoiseVarDiag != nil {
		return SpreadCheck{}, errors.New("spread check: needs one known noise variance")
	}
	held := holdOut(mask, rows, cols, ho)
	if held.lines == 0 {
		return SpreadCheck{}, ErrNothingToHoldOut
	}
	keepMask := append([]float32(nil), mask...)
	for _, i := range held.pos {
		keepMask[i] = 0
	}
	keep, err := Restrict(A, Measured(keepMask, coils))
	if err != nil {
		return SpreadCheck{}, err
	}
	y := make([]complex64, keep.OutLen())
	keep.Gather(y, kspace)
	// The ratio's (1 + 1/N) assumes independent samples: antithetic pairs
	// shrink the mean's error and would read as too wide a spread.
	opt.Antithetic = false
	post, err := SamplePosterior(ctx, d, keep, y, opt)
	if err != nil {
		return SpreadCheck{}, err
	}
	hw := rows * cols
	n := len(post.Samples) / hw
	idx := make([]int, 0, coils*len(held.pos))
	for c := range coils {
		for _, i := range held.pos {
			idx = append(idx, c*hw+i)
		}
	}
	// Welford over the samples' predictions at the held-out measurements.
	full := make([]complex64, A.OutLen())
	mean := make([]complex128, len(idx))
	m2 := make([]float64, len(idx))
	for s := range n {
		A.Forward(full, post.Samples[s*hw:(s+1)*hw])
		for j, k := range idx {
			v := complex128(full[k])
			dv := v - mean[j]
			mean[j] += dv / complex(float64(s+1), 0)
			m2[j] += real(dv * cmplx.Conj(v-mean[j]))
		}
	}
	var res, spread float64
	for j, k := range idx {
		r := complex128(kspace[k]) - mean[j]
		res += real(r)*real(r) + imag(r)*imag(r)
		spread += m2[j] / float64(n-1)
	}
	h := float64(len(idx))
	sc := SpreadCheck{Held: len(idx), Lines: held.lines, Residual: res / h, Spread: spread / h, NoiseVar: opt.NoiseVar}
	sc.Ratio = math.NaN()
	if excess := sc.Residual - sc.NoiseVar; excess > 0 && sc.Spread > 0 {
		sc.Ratio = math.Sqrt(excess / ((1 + 1/float64(n)) * sc.Spread))
	}
	return sc, nil
}

// heldOut is what holdOut chose: mask positions and how many lines (or
// points) they make.
type heldOut struct {
	pos   []int
	lines int
}

// holdOut picks ho.Fraction of the measured lines outside the centre band.
// A 1-D mask (every measured row, or every measured column, fully measured)
// loses whole lines, as a less accelerated scan would not have measured
// them; any other mask loses single points.
func holdOut(mask []float32, rows, cols int, ho HoldOutOptions) heldOut {
	frac, centre := ho.Fraction, ho.Centre
	if frac <= 0 {
		frac = 0.2
	}
	if centre <= 0 {
		centre = 0.05
	}
	rowsFull, colsFull := fullLines(mask, rows, cols, true), fullLines(mask, rows, cols, false)
	var units [][]int
	switch {
	case rowsFull:
		for r := range rows {
			if mask[r*cols] != 0 && outside(r, rows, centre) {
				line := make([]int, cols)
				for c := range cols {
					line[c] = r*cols + c
				}
				units = append(units, line)
			}
		}
	case colsFull:
		for c := range cols {
			if mask[c] != 0 && outside(c, cols, centre) {
				line := make([]int, rows)
				for r := range rows {
					line[r] = r*cols + c
				}
				units = append(units, line)
			}
		}
	default:
		for r := range rows {
			for c := range cols {
				if mask[r*cols+c] != 0 && (outside(r, rows, centre) || outside(c, cols, centre)) {
					units = append(units, []int{r*cols + c})
				}
			}
		}
	}
	if len(units) == 0 {
		return heldOut{}
	}
	k := max(1, int(math.Round(frac*float64(len(units)))))
	rng := rand.New(rand.NewPCG(ho.Seed, 0x5eed))
	rng.Shuffle(len(units), func(i, j int) { units[i], units[j] = units[j], units[i] })
	var h heldOut
	for _, u := range units[:k] {
		h.pos = append(h.pos, u...)
	}
	h.lines = k
	return h
}

// fullLines reports whether every row (byRow) or column with a measured
// sample is measured throughout, and at least one is.
func fullLines(mask []float32, rows, cols int, byRow bool) bool {
	outer, inner := rows, cols
	if !byRow {
		outer, inner = cols, rows
	}
	any := false
	for a := range outer {
		n := 0
		for b := range inner {
			i := a*cols + b
			if !byRow {
				i = b*cols + a
			}
			if mask[i] != 0 {
				n++
			}
		}
		if n != 0 && n != inner {
			return false
		}
		any = any || n == inner
	}
	return any
}

// outside reports whether index i of n lies outside the centre band, in
// the FFT's centred layout (k = 0 at n/2).
func outside(i, n int, centre float64) bool {
	return math.Abs(float64(i-n/2)) > centre*float64(n)
}
