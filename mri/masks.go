package mri

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Sampling masks are []float32 [ky][kx] (row-major, rows×cols) of 0 and 1.
// The 1-D masks follow fastMRI: they select columns (the last axis), so every
// row of the mask is the same.

// newRand is the one place a mask seed becomes a generator, so a seed means
// the same mask on every platform and Go release.
func newRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, 0x6b73706163656421))
}

// numLowFreqs is fastMRI's round(cols*centerFraction); Python rounds half to even.
func numLowFreqs(cols int, centerFraction float64) int {
	return int(math.RoundToEven(float64(cols) * centerFraction))
}

// centreStart is where a centred run of n samples out of size starts; the run
// covers index size/2 (the DC sample after fftshift), as fastMRI places it.
func centreStart(size, n int) int { return (size - n + 1) / 2 }

func checkMaskArgs(rows, cols int, centerFraction, acceleration float64) error {
	if rows < 1 || rows > MaxDim || cols < 1 || cols > MaxDim {
		return fmt.Errorf("mask size %d×%d outside [1, %d]", rows, cols, MaxDim)
	}
	if !(centerFraction >= 0 && centerFraction <= 1) {
		return fmt.Errorf("centre fraction %v outside [0, 1]", centerFraction)
	}
	if !(acceleration >= 1) || math.IsInf(acceleration, 0) {
		return fmt.Errorf("acceleration %v must be finite and ≥ 1", acceleration)
	}
	return nil
}

// RandomMask is fastMRI's RandomMaskFunc for one (centre fraction,
// acceleration) pair: the round(cols·centerFraction) centre columns are always
// kept and every other column independently with probability
// (cols/acceleration − numLow)/(cols − numLow), so the expected number of
// columns is cols/acceleration.
func RandomMask(rows, cols int, centerFraction, acceleration float64, seed uint64) ([]float32, error) {
	if err := checkMaskArgs(rows, cols, centerFraction, acceleration); err != nil {
		return nil, fmt.Errorf("random mask: %w", err)
	}
	numLow := numLowFreqs(cols, centerFraction)
	prob := 0.0
	if numLow < cols {
		prob = (float64(cols)/acceleration - float64(numLow)) / float64(cols-numLow)
	}
	if prob < 0 {
		return nil, fmt.Errorf("random mask: %d centre columns already exceed %d/%v", numLow, cols, acceleration)
	}
	rng := newRand(seed)
	u := make([]float64, cols)
	for i := range u {
		u[i] = rng.Float64()
	}
	return rowsOf(randomColumns(cols, numLow, prob, u), rows), nil
}

// randomColumns is the deterministic part of RandomMask, given the uniforms.
func randomColumns(cols, numLow int, prob float64, uniform []float64) []bool {
	keep := make([]bool, cols)
	for i := range keep {
		keep[i] = uniform[i] < prob
	}
	s := centreStart(cols, numLow)
	for i := s; i < s+numLow; i++ {
		keep[i] = true
	}
	return keep
}

// EquispacedMask is fastMRI's original EquispacedMaskFunc (called
// EquispacedMaskFractionFunc in later fastMRI releases; it made the public
// multi-coil masks): the numLow centre columns plus columns
// round(offset + i·a) for i ≥ 0 below cols−1, where the spacing
// a = acceleration·(cols − numLow)/(cols − numLow·acceleration) is adjusted
// so the total is about cols/acceleration, and offset is uniform in
// [0, round(a)). As in fastMRI the outer columns need not be exactly
// equispaced after rounding.
func EquispacedMask(rows, cols int, centerFraction, acceleration float64, seed uint64) ([]float32, error) {
	if err := checkMaskArgs(rows, cols, centerFraction, acceleration); err != nil {
		return nil, fmt.Errorf("equispaced mask: %w", err)
	}
	numLow := numLowFreqs(cols, centerFraction)
	if float64(numLow)*acceleration >= float64(cols) {
		return nil, fmt.Errorf("equispaced mask: %d centre columns already reach %d/%v", numLow, cols, acceleration)
	}
	adj := equispacedSpacing(cols, numLow, acceleration)
	offset := newRand(seed).IntN(int(math.RoundToEven(adj)))
	return rowsOf(equispacedColumns(cols, numLow, adj, offset), rows), nil
}

func equispacedSpacing(cols, numLow int, acceleration float64) float64 {
	return acceleration * float64(numLow-cols) / (float64(numLow)*acceleration - float64(cols))
}

// equispacedColumns is the deterministic part of EquispacedMask. It builds
// the sample positions the way numpy's arange(offset, cols-1, a) does
// (start + i·((start+a) − start)), so rounding ties land where fastMRI's do.
func equispacedColumns(cols, numLow int, adj float64, offset int) []bool {
	keep := make([]bool, cols)
	s := centreStart(cols, numLow)
	for i := s; i < s+numLow; i++ {
		keep[i] = true
	}
	start := float64(offset)
	n := int(math.Ceil((float64(cols-1) - start) / adj))
	delta := (start + adj) - start
	for i := 0; i < n; i++ {
		v := start + adj
		if i == 0 {
			v = start
		} else if i > 1 {
			v = start + float64(i)*delta
		}
		if c := int(math.RoundToEven(v)); c >= 0 && c < cols {
			keep[c] = true
		}
	}
	return keep
}

func rowsOf(keep []bool, rows int) []float32 {
	cols := len(keep)
	m := make([]float32, rows*cols)
	for r := 0; r < rows; r++ {
		for c, k := range keep {
			if k {
				m[r*cols+c] = 1
			}
		}
	}
	return m
}

// PoissonDiscMask is a 2-D variable-density Poisson-disc mask with a fully
// sampled calib×calib centre, the kind `bart poisson -v` and SigPy's poisson
// make. The minimum distance between samples grows linearly with the
// normalised distance from the k-space centre (scaled per axis, so the
// pattern is isotropic in normalised k-space; see radii). The slope is
// searched until rows·cols/samples is within 2% of accel; failing that the
// closest pattern found is returned if within 10%, else an error. The same
// seed gives the same mask.
func PoissonDiscMask(rows, cols int, accel float64, calib int, seed uint64) ([]float32, error) {
	if err := checkMaskArgs(rows, cols, 0, accel); err != nil {
		return nil, fmt.Errorf("poisson-disc mask: %w", err)
	}
	if calib < 0 || calib > min(rows, cols) {
		return nil, fmt.Errorf("poisson-disc mask: calibration size %d outside [0, %d]", calib, min(rows, cols))
	}
	if float64(calib*calib)*accel > float64(rows*cols) {
		return nil, fmt.Errorf("poisson-disc mask: a %d×%d calibration region alone holds more than %d·%d/%v samples", calib, calib, rows, cols, accel)
	}
	g := newPoissonGen(rows, cols, calib)
	if accel == 1 {
		for i := range g.mask {
			g.mask[i] = 1
		}
		return g.mask, nil
	}
	// Root-find slope ↦ acceleration (increasing, a little noisy): bracket
	// by doubling from slope 1, then Illinois false position, keeping the
	// closest pattern seen.
	total := float64(rows * cols)
	var best []float32
	bestErr := math.Inf(1)
	eval := func(slope float64) float64 {
		got := total / float64(g.generate(slope, seed))
		if e := math.Abs(got-accel) / accel; e < bestErr {
			bestErr = e
			best = append(best[:0], g.mask...)
		}
		return got - accel
	}
	lo, flo := 0.0, 1-accel // slope 0 samples everything
	hi, fhi := 1.0, eval(1)
	for fhi < 0 && bestErr > 0.02 && hi < float64(4*max(rows, cols)) {
		lo, flo = hi, fhi
		hi *= 2
		fhi = eval(hi)
	}
	side := 0
	for it := 0; it < 40 && bestErr > 0.02 && fhi >= 0; it++ {
		s := (lo*fhi - hi*flo) / (fhi - flo)
		if !(s > lo && s < hi) {
			s = (lo + hi) / 2
		}
		fs := eval(s)
		if fs < 0 {
			lo, flo = s, fs
			if side == -1 {
				fhi /= 2
			}
			side = -1
		} else {
			hi, fhi = s, fs
			if side == 1 {
				flo /= 2
			}
			side = 1
		}
	}
	if bestErr > 0.1 {
		return nil, fmt.Errorf("poisson-disc mask: closest acceleration found is %.0f%% from %v", 100*bestErr, accel)
	}
	return best, nil
}

type poissonGen struct {
	rows, cols, calib int
	mask              []float32
	active            []int32
}

func newPoissonGen(rows, cols, calib int) *poissonGen {
	return &poissonGen{rows: rows, cols: cols, calib: calib, mask: make([]float32, rows*cols)}
}

// radii is the exclusion radius (in pixels, per axis) around (r, c):
// 0.5 + slope·R at normalised radius R. On the pixel grid a radius up to 1
// excludes nothing and one just above 1 already halves the density, so
// starting below 1 gives a fully sampled centre that shrinks smoothly as the
// slope grows, and every acceleration above 1 is reachable.
func (g *poissonGen) radii(r, c int, slope float64) (ry, rx float64) {
	m := float64(max(g.rows, g.cols))
	y := float64(r-g.rows/2) / (float64(g.rows) / 2)
	x := float64(c-g.cols/2) / (float64(g.cols) / 2)
	rad := 0.5 + slope*math.Hypot(x, y)
	return rad * float64(g.rows) / m, rad * float64(g.cols) / m
}

// generate fills g.mask by Bridson-style dart throwing from a random start
// and returns the number of samples, calibration region included.
func (g *poissonGen) generate(slope float64, seed uint64) int {
	const tries = 30
	rng := newRand(seed)
	clear(g.mask)
	g.active = g.active[:0]
	start := rng.IntN(g.rows * g.cols)
	g.mask[start] = 1
	g.active = append(g.active, int32(start))
	for len(g.active) > 0 {
		ai := rng.IntN(len(g.active))
		p := int(g.active[ai])
		pr, pc := p/g.cols, p%g.cols
		ry, rx := g.radii(pr, pc, slope)
		// Candidates at 1–2 radii, but at least at the neighbouring pixels.
		ry, rx = max(ry, 1), max(rx, 1)
		placed := false
		for t := 0; t < tries; t++ {
			d := 1 + rng.Float64()
			th := 2 * math.Pi * rng.Float64()
			r := pr + int(math.Round(d*ry*math.Sin(th)))
			c := pc + int(math.Round(d*rx*math.Cos(th)))
			if r < 0 || r >= g.rows || c < 0 || c >= g.cols || g.mask[r*g.cols+c] != 0 {
				continue
			}
			if g.free(r, c, slope) {
				g.mask[r*g.cols+c] = 1
				g.active = append(g.active, int32(r*g.cols+c))
				placed = true
				break
			}
		}
		if !placed {
			g.active[ai] = g.active[len(g.active)-1]
			g.active = g.active[:len(g.active)-1]
		}
	}
	r0, c0 := centreStart(g.rows, g.calib), centreStart(g.cols, g.calib)
	for r := r0; r < r0+g.calib; r++ {
		for c := c0; c < c0+g.calib; c++ {
			g.mask[r*g.cols+c] = 1
		}
	}
	n := 0
	for _, v := range g.mask {
		if v != 0 {
			n++
		}
	}
	return n
}

// free reports whether no sample lies inside the exclusion ellipse of (r, c).
func (g *poissonGen) free(r, c int, slope float64) bool {
	ry, rx := g.radii(r, c, slope)
	dy, dx := int(math.Ceil(ry)), int(math.Ceil(rx))
	for rr := max(0, r-dy); rr <= min(g.rows-1, r+dy); rr++ {
		fy := float64(rr-r) / ry
		for cc := max(0, c-dx); cc <= min(g.cols-1, c+dx); cc++ {
			if g.mask[rr*g.cols+cc] == 0 {
				continue
			}
			fx := float64(cc-c) / rx
			if fy*fy+fx*fx < 1 {
				return false
			}
		}
	}
	return true
}
