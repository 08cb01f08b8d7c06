package kspaceio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/kspaced/kspaced/mri"
)

// MaxSlices bounds the slice count of any volume read from a file.
const MaxSlices = 1 << 16

// Format names returned by Detect and stored in Volume.Format.
const (
	FormatISMRMRD = "ismrmrd"
	FormatFastMRI = "fastmri"
	FormatNPY     = "npy"
	FormatCFL     = "cfl"
)

// Volume is a multi-slice k-space file in memory, whatever its format.
type Volume struct {
	Format string // FormatISMRMRD, FormatFastMRI, FormatNPY or FormatCFL
	Path   string
	// Slices hold Coils, Rows, Cols, KSpace [coil][row][col], Mask [row][col]
	// (0/1) and NoiseCov when the file has noise measurements. Row and column
	// orientation per format is described in the package documentation.
	Slices []mri.Scan
	// Labels[i] gives the ISMRMRD counters of Slices[i]; for the other
	// formats only Slice (the index along the file's first axis) is set.
	Labels []SliceLabel
	// Calibration holds lines of a separately acquired calibration scan
	// (ISMRMRD calibrationMode "separate"), one scan per slice index named by
	// CalibrationLabels; empty when the file has none.
	Calibration       []mri.Scan
	CalibrationLabels []SliceLabel
	Meta              Meta
	Attrs             map[string]any // fastMRI root attributes, ISMRMRD acquisition counts
}

// ImageSize is the reconstruction's crop (rows, cols) in the scans' own
// orientation: the header's recon matrix where the format has one (clipped
// to the k-space size), otherwise the k-space size.
func (v *Volume) ImageSize() (rows, cols int) {
	if len(v.Slices) == 0 {
		return 0, 0
	}
	rows, cols = v.Slices[0].Rows, v.Slices[0].Cols
	clip := func(want, have int) int {
		if want > 0 && want < have {
			return want
		}
		return have
	}
	switch v.Format {
	case FormatISMRMRD: // rows are ky (y), columns the readout (x)
		return clip(v.Meta.ReconMatrix[1], rows), clip(v.Meta.ReconMatrix[0], cols)
	case FormatFastMRI: // rows are the readout (x), columns ky (y)
		return clip(v.Meta.ReconMatrix[0], rows), clip(v.Meta.ReconMatrix[1], cols)
	}
	return rows, cols
}

var hdf5Magic = []byte("\x89HDF\r\n\x1a\n")

// ErrUnknownFormat is returned (wrapped) by Detect and Read for content they
// do not recognise.
var ErrUnknownFormat = errors.New("unrecognised k-space format")

// Detect names the format of path from its content: an HDF5 signature (at
// offset 0 or a user-block offset), then /dataset (ISMRMRD) or /kspace
// (fastMRI); the NumPy magic; or a BART header ("# Dimensions") for
// base.hdr, base.cfl or base.
func Detect(path string) (string, error) {
	f, size, err := detect(path)
	if err != nil {
		return "", err
	}
	_ = size
	return f, nil
}

// FormatHDF5 is what Sniff returns for any HDF5 file: ISMRMRD or fastMRI
// is told only by opening it.
const FormatHDF5 = "hdf5"

// Sniff names the format family of path from its first bytes without
// parsing it: FormatHDF5, FormatNPY or FormatCFL. It never runs the HDF5
// library, so it is safe on untrusted files in the daemon itself; errors
// wrap ErrUnknownFormat for files that are none of them.
func Sniff(path string) (string, error) {
	f, _, err := sniff(path)
	return f, err
}

func detect(path string) (format string, size int64, err error) {
	format, size, err = sniff(path)
	if err != nil || format != FormatHDF5 {
		return format, size, err
	}
	k, err := hdf5Kind(path)
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", path, err)
	}
	return k, size, nil
}

// maxUserBlock bounds the user block (bytes before the HDF5 signature) a
// file may carry; MATLAB v7.3 files have 512.
const maxUserBlock = 64 << 10

// checkUserBlock accepts a user block that is empty, zeros or MATLAB's
// header: anything else would make the file a second format too (a DICOM
// preamble, say), read one way here and another way elsewhere.
func checkUserBlock(fh *os.File, n int64) error {
	if n == 0 {
		return nil
	}
	if n > maxUserBlock {
		return fmt.Errorf("HDF5 user block of %d bytes (limit %d)", n, maxUserBlock)
	}
	b := make([]byte, n)
	if _, err := fh.ReadAt(b, 0); err != nil {
		return err
	}
	if bytes.HasPrefix(b, []byte("MATLAB 7.3 MAT-file")) && len(b) >= 128 {
		b = b[128:]
	}
	if len(bytes.Trim(b, "\x00")) != 0 {
		return fmt.Errorf("HDF5 user block of %d bytes holds other data; only empty or MATLAB user blocks are accepted", n)
	}
	return nil
}

func sniff(path string) (format string, size int64, err error) {
	st, err := os.Stat(path)
	if err != nil {
		// BART data is often named by its base alone.
		if isCFLHeader(path + ".hdr") {
			return FormatCFL, 0, nil
		}
		return "", 0, fmt.Errorf("read %s: %w", path, err)
	}
	if st.IsDir() {
		return "", 0, fmt.Errorf("read %s: is a directory", path)
	}
	if !st.Mode().IsRegular() {
		return "", 0, fmt.Errorf("read %s: not a regular file", path)
	}
	if st.Size() == 0 {
		return "", 0, fmt.Errorf("read %s: empty file", path)
	}
	fh, err := os.Open(path)
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", path, err)
	}
	defer fh.Close()
	head := make([]byte, 16)
	n, _ := io.ReadFull(fh, head)
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, npyMagic):
		return FormatNPY, st.Size(), nil
	case bytes.HasPrefix(head, []byte("# Dimensions")):
		return FormatCFL, st.Size(), nil
	}
	// HDF5 puts its signature at 0, 512, 1024, 2048, … (after a user block).
	sig := make([]byte, len(hdf5Magic))
	for off := int64(0); off+int64(len(sig)) <= st.Size(); off = max(512, 2*off) {
		if _, err := fh.ReadAt(sig, off); err != nil {
			break
		}
		if bytes.Equal(sig, hdf5Magic) {
			if err := checkUserBlock(fh, off); err != nil {
				return "", 0, fmt.Errorf("read %s: %w", path, err)
			}
			return FormatHDF5, st.Size(), nil
		}
	}
	if strings.HasSuffix(path, ".cfl") && isCFLHeader(strings.TrimSuffix(path, ".cfl")+".hdr") {
		return FormatCFL, st.Size(), nil
	}
	if isCFLHeader(path + ".hdr") {
		return FormatCFL, st.Size(), nil
	}
	return "", 0, fmt.Errorf("read %s: %w (not HDF5, NumPy .npy or BART .cfl/.hdr)", path, ErrUnknownFormat)
}

func isCFLHeader(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, 12)
	_, err = io.ReadFull(f, b)
	return err == nil && string(b) == "# Dimensions"
}

// Read loads a k-space volume, choosing the reader from the file's content
// (see Detect), with the default Limits. Every error names the file.
func Read(path string) (*Volume, error) {
	return ReadLimited(path, Limits{})
}

// ReadLimited is Read with explicit limits.
func ReadLimited(path string, lim Limits) (*Volume, error) {
	format, size, err := detect(path)
	if err != nil {
		return nil, err
	}
	var v *Volume
	switch format {
	case FormatISMRMRD, FormatFastMRI:
		v, err = readHDF5(path, format, size, lim.maxBytes())
	case FormatNPY:
		v, err = readNPYVolume(path, lim.maxBytes())
	case FormatCFL:
		v, err = readCFLVolume(path, lim.maxBytes())
	}
	if err != nil {
		return nil, err
	}
	v.Format, v.Path = format, path
	if v.Attrs == nil {
		v.Attrs = map[string]any{}
	}
	if v.Labels == nil {
		v.Labels = make([]SliceLabel, len(v.Slices))
		for i := range v.Labels {
			v.Labels[i].Slice = i
		}
	}
	return v, nil
}

// readNPYVolume reads complex [ky,kx], [coils,ky,kx] or [slices,coils,ky,kx]
// k-space with an optional sibling <base>_mask.npy of shape [kx], [ky,kx] or
// [slices,ky,kx]; without one the mask marks every location where any coil
// is non-zero.
func readNPYVolume(path string, maxBytes int64) (*Volume, error) {
	a, err := readNPY(path, maxBytes)
	if err != nil {
		return nil, err
	}
	if !a.Complex {
		return nil, fmt.Errorf("read %s: k-space must be complex (complex64 or complex128), file holds real values", path)
	}
	shape := a.Shape
	var slices, coils, rows, cols int
	switch len(shape) {
	case 2:
		slices, coils, rows, cols = 1, 1, shape[0], shape[1]
	case 3:
		slices, coils, rows, cols = 1, shape[0], shape[1], shape[2]
	case 4:
		slices, coils, rows, cols = shape[0], shape[1], shape[2], shape[3]
	default:
		return nil, fmt.Errorf("read %s: shape %v, want [ky,kx], [coils,ky,kx] or [slices,coils,ky,kx]", path, shape)
	}
	if err := checkGeometry(slices, coils, rows, cols); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	v := &Volume{Meta: simpleMeta(rows, cols)}
	per := coils * rows * cols
	for s := 0; s < slices; s++ {
		v.Slices = append(v.Slices, mri.Scan{Coils: coils, Rows: rows, Cols: cols, KSpace: a.Data[s*per : (s+1)*per : (s+1)*per]})
	}
	maskPath := strings.TrimSuffix(path, ".npy") + "_mask.npy"
	if _, err := os.Stat(maskPath); err == nil {
		m, err := readNPY(maskPath, int64(slices*rows*cols)*8)
		if err != nil {
			return nil, err
		}
		vals := make([]float64, len(m.Data))
		for i, x := range m.Data {
			if imag(x) != 0 {
				return nil, fmt.Errorf("read %s: mask value %d is complex (%v)", maskPath, i, x)
			}
			vals[i] = float64(real(x))
		}
		dims := make([]int64, len(m.Shape))
		for i, d := range m.Shape {
			dims[i] = int64(d)
		}
		if err := applyMask(v.Slices, dims, vals, 0, cols); err != nil {
			return nil, fmt.Errorf("read %s: %w", maskPath, err)
		}
	} else {
		for i := range v.Slices {
			v.Slices[i].Mask = nonzeroMask(&v.Slices[i])
		}
	}
	return v, nil
}

// readCFLVolume reads BART [x y z coil] k-space of one slice (z = 1); x is
// the column (kx) and y the row (ky) index.
func readCFLVolume(path string, maxBytes int64) (*Volume, error) {
	base := strings.TrimSuffix(strings.TrimSuffix(path, ".cfl"), ".hdr")
	d := [4]int{1, 1, 1, 1}
	// The geometry is checked from the header, before the data are read.
	check := func(dims []int) error {
		for i, v := range dims {
			if i >= 4 {
				if v != 1 {
					return fmt.Errorf("BART dimensions %v: only [x y z coil] k-space is supported", dims)
				}
				continue
			}
			d[i] = v
		}
		if d[2] != 1 {
			return fmt.Errorf("BART dimensions %v: 3-D k-space (z = %d) is not supported", dims, d[2])
		}
		return checkGeometry(1, d[3], d[1], d[0])
	}
	_, data, err := readCFL(base, maxBytes, check)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	cols, rows, coils := d[0], d[1], d[3]
	s := mri.Scan{Coils: coils, Rows: rows, Cols: cols, KSpace: data}
	s.Mask = nonzeroMask(&s)
	return &Volume{Meta: simpleMeta(rows, cols), Slices: []mri.Scan{s}}, nil
}

func simpleMeta(rows, cols int) Meta {
	return Meta{EncodedMatrix: [3]int{cols, rows, 1}, ReconMatrix: [3]int{cols, rows, 1}, Trajectory: "cartesian"}
}

func checkGeometry(slices, coils, rows, cols int) error {
	switch {
	case slices < 1 || slices > MaxSlices:
		return fmt.Errorf("%d slices outside [1, %d]", slices, MaxSlices)
	case coils < 1 || coils > mri.MaxCoils:
		return fmt.Errorf("%d coils outside [1, %d]", coils, mri.MaxCoils)
	case rows < 1 || rows > mri.MaxDim || cols < 1 || cols > mri.MaxDim:
		return fmt.Errorf("matrix %d×%d outside [1, %d]", rows, cols, mri.MaxDim)
	}
	return nil
}

// nonzeroMask marks every (row, col) where any coil has a non-zero sample.
func nonzeroMask(s *mri.Scan) []float32 {
	n := s.Rows * s.Cols
	m := make([]float32, n)
	for c := 0; c < s.Coils; c++ {
		k := s.KSpace[c*n : (c+1)*n]
		for i, v := range k {
			if v != 0 {
				m[i] = 1
			}
		}
	}
	return m
}

// applyMask sets each scan's mask from vals of shape dims: [cols] (one
// column pattern for all rows and slices), [rows, cols] or
// [slices, rows, cols]. Columns outside [lo, hi) are cleared (fastMRI's
// padding; pass 0, Cols for none). Values must be 0 or 1.
func applyMask(scans []mri.Scan, dims []int64, vals []float64, lo, hi int) error {
	s0 := scans[0]
	rows, cols := s0.Rows, s0.Cols
	var perSlice bool
	switch {
	case len(dims) == 1 && dims[0] == int64(cols):
	case len(dims) == 2 && dims[0] == int64(rows) && dims[1] == int64(cols):
	case len(dims) == 3 && dims[0] == int64(len(scans)) && dims[1] == int64(rows) && dims[2] == int64(cols):
		perSlice = true
	default:
		return fmt.Errorf("mask shape %v fits neither [%d], [%d %d] nor [%d %d %d]", dims, cols, rows, cols, len(scans), rows, cols)
	}
	for i, x := range vals {
		if x != 0 && x != 1 {
			return fmt.Errorf("mask value %d is %v, want 0 or 1", i, x)
		}
	}
	for si := range scans {
		m := make([]float32, rows*cols)
		for r := 0; r < rows; r++ {
			for c := lo; c < hi; c++ {
				var x float64
				switch {
				case len(dims) == 1:
					x = vals[c]
				case perSlice:
					x = vals[(si*rows+r)*cols+c]
				default:
					x = vals[r*cols+c]
				}
				m[r*cols+c] = float32(x)
			}
		}
		scans[si].Mask = m
	}
	return nil
}
