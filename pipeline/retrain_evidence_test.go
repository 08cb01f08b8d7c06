package pipeline

import (
	"context"
	"math"
	"os"
	"strconv"
	"testing"

	"github.com/kspaced/kspaced/configs"
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
	testutil.File(t, namedVolumes["ch2"])
	testutil.File(t, namedVolumes["ch2better"])
	dir := os.Getenv("KSPACED_EM_EVIDENCE_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	opt := EvidenceOptions(dir)
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

// EvidenceRetrainConfig is the retrain configuration of the EM evidence run:
// sized for two shared CPU cores and well under an hour.
func EvidenceRetrainConfig() *configs.Config {
	cfg := configs.Default()
	r := &cfg.Retrain
	r.Laps, r.GaussianLaps, r.Rank, r.GaussianSamples = 5, 2, 12, 1
	r.Steps, r.CGIterations = 20, 3
	r.TrainSteps, r.BatchSize, r.LearningRate, r.WarmupSteps, r.EMADecay = 500, 16, 2e-3, 50, 0.995
	r.ValFraction, r.EvalSamples, r.Network, r.Workers, r.Seed = 0.1, 2, "small-unshuffle", 0, 1
	return cfg
}

// EvidenceOptions are the archive and evaluation settings of the run.
func EvidenceOptions(dir string) EMEvidenceOptions {
	return EMEvidenceOptions{Dir: dir, Config: EvidenceRetrainConfig(), Size: 48, Stride: 6, TestScans: 16,
		EvalSteps: 64, EvalSamples: 4, Seed: 1}
}
