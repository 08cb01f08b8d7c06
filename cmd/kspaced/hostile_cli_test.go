package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runBin runs the built kspaced and returns its exit status (exitStatus)
// and output.
func runBin(t *testing.T, args ...string) (int, string) {
	t.Helper()
	out, err := exec.Command(kspacedBin, args...).CombinedOutput()
	return exitStatus(err), string(out)
}

// recon and inspect read through the reader child (issue 20): on an
// ISMRMRD file that crashes libhdf5 1.10 (H5HG_read, damaged global heap)
// they exit 1 saying so, instead of dying of SIGSEGV; a good file beside
// it still reads.
func TestCLIHDF5CrashIsAnError(t *testing.T) {
	makeFixtures(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "heap.h5")
	if err := os.WriteFile(bad, mustRead(t, filepath.Join("..", "..", "internal", "isolate", "testdata", "crash", "ismrmrd-global-heap.h5")), 0o644); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.h5")
	if err := os.WriteFile(good, fixtures.h5, 0o644); err != nil {
		t.Fatal(err)
	}
	const want = "heap.h5: the file could not be read safely: the reader crashed (SIGSEGV)"
	for _, args := range [][]string{
		{"inspect", bad, good},
		{"recon", "--method", "zero-filled", "--out", filepath.Join(dir, "out"), bad},
	} {
		code, out := runBin(t, args...)
		if code != 1 || !strings.Contains(out, want) {
			t.Errorf("kspaced %s: exit %d, want 1 saying %q:\n%s", args[0], code, want, out)
		}
		t.Logf("kspaced %s: exit %d: %s", args[0], code, strings.TrimSpace(out))
	}
	code, out := runBin(t, "inspect", good)
	if code != 0 || !strings.Contains(out, "coils") {
		t.Errorf("inspect of a good file: exit %d:\n%s", code, out)
	}
}
