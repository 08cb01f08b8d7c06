package pipeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kspaced/kspaced/dicomio"
	"github.com/kspaced/kspaced/mri/kspaceio"
)

// failingReader stands for the child-process reader when the child dies.
type failingReader struct{ kspace, study int }

var errReaderDied = errors.New("the file could not be read safely: the reader crashed (SIGSEGV)")

func (r *failingReader) KSpace(context.Context, string) (*kspaceio.Volume, error) {
	r.kspace++
	return nil, errReaderDied
}

func (r *failingReader) Study(context.Context, []string) ([]*dicomio.StudyData, []dicomio.FileError, error) {
	r.study++
	return nil, nil, errReaderDied
}

// TestRunReadsThroughJobReader: every k-space and DICOM read of a job goes
// through Job.Reader; its failure fails the job as bad input with the
// reader's reason, and HDF5 is only sniffed (never opened) to classify.
func TestRunReadsThroughJobReader(t *testing.T) {
	dir := t.TempDir()
	in, _, cfg := simulateBrain(t, dir)
	h5 := filepath.Join(dir, "scan.h5")
	// An HDF5 signature and garbage: opening it in this process would fail
	// classification; sniffing sends it to the reader.
	if err := os.WriteFile(h5, append([]byte("\x89HDF\r\n\x1a\n"), make([]byte, 600)...), 0o644); err != nil {
		t.Fatal(err)
	}
	notes := filepath.Join(dir, "notes.dcm")
	if err := os.WriteFile(notes, []byte("not DICOM"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Recon.Method = "zero-filled"
	rd := &failingReader{}
	out := t.TempDir()
	_, err := Run(context.Background(), Job{ID: "j", Inputs: []string{h5, in, notes}, Config: cfg, Reader: rd}, out, nil)
	if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "could not be read safely") {
		t.Fatalf("err %v, want bad input with the reader's reason", err)
	}
	if rd.kspace != 1 || rd.study != 1 {
		t.Fatalf("reader called %d (k-space), %d (study) times, want 1, 1", rd.kspace, rd.study)
	}
}

// TestHDF5WithoutKSpaceIgnored: an HDF5 file holding no k-space (a
// reconstruction, say) beside the k-space is ignored with a warning, as
// when classification opened HDF5 itself; alone, it fails as no k-space.
func TestHDF5WithoutKSpaceIgnored(t *testing.T) {
	dir := t.TempDir()
	in, _, cfg := simulateBrain(t, dir)
	rec := filepath.Join(dir, "recon.h5")
	if err := kspaceio.WriteReconstruction(rec, make([]float32, 16), 1, 4, 4, nil); err != nil {
		t.Skip(err)
	}
	cfg.Recon.Method = "zero-filled"
	rep, err := Run(context.Background(), Job{ID: "j", Inputs: []string{in, rec}, Config: cfg}, t.TempDir(), nil)
	if err != nil || rep.Slices != 1 || !strings.Contains(strings.Join(rep.Warnings, "\n"), "recon.h5 ignored") {
		t.Fatalf("err %v, report %+v", err, rep)
	}
	_, err = Run(context.Background(), Job{ID: "j", Inputs: []string{rec}, Config: cfg}, t.TempDir(), nil)
	if !errors.Is(err, ErrBadInput) || !errors.Is(err, errNoKSpace) {
		t.Fatalf("alone: err %v", err)
	}
}
