package dicomio

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// goodFiles are real files other tools wrote that must read exactly as
// pydicom reads them: every native transfer syntax (explicit and implicit
// little endian, big endian, deflate), signed and unsigned, 8/16/32 bits,
// RGB in both planar configurations, 12 bits stored, MONOCHROME1, rescaled
// CT and multi-frame (plain and with per-frame functional groups).
func goodFiles(t *testing.T) []string {
	var files []string
	for _, n := range []string{
		"MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_expb.dcm",
		"CT_small.dcm", "ExplVR_BigEnd.dcm", "image_dfl.dcm", "rtdose.dcm", "rtdose_expb.dcm",
		"rtdose_1frame.dcm", "SC_rgb_small_odd.dcm", "SC_rgb_jpeg_dcmd.dcm",
	} {
		files = append(files, pydicomFile(t, n))
	}
	for _, n := range []string{"1.dcm", "2.dcm", "3.dcm", "4.dcm", "5.dcm", "6.dcm"} {
		files = append(files, libTestdata(t, n))
	}
	return files
}

func TestReadMatchesPydicom(t *testing.T) {
	files := goodFiles(t)
	ref := pydicomRead(t, files...)
	for i, f := range files {
		name := filepath.Base(f)
		py := ref[i]
		if py.Error != "" {
			t.Fatalf("%s: pydicom cannot read it: %s", name, py.Error)
		}
		sd, err := ReadFile(f, ReadOptions{})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		se := sd.Series[0]
		in := se.Instances[0]
		eqs := []struct{ what, got, want string }{
			{"study UID", sd.Study.InstanceUID, py.StudyUID},
			{"series UID", se.InstanceUID, py.SeriesUID},
			{"SOP UID", in.SOPInstanceUID, py.SOPUID},
			{"frame of reference", se.FrameOfReferenceUID, py.FrameOfRef},
			{"patient name", sd.Study.Patient.Name, py.PatientName},
			{"patient ID", sd.Study.Patient.ID, py.PatientID},
			{"study date", sd.Study.Date, py.StudyDate},
			{"modality", se.Modality, py.Modality},
		}
		for _, e := range eqs {
			if e.got != e.want {
				t.Errorf("%s: %s %q, pydicom %q", name, e.what, e.got, e.want)
			}
		}
		if in.Rows != py.Rows || in.Cols != py.Columns || in.Frames != py.Frames || in.Samples != py.Samples {
			t.Errorf("%s: %d×%d×%d×%d, pydicom %d×%d×%d×%d", name, in.Frames, in.Rows, in.Cols, in.Samples, py.Frames, py.Rows, py.Columns, py.Samples)
		}
		if se.Number != py.SeriesNumber || in.Number != py.InstanceNumber {
			t.Errorf("%s: series/instance number %d/%d, pydicom %d/%d", name, se.Number, in.Number, py.SeriesNumber, py.InstanceNumber)
		}
		if py.IPP != nil && py.IOP != nil && py.PixelSpacing != nil && py.FrameIPP == nil {
			if !in.HasGeometry {
				t.Errorf("%s: no geometry, pydicom has it", name)
			}
			closeAll(t, name+" position", in.Geometry.Position[:], py.IPP)
			closeAll(t, name+" orientation", in.Geometry.Orientation[:], py.IOP)
			closeAll(t, name+" spacing", in.Geometry.PixelSpacing[:], py.PixelSpacing)
			if py.SliceThickness != nil {
				closeAll(t, name+" thickness", []float64{in.Geometry.SliceThickness}, []float64{*py.SliceThickness})
			}
		}
		if py.FrameIPP != nil {
			if len(in.FrameGeometry) != len(py.FrameIPP) {
				t.Errorf("%s: %d frame geometries, pydicom %d", name, len(in.FrameGeometry), len(py.FrameIPP))
			} else {
				for k, p := range py.FrameIPP {
					closeAll(t, name+" frame position", in.FrameGeometry[k].Position[:], p)
				}
			}
		}
		if len(in.Pixels) != len(py.Pixels) {
			t.Errorf("%s: %d pixels, pydicom %d", name, len(in.Pixels), len(py.Pixels))
			continue
		}
		bad := 0
		for k, v := range py.Pixels {
			if math.Abs(float64(in.Pixels[k])-v) > 1e-6*math.Max(1, math.Abs(v)) {
				if bad++; bad <= 3 {
					t.Errorf("%s: pixel %d = %v, pydicom %v", name, k, in.Pixels[k], v)
				}
			}
		}
		t.Logf("%-22s %s %d×%d×%d×%d %d-bit signed=%v: matches pydicom", name, in.TransferSyntaxUID, in.Frames, in.Rows, in.Cols, in.Samples, in.BitsStored, in.Signed)
	}
}

func closeAll(t *testing.T, what string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %v, want %v", what, got, want)
		return
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > 1e-9*math.Max(1, math.Abs(want[i])) {
			t.Errorf("%s: %v, want %v", what, got, want)
			return
		}
	}
}

// TestReadRefusesBadFiles checks each deliberately broken or unsupported
// real file gives its own clear error.
func TestReadRefusesBadFiles(t *testing.T) {
	cases := []struct {
		file string
		want error
	}{
		{"MR_truncated.dcm", ErrTruncated},
		{"rtplan_truncated.dcm", ErrTruncated},
		{"MR_small_padded.dcm", ErrMalformed}, // 128 bytes more pixel data than the header describes
		{"MR_small_RLE.dcm", ErrUnsupportedTransferSyntax},
		{"MR_small_jp2klossless.dcm", ErrUnsupportedTransferSyntax},
		{"MR_small_jpeg_ls_lossless.dcm", ErrUnsupportedTransferSyntax},
		{"JPEG-lossy.dcm", ErrUnsupportedTransferSyntax},
		{"no_meta.dcm", ErrNotDICOM},
		{"meta_missing_tsyntax.dcm", ErrMalformed},
		{"test-SR.dcm", ErrNoImage},
		{"liver_1frame.dcm", ErrUnsupportedPixels},
		{"SC_ybr_full_422_uncompressed.dcm", ErrUnsupportedPixels},
		{"UN_sequence.dcm", ErrMalformed},
	}
	for _, c := range cases {
		_, err := ReadFile(pydicomFile(t, c.file), ReadOptions{})
		if !errors.Is(err, c.want) {
			t.Errorf("%s: error %v, want %v", c.file, err, c.want)
			continue
		}
		t.Logf("%-32s %v", c.file, err)
	}
	if _, err := ReadFile(pydicomFile(t, "MR_small.dcm"), ReadOptions{MaxFileSize: 4096}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("size cap: error %v, want ErrTooLarge", err)
	}
}

// TestEveryTruncationIsCaught cuts a real file at every length: the library
// alone accepts most of these silently; here each must fail (ErrTruncated
// when the cut lands inside an element) or decode to the same pixels.
func TestEveryTruncationIsCaught(t *testing.T) {
	for _, name := range []string{"MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm"} {
		raw, err := os.ReadFile(pydicomFile(t, name))
		if err != nil {
			t.Fatal(err)
		}
		full, err := decode(raw, ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := full.Series[0].Instances[0].Pixels
		truncated := 0
		for n := 0; n < len(raw); n++ {
			sd, err := decode(raw[:n], ReadOptions{})
			if errors.Is(err, errLibraryPanic) {
				t.Fatalf("%s[:%d]: %v", name, n, err)
			}
			if errors.Is(err, ErrTruncated) {
				truncated++
			}
			if err == nil {
				got := sd.Series[0].Instances[0].Pixels
				for k := range want {
					if got[k] != want[k] {
						t.Fatalf("%s[:%d] decoded without error to different pixels", name, n)
					}
				}
			}
		}
		if truncated < len(raw)/2 {
			t.Errorf("%s: only %d of %d cuts reported as truncation", name, truncated, len(raw))
		}
		t.Logf("%s: %d cuts, %d reported ErrTruncated, none accepted with wrong pixels", name, len(raw), truncated)
	}
}

// TestReadStudiesGroupsAndOrders builds a folder of real and generated
// files: a three-slice series written by pydicom with shuffled instance
// numbers and positions, a second study, a duplicate, a broken file, a
// non-DICOM file and a hidden temporary folder.
func TestReadStudiesGroupsAndOrders(t *testing.T) {
	root := t.TempDir()
	src := pydicomFile(t, "MR_small.dcm")
	// Slices at z = 10, -5, 2.5 with instance numbers 1, 2, 3: position
	// order is 2, 3, 1.
	pydicomWrite(t, `
import sys, pydicom
from pydicom.uid import generate_uid
src, out = sys.argv[1], sys.argv[2]
series = generate_uid()
for k, (z, n) in enumerate([(10, 1), (-5, 2), (2.5, 3)]):
    d = pydicom.dcmread(src)
    d.SeriesInstanceUID = series
    d.SOPInstanceUID = d.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    d.InstanceNumber = n
    d.ImagePositionPatient = [0, 0, z]
    d.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    d.PixelData = bytes([n]) * len(d.PixelData)
    d.save_as(f"{out}/slice{k}.dcm")
`, src, mkdir(t, root, "a/b"))
	copyFile(t, src, filepath.Join(root, "mr.dcm"))
	copyFile(t, src, filepath.Join(root, "a", "copy-of-mr.dcm"))
	copyFile(t, pydicomFile(t, "CT_small.dcm"), filepath.Join(root, "ct.dcm"))
	copyFile(t, pydicomFile(t, "MR_truncated.dcm"), filepath.Join(root, "a", "broken.dcm"))
	copyFile(t, src, filepath.Join(mkdir(t, root, ".kspaced.tmp-1"), "partial.dcm"))
	if err := os.WriteFile(filepath.Join(root, "notes.txt"), []byte("not DICOM"), 0o644); err != nil {
		t.Fatal(err)
	}

	studies, errs := ReadStudies(root)
	byErr := map[string]error{}
	for _, e := range errs {
		byErr[filepath.Base(e.Path)] = e.Err
	}
	if len(errs) != 3 || !errors.Is(byErr["broken.dcm"], ErrTruncated) || !errors.Is(byErr["notes.txt"], ErrNotDICOM) {
		t.Errorf("file errors %v", errs)
	}
	dup := byErr["copy-of-mr.dcm"]
	if dup == nil {
		dup = byErr["mr.dcm"]
	}
	if !errors.Is(dup, ErrDuplicate) {
		t.Errorf("duplicate not reported: %v", errs)
	}
	if len(studies) != 2 {
		t.Fatalf("%d studies, want 2 (MR and CT)", len(studies))
	}
	var mr *StudyData
	for _, s := range studies {
		if s.Series[0].Modality == "MR" {
			mr = s
		}
	}
	if mr == nil || len(mr.Series) != 2 {
		t.Fatalf("MR study: %+v", mr)
	}
	var three *Series
	for _, se := range mr.Series {
		if len(se.Instances) == 3 {
			three = se
		}
	}
	if three == nil {
		t.Fatal("no three-slice series")
	}
	var order []float64
	for _, in := range three.Instances {
		order = append(order, in.Geometry.Position[2])
		if in.Pixels[0] != float32(int16(in.Number)<<8|int16(in.Number)) {
			t.Errorf("slice %d pixel %v", in.Number, in.Pixels[0])
		}
	}
	if order[0] != -5 || order[1] != 2.5 || order[2] != 10 {
		t.Errorf("slices in order z=%v, want [-5 2.5 10]", order)
	}
	vol, n, r, c, err := three.Volume()
	if err != nil || n != 3 || r != 64 || c != 64 || len(vol) != 3*64*64 {
		t.Fatalf("volume %d×%d×%d: %v", n, r, c, err)
	}
	if g := three.Geometry(); len(g) != 3 || g[0].Position[2] != -5 {
		t.Errorf("geometry %v", g)
	}
	if strings.Contains(strings.Join(pathsOf(three), " "), ".kspaced.tmp") {
		t.Error("hidden temporary folder was read")
	}
}

func pathsOf(s *Series) []string {
	var p []string
	for _, in := range s.Instances {
		p = append(p, in.Path)
	}
	return p
}

// TestMultiFrameFunctionalGroups reads an enhanced-style multi-frame file
// written by pydicom: per-frame positions and rescale, shared orientation
// and pixel measures.
func TestMultiFrameFunctionalGroups(t *testing.T) {
	out := filepath.Join(t.TempDir(), "mf.dcm")
	pydicomWrite(t, `
import sys, numpy as np, pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
def item(**kw):
    d = Dataset()
    for k, v in kw.items(): setattr(d, k, v)
    return d
ds = Dataset()
ds.file_meta = FileMetaDataset()
ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"
ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
ds.Modality = "MR"
ds.Rows, ds.Columns, ds.NumberOfFrames = 4, 5, 3
ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 1
ds.SharedFunctionalGroupsSequence = Sequence([item(
    PlaneOrientationSequence=Sequence([item(ImageOrientationPatient=[0, 1, 0, 0, 0, -1])]),
    PixelMeasuresSequence=Sequence([item(PixelSpacing=[0.5, 0.75], SliceThickness=2)]))])
ds.PerFrameFunctionalGroupsSequence = Sequence([item(
    PlanePositionSequence=Sequence([item(ImagePositionPatient=[-3 + 2 * k, 10, 20])]),
    PixelValueTransformationSequence=Sequence([item(RescaleSlope=0.5 * (k + 1), RescaleIntercept=k - 1, RescaleType="US")]))
    for k in range(3)])
# 12 stored bits, signed: -2048..2047, with garbage in the 4 unused high bits.
v = (np.arange(60, dtype=np.int64) * 71 % 4096) - 2048
raw = (v & 0xFFF) | 0xA000
ds.PixelData = raw.astype("<u2").tobytes()
ds.is_little_endian, ds.is_implicit_VR = True, False
ds.save_as(sys.argv[1], write_like_original=False)
np.save(sys.argv[1] + ".npy", v)
`, out)
	sd, err := ReadFile(out, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in := sd.Series[0].Instances[0]
	if in.Frames != 3 || len(in.FrameGeometry) != 3 {
		t.Fatalf("frames %d, frame geometry %v", in.Frames, in.FrameGeometry)
	}
	for k, g := range in.FrameGeometry {
		want := SliceGeometry{
			Position:       [3]float64{-3 + 2*float64(k), 10, 20},
			Orientation:    [6]float64{0, 1, 0, 0, 0, -1},
			PixelSpacing:   [2]float64{0.5, 0.75},
			SliceThickness: 2,
		}
		if g != want {
			t.Errorf("frame %d geometry %+v, want %+v", k, g, want)
		}
	}
	for i := 0; i < 60; i++ {
		// The same signed 12-bit values, computed here without DICOM.
		v := float64(int64(i)*71%4096 - 2048)
		k := i / 20
		want := v*0.5*float64(k+1) + float64(k-1)
		if float64(in.Pixels[i]) != want {
			t.Fatalf("pixel %d = %v, want %v", i, in.Pixels[i], want)
		}
	}
	if g := sd.Series[0].Geometry(); len(g) != 3 {
		t.Errorf("series geometry has %d slices", len(g))
	}
}

func mkdir(t *testing.T, root, rel string) string {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSpecialFilesDoNotHang: a FIFO in a drop folder (or named directly)
// must be refused, not opened (opening would block forever).
func TestSpecialFilesDoNotHang(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe.dcm")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := ReadFile(fifo, ReadOptions{}); !errors.Is(err, ErrNotDICOM) {
			t.Errorf("ReadFile(FIFO): %v", err)
		}
		if studies, errs := ReadStudies(dir, fifo); len(studies) != 0 || len(errs) != 0 {
			t.Errorf("ReadStudies over a FIFO: %v %v", studies, errs)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("reading a FIFO blocked")
	}
}
