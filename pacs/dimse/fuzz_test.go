package dimse

import (
	"bufio"
	"bytes"
	"net"
	"testing"
	"time"
)

// Whatever arrives from the network, the decoders return an error or a
// value, never a panic, and allocate within their bounds.
func FuzzDecode(f *testing.F) {
	rq := (&assoc{called: "A", calling: "B", maxPDU: 16384, contexts: []PresentationContext{{ID: 1, AbstractSyntax: VerificationSOP, TransferSyntaxes: []string{ImplicitVRLittle}}}}).encode(false)
	cmd := command{}
	cmd.setUS(tagCommandField, cEchoRQ)
	cmd.setUS(tagMessageID, 1)
	cmd.setUS(tagDataSetType, noDataSet)
	enc := cmd.encode()
	pdv := append([]byte{0, 0, 0, byte(len(enc) + 2), 1, 3}, enc...)
	f.Add(pduBytes(pduAssociateRQ, uint32(len(rq)), rq))
	f.Add(pduBytes(pduDataTF, uint32(len(pdv)), pdv))
	f.Add(enc)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := readPDU(bytes.NewReader(b), DefaultMaxPDU); err == nil {
			decodeAssoc(p.body, false)
			decodeAssoc(p.body, true)
		}
		decodeCommand(b)
		var meta [132]byte
		copy(meta[128:], "DICM")
		parseMeta(bufio.NewReader(bytes.NewReader(append(meta[:], b...))))
		c1, c2 := net.Pipe()
		go func() { c2.Write(b); c2.Close() }()
		a := newAssociation(c1, DefaultMaxPDU, time.Second)
		a.contexts[1] = PresentationContext{ID: 1}
		a.recv(nil)
		c1.Close()
	})
}
