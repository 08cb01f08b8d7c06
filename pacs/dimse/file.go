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
