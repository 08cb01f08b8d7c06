package kspaceio

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestNPYRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "a.npy")
	data := []complex64{1 + 2i, -3, 4.5i, 7, 8, 9}
	if err := WriteNPYComplex64(p, []int{2, 3}, data); err != nil {
		t.Fatal(err)
	}
	a, err := ReadNPY(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Shape) != 2 || a.Shape[0] != 2 || a.Shape[1] != 3 || !a.Complex {
		t.Fatalf("shape %v complex %v", a.Shape, a.Complex)
	}
	for i := range data {
		if a.Data[i] != data[i] {
			t.Fatalf("element %d: %v != %v", i, a.Data[i], data[i])
		}
	}
}

// TestNPYWithNumPy checks files against NumPy itself, both directions,
// including a Fortran-ordered array.
func TestNPYWithNumPy(t *testing.T) {
	t.Parallel()
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skip("Debian python3 not installed")
	}
	if err := exec.Command(py, "-c", "import numpy").Run(); err != nil {
		t.Skip("python3-numpy not installed")
	}
	dir := t.TempDir()
	ours := filepath.Join(dir, "ours.npy")
	if err := WriteNPYFloat32(ours, []int{2, 2, 3}, []float32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}); err != nil {
		t.Fatal(err)
	}
	theirs := filepath.Join(dir, "theirs.npy")
	script := `import numpy as np, sys
a = np.load(sys.argv[1]); assert a.dtype == np.float32 and a.shape == (2, 2, 3), (a.dtype, a.shape)
assert (a.ravel() == np.arange(12)).all()
b = np.asfortranarray((np.arange(6) + 1j * np.arange(6)[::-1]).reshape(2, 3).astype(np.complex128))
np.save(sys.argv[2], b)
print("ok")`
	out, err := exec.Command(py, "-c", script, ours, theirs).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("numpy: %v\n%s", err, out)
	}
	a, err := ReadNPY(theirs)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ {
		want := complex(float32(i), float32(5-i))
		if a.Data[i] != want {
			t.Fatalf("element %d: %v, want %v", i, a.Data[i], want)
		}
	}
}

func TestNPYBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "g.npy")
	if err := WriteNPYComplex64(good, []int{4}, make([]complex64, 4)); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(good)
	cases := map[string][]byte{
		"empty":     {},
		"truncated": raw[:len(raw)-3],
		"huge":      []byte(strings.Replace(string(raw), "(4,)", "(99999999999,)", 1)),
		"dtype":     []byte(strings.Replace(string(raw), "<c8", "<i8", 1)),
	}
	for name, b := range cases {
		p := filepath.Join(dir, name+".npy")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadNPY(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %v should name the file", name, err)
		}
	}
}

func TestCFLRoundTripAndBadHeader(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	base := filepath.Join(dir, "x")
	data := make([]complex64, 4*3*2)
	for i := range data {
		data[i] = complex(float32(i), -float32(i))
	}
	if err := WriteCFL(base, []int{4, 3, 2}, data); err != nil {
		t.Fatal(err)
	}
	dims, got, err := ReadCFL(base)
	if err != nil {
		t.Fatal(err)
	}
	if len(dims) != 3 || dims[0] != 4 || dims[2] != 2 {
		t.Fatalf("dims %v", dims)
	}
	for i := range data {
		if got[i] != data[i] {
			t.Fatalf("element %d", i)
		}
	}
	if err := os.WriteFile(base+".hdr", []byte("# Dimensions\n100000 100000 100000 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadCFL(base); err == nil {
		t.Fatal("absurd header accepted")
	}
	if err := os.WriteFile(base+".hdr", []byte("# Dimensions\n5 3 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadCFL(base); err == nil || !strings.Contains(err.Error(), "bytes") {
		t.Fatalf("size mismatch: %v", err)
	}
}
