package simulate

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kspaced/kspaced/internal/testutil"
)

// niiSpec describes a NIfTI-1 file for the tests to write byte by byte,
// independently of the reader.
type niiSpec struct {
	order        binary.ByteOrder
	dim          []int16 // dim[1…]
	ndim         int16   // dim[0]; len(dim) when 0
	datatype     int16
	bitpix       int16 // 8·size of datatype when 0
	pixdim       [8]float32
	voxOffset    float32 // 352 when 0
	slope, inter float32
	qcode, scode int16
	quat         [6]float32
	srow         [12]float32
	magic        string // "n+1" when empty
	sizeofHdr    int32  // 348 when 0
	data         []byte
	gz           bool
}

var niiSizes = map[int16]int{2: 1, 256: 1, 4: 2, 512: 2, 8: 4, 768: 4, 16: 4, 64: 8}

func (s niiSpec) bytes() []byte {
	if s.order == nil {
		s.order = binary.LittleEndian
	}
	if s.ndim == 0 {
		s.ndim = int16(len(s.dim))
	}
	if s.bitpix == 0 {
		s.bitpix = int16(8 * niiSizes[s.datatype])
	}
	if s.voxOffset == 0 {
		s.voxOffset = 352
	}
	if s.magic == "" {
		s.magic = "n+1"
	}
	if s.sizeofHdr == 0 {
		s.sizeofHdr = 348
	}
	h := make([]byte, 348)
	o := s.order
	o.PutUint32(h[0:], uint32(s.sizeofHdr))
	o.PutUint16(h[40:], uint16(s.ndim))
	for i, d := range s.dim {
		o.PutUint16(h[42+2*i:], uint16(d))
	}
	o.PutUint16(h[70:], uint16(s.datatype))
	o.PutUint16(h[72:], uint16(s.bitpix))
	for i, p := range s.pixdim {
		o.PutUint32(h[76+4*i:], math.Float32bits(p))
	}
	o.PutUint32(h[108:], math.Float32bits(s.voxOffset))
	o.PutUint32(h[112:], math.Float32bits(s.slope))
	o.PutUint32(h[116:], math.Float32bits(s.inter))
	o.PutUint16(h[252:], uint16(s.qcode))
	o.PutUint16(h[254:], uint16(s.scode))
	for i, q := range s.quat {
		o.PutUint32(h[256+4*i:], math.Float32bits(q))
	}
	for i, r := range s.srow {
		o.PutUint32(h[280+4*i:], math.Float32bits(r))
	}
	copy(h[344:], s.magic)
	var b bytes.Buffer
	b.Write(h)
	if off := int(s.voxOffset); off > 348 && off < 1<<20 && float32(off) == s.voxOffset {
		b.Write(make([]byte, off-348)) // extension bytes, zero
	}
	b.Write(s.data)
	if !s.gz {
		return b.Bytes()
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(b.Bytes())
	zw.Close()
	return z.Bytes()
}

// encode writes values as datatype dt in byte order o.
func encode(dt int16, o binary.ByteOrder, values []float64) []byte {
	size := niiSizes[dt]
	b := make([]byte, size*len(values))
	for i, v := range values {
		p := b[i*size:]
		switch dt {
		case 2:
			p[0] = uint8(v)
		case 256:
			p[0] = uint8(int8(v))
		case 4:
			o.PutUint16(p, uint16(int16(v)))
		case 512:
			o.PutUint16(p, uint16(v))
		case 8:
			o.PutUint32(p, uint32(int32(v)))
		case 768:
			o.PutUint32(p, uint32(v))
		case 16:
			o.PutUint32(p, math.Float32bits(float32(v)))
		case 64:
			o.PutUint64(p, math.Float64bits(v))
		}
	}
	return b
}

func writeNii(t *testing.T, name string, s niiSpec) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, s.bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadNIfTIDatatypes(t *testing.T) {
	t.Parallel()
	// 3×2×2 voxels with each type's extremes and some ordinary values.
	values := map[int16][]float64{
		2:   {0, 1, 2, 3, 17, 99, 128, 200, 254, 255, 7, 42},
		256: {-128, -1, 0, 1, 127, -50, 3, 4, 5, 6, 7, 8},
		4:   {-32768, -1, 0, 1, 32767, 1234, -4321, 5, 6, 7, 8, 9},
		512: {0, 1, 65535, 40000, 2, 3, 4, 5, 6, 7, 8, 9},
		8:   {-2147483648, -1, 0, 1, 2147483647, 123456, 6, 7, 8, 9, 10, 11},
		768: {0, 1, 4294967295, 3000000000, 2, 3, 4, 5, 6, 7, 8, 9},
		16:  {-1.5, 0, 1e-3, 3.25, 1e30, -7, 8, 9, 10, 11, 12, 13},
		64:  {-2.5, 0, 1e-300, 3.125, 1e300, -7, 8, 9, 10, 11, 12, 13},
	}
	for dt, vals := range values {
		for _, o := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
			for _, gz := range []bool{false, true} {
				s := niiSpec{order: o, dim: []int16{3, 2, 2}, datatype: dt, pixdim: [8]float32{1, 0.5, 0.75, 2}, data: encode(dt, o, vals), gz: gz}
				p := writeNii(t, "v.nii", s)
				v, err := ReadNIfTI(p)
				if err != nil {
					t.Fatalf("datatype %d %v gz=%v: %v", dt, o, gz, err)
				}
				if v.Dims != [3]int{3, 2, 2} || v.Spacing != [3]float64{0.5, 0.75, 2} {
					t.Errorf("datatype %d: dims %v spacing %v", dt, v.Dims, v.Spacing)
				}
				for i, want := range vals {
					if want > math.MaxFloat32 {
						want = math.MaxFloat32 // saturates
					}
					if got := v.Data[i]; got != float32(want) {
						t.Errorf("datatype %d %v gz=%v voxel %d = %v, want %v", dt, o, gz, i, got, float32(want))
					}
				}
			}
		}
	}
}

func TestReadNIfTIScalingAndExtensions(t *testing.T) {
	t.Parallel()
	vals := []float64{0, 1, 2, 100, 200, 255}
	s := niiSpec{dim: []int16{6}, datatype: 2, pixdim: [8]float32{1, 1, 1, 1}, slope: 0.5, inter: -3, voxOffset: 400, data: encode(2, binary.LittleEndian, vals)}
	v, err := ReadNIfTI(writeNii(t, "s.nii", s))
	if err != nil {
		t.Fatal(err)
	}
	if v.Dims != [3]int{6, 1, 1} {
		t.Fatalf("1-D volume dims %v", v.Dims)
	}
	for i, x := range vals {
		if want := float32(x*0.5 - 3); v.Data[i] != want {
			t.Errorf("voxel %d = %v, want %v", i, v.Data[i], want)
		}
	}
	// A NaN slope means no scaling; NaN voxels become 0; a 4-D file yields
	// its first volume.
	s = niiSpec{dim: []int16{2, 1, 1, 3}, datatype: 16, slope: float32(math.NaN()),
		data: encode(16, binary.LittleEndian, []float64{math.NaN(), 4, 5, 6, 7, 8})}
	v, err = ReadNIfTI(writeNii(t, "n.nii", s))
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Data) != 2 || v.Data[0] != 0 || v.Data[1] != 4 {
		t.Errorf("4-D float32 with NaN: data %v, want [0 4]", v.Data)
	}
}

// labelled is a 4×3×2 volume whose voxel (i, j, k) holds 100i + 10j + k.
func labelled() []float64 {
	v := make([]float64, 0, 24)
	for k := 0; k < 2; k++ {
		for j := 0; j < 3; j++ {
			for i := 0; i < 4; i++ {
				v = append(v, float64(100*i+10*j+k))
			}
		}
	}
	return v
}

func TestReadNIfTIOrientation(t *testing.T) {
	t.Parallel()
	base := niiSpec{dim: []int16{4, 3, 2}, datatype: 64, pixdim: [8]float32{1, 1, 2, 3}, data: encode(64, binary.LittleEndian, labelled())}
	// want(x, y, z) is the label expected at RAS voxel (x, y, z).
	cases := []struct {
		name string
		mod  func(*niiSpec)
		dims [3]int
		want func(x, y, z int) float64
	}{
		{"no orientation", func(*niiSpec) {}, [3]int{4, 3, 2},
			func(x, y, z int) float64 { return float64(100*x + 10*y + z) }},
		{"sform LAS", func(s *niiSpec) { s.scode = 1; s.srow = [12]float32{-1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 3, 0} }, [3]int{4, 3, 2},
			func(x, y, z int) float64 { return float64(100*(3-x) + 10*y + z) }},
		// Voxel axis i runs along world y (anterior), j along −x, k along z.
		{"sform permuted", func(s *niiSpec) { s.scode = 2; s.srow = [12]float32{0, -2, 0, 0, 1, 0, 0, 0, 0, 0, 3, 0} }, [3]int{3, 4, 2},
			func(x, y, z int) float64 { return float64(100*y + 10*(2-x) + z) }},
		// Quaternion (0, 0, 1): 180° about z flips x and y; qfac −1 flips z.
		{"qform", func(s *niiSpec) { s.qcode = 1; s.quat = [6]float32{0, 0, 1}; s.pixdim[0] = -1 }, [3]int{4, 3, 2},
			func(x, y, z int) float64 { return float64(100*(3-x) + 10*(2-y) + (1 - z)) }},
		{"sform wins over qform", func(s *niiSpec) {
			s.qcode = 1
			s.quat = [6]float32{0, 0, 1}
			s.scode = 1
			s.srow = [12]float32{1, 0, 0, 0, 0, 1, 0, 0, 0, 0, -1, 0}
		}, [3]int{4, 3, 2},
			func(x, y, z int) float64 { return float64(100*x + 10*y + (1 - z)) }},
		{"degenerate sform kept as stored", func(s *niiSpec) { s.scode = 1; s.srow = [12]float32{1, 1, 1, 0} }, [3]int{4, 3, 2},
			func(x, y, z int) float64 { return float64(100*x + 10*y + z) }},
	}
	for _, c := range cases {
		s := base
		c.mod(&s)
		v, err := ReadNIfTI(writeNii(t, "o.nii", s))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if v.Dims != c.dims {
			t.Fatalf("%s: dims %v, want %v", c.name, v.Dims, c.dims)
		}
		for z := 0; z < c.dims[2]; z++ {
			for y := 0; y < c.dims[1]; y++ {
				for x := 0; x < c.dims[0]; x++ {
					if got := v.Data[(z*c.dims[1]+y)*c.dims[0]+x]; float64(got) != c.want(x, y, z) {
						t.Fatalf("%s: voxel (%d,%d,%d) = %v, want %v", c.name, x, y, z, got, c.want(x, y, z))
					}
				}
			}
		}
	}
}

func TestVolumeSlice(t *testing.T) {
	t.Parallel()
	v := &Volume{Dims: [3]int{4, 3, 2}}
	for _, x := range labelled() {
		v.Data = append(v.Data, float32(x))
	}
	label := func(x, y, z int) float32 { return float32(100*x + 10*y + z) }
	// Axial: top row is the most anterior y, the left column the patient's
	// right (largest x).
	img, r, c := v.Slice(2, 1)
	if r != 3 || c != 4 || img[0] != label(3, 2, 1) || img[r*c-1] != label(0, 0, 1) || img[c-1] != label(0, 2, 1) {
		t.Errorf("axial slice %d×%d %v", r, c, img)
	}
	// Coronal: top row is superior.
	img, r, c = v.Slice(1, 2)
	if r != 2 || c != 4 || img[0] != label(3, 2, 1) || img[c] != label(3, 2, 0) {
		t.Errorf("coronal slice %d×%d %v", r, c, img)
	}
	// Sagittal: top row superior, left column anterior.
	img, r, c = v.Slice(0, 3)
	if r != 2 || c != 3 || img[0] != label(3, 2, 1) || img[1] != label(3, 1, 1) {
		t.Errorf("sagittal slice %d×%d %v", r, c, img)
	}
	for _, bad := range [][2]int{{3, 0}, {-1, 0}, {2, 2}, {0, -1}} {
		if img, r, c := v.Slice(bad[0], bad[1]); img != nil || r != 0 || c != 0 {
			t.Errorf("Slice(%d, %d) = %d×%d image, want nil", bad[0], bad[1], r, c)
		}
	}
}

func TestReadNIfTIRejectsCorruptFiles(t *testing.T) {
	t.Parallel()
	good := niiSpec{dim: []int16{4, 3, 2}, datatype: 4, pixdim: [8]float32{1, 1, 1, 1}, data: make([]byte, 48)}
	valid := good.bytes()
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "header truncated"},
		{"truncated header", valid[:200], "header truncated"},
		{"truncated data", valid[:len(valid)-1], "voxel data truncated"},
		{"no data", valid[:352], "voxel data truncated"},
		{"bad sizeof_hdr", func() []byte { s := good; s.sizeofHdr = 350; return s.bytes() }(), "not a NIfTI-1"},
		{"NIfTI-2", func() []byte { s := good; s.sizeofHdr = 540; return s.bytes() }(), "NIfTI-2"},
		{"bad magic", func() []byte { s := good; s.magic = "abc"; return s.bytes() }(), "bad magic"},
		{"pair magic", func() []byte { s := good; s.magic = "ni1"; return s.bytes() }(), "two-file"},
		{"negative dim", func() []byte { s := good; s.dim = []int16{4, -3, 2}; return s.bytes() }(), "not positive"},
		{"zero dim", func() []byte { s := good; s.dim = []int16{4, 0, 2}; return s.bytes() }(), "not positive"},
		{"dim[0] 0", func() []byte { s := good; s.ndim = -1; return s.bytes() }(), "dim[0]"},
		{"dim[0] 9", func() []byte { s := good; s.ndim = 9; return s.bytes() }(), "dim[0]"},
		{"dim too large", func() []byte { s := good; s.dim = []int16{30000, 2, 2}; return s.bytes() }(), "exceeds"},
		{"voxel count overflow", func() []byte { s := good; s.dim = []int16{4000, 4000, 4000}; return s.bytes() }(), "voxels exceed"},
		{"unknown datatype", func() []byte { s := good; s.datatype = 32; s.bitpix = 64; return s.bytes() }(), "datatype 32"},
		{"bitpix mismatch", func() []byte { s := good; s.bitpix = 8; return s.bytes() }(), "bitpix"},
		{"vox_offset small", func() []byte { s := good; s.voxOffset = 100; return s.bytes() }(), "vox_offset"},
		{"vox_offset fractional", func() []byte { s := good; s.voxOffset = 352.5; return s.bytes() }(), "vox_offset"},
		{"vox_offset NaN", func() []byte { s := good; s.voxOffset = float32(math.NaN()); return s.bytes() }(), "vox_offset"},
		{"vox_offset huge", func() []byte { s := good; s.voxOffset = 1e12; return s.bytes() }(), "vox_offset"},
		{"vox_offset past end", func() []byte {
			s := good
			s.data = nil
			b := s.bytes()
			binary.LittleEndian.PutUint32(b[108:], math.Float32bits(4096))
			return b
		}(), "vox_offset"},
		{"corrupt gzip", func() []byte {
			s := good
			s.gz = true
			b := s.bytes()
			return append(b[:20:20], bytes.Repeat([]byte{0xff}, 40)...)
		}(), "corrupt"},
		{"truncated gzip", func() []byte { s := good; s.gz = true; b := s.bytes(); return b[:len(b)/2] }(), "truncated"},
	}
	for _, c := range cases {
		p := filepath.Join(t.TempDir(), "bad.nii")
		if err := os.WriteFile(p, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		v, err := ReadNIfTI(p)
		if err == nil {
			t.Errorf("%s: read a %v volume, want an error", c.name, v.Dims)
			continue
		}
		msg := strings.ToLower(err.Error())
		if !strings.Contains(msg, strings.ToLower(c.want)) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %q should mention %q and the file", c.name, err, c.want)
		}
	}
	if _, err := ReadNIfTI(filepath.Join(t.TempDir(), "missing.nii")); err == nil || !strings.Contains(err.Error(), "missing.nii") {
		t.Errorf("missing file: %v", err)
	}
}

// pyNIfTI is an independent reader: gzip + struct + numpy, statistics of
// the first volume in file (x-fastest) order.
const pyNIfTI = `
import gzip, json, struct, sys
import numpy as np
raw = gzip.open(sys.argv[1]).read()
le = struct.unpack('<i', raw[:4])[0] == 348
e = '<' if le else '>'
dim = struct.unpack(e + '8h', raw[40:56])
dt = struct.unpack(e + 'h', raw[70:72])[0]
pix = struct.unpack(e + '8f', raw[76:108])
off, slope, inter = struct.unpack(e + '3f', raw[108:120])
types = {2: 'u1', 4: 'i2', 8: 'i4', 16: 'f4', 64: 'f8', 256: 'i1', 512: 'u2', 768: 'u4'}
n = dim[1] * dim[2] * dim[3]
a = np.frombuffer(raw, dtype=np.dtype(types[dt]).newbyteorder(e), count=n, offset=int(off)).astype(np.float64)
if slope != 0:
    a = a * slope + inter
vol = a.reshape((dim[3], dim[2], dim[1]))  # [z][y][x]
idx = [(k * 7919 * 104729) % n for k in range(200)]
print(json.dumps({
    'dims': list(dim[1:4]), 'pixdim': list(pix[1:4]),
    'sum': float(a.sum()), 'sumsq': float((a * a).sum()), 'nonzero': int((a != 0).sum()), 'max': float(a.max()),
    'samples': [[i, float(a[i])] for i in idx],
    'zsums': vol.sum(axis=(1, 2)).tolist(), 'xsums': vol.sum(axis=(0, 1)).tolist(),
}))
`

func TestReadNIfTIMatchesNumpyOnMRIcronTemplates(t *testing.T) {
	t.Parallel()
	py := testutil.PythonWith(t, "numpy")
	for _, name := range []string{"ch2.nii.gz", "ch2better.nii.gz"} {
		path := testutil.File(t, "/usr/share/mricron/templates/"+name)
		out, err := exec.Command(py, "-c", pyNIfTI, path).Output()
		if err != nil {
			t.Fatalf("%s: python reader: %v", name, err)
		}
		var ref struct {
			Dims            []int
			Pixdim          []float64
			Sum, Sumsq, Max float64
			Nonzero         int
			Samples         [][2]float64
			Zsums, Xsums    []float64
		}
		if err := json.Unmarshal(out, &ref); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		v, err := ReadNIfTI(path)
		if err != nil {
			t.Fatal(err)
		}
		// Both templates are stored RAS+ with identity orientation, so the
		// file order is the volume order.
		if v.Dims != [3]int{ref.Dims[0], ref.Dims[1], ref.Dims[2]} {
			t.Fatalf("%s: dims %v, numpy %v", name, v.Dims, ref.Dims)
		}
		for i := range 3 {
			if v.Spacing[i] != ref.Pixdim[i] {
				t.Errorf("%s: spacing %v, numpy %v", name, v.Spacing, ref.Pixdim)
			}
		}
		var sum, sumsq, mx float64
		nonzero := 0
		zs := make([]float64, v.Dims[2])
		xs := make([]float64, v.Dims[0])
		for i, x := range v.Data {
			f := float64(x)
			sum += f
			sumsq += f * f
			mx = max(mx, f)
			if x != 0 {
				nonzero++
			}
			zs[i/(v.Dims[0]*v.Dims[1])] += f
			xs[i%v.Dims[0]] += f
		}
		if sum != ref.Sum || sumsq != ref.Sumsq || mx != ref.Max || nonzero != ref.Nonzero {
			t.Errorf("%s: sum %v sumsq %v max %v nonzero %d; numpy %v %v %v %d", name, sum, sumsq, mx, nonzero, ref.Sum, ref.Sumsq, ref.Max, ref.Nonzero)
		}
		for _, s := range ref.Samples {
			if got := float64(v.Data[int(s[0])]); got != s[1] {
				t.Errorf("%s: voxel %d = %v, numpy %v", name, int(s[0]), got, s[1])
			}
		}
		for z := range zs {
			if zs[z] != ref.Zsums[z] {
				t.Fatalf("%s: slice z=%d sums to %v, numpy %v", name, z, zs[z], ref.Zsums[z])
			}
		}
		for x := range xs {
			if xs[x] != ref.Xsums[x] {
				t.Fatalf("%s: plane x=%d sums to %v, numpy %v", name, x, xs[x], ref.Xsums[x])
			}
		}
		t.Logf("%s: %v voxels of %v mm, mean %.4f, %d nonzero — identical to numpy", name, v.Dims, v.Spacing, sum/float64(len(v.Data)), nonzero)
	}
}

func FuzzReadNIfTI(f *testing.F) {
	f.Add(niiSpec{dim: []int16{2, 2, 2}, datatype: 2, data: make([]byte, 8)}.bytes())
	f.Add(niiSpec{dim: []int16{2, 1, 1}, datatype: 64, order: binary.BigEndian, data: make([]byte, 16), gz: true}.bytes())
	f.Add(niiSpec{dim: []int16{4, 3, 2}, datatype: 4, scode: 1, srow: [12]float32{0, -2, 0, 0, 1, 0, 0, 0, 0, 0, 3, 0}, data: make([]byte, 48)}.bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := decodeNIfTI(bytes.NewReader(data))
		if err != nil {
			return
		}
		n := 1
		for _, d := range v.Dims {
			if d < 1 || d > 4096 {
				t.Fatalf("accepted dims %v", v.Dims)
			}
			n *= d
		}
		if len(v.Data) != n {
			t.Fatalf("%d voxels for dims %v", len(v.Data), v.Dims)
		}
		for _, x := range v.Data {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Fatalf("non-finite voxel %v", x)
			}
		}
		if img, r, c := v.Slice(2, v.Dims[2]-1); len(img) != r*c || r != v.Dims[1] || c != v.Dims[0] {
			t.Fatalf("axial slice %d×%d of %d values", r, c, len(img))
		}
	})
}

// TestWriteFuzzSeeds regenerates the committed seed corpus of FuzzReadNIfTI
// when KSPACED_WRITE_FUZZ_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("KSPACED_WRITE_FUZZ_SEEDS") != "1" {
		t.Skip("set KSPACED_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz/FuzzReadNIfTI")
	}
	valid := niiSpec{dim: []int16{2, 2, 2}, datatype: 2, pixdim: [8]float32{1, 1, 1, 1}, data: []byte{1, 2, 3, 4, 5, 6, 7, 8}}.bytes()
	seeds := map[string][]byte{
		"uint8":          valid,
		"float64-be-gz":  niiSpec{dim: []int16{2, 1, 1}, datatype: 64, order: binary.BigEndian, data: encode(64, binary.BigEndian, []float64{1.5, -2}), gz: true}.bytes(),
		"int16-sform":    niiSpec{dim: []int16{4, 3, 2}, datatype: 4, scode: 1, srow: [12]float32{0, -2, 0, 0, 1, 0, 0, 0, 0, 0, 3, 0}, data: encode(4, binary.LittleEndian, labelled())}.bytes(),
		"float32-qform":  niiSpec{dim: []int16{3, 2, 1}, datatype: 16, qcode: 1, quat: [6]float32{0, 0, 1}, voxOffset: 400, slope: 2, inter: 1, data: encode(16, binary.LittleEndian, []float64{1, 2, 3, 4, 5, 6})}.bytes(),
		"truncated-data": valid[:len(valid)-3],
		"bad-magic":      niiSpec{dim: []int16{2, 2, 2}, datatype: 2, magic: "ni2", data: make([]byte, 8)}.bytes(),
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzReadNIfTI")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range seeds {
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
