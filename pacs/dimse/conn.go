package dimse

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// maxCommand bounds a DIMSE command set; real ones are a few hundred bytes.
const maxCommand = 64 << 10

// errReleased is returned by recv when the peer asks to release.
var errReleased = errors.New("peer released the association")

// Association is one open DICOM association, as requestor or acceptor. It is
// not safe for concurrent use: DIMSE messages on it are sequential.
type Association struct {
	conn     net.Conn
	r        *bufio.Reader
	maxRecv  uint32 // our announced maximum P-DATA length
	maxSend  uint32 // the peer's, capped to maxSendPDU
	timeout  time.Duration
	contexts map[byte]PresentationContext // accepted ones only
	msgID    uint16
	sendBuf  []byte // one P-DATA PDU, reused
	// CalledAE and CallingAE as negotiated.
	CalledAE, CallingAE string
}

func newAssociation(c net.Conn, maxRecv uint32, timeout time.Duration) *Association {
	return &Association{conn: c, r: bufio.NewReaderSize(c, 64<<10), maxRecv: maxRecv, timeout: timeout, contexts: map[byte]PresentationContext{}}
}

func (a *Association) deadline() {
	if a.timeout > 0 {
		_ = a.conn.SetDeadline(time.Now().Add(a.timeout))
	}
}

// guard closes the connection when ctx ends, so a blocked read returns.
func (a *Association) guard(ctx context.Context) func() bool {
	return context.AfterFunc(ctx, func() { _ = a.conn.Close() })
}

// setPeerMax honours the peer's maximum P-DATA length, capped at
// maxSendPDU (0 means unlimited); one too small to carry data is refused.
func (a *Association) setPeerMax(n uint32) error {
	switch {
	case n == 0 || n > maxSendPDU:
		n = maxSendPDU
	case n < minPeerPDU:
		return fmt.Errorf("%w: the peer's maximum PDU length %d is below %d", ErrProtocol, n, minPeerPDU)
	}
	a.maxSend = n
	return nil
}

// send writes one DIMSE message: the command, then the data set (if data is
// not nil) fragmented to the peer's maximum PDU length.
func (a *Association) send(pcid byte, cmd []byte, data io.Reader) error {
	if err := a.sendPDVs(pcid, true, bytes.NewReader(cmd)); err != nil {
		return fmt.Errorf("send command: %w", err)
	}
	if data != nil {
		if err := a.sendPDVs(pcid, false, data); err != nil {
			return fmt.Errorf("send data set: %w", err)
		}
	}
	return nil
}

// sendPDVs streams src as P-DATA-TF PDUs of one PDV each, marking the last.
func (a *Association) sendPDVs(pcid byte, command bool, src io.Reader) error {
	room := int(a.maxSend) - 6 // PDV length field and header
	if len(a.sendBuf) != 12+room {
		a.sendBuf = make([]byte, 12+room)
	}
	buf := a.sendBuf
	br := bufio.NewReaderSize(src, 64<<10)
	for {
		n, err := io.ReadFull(br, buf[12:])
		last := err != nil
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		case err != nil:
			return err
		default:
			if _, perr := br.Peek(1); perr != nil {
				if !errors.Is(perr, io.EOF) {
					return perr
				}
				last = true
			}
		}
		mch := byte(0)
		if command {
			mch |= 1
		}
		if last {
			mch |= 2
		}
		buf[0], buf[1] = pduDataTF, 0
		binary.BigEndian.PutUint32(buf[2:], uint32(6+n))
		binary.BigEndian.PutUint32(buf[6:], uint32(2+n))
		buf[10], buf[11] = pcid, mch
		a.deadline()
		if _, err := a.conn.Write(buf[:12+n]); err != nil {
			return err
		}
		if last {
			return nil
		}
	}
}

// message is a received DIMSE message; the data set went to the sink.
type message struct {
	pcid byte
	cmd  command
}

// recv reads one DIMSE message. If its command announces a data set, sink is
// called with the command and the data set's fragments are written to the
// writer it returns (nil discards them).
func (a *Association) recv(sink func(pcid byte, c command) (io.Writer, error)) (message, error) {
	var cmdBuf []byte
	var m message
	var w io.Writer
	inData := false
	for {
		a.deadline()
		p, err := readPDU(a.r, a.maxRecv)
		if err != nil {
			return m, err
		}
		switch p.typ {
		case pduDataTF:
		case pduReleaseRQ:
			return m, errReleased
		case pduAbort:
			return m, &AbortError{Source: p.body[2], Reason: p.body[3]}
		default:
			return m, fmt.Errorf("%w: PDU type 0x%02x during data transfer", ErrProtocol, p.typ)
		}
		b := p.body
		for len(b) > 0 {
			if len(b) < 6 {
				return m, fmt.Errorf("%w: truncated PDV", ErrProtocol)
			}
			n := binary.BigEndian.Uint32(b)
			if n < 2 || uint64(n) > uint64(len(b)-4) {
				return m, fmt.Errorf("%w: PDV claims %d bytes, %d left", ErrProtocol, n, len(b)-4)
			}
			pcid, mch, val := b[4], b[5], b[6:4+n]
			b = b[4+n:]
			if _, ok := a.contexts[pcid]; !ok {
				return m, fmt.Errorf("%w: PDV on presentation context %d, which was not accepted", ErrProtocol, pcid)
			}
			if mch&1 == 1 {
				if inData || m.cmd != nil {
					return m, fmt.Errorf("%w: command fragment out of order", ErrProtocol)
				}
				if len(cmdBuf)+len(val) > maxCommand {
					return m, fmt.Errorf("%w: command set over %d bytes", ErrProtocol, maxCommand)
				}
				cmdBuf = append(cmdBuf, val...)
				if mch&2 == 0 {
					continue
				}
				c, err := decodeCommand(cmdBuf)
				if err != nil {
					return m, err
				}
				m.pcid, m.cmd = pcid, c
				if !c.hasData() {
					if len(b) > 0 {
						return m, fmt.Errorf("%w: data after a command without a data set", ErrProtocol)
					}
					return m, nil
				}
				inData = true
				if sink != nil {
					if w, err = sink(pcid, c); err != nil {
						return m, err
					}
				}
				continue
			}
			if !inData || pcid != m.pcid {
				return m, fmt.Errorf("%w: data fragment without its command", ErrProtocol)
			}
			if w != nil {
				if _, err := w.Write(val); err != nil {
					return m, fmt.Errorf("store data set: %w", err)
				}
			}
			if mch&2 != 0 {
				if len(b) > 0 {
					return m, fmt.Errorf("%w: PDVs after the last data fragment", ErrProtocol)
				}
				return m, nil
			}
		}
	}
}

// Abort sends an A-ABORT and closes the connection.
func (a *Association) Abort() {
	_ = a.conn.SetDeadline(time.Now().Add(time.Second))
	_ = writePDU(a.conn, pduAbort, []byte{0, 0, 0, 0})
	_ = a.conn.Close()
}

func (a *Association) abortWith(reason byte) {
	_ = a.conn.SetDeadline(time.Now().Add(time.Second))
	_ = writePDU(a.conn, pduAbort, []byte{0, 0, 2, reason})
	_ = a.conn.Close()
}
