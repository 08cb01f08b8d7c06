package kspaceio

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/kspaced/kspaced/internal/safefile"
)

var npyMagic = []byte("\x93NUMPY")

// WriteNPYComplex64 writes a C-ordered complex64 NumPy array of the given shape.
func WriteNPYComplex64(path string, shape []int, data []complex64) error {
	buf := make([]byte, 8*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(buf[8*i:], math.Float32bits(real(v)))
		binary.LittleEndian.PutUint32(buf[8*i+4:], math.Float32bits(imag(v)))
	}
	return writeNPY(path, "<c8", shape, len(data), buf)
}

// WriteNPYFloat32 writes a C-ordered float32 NumPy array of the given shape.
func WriteNPYFloat32(path string, shape []int, data []float32) error {
	buf := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
	}
	return writeNPY(path, "<f4", shape, len(data), buf)
}

func writeNPY(path, descr string, shape []int, n int, payload []byte) error {
	count := 1
	dims := make([]string, len(shape))
	for i, d := range shape {
		count *= d
		dims[i] = strconv.Itoa(d)
	}
	if count != n {
		return fmt.Errorf("write %s: shape %v holds %d values, have %d", path, shape, count, n)
	}
	tuple := strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	hdr := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, tuple)
	// magic(6) + version(2) + length(2) + header + '\n' is padded to 64 bytes.
	pad := 64 - (10+len(hdr)+1)%64
	if pad == 64 {
		pad = 0
	}
	hdr += strings.Repeat(" ", pad) + "\n"
	var b bytes.Buffer
	b.Write(npyMagic)
	b.Write([]byte{1, 0})
	_ = binary.Write(&b, binary.LittleEndian, uint16(len(hdr)))
	b.WriteString(hdr)
	b.Write(payload)
	return safefile.WriteFile(path, b.Bytes(), 0o644)
}

// NPY is an array read from a .npy file, converted to complex64.
type NPY struct {
	Shape []int
	Data  []complex64
	// Complex reports whether the file held a complex dtype.
	Complex bool
}

var (
	reDescr = regexp.MustCompile(`'descr':\s*'([^']*)'`)
	reOrder = regexp.MustCompile(`'fortran_order':\s*(True|False)`)
	reShape = regexp.MustCompile(`'shape':\s*\(([^)]*)\)`)
)

// ReadNPY reads a little-endian float32, float64, complex64 or complex128
// array (C or Fortran order; Fortran is converted to C order) as complex64.
// The header is checked against the file size and DefaultMaxBytes before
// the data are read.
func ReadNPY(path string) (*NPY, error) {
	return readNPY(path, DefaultMaxBytes)
}

// maxNPYHeader bounds a .npy header (NumPy itself writes under 4 KiB).
const maxNPYHeader = 1 << 20

func readNPY(path string, maxBytes int64) (*NPY, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	a, err := decodeNPY(f, maxBytes)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return a, nil
}

// npyHeader is a parsed .npy header: shape, element count, dtype and where
// the data start.
type npyHeader struct {
	shape   []int
	n       int64
	descr   string
	size    int
	fortran bool
	off     int64
}

func parseNPYHeader(r io.Reader, fileSize int64) (*npyHeader, error) {
	pre := make([]byte, 12)
	if _, err := io.ReadFull(r, pre[:10]); err != nil || !bytes.Equal(pre[:6], npyMagic) {
		return nil, fmt.Errorf("not a NumPy .npy file")
	}
	var hlen, off int64
	switch pre[6] {
	case 1:
		hlen, off = int64(binary.LittleEndian.Uint16(pre[8:])), 10
	case 2, 3:
		if _, err := io.ReadFull(r, pre[10:12]); err != nil {
			return nil, io.ErrUnexpectedEOF
		}
		hlen, off = int64(binary.LittleEndian.Uint32(pre[8:])), 12
	default:
		return nil, fmt.Errorf("unsupported .npy version %d", pre[6])
	}
	if hlen > fileSize-off || hlen > maxNPYHeader {
		return nil, fmt.Errorf("header length %d exceeds file", hlen)
	}
	hb := make([]byte, hlen)
	if _, err := io.ReadFull(r, hb); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	hdr := string(hb)
	m := reDescr.FindStringSubmatch(hdr)
	if m == nil {
		return nil, fmt.Errorf("header has no descr")
	}
	size := map[string]int{"<f4": 4, "<f8": 8, "<c8": 8, "<c16": 16}[m[1]]
	if size == 0 {
		return nil, fmt.Errorf("unsupported dtype %q (want <f4, <f8, <c8 or <c16)", m[1])
	}
	h := &npyHeader{descr: m[1], size: size, off: off + hlen, n: 1}
	if o := reOrder.FindStringSubmatch(hdr); o != nil {
		h.fortran = o[1] == "True"
	}
	s := reShape.FindStringSubmatch(hdr)
	if s == nil {
		return nil, fmt.Errorf("header has no shape")
	}
	for _, f := range strings.Split(s[1], ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		d, err := strconv.Atoi(f)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("bad shape entry %q", f)
		}
		if d > 0 && h.n > MaxElements/int64(d) {
			return nil, fmt.Errorf("shape (%s) exceeds %d elements", s[1], MaxElements)
		}
		h.n *= int64(d)
		h.shape = append(h.shape, d)
	}
	if len(h.shape) > 8 {
		return nil, fmt.Errorf("shape (%s) has more than 8 dimensions", s[1])
	}
	if body := fileSize - h.off; body != h.n*int64(size) {
		return nil, fmt.Errorf("shape (%s) of %s needs %d data bytes, file has %d", s[1], h.descr, h.n*int64(size), body)
	}
	return h, nil
}

// decodeNPY reads the header, checks the announced array against the file
// size and maxBytes (as complex64, its size in memory), then converts the
// data in blocks, so the only large allocation is the result.
func decodeNPY(f *os.File, maxBytes int64) (*NPY, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := checkSparse(f, st.Size()); err != nil {
		return nil, err
	}
	h, err := parseNPYHeader(f, st.Size())
	if err != nil {
		return nil, err
	}
	if need := h.n * 8; need > maxBytes {
		return nil, fmt.Errorf("shape %v needs %d bytes in memory, the limit is %d", h.shape, need, maxBytes)
	}
	out := &NPY{Shape: h.shape, Data: make([]complex64, h.n), Complex: h.descr[1] == 'c'}
	br := bufio.NewReaderSize(f, 1<<16)
	buf := make([]byte, 16*4096)
	per := h.size
	for done := int64(0); done < h.n; {
		k := min(int64(len(buf)/per), h.n-done)
		body := buf[:k*int64(per)]
		if _, err := io.ReadFull(br, body); err != nil {
			return nil, fmt.Errorf("data: %w", err)
		}
		dst := out.Data[done : done+k]
		for i := range dst {
			switch h.descr {
			case "<f4":
				dst[i] = complex(math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:])), 0)
			case "<f8":
				dst[i] = complex(float32(math.Float64frombits(binary.LittleEndian.Uint64(body[8*i:]))), 0)
			case "<c8":
				dst[i] = complex(math.Float32frombits(binary.LittleEndian.Uint32(body[8*i:])),
					math.Float32frombits(binary.LittleEndian.Uint32(body[8*i+4:])))
			case "<c16":
				dst[i] = complex(float32(math.Float64frombits(binary.LittleEndian.Uint64(body[16*i:]))),
					float32(math.Float64frombits(binary.LittleEndian.Uint64(body[16*i+8:]))))
			}
		}
		done += k
	}
	if h.fortran && len(h.shape) > 1 {
		out.Data = fortranToC(out.Data, h.shape)
	}
	return out, nil
}

// fortranToC reorders a column-major array into row-major order.
func fortranToC(src []complex64, shape []int) []complex64 {
	dst := make([]complex64, len(src))
	idx := make([]int, len(shape))
	for i := range src {
		// i is the Fortran linear index; decompose it (first index fastest).
		r := i
		for k := range shape {
			idx[k] = r % shape[k]
			r /= shape[k]
		}
		c := 0
		for k := range shape {
			c = c*shape[k] + idx[k]
		}
		dst[c] = src[i]
	}
	return dst
}
