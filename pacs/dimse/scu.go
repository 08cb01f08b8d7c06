package dimse

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// Peer is a DICOM application entity to connect to.
type Peer struct {
	Addr      string // host:port
	CalledAE  string // the peer's AE title
	CallingAE string // ours
	// TLS, when set, wraps the connection (DICOM TLS, PS3.15 B.1).
	TLS *tls.Config
	// DialTimeout bounds the TCP (and TLS) connect; Timeout bounds each
	// read and write on the association (ACSE and DIMSE). 0 means 30 s.
	DialTimeout, Timeout time.Duration
	// MaxPDU is the largest P-DATA PDU we accept; 0 means DefaultMaxPDU.
	MaxPDU uint32
}

func checkAE(ae string) error {
	if ae == "" || len(ae) > 16 {
		return fmt.Errorf("AE title %q must have 1 to 16 characters", ae)
	}
	for _, r := range ae {
		if r < 0x20 || r > 0x7e || r == '\\' {
			return fmt.Errorf("AE title %q has a character other than printable ASCII", ae)
		}
	}
	return nil
}

// Connect opens an association proposing contexts (IDs are assigned here);
// at least one must be accepted.
func Connect(ctx context.Context, p Peer, contexts []PresentationContext) (*Association, error) {
	if err := checkAE(p.CalledAE); err != nil {
		return nil, fmt.Errorf("called %w", err)
	}
	if err := checkAE(p.CallingAE); err != nil {
		return nil, fmt.Errorf("calling %w", err)
	}
	if len(contexts) == 0 || len(contexts) > 128 {
		return nil, fmt.Errorf("%d presentation contexts, want 1 to 128", len(contexts))
	}
	dt, to := p.DialTimeout, p.Timeout
	if dt <= 0 {
		dt = 30 * time.Second
	}
	if to <= 0 {
		to = 30 * time.Second
	}
	maxRecv := p.MaxPDU
	if maxRecv == 0 {
		maxRecv = DefaultMaxPDU
	}
	d := net.Dialer{Timeout: dt}
	var c net.Conn
	var err error
	if p.TLS != nil {
		td := tls.Dialer{NetDialer: &d, Config: p.TLS}
		c, err = td.DialContext(ctx, "tcp", p.Addr)
	} else {
		c, err = d.DialContext(ctx, "tcp", p.Addr)
	}
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", p.Addr, err)
	}
	a := newAssociation(c, maxRecv, to)
	a.CalledAE, a.CallingAE = p.CalledAE, p.CallingAE
	stop := a.guard(ctx)
	defer stop()
	rq := &assoc{called: p.CalledAE, calling: p.CallingAE, maxPDU: maxRecv, implClass: implementationClass, implVersion: implementationVer}
	proposed := map[byte]PresentationContext{}
	for i, pc := range contexts {
		pc.ID = byte(2*i + 1)
		proposed[pc.ID] = pc
		rq.contexts = append(rq.contexts, pc)
	}
	a.deadline()
	if err := writePDU(c, pduAssociateRQ, rq.encode(false)); err != nil {
		c.Close()
		return nil, fmt.Errorf("associate with %s: %w", p.Addr, ctxErr(ctx, err))
	}
	resp, err := readPDU(a.r, maxRecv)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("associate with %s: %w", p.Addr, ctxErr(ctx, err))
	}
	switch resp.typ {
	case pduAssociateAC:
	case pduAssociateRJ:
		c.Close()
		return nil, fmt.Errorf("associate with %s as %s: %w", p.Addr, p.CalledAE, &RejectError{Result: resp.body[1], Source: resp.body[2], Reason: resp.body[3]})
	case pduAbort:
		c.Close()
		return nil, fmt.Errorf("associate with %s: %w", p.Addr, &AbortError{Source: resp.body[2], Reason: resp.body[3]})
	default:
		a.abortWith(2)
		return nil, fmt.Errorf("associate with %s: %w: PDU type 0x%02x instead of A-ASSOCIATE-AC", p.Addr, ErrProtocol, resp.typ)
	}
	ac, err := decodeAssoc(resp.body, true)
	if err != nil {
		a.abortWith(2)
		return nil, fmt.Errorf("associate with %s: %w", p.Addr, err)
	}
	if err := a.setPeerMax(ac.maxPDU); err != nil {
		a.abortWith(2)
		return nil, fmt.Errorf("associate with %s: %w", p.Addr, err)
	}
	for _, pc := range ac.contexts {
		prop, ok := proposed[pc.ID]
		if !ok || pc.Result != 0 || len(pc.TransferSyntaxes) != 1 {
			continue
		}
		ts := pc.TransferSyntaxes[0]
		offered := false
		for _, t := range prop.TransferSyntaxes {
			offered = offered || t == ts
		}
		if !offered {
			continue // a syntax we did not propose is no agreement
		}
		a.contexts[pc.ID] = PresentationContext{ID: pc.ID, AbstractSyntax: prop.AbstractSyntax, TransferSyntaxes: []string{ts}}
	}
	if len(a.contexts) == 0 {
		a.Release(ctx)
		return nil, fmt.Errorf("associate with %s: the peer accepted none of the %d presentation contexts (SOP class or transfer syntax not supported)", p.Addr, len(contexts))
	}
	return a, nil
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// contextFor returns the accepted context for a SOP class in a transfer
// syntax.
func (a *Association) contextFor(class, ts string) (byte, bool) {
	for id, pc := range a.contexts {
		if pc.AbstractSyntax == class && pc.TransferSyntaxes[0] == ts {
			return id, true
		}
	}
	return 0, false
}

// Accepted reports whether the peer accepted class in transfer syntax ts.
func (a *Association) Accepted(class, ts string) bool {
	_, ok := a.contextFor(class, ts)
	return ok
}

func (a *Association) nextID() uint16 {
	a.msgID++
	if a.msgID == 0 {
		a.msgID = 1
	}
	return a.msgID
}

// request sends a command (and data) and waits for its response.
func (a *Association) request(ctx context.Context, pcid byte, cmd command, data io.Reader, rspField uint16) (command, error) {
	stop := a.guard(ctx)
	defer stop()
	id := cmd[tagMessageID]
	if err := a.send(pcid, cmd.encode(), data); err != nil {
		return nil, ctxErr(ctx, err)
	}
	m, err := a.recv(nil)
	if err != nil {
		return nil, ctxErr(ctx, err)
	}
	if f, _ := m.cmd.us(tagCommandField); f != rspField {
		return nil, fmt.Errorf("%w: response command 0x%04x, want 0x%04x", ErrProtocol, f, rspField)
	}
	if string(m.cmd[tagRespondingTo]) != string(id) {
		return nil, fmt.Errorf("%w: response to another message", ErrProtocol)
	}
	return m.cmd, nil
}

// Echo sends a C-ECHO (verification); the association must have accepted
// the Verification SOP class.
func (a *Association) Echo(ctx context.Context) error {
	pcid, ok := a.contextFor(VerificationSOP, ImplicitVRLittle)
	if !ok {
		if pcid, ok = a.contextFor(VerificationSOP, ExplicitVRLittle); !ok {
			return errors.New("C-ECHO: the peer did not accept the Verification SOP class")
		}
	}
	cmd := command{}
	cmd.setUI(tagAffectedClass, VerificationSOP)
	cmd.setUS(tagCommandField, cEchoRQ)
	cmd.setUS(tagMessageID, a.nextID())
	cmd.setUS(tagDataSetType, noDataSet)
	rsp, err := a.request(ctx, pcid, cmd, nil, cEchoRSP)
	if err != nil {
		return fmt.Errorf("C-ECHO: %w", err)
	}
	if st, _ := rsp.us(tagStatus); st != statusSuccess {
		return fmt.Errorf("C-ECHO: %w", &StatusError{Status: st, Comment: string(rsp[tagErrorComment])})
	}
	return nil
}

// Store sends one instance by C-STORE, its data set exactly as it is in
// the file. A failure status is a *StatusError; warnings count as stored.
func (a *Association) Store(ctx context.Context, in Instance) error {
	pcid, ok := a.contextFor(in.SOPClassUID, in.TransferSyntaxUID)
	if !ok {
		return fmt.Errorf("C-STORE %s: the peer did not accept SOP class %s in transfer syntax %s", in.Path, in.SOPClassUID, in.TransferSyntaxUID)
	}
	f, err := os.Open(in.Path)
	if err != nil {
		return fmt.Errorf("C-STORE: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(in.DataOffset, io.SeekStart); err != nil {
		return fmt.Errorf("C-STORE %s: %w", in.Path, err)
	}
	cmd := command{}
	cmd.setUI(tagAffectedClass, in.SOPClassUID)
	cmd.setUS(tagCommandField, cStoreRQ)
	cmd.setUS(tagMessageID, a.nextID())
	cmd.setUS(tagPriority, 0)
	cmd.setUS(tagDataSetType, dataSetPresent)
	cmd.setUI(tagAffectedInst, in.SOPInstanceUID)
	rsp, err := a.request(ctx, pcid, cmd, io.LimitReader(f, in.Size-in.DataOffset), cStoreRSP)
	if err != nil {
		return fmt.Errorf("C-STORE %s: %w", in.Path, err)
	}
	if st, _ := rsp.us(tagStatus); !success(st) {
		return fmt.Errorf("C-STORE %s: %w", in.Path, &StatusError{Status: st, Comment: string(rsp[tagErrorComment])})
	}
	return nil
}

// Release ends the association politely (A-RELEASE-RQ/RP) and closes it.
func (a *Association) Release(ctx context.Context) error {
	stop := a.guard(ctx)
	defer stop()
	defer a.conn.Close()
	a.deadline()
	if err := writePDU(a.conn, pduReleaseRQ, []byte{0, 0, 0, 0}); err != nil {
		return fmt.Errorf("release: %w", ctxErr(ctx, err))
	}
	for {
		p, err := readPDU(a.r, a.maxRecv)
		if err != nil {
			return fmt.Errorf("release: %w", ctxErr(ctx, err))
		}
		switch p.typ {
		case pduReleaseRP:
			return nil
		case pduAbort:
			return fmt.Errorf("release: %w", &AbortError{Source: p.body[2], Reason: p.body[3]})
		case pduDataTF:
			continue // a late response; the release still stands
		default:
			return fmt.Errorf("release: %w: PDU type 0x%02x", ErrProtocol, p.typ)
		}
	}
}

// Echo opens an association proposing Verification, sends one C-ECHO and
// releases: `echoscu` in one call.
func Echo(ctx context.Context, p Peer) error {
	a, err := Connect(ctx, p, []PresentationContext{{AbstractSyntax: VerificationSOP, TransferSyntaxes: []string{ImplicitVRLittle, ExplicitVRLittle}}})
	if err != nil {
		return err
	}
	if err := a.Echo(ctx); err != nil {
		a.Abort()
		return err
	}
	return a.Release(ctx)
}
