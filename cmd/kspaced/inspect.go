package main

import (
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/spf13/cobra"

	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/mri/kspaceio"
)

func newInspectCmd() *cobra.Command {
	var phi bool
	cmd := &cobra.Command{
		Use:   "inspect FILE...",
		Short: "Summarise k-space files: format, dimensions, coils, sampling, calibration region",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			failed := 0
			for _, p := range args {
				v, err := kspaceio.Read(p)
				if err != nil {
					fmt.Fprintln(os.Stderr, "kspaced:", err)
					failed++
					continue
				}
				describe(os.Stdout, v, phi)
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d files could not be read", failed, len(args))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&phi, "phi", false, "also print patient name and ID and every text attribute of the file (may hold protected health information)")
	return cmd
}

func describe(w io.Writer, v *kspaceio.Volume, phi bool) {
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
		fmt.Fprintf(w, "  ACS width:       %d\n", mri.ACSWidth(s.Mask, s.Rows, s.Cols))
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

// safeAttr reports whether a file attribute can be printed without --phi:
// numbers and the fastMRI acquisition name. Other text (fastMRI's
// patient_id, vendor attributes) may identify the patient.
func safeAttr(key string, val any) bool {
	switch val.(type) {
	case string, []byte, []string:
		return key == "acquisition"
	}
	return true
}
