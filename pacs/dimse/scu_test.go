package dimse

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/kspaced/kspaced/internal/peers"
)

func instances(t *testing.T, dir string, slices int) []Instance {
	t.Helper()
	var out []Instance
	for _, r := range peers.Series(t, dir, slices) {
		for _, f := range r.Files {
			in, err := ReadInstance(f)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, in)
		}
	}
	return out
}

// storeAll sends insts to p in one association and releases it.
func storeAll(t *testing.T, ctx context.Context, p Peer, insts []Instance) {
	t.Helper()
	pcs, err := ContextsFor(insts)
	if err != nil {
		t.Fatal(err)
	}
	a, err := Connect(ctx, p, pcs)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range insts {
		if err := a.Store(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

func elementValue(t *testing.T, path string, tg tag.Tag) string {
	t.Helper()
	ds, err := dicom.ParseFile(path, nil)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	e, err := ds.FindElementByTag(tg)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if tg == tag.PixelData {
		pi := e.Value.GetValue().(dicom.PixelDataInfo)
		f, err := pi.Frames[0].GetNativeFrame()
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(f.RawDataSlice())
	}
	return e.Value.String()
}

func sopOf(t *testing.T, path string) string {
	t.Helper()
	ds, err := dicom.ParseFile(path, nil)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	e, err := ds.FindElementByTag(tag.SOPInstanceUID)
	if err != nil {
		t.Fatal(err)
	}
	return dicom.MustGetStrings(e.Value)[0]
}

// C-ECHO and C-STORE against dcmtk's storescp: every instance arrives with
// its SOP Instance UID and the same bytes after the meta header.
func TestStoreToStoreSCP(t *testing.T) {
	scp := peers.StartStoreSCP(t, "STORESCP")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := Peer{Addr: scp.Addr, CalledAE: scp.AE, CallingAE: "KSPACED", MaxPDU: 16384}
	if err := Echo(ctx, p); err != nil {
		t.Fatalf("echo: %v", err)
	}
	insts := instances(t, t.TempDir(), 5)
	storeAll(t, ctx, p, insts)
	got := scp.Files(t)
	if len(got) != len(insts) {
		t.Fatalf("storescp holds %d files, sent %d", len(got), len(insts))
	}
	want := map[string]Instance{}
	for _, in := range insts {
		want[in.SOPInstanceUID] = in
	}
	var uids []string
	for _, f := range got {
		uid := sopOf(t, f)
		uids = append(uids, uid)
		in, ok := want[uid]
		if !ok {
			t.Fatalf("storescp received unknown instance %s", uid)
		}
		// storescp re-encodes sequence lengths, so compare what matters:
		// the pixels and the series the instance belongs to.
		for _, tg := range []tag.Tag{tag.PixelData, tag.SeriesInstanceUID, tag.StudyInstanceUID} {
			if a, b := elementValue(t, in.Path, tg), elementValue(t, f, tg); a != b {
				t.Errorf("%s: %v differs after the transfer", uid, tg)
			}
		}
	}
	sort.Strings(uids)
	for i := 1; i < len(uids); i++ {
		if uids[i] == uids[i-1] {
			t.Errorf("instance %s stored twice", uids[i])
		}
	}
}
