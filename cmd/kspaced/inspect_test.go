package main

import (
	"bytes"
	"os"
	"path/filepath"
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

// inspect reads under --config's daemon.reader limits: a 192², 8-coil
// scan (2.4 MB of k-space) is refused at max_output_mb 1 and read at the
// defaults.
func TestInspectConfigLimits(t *testing.T) {
	dir := t.TempDir()
	if code, out := runBin(t, "simulate", "--source", "shepp-logan", "--coils", "8", "--rows", "192", "--cols", "192", "--out", dir, "--name", "s"); code != 0 {
		t.Fatalf("simulate: exit %d:\n%s", code, out)
	}
	cfg := filepath.Join(dir, "small.yaml")
	if err := os.WriteFile(cfg, []byte("daemon:\n  reader:\n    max_output_mb: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	scan := filepath.Join(dir, "s.h5")
	if code, out := runBin(t, "inspect", "--config", cfg, scan); code != 1 || !strings.Contains(out, "beyond what one file may bring into memory") {
		t.Errorf("inspect under max_output_mb 1: exit %d:\n%s", code, out)
	}
	if code, out := runBin(t, "inspect", scan); code != 0 || !strings.Contains(out, "coils") {
		t.Errorf("inspect at the defaults: exit %d:\n%s", code, out)
	}
}
