package dicomio

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/kspaced/kspaced/internal/testutil"
)

// Real files from other tools, located at run time and never committed.
const pydicomData = "/usr/lib/python3/dist-packages/pydicom/data/test_files"

func pydicomFile(t testing.TB, name string) string {
	t.Helper()
	return testutil.File(t, filepath.Join(pydicomData, name))
}

var (
	libDirOnce sync.Once
	libDir     string
)

// libTestdata is suyashkumar/dicom's own testdata folder in the module cache.
func libTestdata(t testing.TB, name string) string {
	t.Helper()
	libDirOnce.Do(func() {
		goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
		out, err := exec.Command(goBin, "list", "-m", "-f", "{{.Dir}}", "github.com/suyashkumar/dicom").Output()
		if err == nil {
			libDir = filepath.Join(strings.TrimSpace(string(out)), "testdata")
		}
	})
	return testutil.File(t, filepath.Join(libDir, name))
}

// pyInfo is what pydicom reads from a file (see pyScript).
type pyInfo struct {
	Error                                       string
	StudyUID, SeriesUID, SOPUID, FrameOfRef     string
	PatientName, PatientID, StudyDate, Modality string
	SeriesDescription, DerivationDescription    string
	ImageType                                   []string
	SeriesNumber, InstanceNumber                int
	Rows, Columns, Frames, Samples              int
	IPP, IOP, PixelSpacing                      []float64
	SliceThickness                              *float64
	FrameIPP                                    [][]float64
	Slope, Intercept, WindowCenter, WindowWidth *float64
	RelatedSeries, SourceImages                 []string
	SpecificCharacterSet                        string
	Pixels                                      []float64 `json:"-"`
}

// pyScript prints one JSON object per file and writes the pixel array
// (after pydicom's modality LUT, or each frame's functional-group rescale)
// as little-endian float64 to <out>/<index>.raw.
const pyScript = `
import sys, json, warnings
warnings.simplefilter("ignore")
import numpy as np, pydicom
from pydicom.pixel_data_handlers.util import apply_modality_lut
out = sys.argv[1]
def num(v): return None if v is None or v == "" else float(v)
def nums(v):
    if v is None or v == "": return None
    try: return [float(x) for x in v]
    except TypeError: return [float(v)]
def strs(v):
    if v is None: return []
    if isinstance(v, (list, pydicom.multival.MultiValue)): return [str(x) for x in v]
    return [str(v)]
def group(item, seq, key):
    s = item.get(seq)
    if not s: return None
    return s[0].get(key)
for i, f in enumerate(sys.argv[2:]):
    r = {}
    try:
        d = pydicom.dcmread(f)
        g = lambda k: d[k].value if k in d else None
        r.update(StudyUID=str(g("StudyInstanceUID") or ""), SeriesUID=str(g("SeriesInstanceUID") or ""),
                 SOPUID=str(g("SOPInstanceUID") or ""), FrameOfRef=str(g("FrameOfReferenceUID") or ""),
                 PatientName=str(g("PatientName") or ""), PatientID=str(g("PatientID") or ""),
                 StudyDate=str(g("StudyDate") or ""), Modality=str(g("Modality") or ""),
                 SeriesDescription=str(g("SeriesDescription") or ""),
                 DerivationDescription=str(g("DerivationDescription") or ""),
                 SpecificCharacterSet="\\".join(strs(g("SpecificCharacterSet"))),
                 ImageType=strs(g("ImageType")),
                 SeriesNumber=int(g("SeriesNumber") or 0), InstanceNumber=int(g("InstanceNumber") or 0),
                 Rows=int(g("Rows") or 0), Columns=int(g("Columns") or 0),
                 Frames=int(g("NumberOfFrames") or 1), Samples=int(g("SamplesPerPixel") or 1),
                 IPP=nums(g("ImagePositionPatient")), IOP=nums(g("ImageOrientationPatient")),
                 PixelSpacing=nums(g("PixelSpacing")), SliceThickness=num(g("SliceThickness")),
                 Slope=num(g("RescaleSlope")), Intercept=num(g("RescaleIntercept")),
                 WindowCenter=num(g("WindowCenter")), WindowWidth=num(g("WindowWidth")))
        r["RelatedSeries"] = [str(it.get("SeriesInstanceUID", "")) for it in g("RelatedSeriesSequence") or []]
        r["SourceImages"] = [str(it.get("ReferencedSOPInstanceUID", "")) for it in g("SourceImageSequence") or []]
        arr = d.pixel_array.astype(np.float64)
        pf = g("PerFrameFunctionalGroupsSequence")
        sh = g("SharedFunctionalGroupsSequence")
        if pf is not None and r["Frames"] > 1:
            fipp, slopes = [], []
            for k, item in enumerate(pf):
                p = group(item, "PlanePositionSequence", "ImagePositionPatient")
                if p is None and sh: p = group(sh[0], "PlanePositionSequence", "ImagePositionPatient")
                fipp.append(nums(p) if p is not None else None)
                s = group(item, "PixelValueTransformationSequence", "RescaleSlope")
                c = group(item, "PixelValueTransformationSequence", "RescaleIntercept")
                if s is None and sh:
                    s = group(sh[0], "PixelValueTransformationSequence", "RescaleSlope")
                    c = group(sh[0], "PixelValueTransformationSequence", "RescaleIntercept")
                if s is not None:
                    arr[k] = arr[k] * float(s) + float(c)
                    slopes.append(1)
            r["FrameIPP"] = fipp
            if not slopes: arr = apply_modality_lut(arr, d)
        else:
            arr = apply_modality_lut(arr, d)
        np.ascontiguousarray(arr, dtype="<f8").tofile(f"{out}/{i}.raw")
    except Exception as e:
        r = {"Error": repr(e)}
    print(json.dumps(r))
`

// pydicomRead reads files with pydicom (an independent DICOM reader).
func pydicomRead(t testing.TB, files ...string) []pyInfo {
	t.Helper()
	py := testutil.PythonWith(t, "pydicom", "numpy")
	dir := t.TempDir()
	cmd := exec.Command(py, append([]string{"-c", pyScript, dir}, files...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pydicom: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(files) {
		t.Fatalf("pydicom printed %d lines for %d files", len(lines), len(files))
	}
	infos := make([]pyInfo, len(files))
	for i, l := range lines {
		if err := json.Unmarshal([]byte(l), &infos[i]); err != nil {
			t.Fatalf("pydicom output %q: %v", l, err)
		}
		if infos[i].Error != "" {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, strconv.Itoa(i)+".raw"))
		if err != nil {
			t.Fatal(err)
		}
		infos[i].Pixels = make([]float64, len(raw)/8)
		for k := range infos[i].Pixels {
			infos[i].Pixels[k] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*k:]))
		}
	}
	return infos
}

// pydicomWrite runs a pydicom script (an independent DICOM writer) with
// Debian's Python; argv[1:] are args.
func pydicomWrite(t testing.TB, script string, args ...string) {
	t.Helper()
	py := testutil.PythonWith(t, "pydicom", "numpy")
	cmd := exec.Command(py, append([]string{"-c", script}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pydicom script: %v\n%s", err, out)
	}
}
