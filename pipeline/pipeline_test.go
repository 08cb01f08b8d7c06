package pipeline

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/dicomio"
	"github.com/kspaced/kspaced/internal/testutil"
	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/mri/kspaceio"
	"github.com/kspaced/kspaced/mri/simulate"
)

// simulateBrain writes a simulated 8-coil slice of the real ch2 brain as .npy
// k-space (plus mask) and returns the path and the magnitude truth.
func simulateBrain(t *testing.T, dir string) (string, []float32, *configs.Config) {
	t.Helper()
	testutil.File(t, simulate.Volumes["ch2"])
	cfg := configs.Default()
	cfg.Simulate.Rows, cfg.Simulate.Cols = 96, 96
	sim, err := simulate.Acquire(simulate.Options{Source: "ch2", Slices: 1, Sim: cfg.Simulate})
	if err != nil {
		t.Fatal(err)
	}
	s := sim.Volume.Slices[0]
	p := filepath.Join(dir, "brain.npy")
	if err := kspaceio.WriteNPYComplex64(p, []int{s.Coils, s.Rows, s.Cols}, s.KSpace); err != nil {
		t.Fatal(err)
	}
	if err := kspaceio.WriteNPYFloat32(filepath.Join(dir, "brain_mask.npy"), []int{s.Rows, s.Cols}, s.Mask); err != nil {
		t.Fatal(err)
	}
	return p, magnitudes(sim.Truth), cfg
}

func TestRunMethodsOnSimulatedBrain(t *testing.T) {
	dir := t.TempDir()
	in, truth, cfg := simulateBrain(t, dir)
	cfg.Output.NPY = true
	psnr := map[string]float64{}
	for _, method := range []string{"zero-filled", "cg-sense", "l1-wavelet"} {
		cfg.Recon.Method = method
		cfg.Recon.Lambda = map[string]float64{"zero-filled": 0, "cg-sense": 0.01, "l1-wavelet": 0.001}[method]
		out := filepath.Join(dir, method)
		if err := os.Mkdir(out, 0o755); err != nil {
			t.Fatal(err)
		}
		rep, err := Run(context.Background(), Job{ID: method, Inputs: []string{in}, Config: cfg}, out, nil)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		if rep.Slices != 1 || len(rep.Outputs) != 3 || len(rep.Residual) != 1 { // .npy, one DICOM series, one preview
			t.Fatalf("%s: report %+v", method, rep)
		}
		a, err := kspaceio.ReadNPY(filepath.Join(out, "brain.npy"))
		if err != nil {
			t.Fatal(err)
		}
		if len(a.Shape) != 2 || a.Shape[0] != 96 || a.Shape[1] != 96 {
			t.Fatalf("%s: shape %v", method, a.Shape)
		}
		p, err := mri.PSNR(truth, magnitudes(a.Data), mri.MaxOf(truth))
		if err != nil {
			t.Fatal(err)
		}
		psnr[method] = p
		t.Logf("%s: PSNR %.2f dB, residual %.4f", method, p, rep.Residual[0])
	}
	// Iterative methods must beat zero-filling clearly, and the whole image
	// scale must survive prewhitening (a scale error costs tens of dB).
	if psnr["zero-filled"] < 15 || psnr["cg-sense"] < psnr["zero-filled"]+3 || psnr["l1-wavelet"] < psnr["zero-filled"]+3 {
		t.Fatalf("PSNR %v", psnr)
	}
}

// A folder as `kspaced simulate` leaves it holds NAME_truth.npy beside the
// k-space: recon of the folder must not take the truth image for k-space
// (it did), nor a hidden partial upload.
func TestRunFolderSkipsCompanions(t *testing.T) {
	dir := t.TempDir()
	in, _, cfg := simulateBrain(t, dir)
	truth := make([]complex64, 96*96)
	if err := kspaceio.WriteNPYComplex64(filepath.Join(dir, "brain_truth.npy"), []int{96, 96}, truth); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".other.npy.part"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Recon.Method = "zero-filled"
	out := t.TempDir()
	rep, err := Run(context.Background(), Job{ID: "folder", Inputs: []string{dir}, Config: cfg}, out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Slices != 1 || len(rep.Outputs) != 2 { // one DICOM series, one preview
		t.Fatalf("report: %d slices, outputs %v", rep.Slices, rep.Outputs)
	}
	for _, o := range rep.Outputs {
		if strings.Contains(o, "truth") || strings.Contains(o, "other") {
			t.Errorf("output %s from a companion file", o)
		}
	}
}

// TestRunJoinsSourceStudy feeds a DICOM series with the k-space: the new
// series must land in that study and name it, and validate with dciodvfy.
func TestRunJoinsSourceStudy(t *testing.T) {
	dir := t.TempDir()
	in, _, cfg := simulateBrain(t, dir)
	cfg.Recon.Method = "zero-filled"
	first := filepath.Join(dir, "first")
	if err := os.Mkdir(first, 0o755); err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), Job{ID: "a", Inputs: []string{in}, Config: cfg}, first, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Outputs) != 2 || filepath.Ext(rep.Outputs[1]) != ".png" {
		t.Fatalf("want one DICOM series and one preview, outputs %v", rep.Outputs)
	}
	studies, errs := dicomio.ReadStudies(filepath.Join(first, "dicom"))
	if len(errs) > 0 || len(studies) != 1 {
		t.Fatalf("first output: %v studies, errors %v", len(studies), errs)
	}
	srcUID := studies[0].Study.InstanceUID

	// Second job: the k-space plus the first job's DICOM as "the study".
	job := filepath.Join(dir, "job")
	if err := os.CopyFS(job, os.DirFS(filepath.Join(first, "dicom"))); err != nil {
		t.Fatal(err)
	}
	second := filepath.Join(dir, "second")
	if err := os.Mkdir(second, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), Job{ID: "b", Inputs: []string{in, job}, Config: cfg}, second, nil); err != nil {
		t.Fatal(err)
	}
	studies, errs = dicomio.ReadStudies(filepath.Join(second, "dicom"))
	if len(errs) > 0 || len(studies) != 1 || studies[0].Study.InstanceUID != srcUID {
		t.Fatalf("second output not in the source study %s: %d studies, errors %v", srcUID, len(studies), errs)
	}
	files, _ := filepath.Glob(filepath.Join(second, "dicom", "*", "*.dcm"))
	if len(files) != 1 {
		t.Fatalf("files %v", files)
	}
	out, err := exec.Command(testutil.Tool(t, "dciodvfy"), files[0]).CombinedOutput()
	if err != nil && len(out) == 0 {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "Error") {
		t.Fatalf("dciodvfy:\n%s", out)
	}
}

func TestRunBadInput(t *testing.T) {
	dir := t.TempDir()
	cfg := configs.Default()
	cases := map[string][]byte{
		"empty.h5":  {},
		"notes.txt": []byte("hello"),
		"trunc.npy": []byte("\x93NUMPY\x01\x00\x40\x00{'descr': '<c8', 'fortran_order': False, 'shape': (4, 8, 8), }"),
	}
	for name, raw := range cases {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Run(context.Background(), Job{ID: name, Inputs: []string{p}, Config: cfg}, dir, nil)
		if !errors.Is(err, ErrBadInput) {
			t.Errorf("%s: error %v does not wrap ErrBadInput", name, err)
		}
	}
	// All-zero k-space is readable but holds no signal.
	p := filepath.Join(dir, "zeros.npy")
	if err := kspaceio.WriteNPYComplex64(p, []int{1, 16, 16}, make([]complex64, 256)); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), Job{ID: "z", Inputs: []string{p}, Config: cfg}, dir, nil); !errors.Is(err, ErrBadInput) {
		t.Errorf("zeros: %v", err)
	}
}

func TestCropCenter(t *testing.T) {
	src := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11} // 3×4
	got := cropCenter(src, 3, 4, 1, 2)
	if len(got) != 2 || got[0] != 5 || got[1] != 6 {
		t.Fatalf("crop %v", got)
	}
}
