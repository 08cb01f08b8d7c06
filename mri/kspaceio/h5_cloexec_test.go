//go:build cgo

package kspaceio

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// A process started while kspaced holds an HDF5 file open must not inherit
// its descriptor: the inherited descriptor keeps HDF5's lock on the file
// after kspaced closes it, and the next open fails ("unable to lock file";
// seen as a flaky TestSimulateArchive while a parallel test ran Python).
func TestHDF5FileNotInheritedByChildren(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.h5")
	f, err := h5Create(path)
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command("sleep", "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	if err := f.close(); err != nil {
		t.Fatal(err)
	}
	fds, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(child.Process.Pid), "fd"))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, fd := range fds {
		if target, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(child.Process.Pid), "fd", fd.Name())); target == path {
			t.Errorf("the child holds %s as descriptor %s", path, fd.Name())
		}
	}
	g, err := h5Open(path, false)
	if err != nil {
		t.Fatalf("reopening after a child started: %v", err)
	}
	if err := g.close(); err != nil {
		t.Fatal(err)
	}
}
