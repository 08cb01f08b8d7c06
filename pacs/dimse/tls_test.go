package dimse

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kspaced/kspaced/internal/peers"
)

// DICOM over TLS: a TLS terminator in front of storescp. A trusted
// certificate carries C-ECHO and C-STORE; an untrusted one fails the
// handshake.
func TestTLS(t *testing.T) {
	scp := peers.StartStoreSCP(t, "TLSSCP")
	addr, caFile := peers.TLSFront(t, scp.Addr)
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := Peer{Addr: addr, CalledAE: scp.AE, CallingAE: "KSPACED", TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	if err := Echo(ctx, p); err != nil {
		t.Fatalf("echo over TLS: %v", err)
	}
	insts := instances(t, t.TempDir(), 2)
	storeAll(t, ctx, p, insts)
	if got := len(scp.Files(t)); got != len(insts) {
		t.Errorf("storescp holds %d files over TLS, sent %d", got, len(insts))
	}
	p.TLS = &tls.Config{MinVersion: tls.VersionTLS12} // system roots: not trusted
	if err := Echo(ctx, p); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted certificate: err = %v", err)
	}
}
