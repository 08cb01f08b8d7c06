package kspaceio

import (
	"fmt"
	"io"
	"sort"

	"github.com/kspaced/kspaced/mri/espirit"
)

// Describe writes a summary of v for `kspaced inspect`: format, sizes,
// sampling, calibration region, system and the file's attributes; the
// patient's name and ID only when phi is set.
func (v *Volume) Describe(w io.Writer, phi bool) {
	fmt.Fprintf(w, "%s\n  format:          %s\n  slices:          %d\n", v.Path, v.Format, len(v.Slices))
	if len(v.Slices) > 0 {
		s := &v.Slices[0]
		rows, cols := v.ImageSize()
		fmt.Fprintf(w, "  coils:           %d\n  k-space matrix:  %d × %d\n  image matrix:    %d × %d\n", s.Coils, s.Rows, s.Cols, rows, cols)
		var frac float64
		for i := range v.Slices {
			frac += v.Slices[i].SampledFraction()
		}
		frac /= float64(len(v.Slices))
		fmt.Fprintf(w, "  sampled:         %.1f%% (acceleration %.2f)\n", 100*frac, 1/frac)
		fmt.Fprintf(w, "  ACS width:       %d\n", espirit.ACSWidth(s.Mask, s.Rows, s.Cols))
		fmt.Fprintf(w, "  noise covariance: %v\n", s.NoiseCov != nil)
	}
	m := v.Meta
	if m.SystemVendor != "" || m.SystemModel != "" {
		fmt.Fprintf(w, "  system:          %s %s %.1f T\n", m.SystemVendor, m.SystemModel, m.FieldStrengthT)
	}
	if m.ReconFOVmm[0] > 0 {
		fmt.Fprintf(w, "  recon FOV:       %.0f × %.0f × %.1f mm\n", m.ReconFOVmm[0], m.ReconFOVmm[1], m.ReconFOVmm[2])
	}
	if m.TR > 0 || m.TE > 0 {
		fmt.Fprintf(w, "  TR/TE:           %.1f / %.1f ms\n", m.TR, m.TE)
	}
	if m.StudyInstanceUID != "" {
		fmt.Fprintf(w, "  study UID:       %s\n", m.StudyInstanceUID)
	}
	if phi {
		fmt.Fprintf(w, "  patient:         %s (ID %s)\n", m.PatientName, m.PatientID)
	}
	keys := make([]string, 0, len(v.Attrs))
	for k := range v.Attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	withheld := 0
	for _, k := range keys {
		if !phi && !safeAttr(k, v.Attrs[k]) {
			withheld++
			continue
		}
		fmt.Fprintf(w, "  attr %-12s %v\n", k+":", v.Attrs[k])
	}
	if withheld > 0 {
		fmt.Fprintf(w, "  (%d text attributes not shown: they may identify the patient; --phi prints them)\n", withheld)
	}
}

// safeAttr reports whether a file attribute can be printed without phi:
// numbers and the fastMRI acquisition name. Other text (fastMRI's
// patient_id, vendor attributes) may identify the patient.
func safeAttr(key string, val any) bool {
	switch val.(type) {
	case string, []byte, []string:
		return key == "acquisition"
	}
	return true
}
