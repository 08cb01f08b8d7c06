package quality

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/kspaced/kspaced/qc"
)

// MeasureSpread's plumbing with an untrained network: every slice's ratio,
// their median and quartiles, and too few slices refused. Whether the ratio
// means anything is posterior's TestCheckSpreadGaussian.
func TestMeasureSpread(t *testing.T) {
	dir := simulateScans(t, qc.MinSpreadScans+1, 500)
	cfg := smallConfig()
	cfg.Recon.Method = "mmps"
	cfg.Recon.Sampler.Prior = untrainedPrior(t)
	cfg.Recon.Sampler.Steps, cfg.Recon.Sampler.CGIterations, cfg.Recon.Sampler.Samples = 3, 1, 3
	var log strings.Builder
	sp, ratios, err := MeasureSpread(context.Background(), cfg, dir, 0, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	r := make([]float64, len(ratios))
	for i, s := range ratios {
		r[i] = s.Ratio
	}
	slices.Sort(r)
	if sp.Scans != len(r) || len(r) < qc.MinSpreadScans || sp.Scale != qc.Quantile(r, 0.5) || !(sp.Q1 <= sp.Scale && sp.Scale <= sp.Q3) {
		t.Fatalf("spread %+v from ratios %v", sp, r)
	}
	if sp.PixelMM != 1 { // simulate writes 1 mm pixels
		t.Errorf("pixel size %v mm, want the files' 1 mm", sp.PixelMM)
	}
	if !strings.Contains(log.String(), "ratio") || !strings.Contains(sp.Source, "prior.safetensors") {
		t.Errorf("log %q, source %q", log.String(), sp.Source)
	}
	if _, _, err := MeasureSpread(context.Background(), cfg, dir, 3, nil); err == nil || !strings.Contains(err.Error(), "at least") {
		t.Errorf("3 scans: %v, want too few", err)
	}
	if q := qc.Quantile([]float64{1, 2, 3, 4}, 0.5); q != 2.5 {
		t.Errorf("median of 1..4: %v", q)
	}
}
