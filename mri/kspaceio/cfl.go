package kspaceio

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/kspaced/kspaced/internal/safefile"
)

// MaxElements bounds the number of values any header may announce (2^31,
// 16 GiB of complex64), so a corrupt header cannot trigger a huge allocation.
const MaxElements = 1 << 31

// ReadCFL reads BART's base.hdr and base.cfl. BART stores arrays column-major
// (first index fastest); the returned dims are in BART order and data is
// returned reversed to row-major: data[((d[n-1]·…)·d[1])…] with the last BART
// dimension slowest, so a BART [kx ky coil] array comes back as [coil][ky][kx].
// Trailing singleton dimensions are dropped from dims.
func ReadCFL(base string) (dims []int, data []complex64, err error) {
	return readCFL(base, DefaultMaxBytes, nil)
}

// readCFL reads base.hdr, lets check refuse the dimensions, checks them
// against the data file's size and maxBytes, and only then reads the data,
// in blocks.
func readCFL(base string, maxBytes int64, check func(dims []int) error) (dims []int, data []complex64, err error) {
	base = strings.TrimSuffix(strings.TrimSuffix(base, ".cfl"), ".hdr")
	dims, err = readCFLHeader(base + ".hdr")
	if err != nil {
		return nil, nil, err
	}
	if check != nil {
		if err := check(dims); err != nil {
			return nil, nil, err
		}
	}
	n := int64(1)
	for _, d := range dims {
		n *= int64(d)
	}
	if n*8 > maxBytes {
		return nil, nil, fmt.Errorf("read %s.hdr: dimensions %v need %d bytes, the limit is %d", base, dims, n*8, maxBytes)
	}
	f, err := openRegular(base + ".cfl")
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if st.Size() != n*8 {
		return nil, nil, fmt.Errorf("read %s.cfl: %d bytes, header %s.hdr announces %v = %d bytes", base, st.Size(), base, dims, n*8)
	}
	if err := checkSparse(f, st.Size()); err != nil {
		return nil, nil, fmt.Errorf("read %s.cfl: %w", base, err)
	}
	data = make([]complex64, n)
	br := bufio.NewReaderSize(f, 1<<16)
	buf := make([]byte, 64<<10)
	for done := 0; done < len(data); {
		k := min(len(buf)/8, len(data)-done)
		if _, err := io.ReadFull(br, buf[:8*k]); err != nil {
			return nil, nil, fmt.Errorf("read %s.cfl: %w", base, err)
		}
		for i := range data[done : done+k] {
			re := math.Float32frombits(binary.LittleEndian.Uint32(buf[8*i:]))
			im := math.Float32frombits(binary.LittleEndian.Uint32(buf[8*i+4:]))
			data[done+i] = complex(re, im)
		}
		done += k
	}
	return dims, data, nil
}

func readCFLHeader(path string) ([]int, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 1<<16))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "# Dimensions" {
			continue
		}
		if !sc.Scan() {
			break
		}
		var dims []int
		n := 1
		for _, fld := range strings.Fields(sc.Text()) {
			d, err := strconv.Atoi(fld)
			if err != nil || d < 1 {
				return nil, fmt.Errorf("read %s: bad dimension %q", path, fld)
			}
			if n > MaxElements/d {
				return nil, fmt.Errorf("read %s: dimensions %s exceed %d elements", path, sc.Text(), MaxElements)
			}
			n *= d
			dims = append(dims, d)
		}
		for len(dims) > 1 && dims[len(dims)-1] == 1 {
			dims = dims[:len(dims)-1]
		}
		if len(dims) == 0 {
			return nil, fmt.Errorf("read %s: no dimensions", path)
		}
		return dims, nil
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return nil, fmt.Errorf("read %s: no \"# Dimensions\" line", path)
}

// WriteCFL writes data as BART base.hdr/base.cfl. dims are in BART order
// (first fastest); data is laid out as ReadCFL returns it, which is the same
// memory order, so no reordering is needed.
func WriteCFL(base string, dims []int, data []complex64) error {
	base = strings.TrimSuffix(strings.TrimSuffix(base, ".cfl"), ".hdr")
	n := 1
	hdr := make([]string, 0, 16)
	for _, d := range dims {
		n *= d
		hdr = append(hdr, strconv.Itoa(d))
	}
	for len(hdr) < 16 {
		hdr = append(hdr, "1")
	}
	if n != len(data) {
		return fmt.Errorf("write %s.cfl: dimensions %v hold %d values, have %d", base, dims, n, len(data))
	}
	// The header first: a watcher waits for a .cfl's .hdr, never the reverse.
	if err := safefile.WriteFile(base+".hdr", []byte("# Dimensions\n"+strings.Join(hdr, " ")+"\n"), 0o644); err != nil {
		return err
	}
	buf := make([]byte, 8*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(buf[8*i:], math.Float32bits(real(v)))
		binary.LittleEndian.PutUint32(buf[8*i+4:], math.Float32bits(imag(v)))
	}
	return safefile.WriteFile(base+".cfl", buf, 0o644)
}
