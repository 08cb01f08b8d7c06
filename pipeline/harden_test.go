package pipeline

// Regression tests for issue 20 on the job side: inputs a reconstruction
// must refuse or keep apart.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/mri/kspaceio"
	"github.com/kspaced/kspaced/mri/simulate"
)

// smallKSpace simulates a 4-coil 32×32 Shepp–Logan slice.
func smallKSpace(t *testing.T) (shape []int, k []complex64) {
	t.Helper()
	sm := configs.Default().Simulate
	sm.Rows, sm.Cols, sm.Coils = 32, 32, 4
	sim, err := simulate.Acquire(simulate.Options{Source: "shepp-logan", Slices: 1, Sim: sm})
	if err != nil {
		t.Fatal(err)
	}
	s := sim.Volume.Slices[0]
	return []int{4, 32, 32}, s.KSpace
}

func zeroFilledConfig() *configs.Config {
	cfg := configs.Default()
	cfg.Recon.Method = "zero-filled"
	cfg.Output.NPY = true
	return cfg
}

// All-zero or subnormal k-space is bad input, not an all-black DICOM with
// success (nor a "disk or permissions" failure in the daemon).
func TestRunRefusesKSpaceWithoutSignal(t *testing.T) {
	shape, k := smallKSpace(t)
	for name, scale := range map[string]float32{"zero": 0, "subnormal": 1e-42 / 50} {
		dir := t.TempDir()
		in := filepath.Join(dir, name+".npy")
		kk := make([]complex64, len(k))
		for i, v := range k {
			kk[i] = v * complex(scale, 0)
		}
		if scale != 0 {
			kk[0] = complex(1e-42, 0) // subnormal, non-zero
		}
		if err := kspaceio.WriteNPYComplex64(in, shape, kk); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "out")
		os.Mkdir(out, 0o755)
		_, err := Run(context.Background(), Job{ID: name, Inputs: []string{in}, Config: zeroFilledConfig()}, out, nil)
		if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "no signal") {
			t.Errorf("%s k-space: %v, want bad input saying it holds no signal", name, err)
		}
	}
}

// Two k-space files with one name in one job (a/k.npy, b/k.npy) keep their
// outputs apart.
func TestRunSameNamedFilesKeepOutputsApart(t *testing.T) {
	shape, k := smallKSpace(t)
	dir := t.TempDir()
	job := filepath.Join(dir, "study")
	for i, sub := range []string{"a", "b"} {
		os.MkdirAll(filepath.Join(job, sub), 0o755)
		kk := make([]complex64, len(k))
		for j, v := range k {
			kk[j] = v * complex(float32(i+1), 0)
		}
		if err := kspaceio.WriteNPYComplex64(filepath.Join(job, sub, "k.npy"), shape, kk); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	rep, err := Run(context.Background(), Job{ID: "study", Inputs: []string{job}, Config: zeroFilledConfig()}, out, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err1 := kspaceio.ReadNPY(filepath.Join(out, "k.npy"))
	b, err2 := kspaceio.ReadNPY(filepath.Join(out, "k-2.npy"))
	if err1 != nil || err2 != nil {
		t.Fatalf("outputs %v: %v, %v", rep.Outputs, err1, err2)
	}
	// b's k-space is twice a's: so is its zero-filled image.
	if r := real(b.Data[len(b.Data)/2+16]) / real(a.Data[len(a.Data)/2+16]); r < 1.99 || r > 2.01 {
		t.Errorf("k-2.npy / k.npy = %v, want 2 (one overwrote the other)", r)
	}
	if _, err := os.Stat(filepath.Join(out, "previews", "k-2")); err != nil {
		t.Errorf("previews of the second file: %v", err)
	}
	if !strings.Contains(strings.Join(rep.Warnings, "\n"), "two k-space files are named k") {
		t.Errorf("no warning about the renamed outputs: %v", rep.Warnings)
	}
}

// A mask companion that is a link (to a secret, or to /dev/zero) is bad
// input and is never read.
func TestRunRefusesLinkedCompanion(t *testing.T) {
	shape, k := smallKSpace(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "k.npy")
	if err := kspaceio.WriteNPYComplex64(in, shape, k); err != nil {
		t.Fatal(err)
	}
	os.Symlink("/dev/zero", filepath.Join(dir, "k_mask.npy"))
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	_, err := Run(context.Background(), Job{ID: "k", Inputs: []string{in}, Config: zeroFilledConfig()}, out, nil)
	if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "k_mask.npy") || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("linked mask: %v", err)
	}
}
