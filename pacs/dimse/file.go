package dimse

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// maxMeta bounds the File Meta Information group; real ones are < 1 KiB.
const maxMeta = 64 << 10

// ErrNotDICOM marks a file that is not a DICOM Part 10 file.
var ErrNotDICOM = errors.New("not a DICOM Part 10 file")

// Instance is a DICOM Part 10 file ready to send: what the association needs
// from its meta header, and where its data set starts.
type Instance struct {
	Path                        string
	SOPClassUID, SOPInstanceUID string
	TransferSyntaxUID           string
	DataOffset, Size            int64
}

// ReadInstance reads the File Meta Information of the Part 10 file at path.
// The data set itself is sent as it is, never re-encoded.
func ReadInstance(path string) (Instance, error) {
	f, err := os.Open(path)
	if err != nil {
		return Instance{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Instance{}, err
	}
	in, err := parseMeta(bufio.NewReader(io.LimitReader(f, 132+maxMeta)))
	if err != nil {
		return Instance{}, fmt.Errorf("%s: %w", path, err)
	}
	in.Path, in.Size = path, fi.Size()
	if in.DataOffset > in.Size {
		return Instance{}, fmt.Errorf("%s: %w: truncated meta header", path, ErrNotDICOM)
	}
	return in, nil
}

func parseMeta(r *bufio.Reader) (Instance, error) {
	var pre [132]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil || string(pre[128:]) != "DICM" {
		return Instance{}, ErrNotDICOM
	}
	in := Instance{DataOffset: 132}
	for {
		h, err := r.Peek(8)
		if err != nil || binary.LittleEndian.Uint16(h) != 0x0002 {
			break // the data set begins (or the file ends)
		}
		el := binary.LittleEndian.Uint16(h[2:])
		vr := string(h[4:6])
		var n uint32
		hl := int64(8)
		switch vr {
		case "OB", "OW", "OF", "SQ", "UT", "UN":
			var l [12]byte
			if _, err := io.ReadFull(r, l[:]); err != nil {
				return Instance{}, fmt.Errorf("%w: truncated meta header", ErrNotDICOM)
			}
			n, hl = binary.LittleEndian.Uint32(l[8:]), 12
		default:
			n = uint32(binary.LittleEndian.Uint16(h[6:]))
			_, _ = r.Discard(8)
		}
		if in.DataOffset+hl+int64(n) > 132+maxMeta {
			return Instance{}, fmt.Errorf("%w: meta element (0002,%04x) claims %d bytes", ErrNotDICOM, el, n)
		}
		v := make([]byte, n)
		if _, err := io.ReadFull(r, v); err != nil {
			return Instance{}, fmt.Errorf("%w: truncated meta header", ErrNotDICOM)
		}
		in.DataOffset += hl + int64(n)
		switch el {
		case 0x0002:
			in.SOPClassUID = uidString(v)
		case 0x0003:
			in.SOPInstanceUID = uidString(v)
		case 0x0010:
			in.TransferSyntaxUID = uidString(v)
		}
	}
	if in.SOPClassUID == "" || in.SOPInstanceUID == "" || in.TransferSyntaxUID == "" {
		return Instance{}, fmt.Errorf("%w: meta header lacks SOP class, SOP instance or transfer syntax UID", ErrNotDICOM)
	}
	return in, nil
}

// ContextsFor proposes one presentation context per (SOP class, transfer
// syntax) among insts, each offering the file's own transfer syntax only:
// files are sent as they are, so the peer must take their encoding.
func ContextsFor(insts []Instance) ([]PresentationContext, error) {
	type key struct{ class, ts string }
	seen := map[key]bool{}
	var out []PresentationContext
	for _, in := range insts {
		k := key{in.SOPClassUID, in.TransferSyntaxUID}
		if seen[k] {
			continue
		}
		seen[k] = true
		if len(out) == 128 {
			return nil, errors.New("more than 128 SOP class and transfer syntax pairs for one association")
		}
		out = append(out, PresentationContext{AbstractSyntax: k.class, TransferSyntaxes: []string{k.ts}})
	}
	return out, nil
}

// WriteMeta writes the preamble and File Meta Information of a Part 10
// file whose data set, in transferSyntax, follows; sourceAE is the AE title
// it came from.
func WriteMeta(w io.Writer, class, instance, transferSyntax, sourceAE string) error {
	var body []byte
	add := func(el uint16, vr string, v []byte) {
		var h [8]byte
		binary.LittleEndian.PutUint16(h[:], 0x0002)
		binary.LittleEndian.PutUint16(h[2:], el)
		copy(h[4:6], vr)
		if vr == "OB" {
			body = append(body, h[:6]...)
			body = append(body, 0, 0)
			body = binary.LittleEndian.AppendUint32(body, uint32(len(v)))
		} else {
			binary.LittleEndian.PutUint16(h[6:], uint16(len(v)))
			body = append(body, h[:]...)
		}
		body = append(body, v...)
	}
	pad := func(s string, with byte) []byte {
		b := []byte(s)
		if len(b)%2 == 1 {
			b = append(b, with)
		}
		return b
	}
	add(0x0001, "OB", []byte{0, 1})
	add(0x0002, "UI", pad(class, 0))
	add(0x0003, "UI", pad(instance, 0))
	add(0x0010, "UI", pad(transferSyntax, 0))
	add(0x0012, "UI", pad(implementationClass, 0))
	add(0x0013, "SH", pad(implementationVer, ' '))
	if sourceAE != "" {
		add(0x0016, "AE", pad(sourceAE, ' '))
	}
	head := make([]byte, 128, 128+4+12+len(body))
	head = append(head, "DICM"...)
	head = append(head, 0x02, 0x00, 0x00, 0x00, 'U', 'L', 4, 0)
	head = binary.LittleEndian.AppendUint32(head, uint32(len(body)))
	_, err := w.Write(append(head, body...))
	return err
}
