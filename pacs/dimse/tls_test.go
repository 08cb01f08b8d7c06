package dimse

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kspaced/kspaced/internal/peers"
)

// selfSigned makes a certificate for 127.0.0.1 and the pool trusting it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test pacs"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// DICOM over TLS: a TLS terminator in front of storescp (as a hospital's
// stunnel would be). A trusted certificate carries C-ECHO and C-STORE; an
// untrusted one fails the handshake.
func TestTLS(t *testing.T) {
	scp := peers.StartStoreSCP(t, "TLSSCP")
	cert, pool := selfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				s, err := net.Dial("tcp", scp.Addr)
				if err != nil {
					return
				}
				defer s.Close()
				go func() { io.Copy(s, c); s.Close() }()
				io.Copy(c, s)
			}()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := Peer{Addr: ln.Addr().String(), CalledAE: scp.AE, CallingAE: "KSPACED", TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	if err := Echo(ctx, p); err != nil {
		t.Fatalf("echo over TLS: %v", err)
	}
	insts := instances(t, t.TempDir(), 2)
	pcs, _ := ContextsFor(insts)
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
	if got := len(scp.Files(t)); got != len(insts) {
		t.Errorf("storescp holds %d files over TLS, sent %d", got, len(insts))
	}
	p.TLS = &tls.Config{MinVersion: tls.VersionTLS12} // system roots: not trusted
	if err := Echo(ctx, p); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted certificate: err = %v", err)
	}
}
