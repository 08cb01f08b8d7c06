package dimse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"
)

// storagePrefix starts every Storage SOP class UID (PS3.4 B.5), images and
// MR raw data alike.
const storagePrefix = "1.2.840.10008.5.1.4.1.1."

// Statuses an SCP answers with.
const (
	statusUnrecognised = 0x0211
	statusStoreRefused = 0xA700
)

// Session receives the instances of one association.
type Session interface {
	// Store returns where the data set of one instance goes; Close on it
	// commits the instance (its error refuses it).
	Store(class, instance, transferSyntax string) (io.WriteCloser, error)
	// End is called once when the association ends: released is false
	// after an abort or a network error. Instances already committed were
	// acknowledged to the sender and must be kept either way.
	End(released bool)
}

// Server is a C-STORE (and C-ECHO) service provider.
type Server struct {
	// AETitle is ours: associations calling another are rejected.
	AETitle string
	// Callers are the calling AE titles accepted; any other is rejected.
	Callers []string
	// Open starts a session for an accepted association.
	Open func(calling string, remote net.Addr) (Session, error)
	// Timeout bounds each read and write (0: 60 s); an idle association is
	// closed after it.
	Timeout time.Duration
	// MaxPDU is the largest P-DATA PDU we accept (0: DefaultMaxPDU).
	MaxPDU uint32
	// MaxInstance bounds one data set in bytes (0: 1 GiB); a larger one is
	// refused with 0xA700 and the association continues.
	MaxInstance int64
	// MaxAssociations bounds concurrent associations (0: 8); more are
	// rejected as congested.
	MaxAssociations int
	Log             *slog.Logger
}

// Serve accepts associations on ln until ctx ends; it closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if err := checkAE(s.AETitle); err != nil {
		return err
	}
	if s.Open == nil {
		return errors.New("dimse server: Open is required")
	}
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	limit := s.MaxAssociations
	if limit <= 0 {
		limit = 8
	}
	slots := make(chan struct{}, limit)
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("dimse server: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			busy := false
			select {
			case slots <- struct{}{}:
				defer func() { <-slots }()
			default:
				busy = true
			}
			s.handle(ctx, c, busy, log)
		}()
	}
}

func (s *Server) handle(ctx context.Context, c net.Conn, busy bool, log *slog.Logger) {
	defer c.Close()
	to := s.Timeout
	if to <= 0 {
		to = 60 * time.Second
	}
	maxRecv := s.MaxPDU
	if maxRecv == 0 {
		maxRecv = DefaultMaxPDU
	}
	a := newAssociation(c, maxRecv, to)
	stop := a.guard(ctx)
	defer stop()
	a.deadline()
	p, err := readPDU(a.r, maxRecv)
	if err != nil {
		log.Warn("DICOM association refused: unreadable request", "remote", c.RemoteAddr().String(), "err", err)
		a.abortWith(2)
		return
	}
	if p.typ != pduAssociateRQ {
		a.abortWith(2)
		return
	}
	rq, err := decodeAssoc(p.body, false)
	if err != nil {
		log.Warn("DICOM association refused: malformed request", "remote", c.RemoteAddr().String(), "err", err)
		a.abortWith(2)
		return
	}
	reject := func(result, source, reason byte, why string) {
		log.Warn("DICOM association rejected", "remote", c.RemoteAddr().String(), "calling_ae", printable(rq.calling), "called_ae", printable(rq.called), "why", why)
		_ = writePDU(c, pduAssociateRJ, []byte{0, result, source, reason})
	}
	switch {
	case busy:
		reject(2, 3, 1, "too many associations")
		return
	case rq.called != s.AETitle:
		reject(1, 1, 7, "called AE title not ours")
		return
	case !slices.Contains(s.Callers, rq.calling):
		reject(1, 1, 3, "calling AE title not configured")
		return
	}
	ac := &assoc{called: rq.called, calling: rq.calling, maxPDU: maxRecv, implClass: implementationClass, implVersion: implementationVer}
	for _, pc := range rq.contexts {
		res := PresentationContext{ID: pc.ID, Result: 3, TransferSyntaxes: []string{ImplicitVRLittle}}
		if pc.AbstractSyntax == VerificationSOP || strings.HasPrefix(pc.AbstractSyntax, storagePrefix) {
			res.Result = 4
			// Data sets are stored as they come: take only the uncompressed
			// syntaxes kspaced's readers handle, explicit first.
			for _, want := range []string{ExplicitVRLittle, ImplicitVRLittle} {
				if slices.Contains(pc.TransferSyntaxes, want) {
					res.Result, res.TransferSyntaxes = 0, []string{want}
					break
				}
			}
		}
		ac.contexts = append(ac.contexts, res)
		if res.Result == 0 {
			a.contexts[pc.ID] = PresentationContext{ID: pc.ID, AbstractSyntax: pc.AbstractSyntax, TransferSyntaxes: res.TransferSyntaxes}
		}
	}
	if err := a.setPeerMax(rq.maxPDU); err != nil {
		reject(1, 2, 1, err.Error())
		return
	}
	if len(a.contexts) == 0 {
		reject(1, 1, 1, "no presentation context acceptable")
		return
	}
	sess, err := s.Open(rq.calling, c.RemoteAddr())
	if err != nil {
		log.Error("DICOM association refused: cannot store", "calling_ae", rq.calling, "err", err)
		_ = writePDU(c, pduAssociateRJ, []byte{0, 2, 3, 2}) // transient: local limit exceeded
		return
	}
	a.deadline()
	if err := writePDU(c, pduAssociateAC, ac.encode(true)); err != nil {
		sess.End(false)
		return
	}
	a.CalledAE, a.CallingAE = rq.called, rq.calling
	released := s.serveAssociation(a, sess, log)
	// The session ends before the release is confirmed: a sender that sees
	// its association released can count on the study being delivered.
	sess.End(released)
	if released {
		a.deadline()
		_ = writePDU(a.conn, pduReleaseRP, []byte{0, 0, 0, 0})
	}
}

// serveAssociation answers DIMSE requests until the peer asks to release
// (true; the caller confirms) or a failure.
func (s *Server) serveAssociation(a *Association, sess Session, log *slog.Logger) bool {
	maxInst := s.MaxInstance
	if maxInst <= 0 {
		maxInst = 1 << 30
	}
	for {
		var w *boundedWriter
		m, err := a.recv(func(pcid byte, c command) (io.Writer, error) {
			if f, _ := c.us(tagCommandField); f != cStoreRQ {
				return nil, nil // discarded; answered below
			}
			out, err := sess.Store(a.contexts[pcid].AbstractSyntax, c.ui(tagAffectedInst), a.contexts[pcid].TransferSyntaxes[0])
			w = &boundedWriter{w: out, left: maxInst, err: err}
			return w, nil
		})
		switch {
		case errors.Is(err, errReleased):
			return true
		case err != nil:
			var ab *AbortError
			if !errors.As(err, &ab) && !errors.Is(err, io.EOF) {
				log.Warn("DICOM association failed", "calling_ae", a.CallingAE, "err", err)
				a.abortWith(2)
			}
			if w != nil {
				w.discard()
			}
			return false
		}
		field, _ := m.cmd.us(tagCommandField)
		rsp := command{}
		id, _ := m.cmd.us(tagMessageID)
		rsp.setUS(tagRespondingTo, id)
		rsp.setUS(tagDataSetType, noDataSet)
		if v, ok := m.cmd[tagAffectedClass]; ok {
			rsp[tagAffectedClass] = v
		}
		switch field {
		case cEchoRQ:
			rsp.setUS(tagCommandField, cEchoRSP)
			rsp.setUS(tagStatus, statusSuccess)
		case cStoreRQ:
			rsp.setUS(tagCommandField, cStoreRSP)
			if v, ok := m.cmd[tagAffectedInst]; ok {
				rsp[tagAffectedInst] = v
			}
			st := uint16(statusSuccess)
			if err := w.commit(); err != nil {
				// Out of resources: the sender may retry later.
				st = statusStoreRefused
				if errors.Is(err, errTooLarge) {
					log.Warn("instance refused", "calling_ae", a.CallingAE, "err", err)
				} else {
					log.Error("instance not stored", "calling_ae", a.CallingAE, "err", err)
				}
			}
			rsp.setUS(tagStatus, st)
		default:
			rsp.setUS(tagCommandField, field|0x8000)
			rsp.setUS(tagStatus, statusUnrecognised)
		}
		if err := a.send(m.pcid, rsp.encode(), nil); err != nil {
			log.Warn("DICOM association failed", "calling_ae", a.CallingAE, "err", err)
			return false
		}
	}
}

var errTooLarge = errors.New("data set over the size limit")

// boundedWriter passes at most left bytes to w; past that, or after an
// error, it swallows the rest so the association can answer and go on.
type boundedWriter struct {
	w    io.WriteCloser
	left int64
	err  error
}

func (b *boundedWriter) Write(p []byte) (int, error) {
	if b.err != nil {
		return len(p), nil
	}
	if int64(len(p)) > b.left {
		b.err = errTooLarge
		return len(p), nil
	}
	b.left -= int64(len(p))
	if _, err := b.w.Write(p); err != nil {
		b.err = err
	}
	return len(p), nil
}

// commit closes the instance: it is kept only if every byte was written.
func (b *boundedWriter) commit() error {
	if b.w == nil {
		if b.err == nil {
			b.err = errors.New("no writer")
		}
		return b.err
	}
	if b.err != nil {
		b.discard()
		return b.err
	}
	return b.w.Close()
}

// discard drops a partial instance.
func (b *boundedWriter) discard() {
	if d, ok := b.w.(interface{ Discard() }); ok {
		d.Discard()
	} else if b.w != nil {
		_ = b.w.Close()
	}
}

// printable makes an AE title from the network safe to log.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}
