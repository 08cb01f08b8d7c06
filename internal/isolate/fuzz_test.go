package isolate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/mri/kspaceio"
)

// The HDF5 and DICOM targets run every input through a reader child, as
// the daemon does: a crash, a hang or a memory blow-up in the parser (the
// HDF5 C library above all) fails the target instead of killing the fuzzer.
// An ordinary read error is fine. Committed seeds: testdata/fuzz.
var fuzzReader = &Reader{Limits: Limits{Memory: 512 << 20, CPU: 5 * time.Second, Wall: 15 * time.Second, Result: 256 << 20}}

func fuzzKSpace(t *testing.T, name string, data []byte) {
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := fuzzReader.KSpace(context.Background(), p); errors.Is(err, ErrUnsafe) {
		t.Fatal(err)
	}
}

// FuzzFastMRI: fastMRI HDF5 through the child.
func FuzzFastMRI(f *testing.F) {
	s := mri.Scan{Coils: 2, Rows: 8, Cols: 8, KSpace: make([]complex64, 128), Mask: make([]float32, 64)}
	for i := range s.KSpace {
		s.KSpace[i] = complex(float32(i), 1)
	}
	for i := range s.Mask {
		s.Mask[i] = float32(i % 2)
	}
	p := filepath.Join(f.TempDir(), "seed.h5")
	if err := kspaceio.WriteFastMRI(p, &kspaceio.Volume{Slices: []mri.Scan{s}}); err == nil {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzKSpace(t, "k.h5", data) })
}

// FuzzISMRMRD: ISMRMRD HDF5 (seeded with ismrmrd_generate_cartesian_shepp_logan
// output) through the child.
func FuzzISMRMRD(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzKSpace(t, "k.h5", data) })
}

// FuzzDICOMFolder: a study folder of two files (the input split in two)
// read through the child.
func FuzzDICOMFolder(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		dir := t.TempDir()
		c := min(int(cut), len(data))
		for i, b := range [][]byte{data[:c], data[c:]} {
			if err := os.WriteFile(filepath.Join(dir, []string{"a.dcm", "b.dcm"}[i]), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := fuzzReader.Study(context.Background(), []string{dir}); err != nil {
			t.Fatal(err)
		}
	})
}
