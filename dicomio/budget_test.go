package dicomio

import (
	"os/exec"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kspaced/kspaced/internal/testutil"
)

// deflatedScript writes n deflated MR images of 2048 × 2560 zeros: about
// 11 KB each on disk, 10 MiB each once inflated.
const deflatedScript = `
import sys, pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid, MRImageStorage
study = generate_uid(); series = generate_uid()
for i in range(int(sys.argv[2])):
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = MRImageStorage
    fm.MediaStorageSOPInstanceUID = generate_uid()
    fm.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds = Dataset(); ds.file_meta = fm
    ds.SOPClassUID = MRImageStorage; ds.SOPInstanceUID = fm.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study; ds.SeriesInstanceUID = series; ds.Modality = "MR"; ds.InstanceNumber = i + 1
    ds.Rows = 2048; ds.Columns = 2560; ds.BitsAllocated = 16; ds.BitsStored = 16; ds.HighBit = 15
    ds.PixelRepresentation = 0; ds.SamplesPerPixel = 1; ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = bytes(2048 * 2560 * 2)
    ds.is_little_endian = True; ds.is_implicit_VR = False
    ds.save_as("%s/%03d.dcm" % (sys.argv[1], i), write_like_original=False)
`

// TestDeflatedFolderWithinBudget: a folder of small deflated files that
// inflate to 10 MiB each is read a few at a time, so the heap in use stays
// within the memory budget however many workers there are.
func TestDeflatedFolderWithinBudget(t *testing.T) {
	py := testutil.PythonWith(t, "pydicom")
	dir := t.TempDir()
	if out, err := exec.Command(py, "-c", deflatedScript, dir, "12").CombinedOutput(); err != nil {
		t.Fatalf("pydicom: %v\n%s", err, out)
	}
	const budget = 48 << 20
	// Collect garbage promptly, so heap in use tracks what is live.
	defer debug.SetGCPercent(debug.SetGCPercent(5))
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
		}
	}()
	sd, errs := ReadOptions{SkipPixels: true, Workers: 12, MemoryBudget: budget}.ReadStudies(dir)
	close(stop)
	wg.Wait()
	if len(errs) != 0 || len(sd) != 1 || len(sd[0].Series) != 1 || len(sd[0].Series[0].Instances) != 12 {
		t.Fatalf("studies %d, errors %v", len(sd), errs)
	}
	grew := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("heap in use grew by %d MiB at most (budget %d MiB)", grew>>20, budget>>20)
	if grew > budget+16<<20 { // GC lag: garbage not yet collected counts in use
		t.Fatalf("heap in use grew by %d MiB, budget %d MiB", grew>>20, budget>>20)
	}
}
