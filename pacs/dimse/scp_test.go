package dimse

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

type nopSession struct{}

func (nopSession) Store(string, string, string) (io.WriteCloser, error) { return nopWriter{}, nil }
func (nopSession) End(bool)                                             {}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (nopWriter) Close() error                { return nil }

// Garbage, oversized length claims and half-sent PDUs from the network are
// dropped connection by connection; the server keeps answering.
func TestServerSurvivesHostileClients(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{AETitle: "KSPACED", Callers: []string{"A"}, Timeout: time.Second,
		Open: func(string, net.Addr) (Session, error) { return nopSession{}, nil }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	addr := ln.Addr().String()
	rq := (&assoc{called: "KSPACED", calling: "A", maxPDU: 16384, contexts: []PresentationContext{{ID: 1, AbstractSyntax: VerificationSOP, TransferSyntaxes: []string{ImplicitVRLittle}}}}).encode(false)
	for name, raw := range map[string][]byte{
		"garbage":           []byte("GET / HTTP/1.1\r\n\r\n"),
		"4 GiB request":     pduBytes(pduAssociateRQ, 0xFFFFFFFF, nil),
		"data first":        pduBytes(pduDataTF, 8, []byte{0, 0, 0, 4, 1, 3, 0, 0}),
		"truncated request": pduBytes(pduAssociateRQ, uint32(len(rq)), rq[:20]),
		"bad item length":   pduBytes(pduAssociateRQ, 72, append(append([]byte{}, rq[:68]...), itemPresContextRQ, 0, 0xFF, 0xFF)),
		"accepted then junk": append(pduBytes(pduAssociateRQ, uint32(len(rq)), rq),
			pduBytes(pduDataTF, 10, []byte{0xFF, 0xFF, 0xFF, 0xFF, 1, 3, 0, 0, 0, 0})...),
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(raw)
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		io.Copy(io.Discard, c) // the server closes it
		c.Close()
		t.Logf("%s: dropped", name)
	}
	if err := Echo(context.Background(), Peer{Addr: addr, CalledAE: "KSPACED", CallingAE: "A", Timeout: 2 * time.Second}); err != nil {
		t.Fatalf("echo after hostile clients: %v", err)
	}
}
