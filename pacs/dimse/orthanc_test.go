package dimse

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/kspaced/kspaced/internal/peers"
)

// C-ECHO and C-STORE into a real PACS: Orthanc holds both series with the
// sent UIDs, every instance once, and the same pixels; sending again stores
// nothing twice; a wrong called AE title is rejected in words.
func TestStoreToOrthanc(t *testing.T) {
	o := peers.StartOrthanc(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := Peer{Addr: o.DICOMAddr, CalledAE: o.AE, CallingAE: "KSPACED"}
	if err := Echo(ctx, p); err != nil {
		t.Fatalf("echo: %v", err)
	}
	bad := p
	bad.CalledAE = "NOTORTHANC"
	var rj *RejectError
	if err := Echo(ctx, bad); !errors.As(err, &rj) {
		t.Fatalf("echo to a wrong AE title: err = %v, want a rejection", err)
	}
	stranger := p
	stranger.CallingAE = "STRANGER"
	if err := Echo(ctx, stranger); err == nil {
		t.Fatal("the test Orthanc answers an unknown calling AE title")
	}

	insts := instances(t, t.TempDir(), 4)
	storeAll(t, ctx, p, insts)
	storeAll(t, ctx, p, insts) // a resend: Orthanc keys instances by their UIDs

	got := o.Instances(t)
	if len(got) != len(insts) {
		t.Fatalf("Orthanc holds %d instances, sent %d distinct", len(got), len(insts))
	}
	byUID := map[string]Instance{}
	for _, in := range insts {
		byUID[in.SOPInstanceUID] = in
	}
	series := map[string]int{}
	dir := t.TempDir()
	for _, g := range got {
		in, ok := byUID[g.SOPInstanceUID]
		if !ok {
			t.Fatalf("Orthanc holds an instance we did not send: %s", g.SOPInstanceUID)
		}
		delete(byUID, g.SOPInstanceUID)
		series[g.SeriesInstanceUID]++
		if want := elementValue(t, in.Path, tag.SeriesInstanceUID); want != "["+g.SeriesInstanceUID+"]" {
			t.Errorf("series UID %s, want %s", g.SeriesInstanceUID, want)
		}
		f := filepath.Join(dir, g.ID+".dcm")
		if err := os.WriteFile(f, o.GetRaw(t, "/instances/"+g.ID+"/file"), 0o644); err != nil {
			t.Fatal(err)
		}
		if elementValue(t, f, tag.PixelData) != elementValue(t, in.Path, tag.PixelData) {
			t.Errorf("%s: pixel data differs in Orthanc", g.SOPInstanceUID)
		}
	}
	if len(series) != 2 {
		t.Errorf("Orthanc holds %d series, want 2 (mean and std)", len(series))
	}
	for s, n := range series {
		if n != 4 {
			t.Errorf("series %s has %d instances, want 4", s, n)
		}
	}
}
