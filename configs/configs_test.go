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
	if c.Recon.Method != "mmps" || c.Daemon.QuietPeriod != 5*time.Second || c.Simulate.Coils != 8 {
		t.Fatalf("defaults not decoded: %+v", c)
	}
}

// The sampling methods need no prior path: empty means the built-in prior.
func TestSamplingWithoutPriorPath(t *testing.T) {
	for _, m := range []string{"mmps", "dps"} {
		c, err := Parse([]byte("recon:\n  method: "+m+"\n"), "test.yaml")
		if err != nil || c.Recon.Sampler.Prior != "" {
			t.Errorf("%s without a prior: %v (prior %q)", m, err, c.Recon.Sampler.Prior)
		}
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
		"recon:\n  method: magic\n":                  "recon.method",
		"recon:\n  iterations: 0\n":                  "recon.iterations",
		"recon:\n  sampler:\n    covariance: full\n": "recon.sampler.covariance",
		"recon:\n  sampler:\n    steps: -1\n":        "recon.sampler.steps",
		"recon:\n  sampler:\n    cg_iterations: 0\n": "recon.sampler.cg_iterations",
		"recon:\n  coil_maps:\n    kernel: 30\n":     "recon.coil_maps.kernel",
		"simulate:\n  rows: 100000\n":                "simulate.rows",
		"daemon:\n  log_format: xml\n":               "daemon.log_format",
		"daemon:\n  rescan_interval: 1ms\n":          "daemon.rescan_interval",
		"simulate:\n  center_fraction: 0.5\n":        "center_fraction",
		"recon:\n  iterations: ten\n":                "line 2",
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
	if c.Recon.Method != "zero-filled" || base.Recon.Method != "mmps" || c.Recon.Iterations != base.Recon.Iterations {
		t.Fatalf("overlay %q, base %q", c.Recon.Method, base.Recon.Method)
	}
	if _, err := Overlay(base, []byte(`{"recon": {"methd": "x"}}`), "job.json"); err == nil || !strings.Contains(err.Error(), "methd") {
		t.Fatalf("bad sidecar key: %v", err)
	}
}

func TestPACSDestinations(t *testing.T) {
	c := Default()
	if len(c.PACS.Destinations) != 0 || c.PACS.CallingAE != "KSPACED" {
		t.Fatalf("pacs defaults: %+v", c.PACS)
	}
	c, err := Parse([]byte("pacs:\n  destinations:\n    - {name: main, ae_title: PACS1, host: 127.0.0.1, port: 104}\n    - {name: web, url: https://x.org/dicom-web}\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := c.PACS.Destination("web"); !ok || !d.IsWeb() {
		t.Fatalf("web destination: %+v", d)
	}
	cases := map[string]string{
		"pacs:\n  destinations:\n    - {name: a, ae_title: PACS1, host: h, port: 104}\n    - {name: a, url: http://x}\n": "used twice",
		"pacs:\n  destinations:\n    - {name: a, ae_title: PACS1, host: h, port: 104, url: http://x}\n":                  "not both",
		"pacs:\n  destinations:\n    - {name: a, ae_title: THIS_AE_IS_TOO_LONG, host: h, port: 104}\n":                   "pacs.destinations[a].ae_title",
		"pacs:\n  destinations:\n    - {name: a, ae_title: P, host: h, port: 70000}\n":                                   "pacs.destinations[a].port",
		"pacs:\n  destinations:\n    - {name: ../x, url: http://x}\n":                                                    "name",
		"pacs:\n  destinations:\n    - {name: a, url: ftp://x}\n":                                                        "url",
		"pacs:\n  destinations:\n    - {name: a, url: http://x, tls: true}\n":                                            "https",
		"pacs:\n  destinations:\n    - {name: a, ae_title: P, hots: h, port: 1}\n":                                       "unknown key \"hots\" in pacs.destinations",
		"pacs:\n  destinations:\n    - {name: a, url: http://x, username: u}\n":                                          "go together",
		"pacs:\n  destinations:\n    - {name: a, ae_title: P, host: h, port: 1, token_file: /t}\n":                       "are for DICOMweb",
		"pacs:\n  calling_ae: \"\"\n": "pacs.calling_ae",
		"pacs:\n  timeout: 0s\n":      "pacs.timeout",
	}
	for in, want := range cases {
		_, err := Parse([]byte(in), "t.yaml")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want mention of %q", in, err, want)
		}
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

// daemon.reader: every key validated, named in its error.
func TestReaderLimits(t *testing.T) {
	if r := Default().Daemon.Reader; r != (Reader{MemoryMB: 4096, CPUSeconds: 120, WallSeconds: 180, MaxOutputMB: 2048}) {
		t.Errorf("default daemon.reader = %+v", r)
	}
	c, err := Parse([]byte("daemon:\n  reader:\n    memory_mb: 512\n    wall_seconds: 20\n"), "t.yaml")
	if err != nil || c.Daemon.Reader != (Reader{MemoryMB: 512, CPUSeconds: 120, WallSeconds: 20, MaxOutputMB: 2048}) {
		t.Fatalf("%+v, %v", c.Daemon.Reader, err)
	}
	for in, want := range map[string]string{
		"memory_mb: 100":      "daemon.reader.memory_mb = 100",
		"cpu_seconds: 0":      "daemon.reader.cpu_seconds = 0",
		"wall_seconds: -1":    "daemon.reader.wall_seconds = -1",
		"max_output_mb: 0":    "daemon.reader.max_output_mb = 0",
		"max_output_mb: 1e99": "cannot unmarshal",
		"memory: 512":         `unknown key "memory" in daemon.reader`,
	} {
		_, err := Parse([]byte("daemon:\n  reader:\n    "+in+"\n"), "t.yaml")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want mention of %q", in, err, want)
		}
	}
}
