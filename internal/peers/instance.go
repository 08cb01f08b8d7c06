package peers

import (
	"fmt"
	"testing"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// UIDAndPixels parses a DICOM file and returns its SOP Instance UID and its
// first frame's native pixels in words, to compare what a peer sent or
// stored with what was written.
func UIDAndPixels(t *testing.T, path string) (uid, pixels string) {
	t.Helper()
	ds, err := dicom.ParseFile(path, nil)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	u, err := ds.FindElementByTag(tag.SOPInstanceUID)
	if err != nil {
		t.Fatal(err)
	}
	px, err := ds.FindElementByTag(tag.PixelData)
	if err != nil {
		t.Fatal(err)
	}
	fr, err := px.Value.GetValue().(dicom.PixelDataInfo).Frames[0].GetNativeFrame()
	if err != nil {
		t.Fatal(err)
	}
	return dicom.MustGetStrings(u.Value)[0], fmt.Sprint(fr.RawDataSlice())
}
