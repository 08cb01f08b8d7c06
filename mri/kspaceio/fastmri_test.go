//go:build cgo

package kspaceio

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kspaced/kspaced/mri"
)

// fastmriScript writes fastMRI-style files with h5py into argv[1], in the
// shapes of the public knee and brain sets, with <name>.npy holding the
// k-space and <name>_mask.npy the (slices, W) column mask a fastMRI loader
// would derive (padding from the header's encoding limits applied).
const fastmriScript = `
import sys, os, h5py, numpy as np
out = sys.argv[1]
rng = np.random.default_rng(11)

def header(ex, ey, rx, ry, emax, ecenter):
    return f'''<?xml version="1.0" encoding="utf-8"?>
<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <studyInformation><studyTime>09:41:07</studyTime></studyInformation>
  <measurementInformation><measurementID>45160_1234_5678</measurementID><patientPosition>FFS</patientPosition>
    <protocolName>AX T2</protocolName><frameOfReferenceUID>1.3.12.2.1107.5.2.1</frameOfReferenceUID></measurementInformation>
  <acquisitionSystemInformation><systemVendor>SIEMENS</systemVendor><systemModel>Skyra</systemModel>
    <systemFieldStrength_T>2.89362</systemFieldStrength_T><relativeReceiverNoiseBandwidth>0.793</relativeReceiverNoiseBandwidth>
    <receiverChannels>15</receiverChannels><institutionName>NYU</institutionName></acquisitionSystemInformation>
  <experimentalConditions><H1resonanceFrequency_Hz>123255493</H1resonanceFrequency_Hz></experimentalConditions>
  <encoding>
    <encodedSpace><matrixSize><x>{ex}</x><y>{ey}</y><z>1</z></matrixSize><fieldOfView_mm><x>280</x><y>161.0</y><z>4.5</z></fieldOfView_mm></encodedSpace>
    <reconSpace><matrixSize><x>{rx}</x><y>{ry}</y><z>1</z></matrixSize><fieldOfView_mm><x>140</x><y>140</y><z>3</z></fieldOfView_mm></reconSpace>
    <encodingLimits>
      <kspace_encoding_step_0><minimum>0</minimum><maximum>{ex-1}</maximum><center>{ex//2}</center></kspace_encoding_step_0>
      <kspace_encoding_step_1><minimum>0</minimum><maximum>{emax}</maximum><center>{ecenter}</center></kspace_encoding_step_1>
      <slice><minimum>0</minimum><maximum>34</maximum><center>0</center></slice>
    </encodingLimits>
    <trajectory>cartesian</trajectory>
  </encoding>
  <sequenceParameters><TR>2750</TR><TE>27</TE><TI>100</TI><flipAngle_deg>180</flipAngle_deg><sequence_type>TurboSpinEcho</sequence_type></sequenceParameters>
</ismrmrdHeader>'''

def kspace(shape, lo, hi, cols=None):
    k = (rng.standard_normal(shape, np.float32) + 1j * rng.standard_normal(shape, np.float32)).astype(np.complex64)
    k = np.round(k * 64) / 64  # compressible, still exact in float32
    k[..., :lo] = 0
    k[..., hi:] = 0
    if cols is not None:
        k[..., ~cols] = 0
    return k.astype(np.complex64)

def save(name, k, mask2):
    np.save(os.path.join(out, name + '.npy'), k)
    np.save(os.path.join(out, name + '_mask.npy'), mask2.astype(np.float32))

def loader_mask(k, lo, hi):
    # fastMRI-style: a column is measured inside the padding where data is non-zero
    axes = tuple(range(1, k.ndim - 1))
    m = np.any(k != 0, axis=axes)
    m[:, :lo] = False
    m[:, hi:] = False
    return m

# knee multi-coil training volume: contiguous, no mask, header as bytes
lo, hi = 368 // 2 - 174, 368 // 2 - 174 + 347
k = kspace((2, 15, 640, 368), lo, hi)
with h5py.File(os.path.join(out, 'knee_mc.h5'), 'w') as f:
    f.create_dataset('kspace', data=k)
    f.create_dataset('ismrmrd_header', data=np.bytes_(header(640, 368, 320, 320, 346, 174)))
    f.attrs['acquisition'] = 'CORPD_FBK'
    f.attrs['max'] = 0.000431
    f.attrs['norm'] = 0.0817
    f.attrs['patient_id'] = 'f6ad1b0c'
save('knee_mc', k, loader_mask(k, lo, hi))

# knee multi-coil test-style volume: chunked + gzip, 1-D bool mask, header as str
cols = rng.random(368) < 0.25
cols[184 - 15:184 + 15] = True
k = kspace((2, 15, 640, 368), lo, hi, cols)
with h5py.File(os.path.join(out, 'knee_mc_gz.h5'), 'w') as f:
    f.create_dataset('kspace', data=k, chunks=(1, 4, 160, 368), compression='gzip', compression_opts=1)
    f.create_dataset('mask', data=cols)
    f.create_dataset('ismrmrd_header', data=header(640, 368, 320, 320, 346, 174))
    f.attrs['acquisition'] = 'CORPD_FBK'
    f.attrs['acceleration'] = 4
    f.attrs['num_low_frequency'] = 30
m = np.tile(cols, (2, 1)); m[:, :lo] = False; m[:, hi:] = False
save('knee_mc_gz', k, m)

# brain multi-coil: 16 coils, 640×320, float32 1-D mask, no padding
cols = np.zeros(320, bool); cols[::4] = True; cols[160 - 12:160 + 12] = True
k = kspace((1, 16, 640, 320), 0, 320, cols)
with h5py.File(os.path.join(out, 'brain_mc.h5'), 'w') as f:
    f.create_dataset('kspace', data=k)
    f.create_dataset('mask', data=cols.astype(np.float32))
    f.create_dataset('ismrmrd_header', data=header(640, 320, 320, 320, 319, 160))
    f.attrs['acquisition'] = 'AXT2'
    f.attrs['max'] = 0.00061
save('brain_mc', k, cols[None, :])

# knee single-coil: (slices, H, W), chunked + gzip, no mask
k = kspace((3, 640, 368), lo, hi)
with h5py.File(os.path.join(out, 'knee_sc.h5'), 'w') as f:
    f.create_dataset('kspace', data=k, chunks=(1, 640, 368), compression='gzip', compression_opts=1)
    f.create_dataset('ismrmrd_header', data=header(640, 368, 320, 320, 346, 174))
    f.attrs['acquisition'] = 'CORPDFS_FBK'
save('knee_sc', k, loader_mask(k[:, None], lo, hi))

# small: complex128 k-space, (H, W) float64 mask, no header
k = kspace((2, 3, 16, 12), 0, 12)
m2 = (rng.random((16, 12)) < 0.5)
with h5py.File(os.path.join(out, 'small_c16.h5'), 'w') as f:
    f.create_dataset('kspace', data=k.astype(np.complex128))
    f.create_dataset('mask', data=m2.astype(np.float64))
np.save(os.path.join(out, 'small_c16.npy'), k)
np.save(os.path.join(out, 'small_c16_mask2d.npy'), m2.astype(np.float32))
print('ok')
`

func TestFastMRIh5py(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	runPython(t, fastmriScript, dir)
	type want struct {
		slices, coils, rows, cols int
		attrs                     map[string]any
		accel                     int
		imageRows, imageCols      int
	}
	cases := map[string]want{
		"knee_mc":    {2, 15, 640, 368, map[string]any{"acquisition": "CORPD_FBK", "max": 0.000431, "norm": 0.0817, "patient_id": "f6ad1b0c"}, 0, 320, 320},
		"knee_mc_gz": {2, 15, 640, 368, map[string]any{"acquisition": "CORPD_FBK", "acceleration": int64(4), "num_low_frequency": int64(30)}, 4, 320, 320},
		"brain_mc":   {1, 16, 640, 320, map[string]any{"acquisition": "AXT2", "max": 0.00061}, 0, 320, 320},
		"knee_sc":    {3, 1, 640, 368, map[string]any{"acquisition": "CORPDFS_FBK"}, 0, 320, 320},
	}
	for name, w := range cases {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name+".h5")
			if f, err := Detect(p); err != nil || f != FormatFastMRI {
				t.Fatalf("Detect: %q %v", f, err)
			}
			v, err := Read(p)
			if err != nil {
				t.Fatal(err)
			}
			if len(v.Slices) != w.slices {
				t.Fatalf("%d slices", len(v.Slices))
			}
			k := loadNPY(t, filepath.Join(dir, name+".npy"))
			mk := loadNPY(t, filepath.Join(dir, name+"_mask.npy"))
			per := w.coils * w.rows * w.cols
			for si, s := range v.Slices {
				if err := s.Validate(); err != nil {
					t.Fatal(err)
				}
				if s.Coils != w.coils || s.Rows != w.rows || s.Cols != w.cols {
					t.Fatalf("slice %d is %d×%d×%d", si, s.Coils, s.Rows, s.Cols)
				}
				for i, x := range s.KSpace {
					if x != k.Data[si*per+i] {
						t.Fatalf("slice %d sample %d: %v, h5py wrote %v", si, i, x, k.Data[si*per+i])
					}
				}
				mrow := mk.Data[(si%(len(mk.Data)/w.cols))*w.cols:][:w.cols]
				for r := 0; r < s.Rows; r++ {
					for c := 0; c < s.Cols; c++ {
						if s.Mask[r*s.Cols+c] != real(mrow[c]) {
							t.Fatalf("slice %d mask (%d,%d) = %v, want %v", si, r, c, s.Mask[r*s.Cols+c], real(mrow[c]))
						}
					}
				}
			}
			for key, val := range w.attrs {
				if v.Attrs[key] != val {
					t.Errorf("attribute %s = %#v, want %#v", key, v.Attrs[key], val)
				}
			}
			m := v.Meta
			if m.EncodedMatrix != [3]int{640, w.cols, 1} || m.ReconMatrix != [3]int{320, 320, 1} || m.SystemModel != "Skyra" ||
				math.Abs(m.FieldStrengthT-2.89362) > 1e-9 || m.TR != 2750 || m.StudyTime != "094107" || m.AccelerationY != w.accel {
				t.Errorf("meta %+v", m)
			}
			if r, c := v.ImageSize(); r != w.imageRows || c != w.imageCols {
				t.Errorf("image size %d×%d", r, c)
			}
		})
	}
	t.Run("complex128 and 2-D mask", func(t *testing.T) {
		v, err := Read(filepath.Join(dir, "small_c16.h5"))
		if err != nil {
			t.Fatal(err)
		}
		k := loadNPY(t, filepath.Join(dir, "small_c16.npy"))
		m := loadNPY(t, filepath.Join(dir, "small_c16_mask2d.npy"))
		for si, s := range v.Slices {
			for i, x := range s.KSpace {
				if x != k.Data[si*len(s.KSpace)+i] {
					t.Fatalf("sample %d", i)
				}
			}
			for i, x := range s.Mask {
				if x != real(m.Data[i]) {
					t.Fatalf("mask %d", i)
				}
			}
		}
		if v.Meta.EncodedMatrix != [3]int{16, 12, 1} {
			t.Fatalf("headerless meta %+v", v.Meta)
		}
	})
}

// testVolume is a small multi-slice volume with distinct masks per row.
func testVolume(slices, coils, rows, cols int, perRowMask bool) *Volume {
	v := &Volume{Meta: fullMeta(), Attrs: map[string]any{"acquisition": "simulated", "acceleration": 4.0, "seed": 7, "tags": []float64{1, 2.5}}}
	v.Meta.EncodedMatrix, v.Meta.ReconMatrix = [3]int{rows, cols, 1}, [3]int{rows - 2, cols - 2, 1}
	v.Meta.LimitsE1 = Limit{0, cols - 2, cols / 2, true}
	cov := make([]complex64, coils*coils)
	for i := range cov {
		cov[i] = complex(float32(i), float32(-i))
	}
	for s := 0; s < slices; s++ {
		sc := mri.Scan{Coils: coils, Rows: rows, Cols: cols, KSpace: make([]complex64, coils*rows*cols), Mask: make([]float32, rows*cols), NoiseCov: cov}
		for i := range sc.KSpace {
			sc.KSpace[i] = complex(float32(i%97)-float32(s), float32(i%13)*0.5)
		}
		for r := 0; r < rows; r++ {
			for c := 0; c < cols; c++ {
				if c%3 == 0 || (perRowMask && (r+s)%2 == 0) {
					sc.Mask[r*cols+c] = 1
				}
			}
		}
		v.Slices = append(v.Slices, sc)
	}
	return v
}

// checkWrittenScript verifies a file we wrote with h5py: the k-space against
// a .npy we wrote alongside, the mask shape, fastMRI's header parsing (enc
// sizes and padding from the encoding limits) and attribute types.
const checkWrittenScript = `
import sys, h5py, numpy as np
import xml.etree.ElementTree as ET
path, ref, mshape = sys.argv[1], sys.argv[2], tuple(int(x) for x in sys.argv[3].split(',') if x)
f = h5py.File(path, 'r')
k = f['kspace']
assert k.dtype == np.complex64, k.dtype
r = np.load(ref)
assert k.shape == r.shape, (k.shape, r.shape)
assert np.array_equal(k[()], r)
m = f['mask']
assert m.dtype == np.float32 and m.shape == mshape, (m.dtype, m.shape, mshape)
root = ET.fromstring(f['ismrmrd_header'][()])
ns = {'i': 'http://www.ismrm.org/ISMRMRD'}
q = lambda p: root.find('i:encoding/' + '/'.join('i:' + x for x in p.split('/')), ns).text
enc = (int(q('encodedSpace/matrixSize/x')), int(q('encodedSpace/matrixSize/y')))
rec = (int(q('reconSpace/matrixSize/x')), int(q('reconSpace/matrixSize/y')))
center = int(q('encodingLimits/kspace_encoding_step_1/center'))
left = enc[1] // 2 - center
right = left + int(q('encodingLimits/kspace_encoding_step_1/maximum')) + 1
assert f.attrs['acquisition'] == 'simulated' and isinstance(f.attrs['acquisition'], str)
assert f.attrs['acceleration'] == 4.0 and f.attrs['seed'] == 7 and list(f.attrs['tags']) == [1, 2.5]
cov = f['noise_covariance'][()] if 'noise_covariance' in f else None
print('enc', enc, 'rec', rec, 'pad', left, right, 'cov', None if cov is None else cov.shape)
`

func TestWriteFastMRIReadByH5py(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, c := range []struct {
		name                      string
		slices, coils, rows, cols int
		perRow                    bool
		maskShape                 string
	}{
		{"multicoil", 3, 4, 20, 18, false, "18"},
		{"singlecoil", 2, 1, 16, 10, false, "10"},
		{"per-row masks", 2, 2, 8, 6, true, "2,8,6"},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := testVolume(c.slices, c.coils, c.rows, c.cols, c.perRow)
			p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".h5")
			if err := WriteFastMRI(p, v); err != nil {
				t.Fatal(err)
			}
			var all []complex64
			for _, s := range v.Slices {
				all = append(all, s.KSpace...)
			}
			shape := []int{c.slices, c.coils, c.rows, c.cols}
			if c.coils == 1 {
				shape = []int{c.slices, c.rows, c.cols}
			}
			ref := p + ".npy"
			if err := WriteNPYComplex64(ref, shape, all); err != nil {
				t.Fatal(err)
			}
			out := runPython(t, checkWrittenScript, p, ref, c.maskShape)
			wantOut := "enc (" + itoa(c.rows) + ", " + itoa(c.cols) + ") rec (" + itoa(c.rows-2) + ", " + itoa(c.cols-2) + ") pad 0 " + itoa(c.cols-1) +
				" cov (" + itoa(c.coils) + ", " + itoa(c.coils) + ")"
			if strings.TrimSpace(out) != wantOut {
				t.Fatalf("h5py sees %q, want %q", out, wantOut)
			}
			// And back through our reader: identical slices, masks (the
			// padding column 0 is cleared by the limits we wrote), header.
			back, err := Read(p)
			if err != nil {
				t.Fatal(err)
			}
			if len(back.Slices) != c.slices || !metaEqual(back.Meta, v.Meta) {
				t.Fatalf("meta after round trip:\n%+v\n%+v", back.Meta, v.Meta)
			}
			for si, s := range back.Slices {
				o := v.Slices[si]
				for i := range o.KSpace {
					if s.KSpace[i] != o.KSpace[i] {
						t.Fatalf("slice %d sample %d", si, i)
					}
				}
				for i := range o.Mask {
					want := o.Mask[i]
					if i%c.cols == c.cols-1 {
						want = 0 // outside the padding window [0, cols−1)
					}
					if s.Mask[i] != want {
						t.Fatalf("slice %d mask %d = %v, want %v", si, i, s.Mask[i], want)
					}
				}
				for i := range o.NoiseCov {
					if s.NoiseCov[i] != o.NoiseCov[i] {
						t.Fatalf("noise covariance %d", i)
					}
				}
			}
			if back.Attrs["acquisition"] != "simulated" || back.Attrs["acceleration"] != 4.0 || back.Attrs["seed"] != int64(7) {
				t.Fatalf("attrs %v", back.Attrs)
			}
		})
	}
}

func metaEqual(a, b Meta) bool { return a == b }

func itoa(i int) string { return strconv.Itoa(i) }

func TestWriteReconstructionReadByH5py(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "recon.h5")
	slices, rows, cols := 3, 5, 4
	img := make([]float32, slices*rows*cols)
	for i := range img {
		img[i] = float32(i)*0.25 - 3
	}
	if err := WriteReconstruction(p, img, slices, rows, cols, map[string]any{"method": "mmps", "samples": 16, "scale": 1.5}); err != nil {
		t.Fatal(err)
	}
	ref := p + ".npy"
	if err := WriteNPYFloat32(ref, []int{slices, rows, cols}, img); err != nil {
		t.Fatal(err)
	}
	out := runPython(t, `
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], 'r')
r = f['reconstruction']
assert r.dtype == np.float32 and r.shape == (3, 5, 4), (r.dtype, r.shape)
assert np.array_equal(r[()], np.load(sys.argv[2]))
assert f.attrs['method'] == 'mmps' and f.attrs['samples'] == 16 and f.attrs['scale'] == 1.5
print('ok')`, p, ref)
	if strings.TrimSpace(out) != "ok" {
		t.Fatal(out)
	}
	for name, err := range map[string]error{
		"shape":    WriteReconstruction(p, img, 2, rows, cols, nil),
		"nan":      WriteReconstruction(p, append(append([]float32(nil), img[1:]...), float32(math.NaN())), slices, rows, cols, nil),
		"attr":     WriteReconstruction(p, img, slices, rows, cols, map[string]any{"x": struct{}{}}),
		"no dir":   WriteReconstruction(filepath.Join(dir, "missing", "r.h5"), img, slices, rows, cols, nil),
		"absurd":   WriteReconstruction(p, img, 1, 1<<20, 60, nil),
		"no slice": WriteFastMRI(p, &Volume{}),
	} {
		if err == nil || !strings.Contains(err.Error(), p[:len(dir)]) {
			t.Errorf("%s: error %v should name the file", name, err)
		}
	}
	// A failed write leaves neither a partial file nor a temporary.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary %s left behind", e.Name())
		}
	}
	v := testVolume(2, 2, 4, 4, false)
	v.Slices[1].Coils = 3
	if err := WriteFastMRI(filepath.Join(dir, "bad.h5"), v); err == nil {
		t.Error("inconsistent slices written")
	}
}

// badFastMRIScript writes broken fastMRI-style files into argv[1].
const badFastMRIScript = `
import sys, os, h5py, numpy as np
out = sys.argv[1]
p = lambda n: os.path.join(out, n + '.h5')
k = np.ones((1, 2, 8, 6), np.complex64)
with h5py.File(p('real_dtype'), 'w') as f: f['kspace'] = np.ones((1, 2, 8, 6), np.float32)
with h5py.File(p('int_dtype'), 'w') as f: f['kspace'] = np.ones((1, 2, 8, 6), np.int16)
with h5py.File(p('three_fields'), 'w') as f:
    f['kspace'] = np.zeros((1, 2, 8, 6), dtype=[('r', 'f4'), ('i', 'f4'), ('x', 'f4')])
with h5py.File(p('no_kspace'), 'w') as f: f['image'] = k
with h5py.File(p('rank2'), 'w') as f: f['kspace'] = np.ones((8, 6), np.complex64)
with h5py.File(p('huge_side'), 'w') as f: f['kspace'] = np.ones((1, 1, 5000, 2), np.complex64)
with h5py.File(p('many_coils'), 'w') as f: f['kspace'] = np.ones((1, 300, 2, 2), np.complex64)
with h5py.File(p('unwritten'), 'w') as f: f.create_dataset('kspace', shape=(4, 16, 2048, 2048), dtype=np.complex64)
with h5py.File(p('unwritten_gzip'), 'w') as f:
    d = f.create_dataset('kspace', shape=(4, 16, 2048, 2048), dtype=np.complex64, chunks=(1, 1, 64, 64), compression='gzip')
    d[0, 0, :64, :64] = 1
with h5py.File(p('mask_shape'), 'w') as f: f['kspace'] = k; f['mask'] = np.ones(5, np.float32)
with h5py.File(p('mask_values'), 'w') as f: f['kspace'] = k; f['mask'] = np.full(6, 0.5, np.float32)
with h5py.File(p('mask_string'), 'w') as f: f['kspace'] = k; f['mask'] = np.bytes_('abc')
with h5py.File(p('header_garbage'), 'w') as f: f['kspace'] = k; f['ismrmrd_header'] = np.bytes_('<ismrmrdHeader><encoding>')
with h5py.File(p('header_numeric'), 'w') as f: f['kspace'] = k; f['ismrmrd_header'] = np.arange(4)
with h5py.File(p('good'), 'w') as f: f['kspace'] = np.ones((4, 8, 64, 64), np.complex64)
print('ok')
`

func TestFastMRIBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	runPython(t, badFastMRIScript, dir)
	good := filepath.Join(dir, "good.h5")
	cases := map[string]string{
		"real_dtype":     "not complex",
		"int_dtype":      "not complex",
		"three_fields":   "not complex",
		"no_kspace":      "neither",
		"rank2":          "shape",
		"huge_side":      "limits",
		"many_coils":     "limits",
		"unwritten":      "no data",
		"unwritten_gzip": "compressed",
		"mask_shape":     "mask",
		"mask_values":    "0.5",
		"mask_string":    "mask",
		"header_garbage": "ismrmrd_header",
		"header_numeric": "ismrmrd_header",
	}
	for name, want := range cases {
		p := filepath.Join(dir, name+".h5")
		_, err := Read(p)
		if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to name the file and mention %q", name, err, want)
		} else {
			t.Logf("%s: %v", name, err)
		}
		if name == "no_kspace" && !errors.Is(err, ErrUnknownFormat) {
			t.Errorf("no_kspace: %v is not ErrUnknownFormat", err)
		}
	}
	for _, frac := range []float64{0.999, 0.5, 0.05} {
		p := truncate(t, good, frac)
		if _, err := Read(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("truncated to %g: %v", frac, err)
		} else {
			t.Logf("truncated to %g: %v", frac, err)
		}
	}
}
