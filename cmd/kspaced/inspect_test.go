package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kspaced/kspaced/mri/kspaceio"
)

// inspect prints no patient data unless asked with --phi (issue 20):
// fastMRI's patient_id root attribute included.
func TestInspectWithholdsPatientData(t *testing.T) {
	v := &kspaceio.Volume{Path: "k.h5", Format: "fastmri",
		Meta:  kspaceio.Meta{PatientName: "DOE^JANE", PatientID: "MRN-4711"},
		Attrs: map[string]any{"patient_id": "0f3a9c-MRN-4711", "max": 0.0004, "acquisition": "CORPD_FBK"}}
	var b bytes.Buffer
	v.Describe(&b, false)
	out := b.String()
	for _, s := range []string{"DOE^JANE", "MRN-4711"} {
		if strings.Contains(out, s) {
			t.Errorf("inspect without --phi prints %q:\n%s", s, out)
		}
	}
	for _, s := range []string{"max:", "CORPD_FBK", "1 text attributes not shown"} {
		if !strings.Contains(out, s) {
			t.Errorf("inspect without --phi lacks %q:\n%s", s, out)
		}
	}
	b.Reset()
	v.Describe(&b, true)
	for _, s := range []string{"DOE^JANE", "0f3a9c-MRN-4711"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("inspect --phi lacks %q:\n%s", s, b.String())
		}
	}
}
