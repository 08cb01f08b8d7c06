// Package simulate makes test and demo data: phantoms, real anatomy read
// from NIfTI volumes, smooth phase, coil sensitivities, and undersampled
// noisy multi-coil k-space y = M·F·S·x + n.
package simulate

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/kspaced/kspaced/mri"
)

// Volume is a 3-D scalar image reoriented to the closest RAS+ voxel order:
// x runs from the patient's left to right, y from posterior to anterior, z
// from inferior to superior.
type Volume struct {
	Dims    [3]int     // voxels along x, y, z
	Spacing [3]float64 // voxel size in mm along x, y, z
	Data    []float32  // Data[(z·Dims[1]+y)·Dims[0]+x], scaled by scl_slope/scl_inter
}

// MaxVoxels bounds the voxel count a NIfTI header may announce.
const MaxVoxels = 1 << 27

const (
	niftiHeaderSize = 348
	maxVoxOffset    = 1 << 24 // header extensions beyond 16 MiB are not believable
)

// niftiTypes maps NIfTI datatype codes to bytes per voxel.
var niftiTypes = map[int16]int{
	2:   1, // uint8
	4:   2, // int16
	8:   4, // int32
	16:  4, // float32
	64:  8, // float64
	256: 1, // int8
	512: 2, // uint16
	768: 4, // uint32
}

// ReadNIfTI reads the first 3-D volume of a single-file NIfTI-1 image
// (.nii, or gzip-compressed .nii.gz, either byte order) with datatype
// uint8, int8, int16, uint16, int32, uint32, float32 or float64. Voxels are
// scaled by scl_slope and scl_inter when the slope is set, non-finite values
// become 0, values beyond the float32 range saturate, and the volume is reoriented to RAS+ (see Volume) using the
// sform, else the qform, else taking the voxel axes as they are.
func ReadNIfTI(path string) (*Volume, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read NIfTI: %w", err)
	}
	defer f.Close()
	v, err := decodeNIfTI(f)
	if err != nil {
		return nil, fmt.Errorf("read NIfTI %s: %w", path, err)
	}
	return v, nil
}

// decodeNIfTI reads a NIfTI-1 stream, gunzipping it when it starts with the
// gzip magic. Memory grows only with the bytes actually present.
func decodeNIfTI(r io.Reader) (*Volume, error) {
	br := bufio.NewReader(r)
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		r = zr
	} else {
		r = br
	}
	hdr := make([]byte, niftiHeaderSize)
	if n, err := io.ReadFull(r, hdr); err != nil {
		if truncated(err) {
			return nil, fmt.Errorf("header truncated after %d of %d bytes", n, niftiHeaderSize)
		}
		return nil, fmt.Errorf("header: %w", err)
	}
	h, err := parseNIfTIHeader(hdr)
	if err != nil {
		return nil, err
	}
	if _, err := io.CopyN(io.Discard, r, h.voxOffset-niftiHeaderSize); err != nil {
		if truncated(err) {
			return nil, fmt.Errorf("file ends before vox_offset %d", h.voxOffset)
		}
		return nil, fmt.Errorf("header extension: %w", err)
	}
	need := int64(h.nvox) * int64(h.size)
	var buf bytes.Buffer
	if n, err := io.CopyN(&buf, r, need); err != nil {
		if truncated(err) {
			return nil, fmt.Errorf("voxel data truncated: %d of %d bytes (%d×%d×%d, %d bytes each)", n, need, h.dims[0], h.dims[1], h.dims[2], h.size)
		}
		return nil, fmt.Errorf("voxel data: %w", err)
	}
	raw := buf.Bytes()
	data := make([]float32, h.nvox)
	for i := range data {
		v := h.voxel(raw[i*h.size:])
		if h.slope != 0 {
			v = v*h.slope + h.inter
		}
		switch {
		case math.IsNaN(v) || math.IsInf(v, 0):
			v = 0
		case math.Abs(v) > math.MaxFloat32:
			v = math.Copysign(math.MaxFloat32, v)
		}
		data[i] = float32(v)
	}
	return h.reorient(data), nil
}

func truncated(err error) bool { return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) }

type niftiHeader struct {
	order        binary.ByteOrder
	dims         [3]int
	nvox         int
	datatype     int16
	size         int
	pixdim       [4]float64 // pixdim[0] is qfac
	voxOffset    int64
	slope, inter float64 // slope 0: no scaling
	affine       [3][3]float64
}

func parseNIfTIHeader(b []byte) (*niftiHeader, error) {
	h := &niftiHeader{order: binary.LittleEndian}
	switch {
	case binary.LittleEndian.Uint32(b) == niftiHeaderSize:
	case binary.BigEndian.Uint32(b) == niftiHeaderSize:
		h.order = binary.BigEndian
	case binary.LittleEndian.Uint32(b) == 540 || binary.BigEndian.Uint32(b) == 540:
		return nil, errors.New("NIfTI-2 header (sizeof_hdr 540) is not supported")
	default:
		return nil, fmt.Errorf("sizeof_hdr is %d, not 348: not a NIfTI-1 file", int32(binary.LittleEndian.Uint32(b)))
	}
	switch magic := string(b[344:348]); magic {
	case "n+1\x00":
	case "ni1\x00":
		return nil, errors.New("two-file NIfTI (.hdr/.img pair) is not supported")
	default:
		return nil, fmt.Errorf("bad magic %q, want \"n+1\"", magic)
	}
	i16 := func(off int) int16 { return int16(h.order.Uint16(b[off:])) }
	f32 := func(off int) float64 { return float64(math.Float32frombits(h.order.Uint32(b[off:]))) }

	ndim := int(i16(40))
	if ndim < 1 || ndim > 7 {
		return nil, fmt.Errorf("dim[0] = %d outside [1, 7]", ndim)
	}
	h.nvox = 1
	for i := 1; i <= ndim; i++ {
		d := int(i16(40 + 2*i))
		if d < 1 {
			return nil, fmt.Errorf("dim[%d] = %d is not positive", i, d)
		}
		if i <= 3 {
			if d > mri.MaxDim {
				return nil, fmt.Errorf("dim[%d] = %d exceeds %d", i, d, mri.MaxDim)
			}
			h.dims[i-1] = d
			h.nvox *= d
		}
	}
	for i := ndim; i < 3; i++ {
		h.dims[i] = 1
	}
	if h.nvox > MaxVoxels {
		return nil, fmt.Errorf("%d×%d×%d voxels exceed %d", h.dims[0], h.dims[1], h.dims[2], MaxVoxels)
	}
	h.datatype = i16(70)
	size, ok := niftiTypes[h.datatype]
	if !ok {
		return nil, fmt.Errorf("datatype %d is not supported (want uint8, int8, int16, uint16, int32, uint32, float32 or float64)", h.datatype)
	}
	if bitpix := int(i16(72)); bitpix != 8*size {
		return nil, fmt.Errorf("bitpix %d does not match datatype %d (%d bits)", bitpix, h.datatype, 8*size)
	}
	h.size = size
	for i := 0; i < 4; i++ {
		h.pixdim[i] = f32(76 + 4*i)
	}
	off := f32(108)
	if !(off >= niftiHeaderSize && off <= maxVoxOffset) || off != math.Trunc(off) {
		return nil, fmt.Errorf("vox_offset %v outside [%d, %d] or not whole", off, niftiHeaderSize, maxVoxOffset)
	}
	h.voxOffset = int64(off)
	if s, in := f32(112), f32(116); s != 0 && !math.IsNaN(s) && !math.IsInf(s, 0) {
		h.slope = s
		if !math.IsNaN(in) && !math.IsInf(in, 0) {
			h.inter = in
		}
	}
	h.affine = niftiAffine(h, i16(252), i16(254), f32)
	return h, nil
}

// niftiAffine is the 3×3 part of the voxel-to-world (RAS+) matrix: the
// sform when its code is set, else the qform, else the voxel sizes.
func niftiAffine(h *niftiHeader, qcode, scode int16, f32 func(int) float64) [3][3]float64 {
	var m [3][3]float64
	if scode > 0 {
		for i := 0; i < 3; i++ {
			for j := 0; j < 3; j++ {
				m[i][j] = f32(280 + 16*i + 4*j)
			}
		}
		return m
	}
	if qcode > 0 {
		b, c, d := f32(256), f32(260), f32(264)
		a := 1 - (b*b + c*c + d*d)
		if a < 0 { // not a unit quaternion: renormalise (b, c, d) as the standard does
			n := math.Sqrt(b*b + c*c + d*d)
			b, c, d, a = b/n, c/n, d/n, 0
		}
		a = math.Sqrt(a)
		qfac := 1.0
		if h.pixdim[0] < 0 {
			qfac = -1
		}
		r := [3][3]float64{
			{a*a + b*b - c*c - d*d, 2 * (b*c - a*d), 2 * (b*d + a*c)},
			{2 * (b*c + a*d), a*a + c*c - b*b - d*d, 2 * (c*d - a*b)},
			{2 * (b*d - a*c), 2 * (c*d + a*b), a*a + d*d - c*c - b*b},
		}
		for i := 0; i < 3; i++ {
			m[i][0] = r[i][0] * h.pixdim[1]
			m[i][1] = r[i][1] * h.pixdim[2]
			m[i][2] = r[i][2] * h.pixdim[3] * qfac
		}
		return m
	}
	for i := 0; i < 3; i++ {
		m[i][i] = math.Abs(h.pixdim[i+1])
	}
	return m
}

func (h *niftiHeader) voxel(b []byte) float64 {
	switch h.datatype {
	case 2:
		return float64(b[0])
	case 256:
		return float64(int8(b[0]))
	case 4:
		return float64(int16(h.order.Uint16(b)))
	case 512:
		return float64(h.order.Uint16(b))
	case 8:
		return float64(int32(h.order.Uint32(b)))
	case 768:
		return float64(h.order.Uint32(b))
	case 16:
		return float64(math.Float32frombits(h.order.Uint32(b)))
	default: // 64, the only other type parseNIfTIHeader admits
		return math.Float64frombits(h.order.Uint64(b))
	}
}

// reorient permutes and flips the voxel axes to the closest RAS+ order. When
// the affine does not name a distinct world axis for every voxel axis (a
// degenerate or missing orientation), the voxel order is kept.
func (h *niftiHeader) reorient(data []float32) *Volume {
	var axis [3]int  // world axis of voxel axis j
	var flip [3]bool // voxel axis j runs against its world axis
	used := [3]bool{}
	ok := true
	for j := 0; j < 3; j++ {
		best, bv := -1, 0.0
		for i := 0; i < 3; i++ {
			if v := math.Abs(h.affine[i][j]); v > bv && !math.IsInf(v, 0) {
				best, bv = i, v
			}
		}
		if best < 0 || used[best] {
			ok = false
			break
		}
		used[best] = true
		axis[j] = best
		flip[j] = h.affine[best][j] < 0
	}
	if !ok {
		axis, flip = [3]int{0, 1, 2}, [3]bool{}
	}
	v := &Volume{}
	for j := 0; j < 3; j++ {
		v.Dims[axis[j]] = h.dims[j]
		sp := math.Abs(h.pixdim[j+1])
		if math.IsNaN(sp) || math.IsInf(sp, 0) {
			sp = 0
		}
		v.Spacing[axis[j]] = sp
	}
	if axis == [3]int{0, 1, 2} && flip == [3]bool{} {
		v.Data = data
		return v
	}
	v.Data = make([]float32, len(data))
	var stride [3]int // output stride of each world axis
	stride[0], stride[1], stride[2] = 1, v.Dims[0], v.Dims[0]*v.Dims[1]
	i := 0
	var p [3]int
	for p[2] = 0; p[2] < h.dims[2]; p[2]++ {
		for p[1] = 0; p[1] < h.dims[1]; p[1]++ {
			for p[0] = 0; p[0] < h.dims[0]; p[0]++ {
				o := 0
				for j := 0; j < 3; j++ {
					q := p[j]
					if flip[j] {
						q = h.dims[j] - 1 - q
					}
					o += q * stride[axis[j]]
				}
				v.Data[o] = data[i]
				i++
			}
		}
	}
	return v
}

// Slice returns a 2-D section as a row-major image, or nil and 0, 0 when
// axis or index is out of range. axis 2 is axial (fixed z), 1 coronal
// (fixed y), 0 sagittal (fixed x). Images are oriented as scanners display
// them: rows run top to bottom from anterior (axial) or superior (coronal,
// sagittal); columns run from the patient's right (axial, coronal:
// radiological convention) or from anterior (sagittal).
func (v *Volume) Slice(axis, index int) (img []float32, rows, cols int) {
	if axis < 0 || axis > 2 || index < 0 || index >= v.Dims[axis] || len(v.Data) != v.Dims[0]*v.Dims[1]*v.Dims[2] {
		return nil, 0, 0
	}
	nx, ny, nz := v.Dims[0], v.Dims[1], v.Dims[2]
	at := func(x, y, z int) float32 { return v.Data[(z*ny+y)*nx+x] }
	switch axis {
	case 2: // rows: y from anterior; cols: x from right
		rows, cols = ny, nx
		img = make([]float32, rows*cols)
		for r := 0; r < rows; r++ {
			for c := 0; c < cols; c++ {
				img[r*cols+c] = at(nx-1-c, ny-1-r, index)
			}
		}
	case 1: // rows: z from superior; cols: x from right
		rows, cols = nz, nx
		img = make([]float32, rows*cols)
		for r := 0; r < rows; r++ {
			for c := 0; c < cols; c++ {
				img[r*cols+c] = at(nx-1-c, index, nz-1-r)
			}
		}
	default: // rows: z from superior; cols: y from anterior
		rows, cols = nz, ny
		img = make([]float32, rows*cols)
		for r := 0; r < rows; r++ {
			for c := 0; c < cols; c++ {
				img[r*cols+c] = at(index, ny-1-c, nz-1-r)
			}
		}
	}
	return img, rows, cols
}
