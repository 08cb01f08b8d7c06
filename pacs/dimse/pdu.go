// Package dimse speaks the DICOM upper-layer protocol (PS3.8) and the DIMSE
// services kspaced needs (PS3.7): association negotiation, C-ECHO and
// C-STORE, as a user (SCU) and as a provider (SCP). It reads every length a
// peer claims against a bound before allocating, and never panics on bad
// input: a malformed PDU is an error and, on the wire, an A-ABORT.
package dimse

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// PDU types (PS3.8 9.3).
const (
	pduAssociateRQ = 0x01
	pduAssociateAC = 0x02
	pduAssociateRJ = 0x03
	pduDataTF      = 0x04
	pduReleaseRQ   = 0x05
	pduReleaseRP   = 0x06
	pduAbort       = 0x07
)

// Item types inside association PDUs.
const (
	itemAppContext    = 0x10
	itemPresContextRQ = 0x20
	itemPresContextAC = 0x21
	itemAbstract      = 0x30
	itemTransfer      = 0x40
	itemUserInfo      = 0x50
	itemMaxLength     = 0x51
	itemImplClass     = 0x52
	itemImplVersion   = 0x55
)

// Well-known UIDs.
const (
	appContextUID       = "1.2.840.10008.3.1.1.1"
	VerificationSOP     = "1.2.840.10008.1.1"
	ImplicitVRLittle    = "1.2.840.10008.1.2"
	ExplicitVRLittle    = "1.2.840.10008.1.2.1"
	implementationClass = "2.25.150895080867038159115261691072400018621" // dicomio's
	implementationVer   = "KSPACED_0_1"
)

// Limits on what a peer may make us allocate.
const (
	// DefaultMaxPDU is the largest P-DATA PDU we accept, announced to peers.
	DefaultMaxPDU = 256 << 10
	// maxAssocPDU bounds association PDUs (many contexts × syntaxes fit).
	maxAssocPDU = 1 << 20
	// minPeerPDU is the smallest maximum a peer may announce; below it a
	// fragment carries next to nothing (real peers announce ≥ 4 KiB).
	minPeerPDU = 256
	// maxSendPDU caps what we send even to a peer that announces more (or
	// 0, unlimited): large enough for throughput, small enough for memory.
	maxSendPDU = 1 << 20
)

// ErrProtocol marks a peer that broke the protocol (bad PDU, wrong order).
var ErrProtocol = errors.New("DICOM protocol error")

type pdu struct {
	typ  byte
	body []byte
}

// readPDU reads one PDU whose body may not exceed limit bytes; P-DATA may
// not exceed dataLimit.
func readPDU(r io.Reader, dataLimit uint32) (pdu, error) {
	var h [6]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return pdu{}, err
	}
	n := binary.BigEndian.Uint32(h[2:])
	limit := uint32(maxAssocPDU)
	switch h[0] {
	case pduDataTF:
		limit = dataLimit
	case pduAssociateRQ, pduAssociateAC:
	case pduAssociateRJ, pduReleaseRQ, pduReleaseRP, pduAbort:
		limit = 4
	default:
		return pdu{}, fmt.Errorf("%w: unknown PDU type 0x%02x", ErrProtocol, h[0])
	}
	if n > limit || (limit == 4 && n != 4) {
		return pdu{}, fmt.Errorf("%w: PDU type 0x%02x claims %d bytes, limit %d", ErrProtocol, h[0], n, limit)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return pdu{}, fmt.Errorf("read PDU body: %w", err)
	}
	return pdu{typ: h[0], body: body}, nil
}

func writePDU(w io.Writer, typ byte, body []byte) error {
	buf := make([]byte, 6+len(body))
	buf[0] = typ
	binary.BigEndian.PutUint32(buf[2:], uint32(len(body)))
	copy(buf[6:], body)
	_, err := w.Write(buf)
	return err
}

// PresentationContext proposes (or, accepted, fixes) the transfer syntax of
// one abstract syntax (SOP class).
type PresentationContext struct {
	ID             byte
	AbstractSyntax string
	// TransferSyntaxes are proposed in order of preference; an accepted
	// context holds the one chosen.
	TransferSyntaxes []string
	// Result of the negotiation: 0 acceptance, 1 user rejection, 2 no
	// reason, 3 abstract syntax not supported, 4 transfer syntaxes not
	// supported.
	Result byte
}

// assoc is the content of an A-ASSOCIATE-RQ or -AC.
type assoc struct {
	called, calling string
	contexts        []PresentationContext
	maxPDU          uint32
	implClass       string
	implVersion     string
}

func aeField(ae string) []byte {
	b := []byte(fmt.Sprintf("%-16s", ae))
	return b[:16]
}

func appendItem(dst []byte, typ byte, val []byte) []byte {
	dst = append(dst, typ, 0, 0, 0)
	binary.BigEndian.PutUint16(dst[len(dst)-2:], uint16(len(val)))
	return append(dst, val...)
}

// encode builds the body of an A-ASSOCIATE-RQ (ac false) or -AC.
func (a *assoc) encode(ac bool) []byte {
	b := make([]byte, 0, 512)
	b = append(b, 0, 1, 0, 0) // protocol version 1, reserved
	b = append(b, aeField(a.called)...)
	b = append(b, aeField(a.calling)...)
	b = append(b, make([]byte, 32)...)
	b = appendItem(b, itemAppContext, []byte(appContextUID))
	for _, pc := range a.contexts {
		var v []byte
		if ac {
			v = []byte{pc.ID, 0, pc.Result, 0}
			ts := ""
			if len(pc.TransferSyntaxes) > 0 {
				ts = pc.TransferSyntaxes[0]
			}
			v = appendItem(v, itemTransfer, []byte(ts))
			b = appendItem(b, itemPresContextAC, v)
			continue
		}
		v = []byte{pc.ID, 0, 0, 0}
		v = appendItem(v, itemAbstract, []byte(pc.AbstractSyntax))
		for _, ts := range pc.TransferSyntaxes {
			v = appendItem(v, itemTransfer, []byte(ts))
		}
		b = appendItem(b, itemPresContextRQ, v)
	}
	var ui []byte
	var ml [4]byte
	binary.BigEndian.PutUint32(ml[:], a.maxPDU)
	ui = appendItem(ui, itemMaxLength, ml[:])
	ui = appendItem(ui, itemImplClass, []byte(a.implClass))
	ui = appendItem(ui, itemImplVersion, []byte(a.implVersion))
	return appendItem(b, itemUserInfo, ui)
}

// items splits a run of (type, reserved, 2-byte length, value) items.
func items(b []byte, fn func(typ byte, val []byte) error) error {
	for len(b) > 0 {
		if len(b) < 4 {
			return fmt.Errorf("%w: truncated item header", ErrProtocol)
		}
		n := int(binary.BigEndian.Uint16(b[2:]))
		if 4+n > len(b) {
			return fmt.Errorf("%w: item 0x%02x claims %d bytes, %d left", ErrProtocol, b[0], n, len(b)-4)
		}
		if err := fn(b[0], b[4:4+n]); err != nil {
			return err
		}
		b = b[4+n:]
	}
	return nil
}

func uidString(b []byte) string { return strings.TrimRight(string(b), "\x00 ") }

// decodeAssoc parses an A-ASSOCIATE-RQ (ac false) or -AC body.
func decodeAssoc(body []byte, ac bool) (*assoc, error) {
	if len(body) < 68 {
		return nil, fmt.Errorf("%w: association PDU of %d bytes", ErrProtocol, len(body))
	}
	a := &assoc{
		called:  strings.TrimSpace(string(body[4:20])),
		calling: strings.TrimSpace(string(body[20:36])),
	}
	pcType := byte(itemPresContextRQ)
	if ac {
		pcType = itemPresContextAC
	}
	err := items(body[68:], func(typ byte, val []byte) error {
		switch typ {
		case itemAppContext:
			if uidString(val) != appContextUID {
				return fmt.Errorf("%w: application context %q", ErrProtocol, uidString(val))
			}
		case pcType:
			if len(val) < 4 {
				return fmt.Errorf("%w: short presentation context", ErrProtocol)
			}
			pc := PresentationContext{ID: val[0], Result: val[2]}
			if err := items(val[4:], func(t byte, v []byte) error {
				switch t {
				case itemAbstract:
					pc.AbstractSyntax = uidString(v)
				case itemTransfer:
					pc.TransferSyntaxes = append(pc.TransferSyntaxes, uidString(v))
				}
				return nil
			}); err != nil {
				return err
			}
			a.contexts = append(a.contexts, pc)
		case itemUserInfo:
			return items(val, func(t byte, v []byte) error {
				switch t {
				case itemMaxLength:
					if len(v) != 4 {
						return fmt.Errorf("%w: maximum length item of %d bytes", ErrProtocol, len(v))
					}
					a.maxPDU = binary.BigEndian.Uint32(v)
				case itemImplClass:
					a.implClass = uidString(v)
				case itemImplVersion:
					a.implVersion = uidString(v)
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// RejectError is an A-ASSOCIATE-RJ from the peer.
type RejectError struct{ Result, Source, Reason byte }

func (e *RejectError) Error() string {
	why := map[[2]byte]string{
		{1, 1}: "no reason given", {1, 2}: "application context not supported",
		{1, 3}: "calling AE title not recognised", {1, 7}: "called AE title not recognised",
		{2, 1}: "no reason given", {2, 2}: "protocol version not supported",
		{3, 1}: "temporary congestion", {3, 2}: "local limit exceeded",
	}[[2]byte{e.Source, e.Reason}]
	if why == "" {
		why = fmt.Sprintf("source %d reason %d", e.Source, e.Reason)
	}
	kind := "permanently"
	if e.Result == 2 {
		kind = "transiently"
	}
	return fmt.Sprintf("association rejected %s: %s", kind, why)
}

// AbortError is an A-ABORT from the peer.
type AbortError struct{ Source, Reason byte }

func (e *AbortError) Error() string {
	return fmt.Sprintf("association aborted by the peer (source %d, reason %d)", e.Source, e.Reason)
}
