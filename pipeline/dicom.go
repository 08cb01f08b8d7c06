package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/dicomio"
	"github.com/kspaced/kspaced/mri/kspaceio"
)

// sourceStudy is the DICOM study a job's k-space belongs to, when the job
// brought one.
type sourceStudy struct {
	study  dicomio.Study
	series *dicomio.Series // the acquired MR series the output derives from
}

// readSourceStudy reads the job's DICOM files. Files that are not DICOM or
// cannot be read are reported as warnings; they never fail the job.
func readSourceStudy(ctx context.Context, rd Reader, files []string) (*sourceStudy, []string) {
	if len(files) == 0 {
		return nil, nil
	}
	studies, errs, err := rd.Study(ctx, files)
	if err != nil {
		return nil, []string{fmt.Sprintf("DICOM study ignored: %v", err)}
	}
	var warnings []string
	for _, e := range errs {
		warnings = append(warnings, fmt.Sprintf("%s: %v", filepath.Base(e.Path), e.Err))
	}
	if len(studies) == 0 {
		return nil, warnings
	}
	if len(studies) > 1 {
		warnings = append(warnings, fmt.Sprintf("%d DICOM studies among the inputs; the output joins the first", len(studies)))
	}
	sd := studies[0]
	src := &sourceStudy{study: sd.Study}
	for _, s := range sd.Series {
		if s.Modality == "MR" && (src.series == nil || len(s.Instances) > len(src.series.Instances)) {
			src.series = s
		}
	}
	return src, warnings
}

// studyFromHeader builds a new study from the k-space header's patient and
// study information.
func studyFromHeader(m kspaceio.Meta, uidRoot string) (dicomio.Study, error) {
	p := dicomio.Patient{Name: m.PatientName, ID: m.PatientID, BirthDate: m.PatientBirthDate, Sex: m.PatientSex}
	desc := m.StudyDescription
	if desc == "" {
		desc = "kspaced reconstruction"
	}
	st, err := dicomio.NewStudy(p, desc, uidRoot, time.Now())
	if err != nil {
		return st, err
	}
	if m.StudyInstanceUID != "" {
		st.InstanceUID = m.StudyInstanceUID
	}
	if m.StudyID != "" {
		st.ID = m.StudyID
	}
	if m.AccessionNumber != "" {
		st.AccessionNumber = m.AccessionNumber
	}
	if m.StudyDate != "" {
		st.Date, st.Time = m.StudyDate, m.StudyTime
	}
	st.ReferringPhysician = m.ReferringPhysicianName
	return st, nil
}

// headerGeometry places the slices from the header's field of view (axial,
// centred on the isocentre) when no source series gives real geometry.
func headerGeometry(m kspaceio.Meta, slices, rows, cols int) []dicomio.SliceGeometry {
	fovR, fovC, thick := m.ReconFOVmm[0], m.ReconFOVmm[1], m.ReconFOVmm[2]
	if fovR <= 0 || fovC <= 0 {
		return nil
	}
	if thick <= 0 {
		thick = 1
	}
	dr, dc := fovR/float64(rows), fovC/float64(cols)
	geo := make([]dicomio.SliceGeometry, slices)
	for i := range geo {
		geo[i] = dicomio.SliceGeometry{
			// DICOM positions the centre of the first pixel, half a pixel
			// inside the field of view's corner.
			Position:       [3]float64{(dc - fovC) / 2, (dr - fovR) / 2, (float64(i) - float64(slices-1)/2) * thick},
			Orientation:    [6]float64{1, 0, 0, 0, 1, 0},
			PixelSpacing:   [2]float64{dr, dc},
			SliceThickness: thick,
		}
	}
	return geo
}

// writeDICOM writes the reconstruction (and, for sampling methods, the
// uncertainty map) of one volume as series in outDir/dicom.
// comments are each slice's ImageComments (the QC flags); flagged adds
// DescriptionSuffix to the series descriptions.
func writeDICOM(outDir string, v *kspaceio.Volume, im *images, src *sourceStudy, cfg *configs.Config, comments []string, flagged bool) ([]string, error) {
	var study dicomio.Study
	var source *dicomio.Series
	if src != nil {
		study, source = src.study, src.series
	} else {
		var err error
		if study, err = studyFromHeader(v.Meta, cfg.Output.UIDRoot); err != nil {
			return nil, err
		}
	}
	method := strings.ToUpper(cfg.Recon.Method)
	prior := ""
	if im.std != nil {
		prior = PriorName(cfg.Recon.Sampler.Prior)
	}
	mag := magnitudes(im.recon)
	scale := dicomio.DisplayScale(mag)
	var geo []dicomio.SliceGeometry
	if source == nil || len(source.Geometry()) != im.slices { // multi-frame sources count frames
		geo = headerGeometry(v.Meta, im.slices, im.rows, im.cols)
	}
	mean := dicomio.OutputSeries{
		Kind: dicomio.KindMean, Method: method, Prior: prior, Images: mag,
		Slices: im.slices, Rows: im.rows, Cols: im.cols, Geometry: geo, Source: source, Scale: scale,
		Comments: comments,
	}
	if flagged {
		mean.DescriptionSuffix = DescriptionSuffix
	}
	if im.std == nil {
		mean.Description = "kspaced " + method
	}
	series := []dicomio.OutputSeries{mean}
	if im.std != nil {
		std := mean
		std.Kind, std.Images = dicomio.KindStd, im.std
		series = append(series, std)
	}
	refs, err := dicomio.WriteScan(filepath.Join(outDir, "dicom"), study, series, dicomio.WriteOptions{UIDRoot: cfg.Output.UIDRoot})
	if err != nil {
		return nil, fmt.Errorf("write DICOM: %w", err)
	}
	var dirs []string
	for _, r := range refs {
		dirs = append(dirs, r.Dir)
	}
	return dirs, nil
}
