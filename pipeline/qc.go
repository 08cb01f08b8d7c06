package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/device"
	"github.com/kspaced/kspaced/mri/kspaceio"
	"github.com/kspaced/kspaced/priors"
	"github.com/kspaced/kspaced/priors/builtin"
	"github.com/kspaced/kspaced/qc"
)

// QCReport is the quality control of a job in report.json: per series (one
// k-space file) and per slice, with the flags a reader must see.
type QCReport struct {
	// Status is "ok" when no slice is flagged, else "check".
	Status string `json:"status"`
	// Flags are the distinct flags over all series, each with the file and
	// slices that raised it.
	Flags  []qc.Flag   `json:"flags"`
	Series []*QCSeries `json:"series"`
}

// QCSeries is the QC of one k-space file's slices.
type QCSeries struct {
	Input string `json:"input"`
	*qc.Series
	PerSlice []*qc.Result `json:"per_slice"`
	// Warnings of the measurement (MeasureFile only; a job's are the report's).
	Warnings []string `json:"warnings,omitempty"`
}

// DescriptionSuffix ends the SeriesDescription of a flagged series.
const DescriptionSuffix = " [QC: check]"

// qcEnv is what a job's QC measures with.
type qcEnv struct {
	cal     *qc.Calibration
	prior   priors.Denoiser // typicality; nil: not measured
	release func()
}

// newQC takes the calibration (embedded, plus the prior's sidecar) and the
// prior that scores typicality: the sampling prior, or for classical
// methods recon.sampler.prior (empty: the built-in prior) loaded on the CPU. A prior
// that cannot be loaded costs the typicality measure, not the job.
func newQC(rc *configs.Recon, pr *prior) (*qcEnv, []string) {
	env := &qcEnv{cal: qc.Classical(), release: func() {}}
	path := rc.Sampler.Prior
	var warnings []string
	side, err := qc.LoadSidecar(path)
	if path == "" { // the built-in prior carries its calibration
		side, err = qc.ParseCalibration(builtin.QCCalibration())
	}
	if err != nil {
		warnings = append(warnings, "QC calibration of the prior ignored: "+err.Error())
	}
	env.cal = env.cal.Merge(side)
	if side == nil && err == nil {
		warnings = append(warnings, fmt.Sprintf("QC: prior %s has no calibration (%s): typicality is reported, not flagged", filepath.Base(path), filepath.Base(qc.SidecarPath(path))))
	}
	if pr != nil {
		env.prior = pr.d
		return env, warnings
	}
	d, _, release, err := device.CPU().Prior(path)
	if err != nil {
		return env, append(warnings, "QC: prior typicality not measured: "+err.Error())
	}
	env.prior, env.release = d, release
	return env, warnings
}

// measureQC measures a reconstructed slice; a failure is a warning. A
// sampling method's slice is measured on a CG-SENSE reconstruction of the
// same data (the calibration's method: the data-side measures — fit, line
// motion, edges — and typicality are calibrated on it, and a posterior mean
// absorbs motion and model error differently); the uncertainty and the
// mean's own data-consistency ratio (a note) come from the mean and std.
func measureQC(ctx context.Context, p *Prepared, res *sliceResult, rc *configs.Recon, env *qcEnv) {
	if env == nil {
		return
	}
	warn := func(err error) { res.Warnings = append(res.Warnings, "QC not measured: "+err.Error()) }
	img, std, method := res.Image, res.Std, rc.Method
	var mean *qc.DataConsistency
	var u *qc.Uncertainty
	if rc.Sampling() {
		var err error
		if mean, u, err = qc.MeanSummary(p.QCSlice(res.Image, res.Std)); err != nil {
			warn(err)
			return
		}
		ref := *rc
		ref.Method = qcReference
		if img, _, _, err = ReconstructClassical(ctx, p, &ref); err != nil {
			warn(fmt.Errorf("%s reference: %w", qcReference, err))
			return
		}
		std, method = nil, qcReference
	}
	r, err := qc.Measure(p.QCSlice(img, std), method, env.prior, env.cal)
	if err != nil {
		warn(err)
		return
	}
	if mean != nil {
		r.Method, r.Reference, r.Uncertainty = rc.Method, qcReference, u // (not calibrated: never flags)
		r.Notes = append(r.Notes, fmt.Sprintf("measured on a %s reconstruction of the same data; the %s mean's own data-consistency ratio is %.3f", qcReference, rc.Method, mean.Ratio))
	}
	res.QC = r
}

// qcReference is the method a sampling method's QC is measured with.
const qcReference = "cg-sense"

// addQC adds one file's slices to the job's QC report.
func (rep *Report) addQC(input string, results []*sliceResult) *QCSeries {
	per := make([]*qc.Result, len(results))
	for i, r := range results {
		per[i] = r.QC
	}
	s := &QCSeries{Input: input, Series: qc.Summarise(per), PerSlice: per}
	if rep.QC == nil {
		rep.QC = &QCReport{Status: "ok", Flags: []qc.Flag{}}
	}
	rep.QC.Series = append(rep.QC.Series, s)
	for _, f := range s.Flags {
		rep.QC.Flags = append(rep.QC.Flags, qc.Flag{Code: f.Code, Reason: input + ": " + f.Reason})
	}
	if s.Flagged > 0 {
		rep.QC.Status = "check"
	}
	return s
}

// sliceComments are the ImageComments (and preview banners) of a series:
// the flags of each slice in words, "" for a slice without flags.
func sliceComments(results []*sliceResult) (comments []string, flagged bool) {
	comments = make([]string, len(results))
	for i, r := range results {
		if r.QC == nil || !r.QC.Flagged() {
			continue
		}
		var rs []string
		for _, f := range r.QC.Flags {
			rs = append(rs, f.Reason)
		}
		comments[i] = "QC: " + strings.Join(rs, "; ")
		flagged = true
	}
	return comments, flagged
}

// MeasureFile reconstructs every slice of a k-space file with the
// configured method (cg-sense when it is a sampling method: QC of an input
// needs no device) and measures its QC, as a job would; `kspaced qc` on an
// input. Typicality is measured when recon.sampler.prior is set.
func MeasureFile(ctx context.Context, path string, cfg *configs.Config) (*QCSeries, error) {
	rc := cfg.Recon
	if rc.Sampling() {
		rc.Method = "cg-sense"
	}
	v, err := kspaceio.Read(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadInput, err)
	}
	if len(v.Slices) == 0 {
		return nil, fmt.Errorf("%w: %s holds no imaging data", ErrBadInput, filepath.Base(path))
	}
	env, warnings := newQC(&rc, nil)
	defer env.release()
	rep := &Report{}
	results := make([]*sliceResult, len(v.Slices))
	for i := range v.Slices {
		r, err := reconstructSlice(ctx, &v.Slices[i], &rc, nil, env, map[string]float64{}, nil)
		if err != nil {
			return nil, fmt.Errorf("%s slice %d: %w", filepath.Base(path), i, err)
		}
		results[i] = r
		for _, w := range r.Warnings {
			warnings = append(warnings, fmt.Sprintf("slice %d: %s", i, w))
		}
	}
	s := rep.addQC(filepath.Base(path), results)
	s.Warnings = warnings
	return s, nil
}
