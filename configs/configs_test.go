package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultsValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Recon.Method != "cg-sense" || c.Daemon.QuietPeriod != 5*time.Second || c.Simulate.Coils != 8 {
		t.Fatalf("defaults not decoded: %+v", c)
	}
}

func TestExampleProfiles(t *testing.T) {
	files, _ := filepath.Glob("*.yaml")
	if len(files) < 3 {
		t.Fatalf("want default plus example profiles, found %v", files)
	}
	for _, f := range files {
		if _, err := Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	c, err := Load("knee-8x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The override changes what it names and keeps the other defaults.
	if c.Simulate.Acceleration != 8 || c.Recon.CoilMaps.Calib != 16 || c.Recon.CoilMaps.Kernel != 6 {
		t.Fatalf("override: %+v", c)
	}
}

func TestUnknownKeyNamesKeyAndLine(t *testing.T) {
	_, err := Parse([]byte("recon:\n  method: cg-sense\n  lamda: 0.1\n"), "x.yaml")
	if err == nil {
		t.Fatal("mistyped key accepted")
	}
	for _, want := range []string{"x.yaml", "line 3", `"lamda"`, "recon"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	_, err = Parse([]byte("daemon:\n  workers: 2\nsimulat:\n  rows: 3\n"), "y.yaml")
	if err == nil || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "top level") {
		t.Fatalf("top-level typo: %v", err)
	}
}

func TestValidationMessages(t *testing.T) {
	cases := map[string]string{
		"recon:\n  method: magic\n":              "recon.method",
		"recon:\n  iterations: 0\n":              "recon.iterations",
		"recon:\n  method: mmps\n":               "recon.sampler.prior",
		"recon:\n  coil_maps:\n    kernel: 30\n": "recon.coil_maps.kernel",
		"simulate:\n  rows: 100000\n":            "simulate.rows",
		"daemon:\n  log_format: xml\n":           "daemon.log_format",
		"daemon:\n  rescan_interval: 1ms\n":      "daemon.rescan_interval",
		"simulate:\n  center_fraction: 0.5\n":    "center_fraction",
		"recon:\n  iterations: ten\n":            "line 2",
	}
	for in, want := range cases {
		_, err := Parse([]byte(in), "t.yaml")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want mention of %q", in, err, want)
		}
	}
}

func TestEmptyAndMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err != nil {
		t.Fatalf("empty file: %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "nope.yaml")); err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestOverlayJSONSidecar(t *testing.T) {
	base := Default()
	c, err := Overlay(base, []byte(`{"recon": {"method": "zero-filled"}}`), "job.json")
	if err != nil {
		t.Fatal(err)
	}
	if c.Recon.Method != "zero-filled" || base.Recon.Method != "cg-sense" || c.Recon.Iterations != base.Recon.Iterations {
		t.Fatalf("overlay %q, base %q", c.Recon.Method, base.Recon.Method)
	}
	if _, err := Overlay(base, []byte(`{"recon": {"methd": "x"}}`), "job.json"); err == nil || !strings.Contains(err.Error(), "methd") {
		t.Fatalf("bad sidecar key: %v", err)
	}
}

// daemon.prior_dirs must be absolute: a relative folder would depend on
// the service's working directory.
func TestPriorDirsMustBeAbsolute(t *testing.T) {
	if d := Default().Daemon.PriorDirs; len(d) != 1 || d[0] != "/var/lib/kspaced/priors" {
		t.Errorf("default daemon.prior_dirs = %v", d)
	}
	if _, err := Parse([]byte("daemon:\n  prior_dirs: [priors]\n"), "t.yaml"); err == nil || !strings.Contains(err.Error(), "daemon.prior_dirs") {
		t.Errorf("relative prior_dirs: %v", err)
	}
	if _, err := Parse([]byte("daemon:\n  prior_dirs: []\n"), "t.yaml"); err != nil {
		t.Errorf("empty prior_dirs: %v", err)
	}
}
