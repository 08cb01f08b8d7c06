package lab

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/internal/testutil"
)

func qcTestOptions(t *testing.T) QCOptions {
	cfg := configs.Default()
	opt := QCOptions{Recon: cfg.Recon, Log: os.Stderr, Priors: []string{"../train/default-prior/lap-00.safetensors"}}
	if v, err := strconv.Atoi(os.Getenv("KSPACED_QC_PER_VOLUME")); err == nil {
		opt.PerVolume = v
	}
	if p := os.Getenv("KSPACED_QC_PRIORS"); p != "" {
		opt.Priors = filepath.SplitList(p)
	}
	return opt
}

// TestQCExplore prints the raw measures (KSPACED_QC_EXPLORE=1).
func TestQCExplore(t *testing.T) {
	if os.Getenv("KSPACED_QC_EXPLORE") != "1" {
		t.Skip("KSPACED_QC_EXPLORE=1")
	}
	testutil.File(t, "/usr/share/mricron/templates/ch2.nii.gz")
	opt := qcTestOptions(t)
	ev, err := QCEvidence(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if out := os.Getenv("KSPACED_QC_OUT"); out != "" {
		if err := ev.Save(out); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range ev.Table() {
		t.Logf("%-32s %d/%d %v", r.Class, r.Flagged, r.N, r.Codes)
	}
}
