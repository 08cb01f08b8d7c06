package kspaceio

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kspaced/kspaced/internal/testutil"
)

func TestReadNPYVolume(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// [slices, coils, ky, kx] with a 1-D column mask sibling.
	slices, coils, rows, cols := 2, 3, 4, 5
	data := make([]complex64, slices*coils*rows*cols)
	for i := range data {
		if (i%cols)%2 == 0 {
			data[i] = complex(float32(i), 1)
		}
	}
	p := filepath.Join(dir, "vol.npy")
	if err := WriteNPYComplex64(p, []int{slices, coils, rows, cols}, data); err != nil {
		t.Fatal(err)
	}
	mask := []float32{1, 0, 1, 0, 1}
	if err := WriteNPYFloat32(filepath.Join(dir, "vol_mask.npy"), []int{cols}, mask); err != nil {
		t.Fatal(err)
	}
	v, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if v.Format != FormatNPY || len(v.Slices) != slices || v.Labels[1].Slice != 1 {
		t.Fatalf("format %s, %d slices, labels %v", v.Format, len(v.Slices), v.Labels)
	}
	per := coils * rows * cols
	for si, s := range v.Slices {
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		for i, x := range s.KSpace {
			if x != data[si*per+i] {
				t.Fatalf("slice %d sample %d", si, i)
			}
		}
		for i, m := range s.Mask {
			if m != mask[i%cols] {
				t.Fatalf("mask %d = %v", i, m)
			}
		}
	}
	if r, c := v.ImageSize(); r != rows || c != cols {
		t.Fatalf("image size %d×%d", r, c)
	}

	// [coils, ky, kx] without a mask: derived from non-zero samples.
	p2 := filepath.Join(dir, "one.npy")
	if err := WriteNPYComplex64(p2, []int{coils, rows, cols}, data[:per]); err != nil {
		t.Fatal(err)
	}
	v, err = Read(p2)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range v.Slices[0].Mask {
		if want := float32(1 - (i%cols)%2); m != want {
			t.Fatalf("derived mask %d = %v, want %v", i, m, want)
		}
	}

	// Real-valued k-space and a mask of the wrong shape are refused.
	p3 := filepath.Join(dir, "real.npy")
	if err := WriteNPYFloat32(p3, []int{rows, cols}, make([]float32, rows*cols)); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(p3); err == nil || !strings.Contains(err.Error(), "complex") {
		t.Errorf("real k-space: %v", err)
	}
	if err := WriteNPYFloat32(filepath.Join(dir, "one_mask.npy"), []int{3}, []float32{1, 1, 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(p2); err == nil || !strings.Contains(err.Error(), "one_mask.npy") {
		t.Errorf("bad mask: %v", err)
	}
	p4 := filepath.Join(dir, "five.npy")
	if err := WriteNPYComplex64(p4, []int{1, 1, 1, 1, 1}, make([]complex64, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(p4); err == nil || !strings.Contains(err.Error(), "shape") {
		t.Errorf("rank 5: %v", err)
	}
}

// TestReadCFLFromBART reads k-space written by BART itself.
func TestReadCFLFromBART(t *testing.T) {
	t.Parallel()
	bart := testutil.Tool(t, "bart")
	dir := t.TempDir()
	base := filepath.Join(dir, "ph")
	if out, err := exec.Command(bart, "phantom", "-k", "-s", "4", "-x", "24", base).CombinedOutput(); err != nil {
		t.Fatalf("bart phantom: %v\n%s", err, out)
	}
	dims, data, err := ReadCFL(base)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{base, base + ".cfl", base + ".hdr"} {
		f, err := Detect(p)
		if err != nil || f != FormatCFL {
			t.Fatalf("Detect(%s) = %q, %v", p, f, err)
		}
		v, err := Read(p)
		if err != nil {
			t.Fatal(err)
		}
		s := v.Slices[0]
		if s.Cols != dims[0] || s.Rows != dims[1] || s.Coils != 4 || len(v.Slices) != 1 {
			t.Fatalf("dims %v read as %d coils %d×%d", dims, s.Coils, s.Rows, s.Cols)
		}
		for i := range data {
			if s.KSpace[i] != data[i] {
				t.Fatalf("sample %d", i)
			}
		}
		if f := s.SampledFraction(); f < 0.99 {
			t.Fatalf("BART's fully sampled phantom has sampled fraction %v", f)
		}
	}
	// 3-D k-space is refused.
	if err := WriteCFL(filepath.Join(dir, "vol"), []int{4, 4, 3, 2}, make([]complex64, 96)); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(filepath.Join(dir, "vol.cfl")); err == nil || !strings.Contains(err.Error(), "3-D") {
		t.Errorf("3-D cfl: %v", err)
	}
}

func TestDetectAndBadPaths(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.h5")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	text := filepath.Join(dir, "notes.h5")
	if err := os.WriteFile(text, []byte("not k-space at all\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fakeHDF5 := filepath.Join(dir, "fake.npy") // a name that lies about the content
	if err := os.WriteFile(fakeHDF5, append(append([]byte{}, hdf5Magic...), make([]byte, 100)...), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		path, want string
		unknown    bool
	}{
		"directory":   {dir, "is a directory", false},
		"empty":       {empty, "empty file", false},
		"missing":     {filepath.Join(dir, "nope.h5"), "no such file", false},
		"text":        {text, "unrecognised", true},
		"fake hdf5":   {fakeHDF5, "", false},
		"dot-cfl gap": {filepath.Join(dir, "x.cfl"), "no such file", false},
	} {
		_, err := Read(c.path)
		if err == nil || !strings.Contains(err.Error(), c.path) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v should name %s and mention %q", name, err, c.path, c.want)
		}
		if errors.Is(err, ErrUnknownFormat) != c.unknown {
			t.Errorf("%s: ErrUnknownFormat = %v, want %v", name, errors.Is(err, ErrUnknownFormat), c.unknown)
		}
		if _, err2 := Detect(c.path); (err2 == nil) != false {
			t.Errorf("%s: Detect accepted", name)
		}
	}
}
