package qc

import (
	"fmt"
	"math"
	"slices"

	"github.com/kspaced/kspaced/mri"
)

// Slice is what QC needs of one reconstructed slice.
type Slice struct {
	// Op is the slice's measurement operator (SENSE with the whitened maps).
	Op                mri.Operator
	Coils, Rows, Cols int
	// KSpace is the whitened data y, [coil][row][col], zero where not sampled.
	KSpace []complex64
	Mask   []float32 // [row][col], 1 where sampled
	// Image is the reconstruction x̂ in the units of KSpace.
	Image []complex64
	// NoiseVar is the per-sample noise variance E|n|² of KSpace that the
	// reconstruction assumed.
	NoiseVar float64
	// DeclaredNoise says NoiseVar came from the file (a noise scan) rather
	// than from the data themselves; only then is it checked against them.
	DeclaredNoise bool
	// Std is the pixelwise posterior std of the magnitude; nil without samples.
	Std []float32
	// Scale maps the image into the prior's space: prior image = Image/Scale.
	Scale float64
}

func (s *Slice) check() error {
	n := s.Rows * s.Cols
	switch {
	case s.Op == nil || s.Coils < 1 || s.Rows < 1 || s.Cols < 1:
		return fmt.Errorf("qc: incomplete slice (operator %v, %d coils, %d×%d)", s.Op != nil, s.Coils, s.Rows, s.Cols)
	case len(s.KSpace) != s.Coils*n || len(s.Mask) != n || len(s.Image) != n:
		return fmt.Errorf("qc: %d k-space values, %d mask entries, %d pixels for %d coils of %d×%d",
			len(s.KSpace), len(s.Mask), len(s.Image), s.Coils, s.Rows, s.Cols)
	case s.Op.InLen() != n || s.Op.OutLen() != s.Coils*n:
		return fmt.Errorf("qc: operator maps %d to %d values, want %d to %d", s.Op.InLen(), s.Op.OutLen(), n, s.Coils*n)
	case s.Std != nil && len(s.Std) != n:
		return fmt.Errorf("qc: std has %d pixels, want %d", len(s.Std), n)
	}
	return nil
}

// DataConsistency is how well the reconstruction explains the measured data.
type DataConsistency struct {
	// Samples is m, the sampled complex measurements (coils × locations).
	Samples int `json:"samples"`
	// Acceleration is the image's pixels over the sampled locations.
	Acceleration float64 `json:"acceleration"`
	// SNR is ‖y‖²/(m σ²): the data energy per sample in noise variances.
	SNR float64 `json:"snr"`
	// Chi2 is ‖y − A x̂‖² / σ² over them.
	Chi2 float64 `json:"chi2"`
	// Ratio is Chi2/m: about 1 for a fixed image and noise of the assumed
	// level, below 1 for a reconstruction fitted to the data.
	Ratio float64 `json:"ratio"`
	// PFixedImage is P(ratio ≥ Ratio) if the residual were pure noise of the
	// assumed level (χ²(2m)/2m); it ignores the fit's lost degrees of freedom.
	PFixedImage float64 `json:"p_fixed_image"`
	// Expected and Threshold are the calibrated typical ratio of the method
	// and the ratio above which the slice is flagged; Percentile places Ratio
	// among the calibration scans.
	Expected   float64 `json:"expected"`
	Threshold  float64 `json:"threshold"`
	Percentile float64 `json:"percentile"`
	// Lines is the number of sampled k-space lines analysed one by one (0 for
	// masks without line structure); EmptyLines those holding no data at all.
	Lines      int `json:"lines"`
	EmptyLines int `json:"empty_lines"`
	// LineOrder is the rank correlation (Spearman) between each signal
	// line's residual and its data energy. A model error (coil maps) leaves
	// residual in proportion to the signal (near 1); motion corrupts a
	// random subset of lines, so strong lines can fit well and weaker ones
	// not (low). 0 with fewer than 5 signal lines.
	LineOrder float64 `json:"line_order"`
}

// minLineSNR is the data energy per sample, in noise variances, above which
// a line carries signal rather than mostly noise.
const minLineSNR = 10

// spearman is the rank correlation of a and b (no ties expected).
func spearman(a, b []float64) float64 {
	ra, rb := ranks(a), ranks(b)
	n := float64(len(a))
	var d2 float64
	for i := range ra {
		d := ra[i] - rb[i]
		d2 += d * d
	}
	return 1 - 6*d2/(n*(n*n-1))
}

func ranks(v []float64) []float64 {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(i, j int) int { return cmpFloat(v[i], v[j]) })
	r := make([]float64, len(v))
	for k, i := range idx {
		r[i] = float64(k)
	}
	return r
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// predict is A x̂, the data the reconstruction predicts.
func (s *Slice) predict() []complex64 {
	ax := make([]complex64, s.Coils*s.Rows*s.Cols)
	s.Op.Forward(ax, s.Image)
	return ax
}

// measureConsistency computes the residual r = y − A x̂ over the sampled
// locations and its per-line pattern, accumulating in float64.
func measureConsistency(s *Slice) *DataConsistency { return consistencyOf(s, s.predict()) }

// consistencyOf is measureConsistency with A x̂ given.
func consistencyOf(s *Slice, ax []complex64) *DataConsistency {
	n := s.Rows * s.Cols
	dc := &DataConsistency{}
	var rr, yy float64
	lines, byCol := lineLayout(s.Mask, s.Rows, s.Cols)
	for c := 0; c < s.Coils; c++ {
		for i := 0; i < n; i++ {
			if s.Mask[i] == 0 {
				continue
			}
			y := complex128(s.KSpace[c*n+i])
			d := y - complex128(ax[c*n+i])
			rr += real(d)*real(d) + imag(d)*imag(d)
			yy += real(y)*real(y) + imag(y)*imag(y)
			dc.Samples++
		}
	}
	if dc.Samples > 0 {
		dc.Acceleration = float64(n*s.Coils) / float64(dc.Samples)
	}
	// Without a noise level the lines can still be checked for data.
	if s.NoiseVar > 0 && dc.Samples > 0 {
		dc.Chi2 = rr / s.NoiseVar
		dc.SNR = yy / s.NoiseVar / float64(dc.Samples)
		dc.Ratio = dc.Chi2 / float64(dc.Samples)
		dc.PFixedImage = ChiSquareSurvival(dc.Ratio, dc.Samples)
	}
	if lines == nil {
		return dc
	}
	var es, ds []float64
	for _, l := range lines {
		var yy, res float64
		m := 0
		for c := 0; c < s.Coils; c++ {
			for j := 0; j < lineLen(byCol, s.Rows, s.Cols); j++ {
				i := lineIndex(byCol, l, j, s.Cols)
				y := complex128(s.KSpace[c*n+i])
				d := y - complex128(ax[c*n+i])
				yy += real(y)*real(y) + imag(y)*imag(y)
				res += real(d)*real(d) + imag(d)*imag(d)
				m++
			}
		}
		dc.Lines++
		if yy == 0 {
			dc.EmptyLines++
			continue
		}
		if s.NoiseVar > 0 && yy/(float64(m)*s.NoiseVar) >= minLineSNR {
			es, ds = append(es, res), append(ds, yy)
		}
	}
	if len(es) >= 5 {
		dc.LineOrder = spearman(es, ds)
	}
	return dc
}

// lineLayout finds the mask's sampled lines: columns when every column is
// sampled entirely or not at all (the fastMRI layout, phase encoding along
// the columns), else rows likewise; nil for masks without lines.
func lineLayout(mask []float32, rows, cols int) (lines []int, byCol bool) {
	colLines := func() ([]int, bool) {
		var ls []int
		for c := 0; c < cols; c++ {
			on := mask[c] != 0
			for r := 1; r < rows; r++ {
				if (mask[r*cols+c] != 0) != on {
					return nil, false
				}
			}
			if on {
				ls = append(ls, c)
			}
		}
		return ls, len(ls) > 0 && len(ls) < cols
	}
	rowLines := func() ([]int, bool) {
		var ls []int
		for r := 0; r < rows; r++ {
			on := mask[r*cols] != 0
			for c := 1; c < cols; c++ {
				if (mask[r*cols+c] != 0) != on {
					return nil, false
				}
			}
			if on {
				ls = append(ls, r)
			}
		}
		return ls, len(ls) > 0 && len(ls) < rows
	}
	if ls, ok := colLines(); ok {
		return ls, true
	}
	if ls, ok := rowLines(); ok {
		return ls, false
	}
	return nil, false
}

func lineLen(byCol bool, rows, cols int) int {
	if byCol {
		return rows
	}
	return cols
}

// lineIndex is the pixel index of the j-th sample of line l.
func lineIndex(byCol bool, l, j, cols int) int {
	if byCol {
		return j*cols + l
	}
	return l*cols + j
}

// Quantile of sorted values, linearly interpolated between order statistics
// (NaN for none).
func Quantile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	h := p * float64(len(sorted)-1)
	lo := int(math.Floor(h))
	hi := min(lo+1, len(sorted)-1)
	return sorted[lo] + (h-float64(lo))*(sorted[hi]-sorted[lo])
}

// Noise compares the declared noise level with the one the data show.
type Noise struct {
	Declared  float64 `json:"declared_variance"`
	Estimated float64 `json:"estimated_variance"`
	// Ratio is Estimated/Declared; within about ±15 % from its samples
	// alone. From readout edges or outer k-space (1-D masks) residual signal
	// biases it up, never down; from the calibration matrix (2-D masks) it
	// is unbiased for equal white coil noise and reads low when the coils'
	// noise is correlated (docs/bench/noise.md).
	Ratio  float64 `json:"ratio"`
	Method string  `json:"method"`
}

// measureNoise estimates the noise of the (whitened) data; nil when the
// data allow no estimate.
func measureNoise(s *Slice) *Noise {
	sc := &mri.Scan{Coils: s.Coils, Rows: s.Rows, Cols: s.Cols, KSpace: s.KSpace, Mask: s.Mask}
	est, err := mri.EstimateNoise(sc)
	if err != nil {
		return nil
	}
	e := est.Mean()
	return &Noise{Declared: s.NoiseVar, Estimated: e, Ratio: e / s.NoiseVar, Method: est.Method}
}
