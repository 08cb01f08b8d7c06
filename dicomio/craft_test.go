package dicomio

import (
	"bytes"
	"compress/flate"
	"encoding/binary"

	"github.com/suyashkumar/dicom/pkg/uid"
)

// enc assembles DICOM bytes by hand, so tests can state lengths that lie.
type enc struct {
	bo       binary.AppendByteOrder
	implicit bool
	b        []byte
}

func newEnc(ts string) *enc {
	e := &enc{bo: binary.LittleEndian}
	switch ts {
	case uid.ImplicitVRLittleEndian:
		e.implicit = true
	case uid.ExplicitVRBigEndian:
		e.bo = binary.BigEndian
	}
	return e
}

func (e *enc) u16(v uint16) { e.b = e.bo.AppendUint16(e.b, v) }
func (e *enc) u32(v uint32) { e.b = e.bo.AppendUint32(e.b, v) }

// hdr writes an element header claiming vl bytes.
func (e *enc) hdr(g, el uint16, vr string, vl uint32) *enc {
	e.u16(g)
	e.u16(el)
	if e.implicit {
		e.u32(vl)
		return e
	}
	e.b = append(e.b, vr...)
	if longLengthVR(vr) {
		e.u16(0)
		e.u32(vl)
	} else {
		e.u16(uint16(vl))
	}
	return e
}

// el writes a whole element.
func (e *enc) el(g, el uint16, vr string, val []byte) *enc {
	if len(val)%2 == 1 {
		pad := byte(' ')
		if vr == "UI" || vr == "OB" {
			pad = 0
		}
		val = append(append([]byte{}, val...), pad)
	}
	e.hdr(g, el, vr, uint32(len(val)))
	e.b = append(e.b, val...)
	return e
}

func (e *enc) str(g, el uint16, vr, s string) *enc { return e.el(g, el, vr, []byte(s)) }

func (e *enc) us(g, el uint16, vals ...uint16) *enc {
	var v []byte
	for _, x := range vals {
		v = e.bo.AppendUint16(v, x)
	}
	return e.el(g, el, "US", v)
}

// item and delimiters are always 8 bytes: tag then a 32-bit length.
func (e *enc) item(vl uint32) *enc { e.u16(0xFFFE); e.u16(0xE000); e.u32(vl); return e }
func (e *enc) itemEnd() *enc       { e.u16(0xFFFE); e.u16(0xE00D); e.u32(0); return e }
func (e *enc) seqEnd() *enc        { e.u16(0xFFFE); e.u16(0xE0DD); e.u32(0); return e }
func (e *enc) raw(b ...byte) *enc  { e.b = append(e.b, b...); return e }

// part10 prefixes a data set with the preamble and a meta group naming ts.
func part10(ts string, dataset []byte) []byte {
	m := &enc{bo: binary.LittleEndian}
	m.el(0x0002, 0x0001, "OB", []byte{0, 1})
	m.str(0x0002, 0x0002, "UI", MRImageStorage)
	m.str(0x0002, 0x0003, "UI", "1.2.3.4")
	m.str(0x0002, 0x0010, "UI", ts)
	out := make([]byte, 128, 128+4+12+len(m.b)+len(dataset))
	out = append(out, "DICM"...)
	g := &enc{bo: binary.LittleEndian}
	g.el(0x0002, 0x0000, "UL", binary.LittleEndian.AppendUint32(nil, uint32(len(m.b))))
	out = append(out, g.b...)
	out = append(out, m.b...)
	if ts == uid.DeflatedExplicitVRLittleEndian {
		var z bytes.Buffer
		w, _ := flate.NewWriter(&z, flate.BestCompression)
		w.Write(dataset)
		w.Close()
		dataset = z.Bytes()
	}
	return append(out, dataset...)
}

// imageHeader writes the identifying and Image Pixel attributes of a small
// monochrome image (everything before Pixel Data).
func (e *enc) imageHeader(rows, cols uint16, frames string, bits uint16) *enc {
	e.str(0x0008, 0x0016, "UI", MRImageStorage)
	e.str(0x0008, 0x0018, "UI", "1.2.3.4")
	e.str(0x0008, 0x0060, "CS", "MR")
	e.str(0x0010, 0x0010, "PN", "Test^Crafted")
	e.str(0x0020, 0x000D, "UI", "1.2.3.1")
	e.str(0x0020, 0x000E, "UI", "1.2.3.2")
	e.us(0x0028, 0x0002, 1)
	e.str(0x0028, 0x0004, "CS", "MONOCHROME2")
	if frames != "" {
		e.str(0x0028, 0x0008, "IS", frames)
	}
	e.us(0x0028, 0x0010, rows)
	e.us(0x0028, 0x0011, cols)
	e.us(0x0028, 0x0100, bits)
	e.us(0x0028, 0x0101, bits)
	e.us(0x0028, 0x0102, bits-1)
	e.us(0x0028, 0x0103, 0)
	return e
}

// smallImage is a valid 4×3 16-bit image in syntax ts with a nested
// sequence of both length kinds, pixel value i at index i.
func smallImage(ts string) []byte {
	e := newEnc(ts)
	e.imageHeader(4, 3, "", 16)
	// (0008,1140) with one undefined-length item, then (0008,1150) inside.
	inner := newEnc(ts)
	inner.str(0x0008, 0x1150, "UI", MRImageStorage)
	inner.str(0x0008, 0x1155, "UI", "1.2.3.9")
	seq := newEnc(ts)
	seq.item(uint32(len(inner.b))).raw(inner.b...)
	seq.item(undefinedLength).raw(inner.b...).itemEnd()
	head := newEnc(ts)
	head.hdr(0x0008, 0x1140, "SQ", undefinedLength).raw(seq.b...).seqEnd()
	px := newEnc(ts)
	for i := 0; i < 12; i++ {
		px.u16(uint16(i))
	}
	var body []byte
	body = append(body, head.b...)
	body = append(body, e.b...)
	tail := newEnc(ts)
	tail.el(0x7FE0, 0x0010, "OW", px.b)
	body = append(body, tail.b...)
	return part10(ts, body)
}
