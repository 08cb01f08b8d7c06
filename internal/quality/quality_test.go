package quality

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/internal/testutil"
	"github.com/kspaced/kspaced/mri/kspaceio"
	"github.com/kspaced/kspaced/mri/simulate"
	"github.com/kspaced/kspaced/pipeline"
	"github.com/kspaced/kspaced/priors"
)

const simN = 48

// simulateScans writes n single-slice 48² 4-coil ellipse scans (4×, random
// 1-D mask, 0.2 centre) with their truth into a new folder.
func simulateScans(t *testing.T, n int, seed uint64) string {
	t.Helper()
	dir := t.TempDir()
	for i := 0; i < n; i++ {
		sm := configs.Default().Simulate
		sm.Rows, sm.Cols, sm.Coils, sm.Acceleration, sm.Noise, sm.Seed = simN, simN, 4, 4, 0.01, seed+uint64(i)
		sm.CenterFraction = 0.2 // 10 calibration lines, enough for ESPIRiT at this size
		sim, err := simulate.Acquire(simulate.Options{Source: "ellipses", Slices: 1, Sim: sm})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sim.Write(filepath.Join(dir, fmt.Sprintf("scan%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// smallConfig suits 48² scans: a calibration region the size of the
// simulated one.
func smallConfig() *configs.Config {
	cfg := configs.Default()
	cfg.Recon.CoilMaps.Calib, cfg.Recon.CoilMaps.Kernel = 10, 4
	return cfg
}

func finiteScores(t *testing.T, c Cell) {
	t.Helper()
	for _, s := range c.Scores {
		if math.IsNaN(s.PSNR) || math.IsInf(s.PSNR, 0) || !(s.SSIM > -1 && s.SSIM <= 1) || !(s.Seconds > 0) {
			t.Errorf("%s %s: score %+v", c.Method, s.Scan, s)
		}
	}
}

func TestHarnessOnSimulatedScans(t *testing.T) {
	test := simulateScans(t, 3, 10)
	ctx := context.Background()
	methods := []string{"zero-filled", "cg-sense", "l1-wavelet"}
	rep, err := Run(ctx, Options{Tests: []string{test}, Methods: methods, Config: smallConfig(), L1Lambda: 0.003})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Cells) != 3 {
		t.Fatalf("%d cells, want 3", len(rep.Cells))
	}
	for i, c := range rep.Cells {
		if c.Method != methods[i] || len(c.Scores) != 3 || c.PSNR.N != 3 || c.Rows != simN || c.Coverage.N != 0 {
			t.Fatalf("cell %d: %+v", i, c)
		}
		finiteScores(t, c)
	}
	if rep.Cells[2].Lambda != 0.003 {
		t.Errorf("l1-wavelet λ %g, want 0.003", rep.Cells[2].Lambda)
	}
	for k := range rep.Cells[0].Scores {
		zf, cg := rep.Cells[0].Scores[k], rep.Cells[1].Scores[k]
		if !(cg.PSNR > zf.PSNR) {
			t.Errorf("%s: CG-SENSE %.2f dB not above zero-filled %.2f dB", zf.Scan, cg.PSNR, zf.PSNR)
		}
	}

	// The score is PSNR of magnitudes of what recon writes, against the
	// truth's magnitude with its max as data range: recompute it naively.
	scan := filepath.Join(test, "scan1.h5")
	cfg := smallConfig()
	cfg.Recon.Method, cfg.Output = "cg-sense", configs.Output{NPY: true}
	out := t.TempDir()
	if _, err := pipeline.Run(ctx, pipeline.Job{ID: "x", Inputs: []string{scan}, Config: cfg}, out, nil); err != nil {
		t.Fatal(err)
	}
	img, err := kspaceio.ReadNPY(filepath.Join(out, "scan1.npy"))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := kspaceio.ReadNPY(filepath.Join(test, "scan1_truth.npy"))
	if err != nil {
		t.Fatal(err)
	}
	var peak, se float64
	for i, v := range tr.Data {
		a := math.Hypot(float64(real(v)), float64(imag(v)))
		b := math.Hypot(float64(real(img.Data[i])), float64(imag(img.Data[i])))
		peak = math.Max(peak, a)
		se += (a - b) * (a - b)
	}
	naive := 10 * math.Log10(peak*peak/(se/float64(len(tr.Data))))
	if got := rep.Cells[1].Scores[1]; got.Scan != "scan1.h5" || math.Abs(got.PSNR-naive) > 1e-3 {
		t.Errorf("harness %s PSNR %.5f dB, naive float64 %.5f dB", got.Scan, got.PSNR, naive)
	}

	// And both metrics as scikit-image computes them on the same images.
	py := testutil.PythonWith(t, "skimage.metrics", "numpy")
	script := `import json, sys, numpy as np
from skimage.metrics import peak_signal_noise_ratio as p, structural_similarity as s
t = np.abs(np.load(sys.argv[1])).astype(np.float64).reshape(48, 48)
x = np.abs(np.load(sys.argv[2])).astype(np.float64).reshape(48, 48)
print(json.dumps([p(t, x, data_range=t.max()), s(t, x, data_range=t.max())]))`
	b, err := exec.Command(py, "-c", script, filepath.Join(test, "scan1_truth.npy"), filepath.Join(out, "scan1.npy")).CombinedOutput()
	if err != nil {
		t.Fatalf("skimage: %v\n%s", err, b)
	}
	var ref [2]float64
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatalf("skimage output %q: %v", b, err)
	}
	got := rep.Cells[1].Scores[1]
	if math.Abs(got.PSNR-ref[0]) > 1e-3 || math.Abs(got.SSIM-ref[1]) > 1e-4 {
		t.Errorf("harness PSNR %.5f SSIM %.5f; skimage %.5f %.5f", got.PSNR, got.SSIM, ref[0], ref[1])
	}
}

func TestTuneOnValidationScans(t *testing.T) {
	val, test := simulateScans(t, 2, 100), simulateScans(t, 1, 200)
	grid := []float64{1e-4, 1e-2, 1}
	rep, err := Run(context.Background(), Options{Tests: []string{test}, Methods: []string{"l1-wavelet"},
		Config: smallConfig(), TuneOn: val, TuneScans: 2, Grid: grid})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Tuning) != 1 {
		t.Fatalf("tuning %+v", rep.Tuning)
	}
	tu := rep.Tuning[0]
	if len(tu.Scans) != 2 || len(tu.PSNR) != 3 {
		t.Fatalf("tuning %+v", tu)
	}
	// λ = 1 wipes the image out (the data are scaled to a unit zero-filled
	// peak): it must lose, and the pick must be the grid's best.
	if !(tu.PSNR[2] < tu.PSNR[0]) || !(tu.PSNR[2] < tu.PSNR[1]) {
		t.Errorf("λ = 1 scored %.2f dB, not below %.2f and %.2f", tu.PSNR[2], tu.PSNR[0], tu.PSNR[1])
	}
	want := grid[0]
	if tu.PSNR[1] > tu.PSNR[0] {
		want = grid[1]
	}
	if tu.Best != want || rep.L1Lambda != want || rep.Cells[0].Lambda != want {
		t.Errorf("best %g, report %g, cell %g; want %g", tu.Best, rep.L1Lambda, rep.Cells[0].Lambda, want)
	}
	if _, err := Run(context.Background(), Options{Tests: []string{test}, Methods: []string{"l1-wavelet"},
		TuneOn: test + "/"}); err == nil || !strings.Contains(err.Error(), "test folder") {
		t.Errorf("tuning on the test folder: %v", err)
	}
}

func TestBartPicsCell(t *testing.T) {
	bart := testutil.Tool(t, "bart")
	test := simulateScans(t, 2, 300)
	rep, err := Run(context.Background(), Options{Tests: []string{test}, Methods: []string{"zero-filled", "l1-wavelet", BartPics},
		Config: smallConfig(), L1Lambda: 0.003, BartLambda: 0.003, Bart: bart})
	if err != nil {
		t.Fatal(err)
	}
	zf, l1, bp := rep.Cells[0], rep.Cells[1], rep.Cells[2]
	finiteScores(t, bp)
	if bp.Method != BartPics || len(bp.Scores) != 2 || bp.Lambda != 0.003 {
		t.Fatalf("bart cell %+v", bp)
	}
	// The same problem on the same data and maps: BART must land near ours
	// (its wavelet differs) and well above zero-filled.
	if math.Abs(bp.PSNR.Mean-l1.PSNR.Mean) > 1.5 || !(bp.PSNR.Mean > zf.PSNR.Mean+1) {
		t.Errorf("bart pics %.2f dB, ours %.2f dB, zero-filled %.2f dB", bp.PSNR.Mean, l1.PSNR.Mean, zf.PSNR.Mean)
	}
}

// untrainedPrior writes an untrained small U-Net for simN² scans and
// returns its path: enough to test the sampling plumbing.
func untrainedPrior(t *testing.T) string {
	t.Helper()
	net, err := priors.NewUNet(priors.SmallUNet(simN, simN), 1)
	if err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(t.TempDir(), "prior.safetensors")
	if err := net.Save(ckpt, priors.CheckpointMeta{Architecture: net.Config(),
		Normalisation: priors.Normalisation{Scheme: pipeline.NormalisationScheme}}); err != nil {
		t.Fatal(err)
	}
	return ckpt
}

func TestSamplingCellHasCoverage(t *testing.T) {
	test := simulateScans(t, 1, 400)
	cfg := smallConfig()
	cfg.Recon.Sampler.Prior = untrainedPrior(t)
	cfg.Recon.Sampler.Steps, cfg.Recon.Sampler.CGIterations, cfg.Recon.Sampler.Samples = 3, 1, 2
	rep, err := Run(context.Background(), Options{Tests: []string{test}, Methods: []string{"zero-filled", "mmps"}, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Cells) != 2 || rep.Cells[1].Method != "mmps" {
		t.Fatalf("cells %+v", rep.Cells)
	}
	c := rep.Cells[1]
	finiteScores(t, c)
	if c.Coverage.N != 1 || !(c.Coverage.Mean >= 0 && c.Coverage.Mean <= 1) || rep.Sampler.Samples != 2 {
		t.Errorf("mmps cell coverage %+v, sampler %+v", c.Coverage, rep.Sampler)
	}
	if rep.Cells[0].Coverage.N != 0 {
		t.Errorf("zero-filled has a coverage: %+v", rep.Cells[0].Coverage)
	}
}

func TestCoverage(t *testing.T) {
	// max 2: foreground is truth > 0.2. Pixel 0 is inside (|0.1| ≤ 1.645·0.1),
	// pixel 1 outside (0.5 > 1.645·0.2), pixel 2 is background whatever its
	// error, pixel 3 inside.
	truth := []float32{1, 2, 0.1, 1}
	mean := []float32{1.1, 2.5, 5, 1.8}
	std := []float32{0.1, 0.2, 0, 0.5}
	if got := Coverage(truth, mean, std, 1.645); math.Abs(got-2.0/3) > 1e-6 {
		t.Errorf("coverage %g, want 2/3", got)
	}
	// ±2.6·std (the 90 % interval of 4 samples) takes pixel 1 in too.
	if got := Coverage(truth, mean, std, 2.6); math.Abs(got-1) > 1e-6 {
		t.Errorf("coverage %g with k = 2.6, want 1", got)
	}
}

func TestScansSpreadOverFolder(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 5; i++ {
		for _, suffix := range []string{".npy", "_truth.npy"} {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("s%d%s", i, suffix)), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "notruth.npy"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := scans(dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || filepath.Base(got[0]) != "s0.npy" || filepath.Base(got[1]) != "s2.npy" {
		t.Errorf("picked %v, want s0.npy and s2.npy", got)
	}
	if all, _ := scans(dir, 0); len(all) != 5 {
		t.Errorf("all scans: %v", all)
	}
}

func TestSummarise(t *testing.T) {
	s := summarise([]float64{1, 2, 3, 4})
	// Sample sd of 1..4: √(5/3).
	if s.N != 4 || s.Mean != 2.5 || math.Abs(s.SD-math.Sqrt(5.0/3)) > 1e-12 {
		t.Errorf("%+v", s)
	}
}
