package dicomio

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/suyashkumar/dicom/pkg/tag"
	"github.com/suyashkumar/dicom/pkg/uid"
)

// The walker checks a whole file's element structure before any byte reaches
// suyashkumar/dicom, whose parser allocates whatever a length field claims,
// panics on some malformed values and treats a truncated file as complete.
// It mirrors that parser's decisions (which VR an implicit element gets, which
// VRs carry 4-byte lengths, what undefined lengths mean) so every length the
// library will act on has been checked against the bytes actually present.

const (
	undefinedLength = 0xFFFFFFFF
	// maxDepth bounds sequence nesting: the library recurses once per level
	// and a deep enough file would exhaust the goroutine stack (fatal, not a
	// recoverable panic). Real enhanced MR files nest about five levels.
	maxDepth = 32
)

var (
	tagGroupLength = tag.FileMetaInformationGroupLength
	tagTS          = tag.TransferSyntaxUID
)

// transferSyntax is what the walker needs to know about how the data set
// after the file meta group is encoded.
type transferSyntax struct {
	UID      string
	Name     string
	bo       binary.ByteOrder
	implicit bool
	deflated bool
	// native is false for encapsulated (compressed) syntaxes: the structure
	// can still be walked but the pixels cannot be decoded here.
	native bool
}

func lookupTransferSyntax(u string) (transferSyntax, error) {
	ts := transferSyntax{UID: u, bo: binary.LittleEndian, native: true}
	switch u {
	case uid.ImplicitVRLittleEndian:
		ts.Name, ts.implicit = "Implicit VR Little Endian", true
	case uid.ExplicitVRLittleEndian:
		ts.Name = "Explicit VR Little Endian"
	case uid.ExplicitVRBigEndian:
		ts.Name, ts.bo = "Explicit VR Big Endian", binary.BigEndian
	case uid.DeflatedExplicitVRLittleEndian:
		ts.Name, ts.deflated = "Deflated Explicit VR Little Endian", true
	default:
		info, err := uid.Lookup(u)
		if err != nil || info.Type != uid.TypeTransferSyntax {
			return ts, fmt.Errorf("%w: unknown transfer syntax %s", ErrUnsupportedTransferSyntax, quoteUID(u))
		}
		// The library reads every other known syntax as explicit little
		// endian with encapsulated pixel data; so does the walker.
		ts.Name, ts.native = info.Name, false
	}
	return ts, nil
}

// walked is the result of a successful structural check.
type walked struct {
	ts transferSyntax
	// data is the data set after the meta group: a sub-slice of the file,
	// or the inflated bytes for the deflated syntax.
	data []byte
	// Top-level Pixel Data value within data; pixelOff < 0 when absent.
	pixelOff, pixelLen int
	pixelEncapsulated  bool
	elements           int
}

// walkFile checks the structure of a whole Part 10 file held in b.
// maxInflated bounds the inflated size of a deflated data set.
func walkFile(b []byte, maxInflated int64) (*walked, error) {
	if len(b) < 132 || string(b[128:132]) != "DICM" {
		return nil, ErrNotDICOM
	}
	meta := walker{b: b, bo: binary.LittleEndian}
	p := 132
	first, err := meta.element(p, len(b), 0)
	if err != nil {
		return nil, fmt.Errorf("file meta: %w", err)
	}
	var tsUID string
	var haveTS bool
	visit := func(e elem) error {
		if e.tag.Group != tag.MetadataGroup {
			return meta.errAt(e.off, ErrMalformed, "element %v inside the file meta group", e.tag)
		}
		if e.tag == tagTS && !haveTS { // the library uses the first one
			if !isStringVR(e.vr) {
				return meta.errAt(e.off, ErrMalformed, "transfer syntax UID has VR %q", e.vr)
			}
			tsUID = firstString(b[e.val : e.val+int(e.vl)])
			haveTS = true
		}
		return nil
	}
	var end int
	if first.tag == tagGroupLength {
		if first.vr != "UL" || first.vl != 4 {
			return nil, meta.errAt(first.off, ErrMalformed, "meta group length has VR %q and length %d", first.vr, first.vl)
		}
		n := int64(binary.LittleEndian.Uint32(b[first.val:]))
		if n > int64(len(b)-first.next) {
			return nil, meta.errAt(first.off, ErrTruncated, "meta group claims %d bytes, %d left", n, len(b)-first.next)
		}
		end = first.next + int(n)
		for q := first.next; q < end; {
			e, err := meta.element(q, end, 0)
			if err != nil {
				return nil, fmt.Errorf("file meta: %w", err)
			}
			if err := visit(e); err != nil {
				return nil, fmt.Errorf("file meta: %w", err)
			}
			q = e.next
		}
	} else {
		// No group length: the library (with AllowMissingMetaElementGroupLength)
		// takes the first element and then every element whose group is 2.
		if err := visit(first); err != nil {
			return nil, fmt.Errorf("file meta: %w", err)
		}
		end = first.next
		for end+2 <= len(b) && binary.LittleEndian.Uint16(b[end:]) == tag.MetadataGroup {
			e, err := meta.element(end, len(b), 0)
			if err != nil {
				return nil, fmt.Errorf("file meta: %w", err)
			}
			if err := visit(e); err != nil {
				return nil, fmt.Errorf("file meta: %w", err)
			}
			end = e.next
		}
	}
	if !haveTS {
		// The library would guess the syntax by test-parsing 100 bytes, which
		// allocates whatever those bytes claim: refuse instead.
		return nil, fmt.Errorf("%w: file meta has no transfer syntax UID", ErrMalformed)
	}
	ts, err := lookupTransferSyntax(tsUID)
	if err != nil {
		return nil, err
	}
	data := b[end:]
	if ts.deflated {
		fr := flate.NewReader(bytes.NewReader(data))
		inflated, err := io.ReadAll(io.LimitReader(fr, maxInflated+1))
		if err != nil {
			return nil, fmt.Errorf("%w: deflated data set: %v", ErrMalformed, err)
		}
		if int64(len(inflated)) > maxInflated {
			return nil, fmt.Errorf("%w: deflated data set inflates beyond %d bytes", ErrTooLarge, maxInflated)
		}
		data = inflated
	}
	w := walker{b: data, bo: ts.bo, implicit: ts.implicit, base: end}
	if ts.deflated {
		w.base = -1
	}
	res := &walked{ts: ts, data: data, pixelOff: -1}
	for q := 0; q < len(data); {
		e, err := w.element(q, len(data), 0)
		if err != nil {
			return nil, err
		}
		switch {
		case e.tag == tag.SpecificCharacterSet && !isStringVR(e.vr):
			// The library type-asserts this value to strings.
			return nil, w.errAt(e.off, ErrMalformed, "specific character set has VR %q", e.vr)
		case e.tag == tag.PixelData && res.pixelOff < 0:
			res.pixelOff, res.pixelEncapsulated = e.val, e.vl == undefinedLength
			if !res.pixelEncapsulated {
				res.pixelLen = int(e.vl)
			}
		}
		q = e.next
	}
	res.elements = w.count
	return res, nil
}

// walker walks elements in one encoding. Offsets in errors are file offsets
// (base + position) for plain data sets and inflated offsets when base < 0.
type walker struct {
	b        []byte
	bo       binary.ByteOrder
	implicit bool
	base     int
	count    int
}

// elem is one checked element: header at off, value at val (vl bytes, or
// undefinedLength), next element at next.
type elem struct {
	tag       tag.Tag
	vr        string
	vl        uint32
	off, val  int
	next      int
	undefined bool
}

func (w *walker) errAt(off int, kind error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if w.base < 0 {
		return fmt.Errorf("%w at inflated offset %d: %s", kind, off, msg)
	}
	return fmt.Errorf("%w at offset %d: %s", kind, w.base+off, msg)
}

func (w *walker) tagAt(p int) tag.Tag {
	return tag.Tag{Group: w.bo.Uint16(w.b[p:]), Element: w.bo.Uint16(w.b[p+2:])}
}

// element checks the element starting at p, whose value (and everything
// nested in it) must end by end.
func (w *walker) element(p, end, depth int) (elem, error) {
	e := elem{off: p}
	if end-p < 8 {
		return e, w.errAt(p, ErrTruncated, "element header needs 8 bytes, %d left", end-p)
	}
	w.count++
	e.tag = w.tagAt(p)
	if e.tag.Group == tag.GroupSeqItem {
		// Items and delimiters only belong inside sequences and
		// encapsulated values, which are walked by their own loops.
		return e, w.errAt(p, ErrMalformed, "unexpected %v here", e.tag)
	}
	if w.implicit {
		e.vr = implicitVR(e.tag)
		e.vl = w.bo.Uint32(w.b[p+4:])
		e.val = p + 8
	} else {
		e.vr = string(w.b[p+4 : p+6])
		switch {
		case longLengthVR(e.vr):
			if end-p < 12 {
				return e, w.errAt(p, ErrTruncated, "element header needs 12 bytes, %d left", end-p)
			}
			e.vl = w.bo.Uint32(w.b[p+8:])
			e.val = p + 12
		case shortLengthVR(e.vr):
			e.vl = uint32(w.bo.Uint16(w.b[p+6:]))
			if e.vl == 0xFFFF {
				// The library turns this into an undefined length.
				return e, w.errAt(p, ErrMalformed, "%v has 16-bit length 0xFFFF", e.tag)
			}
			e.val = p + 8
		case e.vr == "OV" || e.vr == "SV" || e.vr == "UV":
			return e, w.errAt(p, ErrMalformed, "%v has VR %s, which the parser does not support", e.tag, e.vr)
		default:
			return e, w.errAt(p, ErrMalformed, "%v has invalid VR %q", e.tag, e.vr)
		}
	}
	e.undefined = e.vl == undefinedLength
	if !e.undefined && int64(e.vl) > int64(end-e.val) {
		return e, w.errAt(p, ErrTruncated, "%v claims %d bytes, %d left", e.tag, e.vl, end-e.val)
	}
	valEnd := end // where a nested walk must stop
	if !e.undefined {
		valEnd = e.val + int(e.vl)
	}
	var err error
	switch tag.GetVRKind(e.tag, e.vr) {
	case tag.VRPixelData:
		if e.undefined {
			e.next, err = w.fragments(e.val, end, true)
			return e, err
		}
	case tag.VRSequence:
		e.next, err = w.sequence(e.val, valEnd, e.undefined, depth+1)
		return e, err
	case tag.VRUnknown:
		if e.undefined {
			// The library reads an undefined-length UN value as a sequence
			// in the current encoding.
			e.next, err = w.sequence(e.val, end, true, depth+1)
			return e, err
		}
	case tag.VRBytes:
		if e.undefined {
			e.next, err = w.fragments(e.val, end, false)
			return e, err
		}
		if e.vr == "OW" && e.vl%2 != 0 {
			return e, w.errAt(p, ErrMalformed, "%v is OW with odd length %d", e.tag, e.vl)
		}
	case tag.VRUInt16List, tag.VRInt16List, tag.VRTagList:
		err = w.multiple(e, 2)
	case tag.VRUInt32List, tag.VRInt32List, tag.VRFloat32List:
		err = w.multiple(e, 4)
	case tag.VRFloat64List:
		err = w.multiple(e, 8)
	default:
		if e.undefined {
			return e, w.errAt(p, ErrMalformed, "%v (VR %s) has undefined length", e.tag, e.vr)
		}
	}
	if err != nil {
		return e, err
	}
	if e.undefined {
		return e, w.errAt(p, ErrMalformed, "%v (VR %s) has undefined length", e.tag, e.vr)
	}
	e.next = e.val + int(e.vl)
	return e, nil
}

func (w *walker) multiple(e elem, size uint32) error {
	if e.undefined || e.vl%size != 0 {
		return w.errAt(e.off, ErrMalformed, "%v (VR %s) has length %d, not a multiple of %d", e.tag, e.vr, e.vl, size)
	}
	return nil
}

// sequence walks the items of a sequence whose value starts at p: exactly up
// to end when the length is defined, up to a sequence delimiter otherwise.
func (w *walker) sequence(p, end int, undefined bool, depth int) (int, error) {
	if depth > maxDepth {
		return 0, w.errAt(p, ErrMalformed, "sequences nested deeper than %d", maxDepth)
	}
	for {
		if !undefined && p == end {
			return p, nil
		}
		if end-p < 8 {
			return 0, w.errAt(p, ErrTruncated, "item header needs 8 bytes, %d left", end-p)
		}
		w.count++
		t := w.tagAt(p)
		n := w.bo.Uint32(w.b[p+4:])
		switch {
		case undefined && t == tag.SequenceDelimitationItem:
			if n != 0 {
				return 0, w.errAt(p, ErrMalformed, "sequence delimiter with length %d", n)
			}
			return p + 8, nil
		case t != tag.Item:
			return 0, w.errAt(p, ErrMalformed, "expected an item in a sequence, found %v", t)
		}
		p += 8
		if n == undefinedLength {
			q, err := w.item(p, end, depth)
			if err != nil {
				return 0, err
			}
			p = q
			continue
		}
		if int64(n) > int64(end-p) {
			return 0, w.errAt(p-8, ErrTruncated, "item claims %d bytes, %d left", n, end-p)
		}
		itemEnd := p + int(n)
		for p < itemEnd {
			e, err := w.element(p, itemEnd, depth)
			if err != nil {
				return 0, err
			}
			p = e.next
		}
	}
}

// item walks an undefined-length item's elements up to its delimiter.
func (w *walker) item(p, end, depth int) (int, error) {
	for {
		if end-p < 8 {
			return 0, w.errAt(p, ErrTruncated, "element header needs 8 bytes, %d left", end-p)
		}
		if t := w.tagAt(p); t == tag.ItemDelimitationItem {
			w.count++
			// Zero length keeps the library's explicit-VR reading of the
			// delimiter (2-byte "VR", 2-byte length) at the same 8 bytes.
			if n := w.bo.Uint32(w.b[p+4:]); n != 0 {
				return 0, w.errAt(p, ErrMalformed, "item delimiter with length %d", n)
			}
			return p + 8, nil
		}
		e, err := w.element(p, end, depth)
		if err != nil {
			return 0, err
		}
		p = e.next
	}
}

// fragments walks an encapsulated value: defined-length items up to a
// sequence delimiter. Pixel Data must start with its basic offset table item.
func (w *walker) fragments(p, end int, pixelData bool) (int, error) {
	for first := true; ; first = false {
		if end-p < 8 {
			return 0, w.errAt(p, ErrTruncated, "fragment header needs 8 bytes, %d left", end-p)
		}
		w.count++
		t := w.tagAt(p)
		n := w.bo.Uint32(w.b[p+4:])
		switch {
		case t == tag.SequenceDelimitationItem:
			if first && pixelData {
				return 0, w.errAt(p, ErrMalformed, "encapsulated pixel data without a basic offset table item")
			}
			if n != 0 {
				return 0, w.errAt(p, ErrMalformed, "sequence delimiter with length %d", n)
			}
			return p + 8, nil
		case t != tag.Item:
			return 0, w.errAt(p, ErrMalformed, "expected a fragment item, found %v", t)
		case n == undefinedLength:
			return 0, w.errAt(p, ErrMalformed, "fragment item with undefined length")
		}
		p += 8
		if int64(n) > int64(end-p) {
			return 0, w.errAt(p-8, ErrTruncated, "fragment claims %d bytes, %d left", n, end-p)
		}
		p += int(n)
	}
}

// implicitVR is the VR the library assigns an element read in an implicit
// VR syntax.
func implicitVR(t tag.Tag) string {
	info, err := tag.Find(t)
	if err != nil {
		return "UN"
	}
	if info.Tag == tag.PixelData || info.Tag == tag.OverlayData {
		return "OW"
	}
	return info.VRs[0]
}

// longLengthVR lists the explicit VRs with 2 reserved bytes and a 32-bit
// length, as the library reads them (it omits OV, SV and UV).
func longLengthVR(vr string) bool {
	switch vr {
	case "OB", "OD", "OF", "OL", "OW", "SQ", "UN", "UC", "UR", "UT":
		return true
	}
	return false
}

func shortLengthVR(vr string) bool {
	switch vr {
	case "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT",
		"PN", "SH", "SL", "SS", "ST", "TM", "UI", "UL", "US":
		return true
	}
	return false
}

// isStringVR reports whether the library decodes a VR into strings.
func isStringVR(vr string) bool {
	switch tag.GetVRKind(tag.Tag{}, vr) {
	case tag.VRString, tag.VRStringList, tag.VRDate:
		return true
	}
	return false
}

// firstString decodes a string value as the library does: trim spaces and
// NULs, keep the first backslash-separated value.
func firstString(v []byte) string {
	s := strings.Trim(string(v), " \x00")
	if i := strings.IndexByte(s, '\\'); i >= 0 {
		s = s[:i]
	}
	return s
}

// Errors a file can be refused with; each FileError wraps one of them.
var (
	ErrNotDICOM                  = errors.New("not a DICOM Part 10 file (no DICM prefix)")
	ErrMalformed                 = errors.New("malformed DICOM")
	ErrTruncated                 = errors.New("truncated DICOM")
	ErrTooLarge                  = errors.New("DICOM file too large")
	ErrUnsupportedTransferSyntax = errors.New("unsupported transfer syntax")
	ErrUnsupportedPixels         = errors.New("unsupported pixel data")
	ErrNoImage                   = errors.New("no pixel data (not an image)")
	ErrDuplicate                 = errors.New("duplicate SOP instance")
)
