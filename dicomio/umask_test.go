package dicomio

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Outputs take the service's umask (issue 20): a site running kspaced with
// umask 027 must not find its previews and series world-readable.
func TestOutputsRespectUmask(t *testing.T) {
	old := syscall.Umask(0o027)
	defer syscall.Umask(old)
	dir := t.TempDir()
	img := make([]float32, 8*8)
	for i := range img {
		img[i] = float32(i)
	}
	files, err := WritePreviews(filepath.Join(dir, "previews"), img, img, nil, 1, 8, 8)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(files[0]); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("preview mode %v (%v), want 0640 under umask 027", fi.Mode().Perm(), err)
	}
	if err := writeDirAtomic(dir, "series", func(tmp string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "series")); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("series folder mode %v (%v), want 0750 under umask 027", fi.Mode().Perm(), err)
	}
}
