package dimse

import (
	"encoding/binary"
	"fmt"
	"sort"
)

// Command fields (PS3.7 E.1).
const (
	cStoreRQ  = 0x0001
	cStoreRSP = 0x8001
	cEchoRQ   = 0x0030
	cEchoRSP  = 0x8030
)

// Command element numbers in group 0000.
const (
	tagGroupLength   = 0x0000
	tagAffectedClass = 0x0002
	tagCommandField  = 0x0100
	tagMessageID     = 0x0110
	tagRespondingTo  = 0x0120
	tagPriority      = 0x0700
	tagDataSetType   = 0x0800
	tagStatus        = 0x0900
	tagAffectedInst  = 0x1000
	tagErrorComment  = 0x0902
	noDataSet        = 0x0101
	dataSetPresent   = 0x0000
	statusSuccess    = 0x0000
	statusSOPNotSupp = 0x0122
	statusDuplicate  = 0x0111
)

// command is a decoded command set: element number → value bytes.
type command map[uint16][]byte

func (c command) us(el uint16) (uint16, bool) {
	v, ok := c[el]
	if !ok || len(v) != 2 {
		return 0, false
	}
	return binary.LittleEndian.Uint16(v), true
}

func (c command) ui(el uint16) string { return uidString(c[el]) }

func (c command) hasData() bool {
	t, ok := c.us(tagDataSetType)
	return ok && t != noDataSet
}

func (c command) setUS(el, v uint16) {
	b := make([]byte, 2)
	binary.LittleEndian.PutUint16(b, v)
	c[el] = b
}

func (c command) setUI(el uint16, v string) {
	b := []byte(v)
	if len(b)%2 == 1 {
		b = append(b, 0)
	}
	c[el] = b
}

func (c command) setString(el uint16, v string) {
	b := []byte(v)
	if len(b)%2 == 1 {
		b = append(b, ' ')
	}
	c[el] = b
}

// encode writes the command set in Implicit VR Little Endian, as PS3.7
// requires, with its group length first.
func (c command) encode() []byte {
	els := make([]uint16, 0, len(c))
	for el := range c {
		if el != tagGroupLength {
			els = append(els, el)
		}
	}
	sort.Slice(els, func(i, j int) bool { return els[i] < els[j] })
	var body []byte
	for _, el := range els {
		v := c[el]
		var h [8]byte
		binary.LittleEndian.PutUint16(h[2:], el)
		binary.LittleEndian.PutUint32(h[4:], uint32(len(v)))
		body = append(append(body, h[:]...), v...)
	}
	out := make([]byte, 12, 12+len(body))
	binary.LittleEndian.PutUint32(out[4:], 4)
	binary.LittleEndian.PutUint32(out[8:], uint32(len(body)))
	return append(out, body...)
}

func decodeCommand(b []byte) (command, error) {
	c := command{}
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, fmt.Errorf("%w: truncated command element", ErrProtocol)
		}
		group := binary.LittleEndian.Uint16(b)
		el := binary.LittleEndian.Uint16(b[2:])
		n := binary.LittleEndian.Uint32(b[4:])
		if group != 0 {
			return nil, fmt.Errorf("%w: element (%04x,%04x) in a command set", ErrProtocol, group, el)
		}
		if uint64(n) > uint64(len(b)-8) {
			return nil, fmt.Errorf("%w: command element (0000,%04x) claims %d bytes, %d left", ErrProtocol, el, n, len(b)-8)
		}
		c[el] = b[8 : 8+n]
		b = b[8+n:]
	}
	if _, ok := c.us(tagCommandField); !ok {
		return nil, fmt.Errorf("%w: command set without a command field", ErrProtocol)
	}
	return c, nil
}

// StatusError is a DIMSE response whose status is a failure. Its message
// leaves out the peer's error comment, which may quote the data set (and so
// a patient's name) and must not reach logs; Comment holds it.
type StatusError struct {
	Status  uint16
	Comment string
}

func (e *StatusError) Error() string {
	what := "failed"
	switch e.Status & 0xF000 {
	case 0xA000:
		if e.Status&0xFF00 == 0xA700 {
			what = "refused: out of resources"
		} else if e.Status&0xFF00 == 0xA900 {
			what = "failed: data set does not match SOP class"
		}
	case 0xC000:
		what = "failed: cannot understand"
	}
	if e.Status == statusSOPNotSupp {
		what = "refused: SOP class not supported"
	}
	return fmt.Sprintf("DIMSE status 0x%04X (%s)", e.Status, what)
}

// Transient reports whether retrying later may succeed (the peer was out of
// resources); other failures need someone to look.
func (e *StatusError) Transient() bool { return e.Status&0xFF00 == 0xA700 }

// success reports whether a C-STORE status means the instance is stored:
// success, a warning (coercion, elements discarded), or "duplicate SOP
// instance" (0x0111), which some PACS answer to a resend of what they hold.
func success(status uint16) bool {
	return status == statusSuccess || status&0xF000 == 0xB000 || status == 0x0001 || status == statusDuplicate
}
