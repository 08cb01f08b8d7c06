package qc

import (
	"fmt"
	"math"

	"github.com/kspaced/kspaced/priors"
)

// Flag codes; each comes with a Reason in plain words.
const (
	CodeDataMismatch = "data_mismatch"
	CodeMotion       = "motion"
	CodeNoise        = "noise"
	CodeAtypical     = "atypical"
	CodeUncertain    = "uncertain"
)

// Flag says why a reconstruction should not be trusted as it is.
type Flag struct {
	Code   string `json:"code"`
	Reason string `json:"reason"`
}

// Result is the QC of one slice.
type Result struct {
	Method string `json:"method"`
	// Reference names the reconstruction the measures were made on when it
	// is not the job's own: a sampling method's slice is judged on a
	// CG-SENSE reconstruction of the same data, which its calibration knows
	// (pipeline); its std still gives the uncertainty.
	Reference       string           `json:"reference,omitempty"`
	DataConsistency *DataConsistency `json:"data_consistency,omitempty"`
	Noise           *Noise           `json:"noise,omitempty"`
	LineMotion      *LineMotion      `json:"line_motion,omitempty"`
	EdgeSparsity    *EdgeSparsity    `json:"edge_sparsity,omitempty"`
	Typicality      *Typicality      `json:"typicality,omitempty"`
	Uncertainty     *Uncertainty     `json:"uncertainty,omitempty"`
	// Notes say which measures could not be made, and why.
	Notes []string `json:"notes,omitempty"`
	Flags []Flag   `json:"flags"`
}

// Flagged reports whether any flag is raised.
func (r *Result) Flagged() bool { return len(r.Flags) > 0 }

// Measure computes the QC of one slice reconstructed by method and flags
// it against cal (nil: the embedded classical calibration). prior, when not
// nil, scores typicality with cal's settings (DefaultTypicality if none).
// Measures without calibration are reported, not flagged; the mask and
// noise checks need none.
func Measure(s *Slice, method string, prior priors.Denoiser, cal *Calibration) (*Result, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if cal == nil {
		cal = Classical()
	}
	r := &Result{Method: method, Flags: []Flag{}}
	ax := s.predict()
	r.DataConsistency = consistencyOf(s, ax)
	r.LineMotion = measureLineMotion(s, ax)
	r.EdgeSparsity = measureEdgeSparsity(s.Image, s.Rows, s.Cols)
	if !(s.NoiseVar > 0) {
		r.Notes = append(r.Notes, "noise level unknown: the residual cannot be compared with it")
	}
	if s.DeclaredNoise {
		r.Noise = measureNoise(s)
		if r.Noise == nil {
			r.Notes = append(r.Notes, "the data allow no noise estimate to check the declared level against")
		}
	}
	if s.Std != nil {
		r.Uncertainty = measureUncertainty(s.Image, s.Std)
	}
	if prior != nil {
		set := DefaultTypicality
		if cal.Settings != nil {
			set = *cal.Settings
		}
		t, err := TypicalityScore(prior, PriorImage(s.Image, s.Scale), s.Rows, s.Cols, set)
		if err != nil {
			r.Notes = append(r.Notes, "prior typicality not measured: "+err.Error())
		} else {
			r.Typicality = t
		}
	}
	r.Apply(cal)
	return r, nil
}

// MeanSummary is what QC takes from a posterior mean and its std when the
// slice is judged on a reference reconstruction of the same data (pipeline:
// a sampling method's QC): the mean's own data consistency, uncalibrated,
// and the uncertainty (nil without a std).
func MeanSummary(s *Slice) (*DataConsistency, *Uncertainty, error) {
	if err := s.check(); err != nil {
		return nil, nil, err
	}
	var u *Uncertainty
	if s.Std != nil {
		u = measureUncertainty(s.Image, s.Std)
	}
	return measureConsistency(s), u, nil
}

// PriorImage is img divided by scale (prior space); scale ≤ 0 means 1.
func PriorImage(img []complex64, scale float64) []complex64 {
	if !(scale > 0) {
		scale = 1
	}
	out := make([]complex64, len(img))
	inv := complex(float32(1/scale), 0)
	for i, v := range img {
		out[i] = v * inv
	}
	return out
}

// Apply sets the thresholds and percentiles of r's measures from cal and
// decides its flags (replacing any).
func (r *Result) Apply(cal *Calibration) {
	if cal == nil {
		cal = Classical()
	}
	z := cal.Z
	if z <= 0 {
		z = DefaultZ
	}
	if dc := r.DataConsistency; dc != nil {
		bound := ChiSquareUpper(0.001, max(dc.Samples, 1))
		if d, ok := cal.DataConsistency[r.Method]; ok {
			d = d.At(dc.Acceleration, dc.SNR)
			dc.Expected, dc.Threshold, dc.Percentile = d.Median(), max(d.Upper(z), bound), d.Percentile(dc.Ratio)
		} else {
			dc.Expected, dc.Threshold, dc.Percentile = 0, 0, 0
			r.note(fmt.Sprintf("no data-consistency calibration for %s: the residual is reported, not flagged", r.Method))
		}
	}
	var acc, snr float64
	if dc := r.DataConsistency; dc != nil {
		acc, snr = dc.Acceleration, dc.SNR
	}
	if lm := r.LineMotion; lm != nil {
		lm.Threshold, lm.Percentile = 0, 0
		if d, ok := cal.LineMotion[r.Method]; ok {
			d = d.At(acc, snr)
			lm.Threshold, lm.Percentile = min(d.Upper(z), 1), d.Percentile(lm.Explained)
		}
	}
	if e := r.EdgeSparsity; e != nil {
		e.Threshold, e.Percentile = 0, 0
		if d, ok := cal.EdgeSparsity[r.Method]; ok {
			d = d.At(acc, snr)
			e.Threshold, e.Percentile = d.Upper(z), d.Percentile(e.Score)
		}
	}
	if u := r.Uncertainty; u != nil && cal.Uncertainty != nil {
		u.Threshold, u.Percentile = cal.Uncertainty.Upper(z), cal.Uncertainty.Percentile(u.Relative)
	}
	if t := r.Typicality; t != nil {
		if cal.Typicality != nil {
			d := *cal.Typicality
			if dc := r.DataConsistency; dc != nil {
				d = d.At(dc.Acceleration, dc.SNR) // a noisier reconstruction denoises worse
			}
			t.Threshold, t.Percentile = d.Upper(z), d.Percentile(t.Score)
		} else {
			t.Threshold, t.Percentile = 0, 0
			r.note("prior typicality not calibrated for this prior: reported, not flagged")
		}
	}
	r.Flags = decide(r)
}

func (r *Result) note(s string) {
	for _, n := range r.Notes {
		if n == s {
			return
		}
	}
	r.Notes = append(r.Notes, s)
}

// Reasons, in the words the reader of the images sees.
const (
	ReasonData      = "data do not fit the model: check coil maps or mask"
	ReasonMask      = "data do not fit the model: check coil maps or mask (sampled lines hold no data)"
	ReasonMotion    = "motion suspected"
	ReasonNoise     = "noise higher than declared"
	ReasonAtypical  = "anatomy unlike the training data"
	ReasonUncertain = "high uncertainty"
)

// decide turns measures into flags. A noisier-than-declared scan raises
// the residual too: the data flag is then kept only if the residual is still
// too high at the noise level the data show.
func decide(r *Result) []Flag {
	flags := []Flag{}
	dc := r.DataConsistency
	noisy := r.Noise != nil && r.Noise.Ratio > NoiseRatioLimit
	if noisy {
		flags = append(flags, Flag{CodeNoise, ReasonNoise})
	}
	ratio := dc.Ratio
	if noisy {
		ratio /= r.Noise.Ratio
	}
	// Shifted lines say motion; an excess residual says motion when it
	// spares the strong lines, else a model error. A wrong coil map can
	// look like both (a per-line shift explains part of its residual): the
	// reader then sees both reasons.
	moved := r.LineMotion != nil && r.LineMotion.Threshold > 0 && r.LineMotion.Explained > r.LineMotion.Threshold
	excess := dc.Threshold > 0 && ratio > dc.Threshold
	switch {
	case dc.Lines > 0 && float64(dc.EmptyLines) > EmptyLineShare*float64(dc.Lines):
		flags = append(flags, Flag{CodeDataMismatch, ReasonMask})
	case moved || (excess && dc.Lines > 0 && dc.LineOrder < MotionOrder):
		flags = append(flags, Flag{CodeMotion, ReasonMotion})
		if excess && dc.LineOrder >= MotionOrder {
			flags = append(flags, Flag{CodeDataMismatch, ReasonData})
		}
	case excess:
		flags = append(flags, Flag{CodeDataMismatch, ReasonData})
	}
	t, e := r.Typicality, r.EdgeSparsity
	if (t != nil && t.Threshold > 0 && t.Score > t.Threshold) || (e != nil && e.Threshold > 0 && e.Score > e.Threshold) {
		flags = append(flags, Flag{CodeAtypical, ReasonAtypical})
	}
	if u := r.Uncertainty; u != nil && u.Threshold > 0 && u.Relative > u.Threshold {
		flags = append(flags, Flag{CodeUncertain, ReasonUncertain})
	}
	return flags
}

// Series sums up the QC of a series' slices.
type Series struct {
	Slices  int `json:"slices"`
	Flagged int `json:"flagged_slices"`
	// Flags are the distinct flags of the slices, each reason followed by
	// the slices (from 0) that raised it.
	Flags []Flag `json:"flags"`
	// Worst data-consistency ratio over threshold and typicality percentile.
	WorstRatio      float64 `json:"worst_data_consistency_over_threshold"`
	WorstPercentile float64 `json:"worst_typicality_percentile,omitempty"`
}

// Summarise combines per-slice results (nil entries are skipped).
func Summarise(results []*Result) *Series {
	s := &Series{Flags: []Flag{}}
	where := map[string][]int{}
	var order []Flag
	for i, r := range results {
		if r == nil {
			continue
		}
		s.Slices++
		if r.Flagged() {
			s.Flagged++
		}
		for _, f := range r.Flags {
			if _, ok := where[f.Reason]; !ok {
				order = append(order, f)
			}
			where[f.Reason] = append(where[f.Reason], i)
		}
		if dc := r.DataConsistency; dc != nil && dc.Threshold > 0 {
			s.WorstRatio = math.Max(s.WorstRatio, dc.Ratio/dc.Threshold)
		}
		if t := r.Typicality; t != nil {
			s.WorstPercentile = math.Max(s.WorstPercentile, t.Percentile)
		}
	}
	for _, f := range order {
		s.Flags = append(s.Flags, Flag{f.Code, fmt.Sprintf("%s (%s)", f.Reason, sliceList(where[f.Reason], s.Slices))})
	}
	return s
}

func sliceList(idx []int, total int) string {
	if len(idx) == total && total > 1 {
		return "all slices"
	}
	if len(idx) == 1 {
		return fmt.Sprintf("slice %d", idx[0])
	}
	out := "slices "
	for i, v := range idx {
		if i > 0 {
			out += ", "
		}
		if i == 8 {
			out += fmt.Sprintf("and %d more", len(idx)-8)
			break
		}
		out += fmt.Sprint(v)
	}
	return out
}
