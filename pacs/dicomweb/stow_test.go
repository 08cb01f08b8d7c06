package dicomweb

import (
	"context"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kspaced/kspaced/internal/peers"
)

func files(t *testing.T, slices int) []string {
	t.Helper()
	var out []string
	for _, r := range peers.Series(t, t.TempDir(), slices) {
		out = append(out, r.Files...)
	}
	return out
}

// STOW-RS into Orthanc's DICOMweb plugin: every instance is reported stored
// and Orthanc holds each once, even after a second post of the same files.
func TestStowToOrthanc(t *testing.T) {
	o := peers.StartOrthanc(t)
	fs := files(t, 3)
	c := &Client{BaseURL: o.URL + "/dicom-web"}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for range 2 {
		res, err := c.Store(ctx, fs)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Stored) != len(fs) {
			t.Fatalf("server reported %d stored, sent %d", len(res.Stored), len(fs))
		}
	}
	got := o.Instances(t)
	if len(got) != len(fs) {
		t.Fatalf("Orthanc holds %d instances, want %d", len(got), len(fs))
	}
	sent := map[string]string{} // SOP Instance UID → pixels
	for _, f := range fs {
		uid, px := peers.UIDAndPixels(t, f)
		sent[uid] = px
	}
	series := map[string]int{}
	dir := t.TempDir()
	for _, g := range got {
		series[g.SeriesInstanceUID]++
		f := filepath.Join(dir, g.ID+".dcm")
		if err := os.WriteFile(f, o.GetRaw(t, "/instances/"+g.ID+"/file"), 0o644); err != nil {
			t.Fatal(err)
		}
		uid, px := peers.UIDAndPixels(t, f)
		if want, ok := sent[uid]; !ok || want != px || uid != g.SOPInstanceUID {
			t.Errorf("Orthanc's %s: not sent, or pixels differ", uid)
		}
	}
	if len(series) != 2 {
		t.Errorf("Orthanc holds %d series, want 2", len(series))
	}
}

// The request is a well-formed multipart/related of application/dicom parts
// holding the files unchanged; partial refusals and server errors are errors
// that say whether to retry.
func TestStowProtocol(t *testing.T) {
	fs := files(t, 1)
	var answer func(w http.ResponseWriter)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "multipart/related" || params["type"] != "application/dicom" || r.URL.Path != "/dw/studies" {
			t.Errorf("request %s %q", r.URL.Path, r.Header.Get("Content-Type"))
		}
		mr := multipart.NewReader(r.Body, params["boundary"])
		for i := 0; ; i++ {
			p, err := mr.NextPart()
			if err == io.EOF {
				if i != len(fs) {
					t.Errorf("%d parts, want %d", i, len(fs))
				}
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(p)
			want, _ := os.ReadFile(fs[i])
			if p.Header.Get("Content-Type") != "application/dicom" || string(b) != string(want) {
				t.Errorf("part %d differs from %s", i, fs[i])
			}
		}
		answer(w)
	}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL + "/dw/"}
	ctx := context.Background()

	answer = func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/dicom+json")
		w.WriteHeader(202)
		io.WriteString(w, `{"00081198":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["1.2.3"]},"00081197":{"vr":"US","Value":[272]}}]},
			"00081199":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["1.2.4"]}}]}}`)
	}
	res, err := c.Store(ctx, fs)
	if err == nil || len(res.Failed) != 1 || res.Failed[0].Reason != 272 || res.Failed[0].SOPInstanceUID != "1.2.3" || len(res.Stored) != 1 {
		t.Errorf("partial refusal: %+v, %v", res, err)
	}

	answer = func(w http.ResponseWriter) { w.WriteHeader(503); io.WriteString(w, strings.Repeat("busy ", 1000)) }
	_, err = c.Store(ctx, fs)
	var he *HTTPError
	if !errors.As(err, &he) || !he.Transient() || strings.Contains(err.Error(), "busy") || !strings.HasPrefix(he.Body, "busy") {
		t.Errorf("503: %v", err)
	}
	answer = func(w http.ResponseWriter) { w.WriteHeader(400) }
	if _, err = c.Store(ctx, fs); !errors.As(err, &he) || he.Transient() {
		t.Errorf("400: %v", err)
	}
	answer = func(w http.ResponseWriter) { w.WriteHeader(200); io.WriteString(w, "not json") }
	if _, err = c.Store(ctx, fs); err == nil {
		t.Error("garbage answer accepted")
	}
}
