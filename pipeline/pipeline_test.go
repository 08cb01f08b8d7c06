package pipeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/internal/testutil"
	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/mri/kspaceio"
)

// simulateBrain writes a simulated 8-coil slice of the real ch2 brain as .npy
// k-space (plus mask) and returns the path and the magnitude truth.
func simulateBrain(t *testing.T, dir string) (string, []float32, *configs.Config) {
	t.Helper()
	testutil.File(t, namedVolumes["ch2"])
	cfg := configs.Default()
	cfg.Simulate.Rows, cfg.Simulate.Cols = 96, 96
	sim, err := Simulate(SimOptions{Source: "ch2", Slices: 1, Sim: cfg.Simulate})
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
		if rep.Slices != 1 || len(rep.Outputs) != 1 || len(rep.Residual) != 1 {
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
