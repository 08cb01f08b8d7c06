package daemon

import (
	"errors"
	"testing"
	"time"

	"github.com/kspaced/kspaced/pipeline"
)

// FuzzJobOptions feeds arbitrary options files (<entry>.json) to the parser:
// it never panics, every refusal is bad input, and whatever it accepts is a
// valid configuration within the operator's limits. Seeds are in
// testdata/fuzz/FuzzJobOptions; run with
// go test -run '^$' -fuzz FuzzJobOptions -fuzztime 2m ./daemon/
func FuzzJobOptions(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `null`, `[]`, `"x"`, `{"recon": {"method": "cg-sense", "iterations": 20}, "output": {"npy": true}}`,
		`{"daemon": {"job_timeout": "1s", "retries": 0}}`, `{"daemon": {"job_timeout": "1000h"}}`,
		`{"recon": {"sampler": {"prior": "/etc/passwd"}}}`, `{"recon": {"method": "mmps", "sampler": {"prior": "/p/x.safetensors"}}}`,
		`{"recon": {"iterations": 1e400}}`, `{"recon": {"iterations": -1}}`, `{"daemon": {"prior_dirs": ["/"]}}`,
		"recon:\n  method: dps\n", `{"recon": {"coil_maps": {"calib": 4, "kernel": 8}}}`, `{"a": &x, "b": *x}`,
	} {
		f.Add([]byte(s))
	}
	base := testConfig("/spool")
	base.Daemon.PriorDirs = []string{"/p"}
	base.Recon.Sampler.Prior = "/p/base.safetensors"
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := parseOptions(base, raw, "x.npy.json")
		if err != nil {
			if !errors.Is(err, pipeline.ErrBadInput) {
				t.Fatalf("refusal is not bad input: %v", err)
			}
			return
		}
		if verr := c.Validate(); verr != nil {
			t.Fatalf("accepted an invalid configuration: %v", verr)
		}
		d := c.Daemon
		if d.JobTimeout > base.Daemon.JobTimeout || d.Retries > base.Daemon.Retries || d.RetryBackoff > base.Daemon.RetryBackoff ||
			d.JobTimeout < time.Second || d.StallTimeout == 0 || d.StallTimeout > base.Daemon.StallTimeout || d.Spool != base.Daemon.Spool || d.Workers != base.Daemon.Workers {
			t.Fatalf("accepted options beyond the operator's limits: %+v", d)
		}
		if p := c.Recon.Sampler.Prior; p != base.Recon.Sampler.Prior && p != "" && priorAllowed(p, base.Daemon.PriorDirs) != nil {
			t.Fatalf("accepted prior %q outside %v", p, base.Daemon.PriorDirs)
		}
	})
}
