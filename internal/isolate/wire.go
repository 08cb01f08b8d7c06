package isolate

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"unsafe"

	"github.com/kspaced/kspaced/dicomio"
	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/mri/kspaceio"
)

// The answer is: magic, a uint64 header length, a gob header holding
// everything but the sample arrays, then the arrays raw in native byte
// order (parent and child are the same binary on the same machine). Every
// length is checked against the limits before anything is allocated.
var magic = []byte("KSRD001\n")

// maxHeader bounds the gob header (metadata, DICOM headers of a study).
const maxHeader = 64 << 20

func init() {
	// Attribute values travel as interfaces.
	gob.Register([]float64(nil))
	gob.Register([]int64(nil))
}

type scanHead struct{ Coils, Rows, Cols, Mask, Noise int }

type volHeader struct {
	Err       string
	Unknown   bool // the error wraps kspaceio.ErrUnknownFormat
	Format    string
	Meta      kspaceio.Meta
	Labels    []kspaceio.SliceLabel
	CalLabels []kspaceio.SliceLabel
	Slices    []scanHead
	Cal       []scanHead
	Attrs     map[string]any
}

type fileErr struct{ Path, Err string }

type studyHeader struct {
	Err     string
	Studies []*dicomio.StudyData
	Errs    []fileErr
}

func writeHeader(w io.Writer, h any) error {
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(h); err != nil {
		return err
	}
	if _, err := w.Write(magic); err != nil {
		return err
	}
	if err := binary.Write(w, binary.LittleEndian, uint64(b.Len())); err != nil {
		return err
	}
	_, err := w.Write(b.Bytes())
	return err
}

func readHeader(r io.Reader, limit int64, h any) (int64, error) {
	m := make([]byte, len(magic)+8)
	if _, err := io.ReadFull(r, m); err != nil {
		return 0, fmt.Errorf("no answer: %w", err)
	}
	if !bytes.Equal(m[:len(magic)], magic) {
		return 0, errors.New("bad magic")
	}
	n := binary.LittleEndian.Uint64(m[len(magic):])
	if n > maxHeader || int64(n) > limit {
		return 0, fmt.Errorf("header of %d bytes exceeds the limit", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, err
	}
	if err := gob.NewDecoder(bytes.NewReader(buf)).Decode(h); err != nil {
		return 0, err
	}
	return int64(len(m)) + int64(n), nil
}

func asBytes[T complex64 | float32](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(s[0])))
}

func writeVolume(w io.Writer, v *kspaceio.Volume) error {
	h := volHeader{Format: v.Format, Meta: v.Meta, Labels: v.Labels, CalLabels: v.CalibrationLabels, Attrs: v.Attrs}
	head := func(s []mri.Scan) []scanHead {
		out := make([]scanHead, len(s))
		for i, x := range s {
			out[i] = scanHead{x.Coils, x.Rows, x.Cols, len(x.Mask), len(x.NoiseCov)}
		}
		return out
	}
	h.Slices, h.Cal = head(v.Slices), head(v.Calibration)
	bw := bufio.NewWriterSize(w, 1<<20)
	if err := writeHeader(bw, &h); err != nil {
		return err
	}
	for _, s := range append(append([]mri.Scan(nil), v.Slices...), v.Calibration...) {
		for _, b := range [][]byte{asBytes(s.KSpace), asBytes(s.Mask), asBytes(s.NoiseCov)} {
			if _, err := bw.Write(b); err != nil {
				return err
			}
		}
	}
	return bw.Flush()
}

func writeError(w io.Writer, err error, study bool) error {
	if study {
		return writeHeader(w, &studyHeader{Err: err.Error()})
	}
	return writeHeader(w, &volHeader{Err: err.Error(), Unknown: errors.Is(err, kspaceio.ErrUnknownFormat)})
}

// checkScans validates announced shapes and returns the bytes they need.
func checkScans(hs []scanHead) (int64, error) {
	var total int64
	for i, h := range hs {
		if h.Coils < 1 || h.Coils > mri.MaxCoils || h.Rows < 1 || h.Rows > mri.MaxDim || h.Cols < 1 || h.Cols > mri.MaxDim {
			return 0, fmt.Errorf("scan %d: shape %d×%d×%d outside the limits", i, h.Coils, h.Rows, h.Cols)
		}
		if h.Mask != 0 && h.Mask != h.Rows*h.Cols || h.Noise != 0 && h.Noise != h.Coils*h.Coils {
			return 0, fmt.Errorf("scan %d: mask or noise covariance of the wrong size", i)
		}
		total += int64(h.Coils*h.Rows*h.Cols)*8 + int64(h.Mask)*4 + int64(h.Noise)*8
	}
	return total, nil
}

func decodeVolume(r io.Reader, limit int64) (*kspaceio.Volume, error) {
	var h volHeader
	used, err := readHeader(r, limit, &h)
	if err != nil {
		return nil, err
	}
	if h.Err != "" {
		return nil, childError{msg: h.Err, unknown: h.Unknown}
	}
	if len(h.Slices) > kspaceio.MaxSlices || len(h.Cal) > kspaceio.MaxSlices {
		return nil, errors.New("too many slices")
	}
	if h.Labels != nil && len(h.Labels) != len(h.Slices) || h.CalLabels != nil && len(h.CalLabels) != len(h.Cal) {
		return nil, errors.New("labels do not match the slices")
	}
	a, err := checkScans(h.Slices)
	if err != nil {
		return nil, err
	}
	b, err := checkScans(h.Cal)
	if err != nil {
		return nil, err
	}
	if a+b > limit-used {
		return nil, fmt.Errorf("answer of %d bytes exceeds the limit of %d", a+b+used, limit)
	}
	read := func(hs []scanHead) ([]mri.Scan, error) {
		var out []mri.Scan
		for _, x := range hs {
			s := mri.Scan{Coils: x.Coils, Rows: x.Rows, Cols: x.Cols, KSpace: make([]complex64, x.Coils*x.Rows*x.Cols)}
			if x.Mask > 0 {
				s.Mask = make([]float32, x.Mask)
			}
			if x.Noise > 0 {
				s.NoiseCov = make([]complex64, x.Noise)
			}
			for _, b := range [][]byte{asBytes(s.KSpace), asBytes(s.Mask), asBytes(s.NoiseCov)} {
				if _, err := io.ReadFull(r, b); err != nil {
					return nil, fmt.Errorf("short answer: %w", err)
				}
			}
			out = append(out, s)
		}
		return out, nil
	}
	v := &kspaceio.Volume{Format: h.Format, Meta: h.Meta, Labels: h.Labels, CalibrationLabels: h.CalLabels, Attrs: h.Attrs}
	if v.Slices, err = read(h.Slices); err != nil {
		return nil, err
	}
	if v.Calibration, err = read(h.Cal); err != nil {
		return nil, err
	}
	if v.Attrs == nil {
		v.Attrs = map[string]any{}
	}
	return v, nil
}

func writeStudies(w io.Writer, sd []*dicomio.StudyData, fe []dicomio.FileError) error {
	h := studyHeader{Studies: sd}
	for _, e := range fe {
		h.Errs = append(h.Errs, fileErr{e.Path, e.Err.Error()})
	}
	bw := bufio.NewWriter(w)
	if err := writeHeader(bw, &h); err != nil {
		return err
	}
	return bw.Flush()
}

func decodeStudies(r io.Reader, limit int64) ([]*dicomio.StudyData, []dicomio.FileError, error) {
	var h studyHeader
	if _, err := readHeader(r, limit, &h); err != nil {
		return nil, nil, err
	}
	if h.Err != "" {
		return nil, nil, childError{msg: h.Err}
	}
	var fe []dicomio.FileError
	for _, e := range h.Errs {
		fe = append(fe, dicomio.FileError{Path: e.Path, Err: errors.New(e.Err)})
	}
	for _, st := range h.Studies {
		if st == nil {
			return nil, nil, errors.New("empty study")
		}
		for _, se := range st.Series {
			if se == nil {
				return nil, nil, errors.New("empty series")
			}
			for _, in := range se.Instances {
				if in == nil {
					return nil, nil, errors.New("empty instance")
				}
			}
		}
	}
	return h.Studies, fe, nil
}
