package retrain

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kspaced/kspaced/priors"
	"github.com/kspaced/kspaced/priors/builtin"
)

// TestDescribe: the description names the architecture, the size policy,
// the provenance and the run's laps with the best one marked, and its
// SHA-256 agrees with coreutils' sha256sum.
func TestDescribe(t *testing.T) {
	dir := t.TempDir()
	u, err := priors.NewUNet(emTinyNet(), 1)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, LapCheckpoint(1))
	if err := u.Save(path, priors.CheckpointMeta{Architecture: u.Config(), Normalisation: priors.Normalisation{Scheme: "per-scan"},
		Provenance: priors.Provenance{Data: "EM from 44 undersampled scans", DataHash: "abc", Images: 44, Steps: 400, EMLap: 1, Seed: 7, Crops: priors.CropNote(priors.TrainOptions{CropRows: 8, CropCols: 8})}}); err != nil {
		t.Fatal(err)
	}
	recs := []LapRecord{
		{Lap: 0, Kind: priors.KindGaussian, Validation: ScoreSummary{N: 2, WithTruth: 2, PSNR: 19, DataConsistency: 0.5}},
		{Lap: 1, Kind: priors.KindUNet, MStepSteps: 400, Best: true, LR: 6e-4, Validation: ScoreSummary{N: 2, WithTruth: 2, PSNR: 21.5, DataConsistency: 0.6},
			Attempts: []LapAttempt{{LR: 2e-3, Reason: "M-step loss jumped"}, {LR: 6e-4}}},
	}
	if err := writeLaps(dir, recs); err != nil {
		t.Fatal(err)
	}
	side := `{"spread": [{"pixel_mm": 1.62, "scale": 1.3, "scans": 16, "q1": 1.0, "q3": 1.4}, {"pixel_mm": 0.85, "scale": 1.02, "scans": 12, "q1": 0.9, "q3": 1.1}]}`
	if err := os.WriteFile(path+".qc.json", []byte(side), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := Describe(path)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := d.Write(&out); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	t.Logf("\n%s", s)
	for _, want := range []string{"widths [8 16]", "any matrix: reflect-padded to a multiple of 2", "EM from 44 undersampled scans",
		"EM lap:         1", "trained on:     8×8 crops at pixel scales [1]", "steps:          400", "* lap  1", "PSNR 21.50 dB", "2 attempts, learning rate 0.0006", "per-scan",
		"std scale:      × 1.300 at 1.62 mm pixels (median of 16", "× 1.020 at 0.85 mm"} {
		if !strings.Contains(s, want) {
			t.Errorf("description lacks %q", want)
		}
	}
	if d.Params != u.Config().ParamCount() || d.Params < 1000 {
		t.Errorf("%d parameters", d.Params)
	}
	if sum, err := exec.Command("sha256sum", path).Output(); err == nil {
		if got := strings.Fields(string(sum))[0]; got != d.SHA256 {
			t.Errorf("sha256 %s, sha256sum %s", d.SHA256, got)
		}
	} else {
		t.Logf("no sha256sum to compare with: %v", err)
	}
	if _, err := Describe(filepath.Join(dir, "missing.safetensors")); err == nil {
		t.Error("missing file described")
	}
	if err := os.WriteFile(filepath.Join(dir, "junk.safetensors"), []byte("not a checkpoint"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Describe(filepath.Join(dir, "junk.safetensors")); err == nil {
		t.Error("junk described")
	}
}

// The built-in prior describes itself from the embedded checkpoint and lap
// records, its lap among them.
func TestDescribeBuiltin(t *testing.T) {
	d, err := DescribeBuiltin()
	if err != nil {
		t.Fatal(err)
	}
	if d.SHA256 != builtin.SHA256() || d.Bytes != int64(len(builtin.Checkpoint())) || d.Path != builtin.Name {
		t.Errorf("description %s %d %q", d.SHA256, d.Bytes, d.Path)
	}
	found := false
	for _, r := range d.Laps {
		found = found || r.Lap == d.Info.Provenance.EMLap
	}
	if !found {
		t.Errorf("the lap records do not include the shipped lap %d: %+v", d.Info.Provenance.EMLap, d.Laps)
	}
}
