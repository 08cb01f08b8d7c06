package lab

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/posterior"
	"github.com/kspaced/kspaced/priors"
	"github.com/kspaced/kspaced/retrain"
)

// TestSamplingSteps runs the steps × covariance experiment of
// docs/bench/sampling.md (tens of minutes): KSPACED_SAMPLING=1,
// KSPACED_SAMPLING_PRIOR (a checkpoint with a covariance head),
// KSPACED_SAMPLING_SCANS (comma-separated k-space files with _truth.npy),
// optional KSPACED_SAMPLING_CONFIGS ("jacobian:64:3,diagonal:16:0,…" as
// covariance:steps:cg).
func TestSamplingSteps(t *testing.T) {
	if os.Getenv("KSPACED_SAMPLING") != "1" {
		t.Skip("set KSPACED_SAMPLING=1 (tens of minutes)")
	}
	d, _, err := priors.LoadPrior(os.Getenv("KSPACED_SAMPLING_PRIOR"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := retrain.LoadObservations(context.Background(), strings.Split(os.Getenv("KSPACED_SAMPLING_SCANS"), ","), configs.Default().Recon.CoilMaps, nil)
	if err != nil {
		t.Fatal(err)
	}
	var cfgs []SamplerConfig
	spec := os.Getenv("KSPACED_SAMPLING_CONFIGS")
	if spec == "" {
		spec = "diagonal:8:0,diagonal:16:0,diagonal:32:0,diagonal:64:0,jacobian:8:3,jacobian:16:3,jacobian:32:3,jacobian:64:3"
	}
	for _, s := range strings.Split(spec, ",") {
		f := strings.Split(s, ":")
		if len(f) != 3 {
			t.Fatalf("config %q: want covariance:steps:cg", s)
		}
		steps, _ := strconv.Atoi(f[1])
		cg, _ := strconv.Atoi(f[2])
		c := SamplerConfig{Covariance: f[0], Steps: steps}
		if f[0] == posterior.CovDiagonal {
			c.DiagCGIter = cg
		} else {
			c.CGIter = cg
		}
		cfgs = append(cfgs, c)
	}
	rows, err := SamplingSteps(context.Background(), d, data.Obs, data.Rows, data.Cols, cfgs, 8, 1, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	SamplingTable(&b, rows, cfgs)
	t.Log("\n" + b.String())
}
