package qc

import (
	"math"
	"math/cmplx"
)

// LineMotion measures how much of the residual rigid motion between
// phase-encode lines explains. A patient who moves between lines moves the
// object by a translation, which multiplies each line's k-space by a linear
// phase (the shift along the line) and a constant phase (the shift across
// it). Fitting that phase to each sampled line, against the prediction
// A x̂ of the reconstruction, removes a large share of the residual of a
// scan with motion, and almost none of noise or of model errors, which
// such a phase does not describe.
type LineMotion struct {
	// Explained is Σ_l (‖r_l‖² − min_{s,θ} ‖y_l − e^{iθ} R(s) (A x̂)_l‖²) / Σ_l ‖r_l‖²
	// over the sampled lines l: the share of the residual that a
	// translation by s ∈ [−MaxShift, MaxShift] pixels along each line (R(s)
	// its phase ramp) and a constant phase θ per line remove.
	Explained float64 `json:"explained"`
	Lines     int     `json:"lines"`
	// Threshold and Percentile as for the other measures (0 without calibration).
	Threshold  float64 `json:"threshold"`
	Percentile float64 `json:"percentile"`
}

// MaxShift is the largest translation, in pixels, fitted to a line; shiftStep
// the grid it is searched on.
const (
	MaxShift  = 4.0
	shiftStep = 0.1
)

// measureLineMotion fits each sampled line of s (ax = A x̂) a shift and a
// phase; nil for masks without line structure or with a zero residual.
func measureLineMotion(s *Slice, ax []complex64) *LineMotion {
	lines, byCol := lineLayout(s.Mask, s.Rows, s.Cols)
	if lines == nil {
		return nil
	}
	n := s.Rows * s.Cols
	ln := lineLen(byCol, s.Rows, s.Cols)
	// The ramp for shift s at sample j is e^{2πi j s/ln}; its origin does
	// not matter (θ absorbs a constant phase).
	steps := int(math.Round(MaxShift / shiftStep))
	// ramps[k][j] = e^{−2πi j s_k/ln}, shared by every line.
	ramps := make([][]complex128, 2*steps+1)
	for k := range ramps {
		w := 2 * math.Pi * float64(k-steps) * shiftStep / float64(ln)
		ramps[k] = make([]complex128, ln)
		for j := range ramps[k] {
			sn, cs := math.Sincos(w * float64(j))
			ramps[k][j] = complex(cs, -sn)
		}
	}
	cross := make([]complex128, ln)
	var gain, res float64
	m := &LineMotion{}
	for _, l := range lines {
		var r0, yy, pp float64
		for j := range cross {
			cross[j] = 0
		}
		for c := 0; c < s.Coils; c++ {
			for j := 0; j < ln; j++ {
				i := c*n + lineIndex(byCol, l, j, s.Cols)
				y, p := complex128(s.KSpace[i]), complex128(ax[i])
				d := y - p
				r0 += real(d)*real(d) + imag(d)*imag(d)
				yy += real(y)*real(y) + imag(y)*imag(y)
				pp += real(p)*real(p) + imag(p)*imag(p)
				cross[j] += y * cmplx.Conj(p)
			}
		}
		// min_θ ‖y − e^{iθ} R p‖² = ‖y‖² + ‖p‖² − 2 |Σ conj(R p) y|.
		best := 0.0
		for _, ramp := range ramps {
			var sum complex128
			for j, v := range cross {
				sum += v * ramp[j]
			}
			best = math.Max(best, r0-(yy+pp-2*cmplx.Abs(sum)))
		}
		gain += best
		res += r0
		m.Lines++
	}
	if !(res > 0) {
		return nil
	}
	m.Explained = gain / res
	return m
}
