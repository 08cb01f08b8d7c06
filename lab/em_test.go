package lab

import (
	"context"
	"math"
	"os"
	"strconv"
	"testing"

	"github.com/kspaced/kspaced/internal/testutil"
)

// TestEMEvidence is the EM experiment of docs/bench/em.md (about 45
// minutes on two cores): KSPACED_EM_EVIDENCE=1 runs it, in
// KSPACED_EM_EVIDENCE_DIR when set (so an interrupted run continues) or a
// temporary folder. KSPACED_EM_LAPS and KSPACED_EM_TRAIN_STEPS override the
// lap count and M-step steps. It reports what it measures; it asserts only
// that every method produced finite scores.
func TestEMEvidence(t *testing.T) {
	if os.Getenv("KSPACED_EM_EVIDENCE") != "1" {
		t.Skip("set KSPACED_EM_EVIDENCE=1 to run the EM evidence experiment (tens of minutes)")
	}
	testutil.File(t, DefaultEvidenceVolumes[0])
	testutil.File(t, DefaultEvidenceVolumes[1])
	dir := os.Getenv("KSPACED_EM_EVIDENCE_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	opt := DefaultEMEvidenceOptions(dir)
	if v, err := strconv.Atoi(os.Getenv("KSPACED_EM_LAPS")); err == nil {
		opt.Config.Retrain.Laps = v
	}
	if v, err := strconv.Atoi(os.Getenv("KSPACED_EM_TRAIN_STEPS")); err == nil {
		opt.Config.Retrain.TrainSteps = v
	}
	opt.Progress, opt.Log = os.Stderr, os.Stderr
	res, err := EMEvidence(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Rows {
		if math.IsNaN(r.PSNR) || math.IsInf(r.PSNR, 0) || math.IsNaN(r.SSIM) {
			t.Errorf("%s: PSNR %v SSIM %v", r.Method, r.PSNR, r.SSIM)
		}
	}
	t.Logf("evidence in %s (%.0f s)", dir, res.Seconds)
}
