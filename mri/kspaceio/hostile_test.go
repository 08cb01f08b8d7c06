//go:build cgo

package kspaceio

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/kspaced/kspaced/internal/testutil"
)

// hostileScript writes, with h5py, HDF5 files whose k-space lives (or
// claims to live) somewhere else, next to a good file other.h5.
const hostileScript = `
import sys, h5py, numpy as np
d = sys.argv[1]
k = (np.arange(64, dtype=np.float32).reshape(1, 8, 8) + 1j).astype(np.complex64)
with h5py.File(d + "/other.h5", "w") as f:
    f["kspace"] = k
with h5py.File(d + "/elink.h5", "w") as f:
    f["kspace"] = h5py.ExternalLink("other.h5", "/kspace")
with h5py.File(d + "/elink_deep.h5", "w") as f:
    f["kspace"] = k
    f["extra/patient"] = h5py.ExternalLink("other.h5", "/kspace")
open(d + "/secret.bin", "wb").write(k.tobytes())
with h5py.File(d + "/extstore.h5", "w") as f:
    f.create_dataset("kspace", shape=k.shape, dtype=k.dtype, external=[(d + "/secret.bin", 0, k.nbytes)])
with h5py.File(d + "/vds.h5", "w") as f:
    lay = h5py.VirtualLayout(shape=k.shape, dtype=k.dtype)
    lay[:] = h5py.VirtualSource("other.h5", "kspace", shape=k.shape)
    f.create_virtual_dataset("kspace", lay)
with h5py.File(d + "/soft.h5", "w") as f:
    f["data/k"] = k
    f["kspace"] = h5py.SoftLink("/data/k")
for name in ("ub_zero.h5", "ub_dicom.h5"):
    with h5py.File(d + "/" + name, "w", userblock_size=512) as f:
        f["kspace"] = k
with open(d + "/ub_dicom.h5", "r+b") as f:
    f.seek(128); f.write(b"DICM\x02\x00\x00\x00UL\x04\x00")
z = np.zeros((16, 16, 512, 512), np.complex64)
with h5py.File(d + "/bomb.h5", "w") as f:
    f.create_dataset("kspace", data=z, chunks=(1, 1, 512, 512), compression="gzip", compression_opts=9)
`

func hostileFiles(t *testing.T) string {
	t.Helper()
	py := testutil.PythonWith(t, "h5py", "numpy")
	dir := t.TempDir()
	if out, err := exec.Command(py, "-c", hostileScript, dir).CombinedOutput(); err != nil {
		t.Fatalf("h5py: %v\n%s", err, out)
	}
	return dir
}

// allocated returns the bytes the Go heap allocated while f ran.
func allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// TestHDF5PointingElsewhereRefused: nothing reaches outside the file —
// external links (anywhere in it), external storage and virtual datasets
// are refused with a reason; a user block that makes the file a DICOM too
// is refused; soft links inside the file and MATLAB-style empty user
// blocks still read.
func TestHDF5PointingElsewhereRefused(t *testing.T) {
	t.Parallel()
	dir := hostileFiles(t)
	for _, c := range []struct{ file, want string }{
		{"elink.h5", "external link"},
		{"elink_deep.h5", "external link"},
		{"extstore.h5", "external storage"},
		{"vds.h5", "virtual"},
		{"ub_dicom.h5", "user block"},
	} {
		v, err := Read(filepath.Join(dir, c.file))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: read %v, err %v; want refused for %q", c.file, v != nil, err, c.want)
		}
	}
	for _, f := range []string{"other.h5", "soft.h5", "ub_zero.h5"} {
		v, err := Read(filepath.Join(dir, f))
		if err != nil || len(v.Slices) != 1 || v.Slices[0].KSpace[1] != complex(1, 1) {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// TestGzipBombRefusedBeforeReading: 512 MiB of zeros deflated to well
// under a megabyte is refused from the stored size, allocating nothing
// near the announced size.
func TestGzipBombRefusedBeforeReading(t *testing.T) {
	dir := hostileFiles(t)
	var err error
	n := allocated(func() { _, err = Read(filepath.Join(dir, "bomb.h5")) })
	if err == nil || !strings.Contains(err.Error(), "decompression bomb") {
		t.Fatalf("gzip bomb: err %v", err)
	}
	if n > 32<<20 {
		t.Fatalf("refusing the bomb allocated %d MiB", n>>20)
	}
	// The per-file limit counts decompressed bytes too.
	_, err = ReadLimited(filepath.Join(dir, "other.h5"), Limits{MaxBytes: 256})
	if err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("512 B of k-space under a 256 B limit: %v", err)
	}
}

// sparseFile writes head and extends the file with a hole to size bytes.
func sparseFile(t *testing.T, path string, head []byte, size int64) {
	t.Helper()
	if err := os.WriteFile(path, head, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// TestSparseFilesRefusedBeforeReading: a .npy or .cfl of a few KiB on disk
// that declares 2 GiB of k-space is refused before the data are read.
func TestSparseFilesRefusedBeforeReading(t *testing.T) {
	dir := t.TempDir()
	hdr := "{'descr': '<c8', 'fortran_order': False, 'shape': (16, 4096, 4096), }"
	hdr += strings.Repeat(" ", 64-(10+len(hdr)+1)%64) + "\n"
	head := append([]byte("\x93NUMPY\x01\x00"), byte(len(hdr)), byte(len(hdr)>>8))
	head = append(head, hdr...)
	npy := filepath.Join(dir, "sparse.npy")
	sparseFile(t, npy, head, int64(len(head))+16*4096*4096*8)
	cfl := filepath.Join(dir, "sparse")
	if err := os.WriteFile(cfl+".hdr", []byte("# Dimensions\n4096 4096 1 16\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sparseFile(t, cfl+".cfl", nil, 16*4096*4096*8)
	for _, p := range []string{npy, cfl + ".cfl"} {
		var err error
		n := allocated(func() { _, err = Read(p) })
		if err == nil || !strings.Contains(err.Error(), "sparse") {
			t.Errorf("%s: err %v", filepath.Base(p), err)
		}
		if n > 16<<20 {
			t.Errorf("%s: refusing allocated %d MiB", filepath.Base(p), n>>20)
		}
	}
}

// TestCFLGeometryCheckedBeforeReading: dimensions beyond the limits are
// refused from the header alone (they used to be checked after reading).
func TestCFLGeometryCheckedBeforeReading(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "wide")
	if err := os.WriteFile(base+".hdr", []byte("# Dimensions\n65536 1024 1 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sparseFile(t, base+".cfl", nil, 65536*1024*8)
	var err error
	n := allocated(func() { _, err = Read(base + ".cfl") })
	if err == nil || !strings.Contains(err.Error(), "matrix") {
		t.Fatalf("err %v, want the geometry refused", err)
	}
	if n > 16<<20 {
		t.Fatalf("refusing allocated %d MiB", n>>20)
	}
}
