package pipeline

import (
	"context"
	"encoding/json"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/internal/testutil"
	"github.com/kspaced/kspaced/mri/kspaceio"
	"github.com/kspaced/kspaced/qc"
)

// A clean scan passes QC; the same scan with motion (random shifts on a
// third of its sampled lines) is flagged in report.json, in the DICOM series
// (ImageComments and SeriesDescription, read back by dcmtk's dcmdump) and
// in the preview (a banner makes it taller).
func TestQCInReportDICOMAndPreview(t *testing.T) {
	dcmdump := testutil.Tool(t, "dcmdump")
	dir := t.TempDir()
	in, _, cfg := simulateBrain(t, dir)
	run := func(name string) (*Report, string) { return runJob(t, dir, name, in, cfg) }
	clean, cleanOut := run("clean")
	if clean.QC == nil || clean.QC.Status != "ok" || len(clean.QC.Series) != 1 || clean.QC.Series[0].PerSlice[0] == nil {
		b, _ := json.Marshal(clean.QC)
		t.Fatalf("clean scan QC %s", b)
	}
	dc := clean.QC.Series[0].PerSlice[0].DataConsistency
	t.Logf("clean: ratio %.3f (expected %.3f, threshold %.3f)", dc.Ratio, dc.Expected, dc.Threshold)
	if lm, e := clean.QC.Series[0].PerSlice[0].LineMotion, clean.QC.Series[0].PerSlice[0].EdgeSparsity; lm != nil && e != nil {
		t.Logf("clean: line motion %.2g (threshold %.2g), edge sparsity %.2f (threshold %.2f)", lm.Explained, lm.Threshold, e.Score, e.Threshold)
	}

	moveLines(t, in)
	moved, out := run("moved")
	if moved.QC.Status != "check" || len(moved.QC.Flags) == 0 {
		t.Fatalf("moved scan QC %+v (slice %+v)", moved.QC, moved.QC.Series[0].PerSlice[0])
	}
	reason := moved.QC.Series[0].PerSlice[0].Flags[0].Reason
	t.Logf("moved: %v", moved.QC.Flags)
	if lm, e := moved.QC.Series[0].PerSlice[0].LineMotion, moved.QC.Series[0].PerSlice[0].EdgeSparsity; lm != nil && e != nil {
		t.Logf("moved: line motion %.2g (threshold %.2g), edge sparsity %.2f (threshold %.2f)", lm.Explained, lm.Threshold, e.Score, e.Threshold)
	}

	var back Report
	raw, err := os.ReadFile(filepath.Join(out, ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if back.QC == nil || back.QC.Status != "check" || !strings.Contains(string(raw), reason) {
		t.Fatalf("report.json lacks the flag %q", reason)
	}

	dump := func(dir string) string {
		var files []string
		filepath.WalkDir(filepath.Join(dir, "dicom"), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				files = append(files, p)
			}
			return nil
		})
		if len(files) == 0 {
			t.Fatalf("no DICOM in %s", dir)
		}
		b, err := exec.Command(dcmdump, "+P", "0008,103e", "+P", "0020,4000", files[0]).CombinedOutput()
		if err != nil {
			t.Fatalf("dcmdump: %v\n%s", err, b)
		}
		return string(b)
	}
	d := dump(out)
	if !strings.Contains(d, "[QC: check]") || !strings.Contains(d, "QC: "+reason) {
		t.Errorf("flagged DICOM:\n%s", d)
	}
	if d := dump(cleanOut); strings.Contains(d, "QC") {
		t.Errorf("clean DICOM mentions QC:\n%s", d)
	}

	height := func(dir string) int {
		f, err := os.Open(filepath.Join(dir, "previews", "brain", "preview_0001.png"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		c, err := png.DecodeConfig(f)
		if err != nil {
			t.Fatal(err)
		}
		return c.Height
	}
	if height(out) <= height(cleanOut) {
		t.Error("flagged preview has no banner")
	}
}

// A classical job with a configured prior measures its typicality too.
func TestQCTypicalityForClassicalWithPrior(t *testing.T) {
	dir := t.TempDir()
	in, _, cfg := simulateBrain(t, dir)
	cfg.Recon.Sampler.Prior = "../train/default-prior/lap-01.safetensors"
	rep, err := Run(context.Background(), Job{ID: "p", Inputs: []string{in}, Config: cfg}, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := rep.QC.Series[0].PerSlice[0]
	if r.Typicality == nil || !(r.Typicality.Score > 0) {
		t.Fatalf("no typicality: %+v, notes %v", r.Typicality, r.Notes)
	}
	if _, err := os.Stat(qc.SidecarPath(cfg.Recon.Sampler.Prior)); err == nil && r.Typicality.Threshold == 0 {
		t.Error("calibrated prior without a threshold")
	}
}

// A sampling method's QC is judged on a CG-SENSE reconstruction of the same
// data: a clean scan sampled with MMPS passes, the same scan with motion is
// flagged "motion suspected", and both report the samples' uncertainty.
func TestQCOfSamplingUsesReference(t *testing.T) {
	dir := t.TempDir()
	in, _, cfg := simulateBrain(t, dir)
	cfg.Recon.Method = "mmps"
	cfg.Recon.Sampler.Steps, cfg.Recon.Sampler.Samples = 4, 2
	run := func(name string) *qc.Result {
		rep, _ := runJob(t, dir, name, in, cfg)
		r := rep.QC.Series[0].PerSlice[0]
		if r.Method != "mmps" || r.Reference != "cg-sense" || r.Uncertainty == nil || r.LineMotion == nil ||
			len(r.Notes) == 0 || !strings.Contains(strings.Join(r.Notes, "; "), "mmps mean's own data-consistency ratio") {
			b, _ := json.Marshal(r)
			t.Fatalf("%s: QC %s", name, b)
		}
		return r
	}
	if clean := run("clean"); clean.Flagged() {
		t.Fatalf("clean scan flagged: %+v", clean.Flags)
	}
	moveLines(t, in)
	moved := run("moved")
	var motion bool
	for _, f := range moved.Flags {
		motion = motion || f.Code == qc.CodeMotion
	}
	if !motion {
		t.Fatalf("moved scan sampled with mmps: flags %+v", moved.Flags)
	}
}

// moveLines rewrites the .npy k-space at in with motion: about a third of
// its sampled columns acquired with the object shifted by up to 4 px.
func moveLines(t *testing.T, in string) {
	t.Helper()
	a, err := kspaceio.ReadNPY(in)
	if err != nil {
		t.Fatal(err)
	}
	m, err := kspaceio.ReadNPY(strings.TrimSuffix(in, ".npy") + "_mask.npy")
	if err != nil {
		t.Fatal(err)
	}
	coils, rows, cols := a.Shape[0], a.Shape[1], a.Shape[2]
	ks := a.Data
	mask := make([]float32, len(m.Data))
	for i, v := range m.Data {
		mask[i] = real(v)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for c := 0; c < cols; c++ {
		if mask[c] == 0 || rng.Float64() > 0.35 {
			continue
		}
		dy, dx := 8*rng.Float64()-4, 8*rng.Float64()-4
		for r := 0; r < rows; r++ {
			ph := -2 * math.Pi * (float64(r-rows/2)*dy/float64(rows) + float64(c-cols/2)*dx/float64(cols))
			f := complex64(complex(math.Cos(ph), math.Sin(ph)))
			for co := 0; co < coils; co++ {
				ks[(co*rows+r)*cols+c] *= f
			}
		}
	}
	if err := kspaceio.WriteNPYComplex64(in, a.Shape, ks); err != nil {
		t.Fatal(err)
	}
}

// runJob runs in as job name into dir/name and writes its report there.
func runJob(t *testing.T, dir, name, in string, cfg *configs.Config) (*Report, string) {
	t.Helper()
	out := filepath.Join(dir, name)
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), Job{ID: name, Inputs: []string{in}, Config: cfg}, out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Write(out); err != nil {
		t.Fatal(err)
	}
	return rep, out
}
