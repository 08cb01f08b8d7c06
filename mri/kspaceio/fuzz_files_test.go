package kspaceio

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// fuzzAlloc reads path with Read and fails when the read allocated more
// than a few times the bytes the input brought (the data are converted to
// complex64 at most twice their size) plus a constant for buffers.
func fuzzAlloc(t *testing.T, path string, inputBytes int) {
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	v, err := Read(path)
	runtime.ReadMemStats(&b)
	if got, limit := b.TotalAlloc-a.TotalAlloc, uint64(8*inputBytes)+4<<20; got > limit {
		t.Fatalf("allocated %d bytes for %d input bytes (limit %d)", got, inputBytes, limit)
	}
	if err != nil {
		return
	}
	for i := range v.Slices {
		s := &v.Slices[i]
		if len(s.KSpace) != s.Coils*s.Rows*s.Cols || len(s.Mask) != s.Rows*s.Cols {
			t.Fatalf("slice %d: %d samples, %d mask values for %d×%d×%d", i, len(s.KSpace), len(s.Mask), s.Coils, s.Rows, s.Cols)
		}
	}
}

// FuzzNPY: .npy k-space with an optional mask companion.
func FuzzNPY(f *testing.F) {
	dir := f.TempDir()
	k := filepath.Join(dir, "k.npy")
	if err := WriteNPYComplex64(k, []int{2, 4, 4}, make([]complex64, 32)); err == nil {
		b, _ := os.ReadFile(k)
		f.Add(b, []byte(nil))
		m := filepath.Join(dir, "m.npy")
		if err := WriteNPYFloat32(m, []int{4}, []float32{1, 0, 1, 0}); err == nil {
			mb, _ := os.ReadFile(m)
			f.Add(b, mb)
		}
	}
	f.Fuzz(func(t *testing.T, data, mask []byte) {
		dir := t.TempDir()
		p := filepath.Join(dir, "k.npy")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if mask != nil {
			if err := os.WriteFile(filepath.Join(dir, "k_mask.npy"), mask, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		fuzzAlloc(t, p, len(data)+len(mask))
	})
}

// FuzzCFL: BART .hdr and .cfl.
func FuzzCFL(f *testing.F) {
	f.Add([]byte("# Dimensions\n4 4 1 2 1 1 1 1 1 1 1 1 1 1 1 1\n"), make([]byte, 4*4*2*8))
	f.Add([]byte("# Dimensions\n65536 1024 1 1\n"), make([]byte, 64))
	f.Fuzz(func(t *testing.T, hdr, data []byte) {
		dir := t.TempDir()
		base := filepath.Join(dir, "k")
		if err := os.WriteFile(base+".hdr", hdr, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(base+".cfl", data, 0o644); err != nil {
			t.Fatal(err)
		}
		fuzzAlloc(t, base+".cfl", len(hdr)+len(data))
	})
}
