package lab

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/internal/testutil"
	"github.com/kspaced/kspaced/priors"
)

// TestEMEvidence is the EM experiment of docs/bench/em.md (about 45
// minutes on two cores): KSPACED_EM_EVIDENCE=1 runs it, in
// KSPACED_EM_EVIDENCE_DIR when set (so an interrupted run continues) or a
// temporary folder. KSPACED_EM_LAPS and KSPACED_EM_TRAIN_STEPS override the
// lap count and M-step steps. It asserts the claims of docs/bench/em.md
// (checkEMClaims); TestEMClaims checks that assertion on the published table.
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
	if err := checkEMClaims(res); err != nil {
		t.Error(err)
	}
	t.Logf("evidence in %s (%.0f s)", dir, res.Seconds)
}

// TestEMClaims runs checkEMClaims on the published results of em.md (both
// runs), and on results that contradict each claim.
func TestEMClaims(t *testing.T) {
	row := func(m string, p float64) EMEvidenceRow { return EMEvidenceRow{Method: m, PSNR: p, SSIM: 0.7} }
	table := func(zf, gauss, last, clean float64) *EMEvidenceResult {
		return &EMEvidenceResult{Rows: []EMEvidenceRow{row("zero-filled", zf), row("L1-wavelet", 21.80),
			row("Gaussian (EM lap 0)", gauss), row("EM lap 1", 18.55), row("EM lap 5", last), row("clean-trained (reference)", clean)}}
	}
	if err := checkEMClaims(table(18.13, 18.56, 20.63, 21.40)); err != nil {
		t.Errorf("first run: %v", err)
	}
	if err := checkEMClaims(table(18.13, 18.56, 20.62, 22.01)); err != nil {
		t.Errorf("second run: %v", err)
	}
	for name, r := range map[string]*EMEvidenceResult{
		"EM no better than its Gaussian start": table(18.13, 18.56, 18.9, 21.40),
		"clean-trained below EM":               table(18.13, 18.56, 20.63, 20.0),
		"NaN score":                            table(math.NaN(), 18.56, 20.63, 21.40),
		"no EM row":                            {Rows: []EMEvidenceRow{row("zero-filled", 18)}},
	} {
		if checkEMClaims(r) == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestCleanReference trains the clean-image reference of the default-prior
// run (docs/bench/prior-recipe.md): KSPACED_CLEAN_REFERENCE=LAP matches EM
// laps 1…LAP (hours on two cores; resumable: rerun to continue), into
// KSPACED_CLEAN_REFERENCE_OUT (default out/prior/clean-lap-LAP.safetensors
// at the repository root); KSPACED_CLEAN_REFERENCE_FROM continues an earlier
// lap's reference instead of starting from scratch. It needs the archive
// `make prior` writes.
func TestCleanReference(t *testing.T) {
	lap, err := strconv.Atoi(os.Getenv("KSPACED_CLEAN_REFERENCE"))
	if err != nil {
		t.Skip("set KSPACED_CLEAN_REFERENCE=LAP to train the default prior's clean-image reference (hours)")
	}
	root, _ := filepath.Abs("..")
	cfg, err := configs.Load(filepath.Join(root, "configs", "prior-default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out := os.Getenv("KSPACED_CLEAN_REFERENCE_OUT")
	if out == "" {
		out = filepath.Join(root, "out", "prior", fmt.Sprintf("clean-lap-%02d.safetensors", lap))
	}
	steps, err := CleanReference(context.Background(), CleanReferenceOptions{Run: filepath.Join(root, "train", "default-prior"),
		Data: []string{filepath.Join(root, "out", "prior", "archive", "train")}, Config: cfg, Lap: lap, Out: out, From: os.Getenv("KSPACED_CLEAN_REFERENCE_FROM"), Progress: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	_, meta, err := priors.LoadUNet(out)
	if err != nil || meta.Provenance.Steps != steps {
		t.Fatalf("reference %s: %v (steps %v, want %d)", out, err, meta, steps)
	}
	t.Logf("%s: %d steps on clean images", out, steps)
}
