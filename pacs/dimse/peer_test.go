package dimse

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// fakePeer accepts one connection, reads the A-ASSOCIATE-RQ and answers with
// the given raw bytes, then holds the connection until the test ends.
func fakePeer(t *testing.T, answer []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if _, err := readPDU(c, DefaultMaxPDU); err != nil {
			return
		}
		c.Write(answer)
		io.Copy(io.Discard, c)
	}()
	return ln.Addr().String()
}

func pduBytes(typ byte, length uint32, body []byte) []byte {
	b := make([]byte, 6, 6+len(body))
	b[0] = typ
	binary.BigEndian.PutUint32(b[2:], length)
	return append(b, body...)
}

// What a hostile or broken peer sends is an error, never a panic or a huge
// allocation.
func TestHostileAssociationAnswers(t *testing.T) {
	goodAC := (&assoc{called: "X", calling: "Y", maxPDU: 0, contexts: []PresentationContext{{ID: 1, Result: 0, TransferSyntaxes: []string{ImplicitVRLittle}}}}).encode(true)
	cases := []struct {
		name, want string
		answer     []byte
	}{
		{"4 GiB association PDU", "claims 4294967295 bytes", pduBytes(pduAssociateAC, 0xFFFFFFFF, nil)},
		{"unknown PDU type", "unknown PDU type 0x09", pduBytes(0x09, 4, []byte{0, 0, 0, 0})},
		{"short reject", "claims 2 bytes", pduBytes(pduAssociateRJ, 2, []byte{0, 1})},
		{"reject called AE", "called AE title not recognised", pduBytes(pduAssociateRJ, 4, []byte{0, 1, 1, 7})},
		{"abort", "aborted by the peer", pduBytes(pduAbort, 4, []byte{0, 0, 2, 0})},
		{"short AC", "association PDU of 10 bytes", pduBytes(pduAssociateAC, 10, make([]byte, 10))},
		{"item overruns AC", "claims 65535 bytes", pduBytes(pduAssociateAC, 72, append(make([]byte, 68), itemPresContextAC, 0, 0xFF, 0xFF))},
		{"no context accepted", "accepted none", pduBytes(pduAssociateAC, uint32(len(goodAC)), goodAC[:len(goodAC)])},
		{"truncated body", "read PDU body", pduBytes(pduAssociateAC, 1000, make([]byte, 10))},
	}
	// The "no context accepted" answer accepts ID 1 with a syntax we did
	// not propose for it.
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := fakePeer(t, tc.answer)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			p := Peer{Addr: addr, CalledAE: "X", CallingAE: "Y", Timeout: 2 * time.Second}
			if tc.name == "truncated body" {
				p.Timeout = 200 * time.Millisecond
			}
			_, err := Connect(ctx, p, []PresentationContext{{AbstractSyntax: VerificationSOP, TransferSyntaxes: []string{ExplicitVRLittle}}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// A PDV or command element whose length overruns its PDU is refused.
func TestHostileDataPDUs(t *testing.T) {
	a := &Association{contexts: map[byte]PresentationContext{1: {ID: 1}}, maxRecv: DefaultMaxPDU, timeout: time.Second}
	cases := map[string][]byte{
		"PDV overruns PDU":      pduBytes(pduDataTF, 8, []byte{0xFF, 0xFF, 0xFF, 0xF0, 1, 3, 0, 0}),
		"P-DATA over our max":   pduBytes(pduDataTF, DefaultMaxPDU+1, nil),
		"unaccepted context":    pduBytes(pduDataTF, 8, []byte{0, 0, 0, 4, 7, 3, 0, 0}),
		"command elem overruns": pduBytes(pduDataTF, 14, []byte{0, 0, 0, 10, 1, 3, 0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0x7F}),
		"data before command":   pduBytes(pduDataTF, 8, []byte{0, 0, 0, 4, 1, 2, 0, 0}),
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			c1, c2 := net.Pipe()
			defer c1.Close()
			go func() { c2.Write(raw); c2.Close() }()
			a.conn = c1
			a.r = newAssociation(c1, DefaultMaxPDU, time.Second).r
			_, err := a.recv(nil)
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("err = %v, want a protocol error", err)
			}
		})
	}
}

// Cancelling the context unblocks a peer that never answers.
func TestContextCancelsSilentPeer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = Echo(ctx, Peer{Addr: ln.Addr().String(), CalledAE: "X", CallingAE: "Y", Timeout: time.Minute})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
}

// Statuses that mean "the PACS holds the instance" count as stored; a
// resend answered "duplicate" is not a failure.
func TestStoreStatuses(t *testing.T) {
	for st, want := range map[uint16]bool{0x0000: true, 0xB000: true, 0xB007: true, 0x0111: true,
		0xA700: false, 0xA900: false, 0xC000: false, 0x0122: false, 0x0110: false} {
		if success(st) != want {
			t.Errorf("success(0x%04X) = %v", st, !want)
		}
	}
	if e := (&StatusError{Status: 0xA701, Comment: "Doe^John"}); !e.Transient() || strings.Contains(e.Error(), "Doe") {
		t.Errorf("%v: transient %v, and the comment must stay out of the message", e, e.Transient())
	}
}
