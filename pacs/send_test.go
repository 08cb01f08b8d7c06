package pacs

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/internal/peers"
)

// DICOMweb credentials come from files, on every request (echo and STOW-RS).
func TestWebCredentials(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Authorization"))
		w.WriteHeader(200)
		if r.Method == http.MethodPost {
			w.Write([]byte(`{}`))
		} else {
			w.Write([]byte(`[]`))
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tok"), []byte("s3cret-token\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "pw"), []byte("pa:ss\n"), 0o600)
	p := testPACS()
	files := []string{peers.Series(t, dir, 1)[0].Files[0]}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, d := range []configs.Destination{
		{Name: "tok", URL: srv.URL, TokenFile: filepath.Join(dir, "tok")},
		{Name: "basic", URL: srv.URL, Username: "kspaced", PasswordFile: filepath.Join(dir, "pw")},
	} {
		if err := Echo(ctx, p, d); err != nil {
			t.Fatal(err)
		}
		if _, err := Send(ctx, p, d, files); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"Bearer s3cret-token", "Bearer s3cret-token", "Basic a3NwYWNlZDpwYTpzcw==", "Basic a3NwYWNlZDpwYTpzcw=="}
	if len(got) != len(want) {
		t.Fatalf("requests %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("request %d: Authorization %q, want %q", i, got[i], want[i])
		}
	}
	if _, err := Send(ctx, p, configs.Destination{Name: "x", URL: srv.URL, TokenFile: filepath.Join(dir, "missing")}, files); err == nil {
		t.Error("a missing token file was not an error")
	}
}

// A DIMSE destination with tls and ca_file, configured as in the YAML: the
// certificate in ca_file is trusted, another is not.
func TestTLSDestination(t *testing.T) {
	scp := peers.StartStoreSCP(t, "TLSSCP")
	addr, caFile := peers.TLSFront(t, scp.Addr)
	_, otherCA := peers.TLSFront(t, scp.Addr)
	host, port := splitAddr(t, addr)
	d := configs.Destination{Name: "tls", AETitle: "TLSSCP", Host: host, Port: port, TLS: true, CAFile: caFile}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := testPACS(d)
	if err := Echo(ctx, p, d); err != nil {
		t.Fatalf("echo: %v", err)
	}
	files, err := DICOMFiles(filepath.Dir(peers.Series(t, t.TempDir(), 2)[0].Dir))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := Send(ctx, p, d, files); err != nil || n != len(files) {
		t.Fatalf("send over TLS: %d of %d, %v", n, len(files), err)
	}
	d.CAFile = otherCA
	if err := Echo(ctx, p, d); err == nil {
		t.Error("a certificate outside ca_file was trusted")
	}
}
