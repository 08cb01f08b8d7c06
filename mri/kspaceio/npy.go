package kspaceio

import (
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
func ReadNPY(path string) (*NPY, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	a, err := parseNPY(raw)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return a, nil
}

func parseNPY(raw []byte) (*NPY, error) {
	if len(raw) < 10 || !bytes.Equal(raw[:6], npyMagic) {
		return nil, fmt.Errorf("not a NumPy .npy file")
	}
	var hlen, off int
	switch raw[6] {
	case 1:
		hlen, off = int(binary.LittleEndian.Uint16(raw[8:])), 10
	case 2, 3:
		if len(raw) < 12 {
			return nil, io.ErrUnexpectedEOF
		}
		hlen, off = int(binary.LittleEndian.Uint32(raw[8:])), 12
	default:
		return nil, fmt.Errorf("unsupported .npy version %d", raw[6])
	}
	if hlen > len(raw)-off {
		return nil, fmt.Errorf("header length %d exceeds file", hlen)
	}
	hdr := string(raw[off : off+hlen])
	body := raw[off+hlen:]
	m := reDescr.FindStringSubmatch(hdr)
	if m == nil {
		return nil, fmt.Errorf("header has no descr")
	}
	size := map[string]int{"<f4": 4, "<f8": 8, "<c8": 8, "<c16": 16}[m[1]]
	if size == 0 {
		return nil, fmt.Errorf("unsupported dtype %q (want <f4, <f8, <c8 or <c16)", m[1])
	}
	descr := m[1]
	fortran := false
	if o := reOrder.FindStringSubmatch(hdr); o != nil {
		fortran = o[1] == "True"
	}
	s := reShape.FindStringSubmatch(hdr)
	if s == nil {
		return nil, fmt.Errorf("header has no shape")
	}
	var shape []int
	n := 1
	for _, f := range strings.Split(s[1], ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		d, err := strconv.Atoi(f)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("bad shape entry %q", f)
		}
		if d > 0 && n > MaxElements/d {
			return nil, fmt.Errorf("shape (%s) exceeds %d elements", s[1], MaxElements)
		}
		n *= d
		shape = append(shape, d)
	}
	if len(body) != n*size {
		return nil, fmt.Errorf("shape (%s) of %s needs %d data bytes, file has %d", s[1], descr, n*size, len(body))
	}
	out := &NPY{Shape: shape, Data: make([]complex64, n), Complex: descr[1] == 'c'}
	for i := range out.Data {
		switch descr {
		case "<f4":
			out.Data[i] = complex(math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:])), 0)
		case "<f8":
			out.Data[i] = complex(float32(math.Float64frombits(binary.LittleEndian.Uint64(body[8*i:]))), 0)
		case "<c8":
			out.Data[i] = complex(math.Float32frombits(binary.LittleEndian.Uint32(body[8*i:])),
				math.Float32frombits(binary.LittleEndian.Uint32(body[8*i+4:])))
		case "<c16":
			out.Data[i] = complex(float32(math.Float64frombits(binary.LittleEndian.Uint64(body[16*i:]))),
				float32(math.Float64frombits(binary.LittleEndian.Uint64(body[16*i+8:]))))
		}
	}
	if fortran && len(shape) > 1 {
		out.Data = fortranToC(out.Data, shape)
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
