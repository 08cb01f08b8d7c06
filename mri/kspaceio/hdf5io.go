//go:build cgo

package kspaceio

import (
	"fmt"
	"math"
	"reflect"
	"sort"

	"github.com/kspaced/kspaced/internal/safefile"
	"github.com/kspaced/kspaced/mri"
)

// hdf5Kind tells an ISMRMRD file (/dataset with data) from a fastMRI one
// (/kspace).
func hdf5Kind(path string) (string, error) {
	var kind string
	err := withHDF5(func() error {
		f, err := h5Open(path, false)
		if err != nil {
			return err
		}
		defer f.close()
		if f.kind("dataset") == kindGroup {
			g, err := f.group("dataset")
			if err != nil {
				return err
			}
			defer g.close()
			if g.kind("data") == kindDataset {
				kind = FormatISMRMRD
				return nil
			}
		}
		if f.kind("kspace") == kindDataset {
			kind = FormatFastMRI
			return nil
		}
		return fmt.Errorf("%w: HDF5 file has neither /dataset/data (ISMRMRD) nor /kspace (fastMRI)", ErrUnknownFormat)
	})
	return kind, err
}

func readHDF5(path, format string, size, maxBytes int64) (*Volume, error) {
	var v *Volume
	b := &byteBudget{left: maxBytes}
	err := withHDF5(func() error {
		f, err := h5Open(path, false)
		if err != nil {
			return err
		}
		defer f.close()
		if format == FormatISMRMRD {
			v, err = readISMRMRD(f, size, b)
		} else {
			v, err = readFastMRI(f, b)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return v, nil
}

// batchBytes bounds the acquisition data held by the HDF5 library at once.
const batchBytes = 8 << 20

func readISMRMRD(f h5, fileSize int64, b *byteBudget) (*Volume, error) {
	g, err := f.group("dataset")
	if err != nil {
		return nil, err
	}
	defer g.close()
	if g.kind("xml") != kindDataset {
		return nil, fmt.Errorf("no /dataset/xml header")
	}
	xd, err := g.dataset("xml", 0)
	if err != nil {
		return nil, err
	}
	raw, err := xd.readString(MaxHeaderBytes)
	xd.close()
	if err != nil {
		return nil, fmt.Errorf("/dataset/xml: %w", err)
	}
	meta, err := parseHeader([]byte(raw))
	if err != nil {
		return nil, fmt.Errorf("/dataset/xml: %w", err)
	}
	dd, err := g.dataset("data", 0)
	if err != nil {
		return nil, err
	}
	defer dd.close()
	info, err := dd.info()
	if err != nil {
		return nil, fmt.Errorf("/dataset/data: %w", err)
	}
	if len(info.dims) != 1 {
		return nil, fmt.Errorf("/dataset/data has rank %d, want 1", len(info.dims))
	}
	if err := dd.checkAcquisitions(); err != nil {
		return nil, fmt.Errorf("/dataset/data: %w", err)
	}
	if info.dims[0] > MaxAcquisitions {
		return nil, fmt.Errorf("/dataset/data: %d acquisitions, limit %d", info.dims[0], MaxAcquisitions)
	}
	if err := info.checkStorage(b); err != nil {
		return nil, fmt.Errorf("/dataset/data: %w", err)
	}
	heads := make([]acqHead, info.dims[0])
	if err := dd.readHeads(0, heads); err != nil {
		return nil, fmt.Errorf("/dataset/data: %w", err)
	}
	plan, err := planAcquisitions(meta, heads)
	if err != nil {
		return nil, fmt.Errorf("/dataset/data: %w", err)
	}
	// Variable-length data live uncompressed in the file's global heap, so
	// the samples the headers announce must fit in the file.
	if plan.dataBytes > fileSize {
		return nil, fmt.Errorf("/dataset/data: headers announce %d bytes of samples, the file has %d", plan.dataBytes, fileSize)
	}
	if need := plan.scanBytes(); need > 64*fileSize+64<<20 {
		return nil, fmt.Errorf("/dataset/data: assembling %d slices of %d coils × %d × %d needs %d bytes, implausible for a %d-byte file",
			len(plan.labels)+len(plan.calLabels), plan.coils, plan.encY, plan.reconX, need, fileSize)
	} else if need > b.left {
		return nil, fmt.Errorf("/dataset/data: assembling %d slices of %d coils × %d × %d needs %d bytes, beyond the limit (%d left)",
			len(plan.labels)+len(plan.calLabels), plan.coils, plan.encY, plan.reconX, need, b.left)
	}
	// Batches of at most batchBytes (and 4096 acquisitions).
	type span struct{ start, n int }
	var spans []span
	var arena int64
	for i := 0; i < len(heads); {
		var b int64
		j := i
		for j < len(heads) && j-i < 4096 {
			nb := int64(heads[j].Samples)*int64(heads[j].Channels)*8 + 16
			if j > i && b+nb > batchBytes {
				break
			}
			b += nb
			j++
		}
		spans = append(spans, span{i, j - i})
		arena = max(arena, b)
		i = j
	}
	asm := newAssembler(plan)
	rd, err := newDataReader(4096, arena)
	if err != nil {
		return nil, err
	}
	defer rd.free()
	for _, s := range spans {
		err := rd.read(dd, s.start, s.n, func(i int, data []float32) error {
			if plan.role[i] == roleSkip {
				return nil
			}
			return asm.add(i, &heads[i], data)
		})
		if err != nil {
			return nil, fmt.Errorf("/dataset/data: %w", err)
		}
	}
	if asm.overflow {
		return nil, fmt.Errorf("/dataset/data: one line repeated more than 65535 times")
	}
	scans, cal, dup, err := asm.finish()
	if err != nil {
		return nil, fmt.Errorf("/dataset/data: %w", err)
	}
	v := &Volume{Slices: scans, Labels: plan.labels, Meta: meta, Attrs: map[string]any{
		"acquisitions":                 len(heads),
		"imaging_acquisitions":         plan.counts["imaging"],
		"calibration_acquisitions":     plan.counts["calibration"],
		"noise_acquisitions":           plan.counts["noise"],
		"skipped_acquisitions":         plan.counts["skipped"] + plan.counts["other_encoding"],
		"duplicate_lines":              dup,
		"readout_oversampling_removed": plan.reconX < plan.encX,
	}}
	if len(cal) > 0 {
		v.Calibration, v.CalibrationLabels = cal, plan.calLabels
	}
	return v, nil
}

// Layout of real fastMRI files: the 1-D mask runs along the last axis.
func readFastMRI(f h5, b *byteBudget) (*Volume, error) {
	ds, err := f.dataset("kspace", 0)
	if err != nil {
		return nil, err
	}
	defer ds.close()
	info, err := ds.info()
	if err != nil {
		return nil, fmt.Errorf("kspace: %w", err)
	}
	var slices, coils, rows, cols int64
	switch len(info.dims) {
	case 3:
		slices, coils, rows, cols = info.dims[0], 1, info.dims[1], info.dims[2]
	case 4:
		slices, coils, rows, cols = info.dims[0], info.dims[1], info.dims[2], info.dims[3]
	default:
		return nil, fmt.Errorf("kspace has shape %v, want (slices, coils, H, W) or (slices, H, W)", info.dims)
	}
	re, im, err := complexMembers(info)
	if err != nil {
		return nil, fmt.Errorf("kspace: %w", err)
	}
	if slices > MaxSlices || coils > mri.MaxCoils || rows > mri.MaxDim || cols > mri.MaxDim {
		return nil, fmt.Errorf("kspace shape %v exceeds the limits (%d slices, %d coils, %d per side)", info.dims, MaxSlices, mri.MaxCoils, mri.MaxDim)
	}
	if err := checkGeometry(int(slices), int(coils), int(rows), int(cols)); err != nil {
		return nil, fmt.Errorf("kspace shape %v: %w", info.dims, err)
	}
	if err := info.checkStorage(b); err != nil {
		return nil, fmt.Errorf("kspace: %w", err)
	}
	var meta Meta
	haveHeader := f.kind("ismrmrd_header") == kindDataset
	if haveHeader {
		hd, err := f.dataset("ismrmrd_header", 0)
		if err != nil {
			return nil, err
		}
		raw, err := hd.readString(MaxHeaderBytes)
		hd.close()
		if err != nil {
			return nil, fmt.Errorf("ismrmrd_header: %w", err)
		}
		if meta, err = parseHeader([]byte(raw)); err != nil {
			return nil, fmt.Errorf("ismrmrd_header: %w", err)
		}
	} else {
		meta = Meta{EncodedMatrix: [3]int{int(rows), int(cols), 1}, ReconMatrix: [3]int{int(rows), int(cols), 1}}
	}
	attrs, err := f.attrs()
	if err != nil {
		return nil, fmt.Errorf("root attributes: %w", err)
	}
	if meta.AccelerationY == 0 {
		switch a := attrs["acceleration"].(type) {
		case int64:
			if a > 0 && a <= mri.MaxDim {
				meta.AccelerationY = int(a)
			}
		case float64:
			if a > 0 && a <= mri.MaxDim && a == math.Trunc(a) {
				meta.AccelerationY = int(a)
			}
		}
	}
	// Padding: fastMRI keeps columns [W/2 − centre, W/2 − centre + max + 1)
	// of the encoded phase-encoding lines.
	lo, hi := 0, int(cols)
	if l := meta.LimitsE1; l.Known && meta.EncodedMatrix[1] == int(cols) {
		lo = int(cols)/2 - l.Center
		hi = lo + l.Max + 1
		lo, hi = max(lo, 0), min(hi, int(cols))
		if lo >= hi {
			return nil, fmt.Errorf("ismrmrd_header: encoding limits (max %d, centre %d) leave no k-space columns of %d", l.Max, l.Center, cols)
		}
	}
	all := make([]complex64, info.elements)
	if err := ds.readComplex(re, im, nil, nil, all); err != nil {
		return nil, fmt.Errorf("kspace: %w", err)
	}
	per := int(coils * rows * cols)
	v := &Volume{Meta: meta, Attrs: attrs}
	for s := 0; s < int(slices); s++ {
		v.Slices = append(v.Slices, mri.Scan{Coils: int(coils), Rows: int(rows), Cols: int(cols), KSpace: all[s*per : (s+1)*per : (s+1)*per]})
	}
	if f.kind("mask") == kindDataset {
		if err := readFastMRIMask(f, v.Slices, lo, hi, b); err != nil {
			return nil, fmt.Errorf("mask: %w", err)
		}
	} else {
		for i := range v.Slices {
			v.Slices[i].Mask = columnMask(&v.Slices[i], lo, hi)
		}
	}
	if f.kind("noise_covariance") == kindDataset {
		cov, err := readNoiseCov(f, int(coils), b)
		if err != nil {
			return nil, fmt.Errorf("noise_covariance: %w", err)
		}
		for i := range v.Slices {
			v.Slices[i].NoiseCov = append([]complex64(nil), cov...)
		}
	}
	return v, nil
}

func className(c int) string {
	switch c {
	case classInteger:
		return "integer"
	case classFloat:
		return "float"
	case classString:
		return "string"
	case classCompound:
		return "compound"
	case classEnum:
		return "enum"
	}
	return fmt.Sprintf("HDF5 type class %d", c)
}

// complexMembers accepts h5py's complex compound {r, i} (or {real, imag}) of
// two floats and returns the member names.
func complexMembers(info dsInfo) (string, string, error) {
	ok := info.class == classCompound && info.members == 2 && info.c0 == classFloat && info.c1 == classFloat &&
		(info.m0 == "r" && info.m1 == "i" || info.m0 == "real" && info.m1 == "imag")
	if !ok {
		return "", "", fmt.Errorf("datatype is %s, not complex (want a compound of two floats r, i as h5py writes complex64)", className(info.class))
	}
	return info.m0, info.m1, nil
}

func readFastMRIMask(f h5, scans []mri.Scan, lo, hi int, b *byteBudget) error {
	md, err := f.dataset("mask", 0)
	if err != nil {
		return err
	}
	defer md.close()
	info, err := md.info()
	if err != nil {
		return err
	}
	if info.class != classFloat && info.class != classInteger && info.class != classEnum {
		return fmt.Errorf("datatype is %s, want numbers or booleans", className(info.class))
	}
	s := scans[0]
	ok := len(info.dims) == 1 && info.dims[0] == int64(s.Cols) ||
		len(info.dims) == 2 && info.dims[0] == int64(s.Rows) && info.dims[1] == int64(s.Cols) ||
		len(info.dims) == 3 && info.dims[0] == int64(len(scans)) && info.dims[1] == int64(s.Rows) && info.dims[2] == int64(s.Cols)
	if !ok {
		return fmt.Errorf("shape %v fits neither (W=%d), (H=%d, W) nor (slices=%d, H, W)", info.dims, s.Cols, s.Rows, len(scans))
	}
	if err := info.checkStorage(b); err != nil {
		return err
	}
	vals := make([]float64, info.elements)
	if err := md.readFloat64(vals); err != nil {
		return err
	}
	return applyMask(scans, info.dims, vals, lo, hi)
}

// columnMask marks the columns in [lo, hi) where any coil and row holds a
// non-zero sample: fastMRI undersamples whole phase-encoding columns.
func columnMask(s *mri.Scan, lo, hi int) []float32 {
	hit := make([]bool, s.Cols)
	left := hi - lo // columns not yet seen non-zero; fully sampled data stop after one row
	for i := 0; i < s.Coils*s.Rows && left > 0; i++ {
		row := s.KSpace[i*s.Cols : (i+1)*s.Cols]
		for x := lo; x < hi; x++ {
			if row[x] != 0 && !hit[x] {
				hit[x] = true
				left--
			}
		}
	}
	m := make([]float32, s.Rows*s.Cols)
	for r := 0; r < s.Rows; r++ {
		for x, h := range hit {
			if h {
				m[r*s.Cols+x] = 1
			}
		}
	}
	return m
}

func readNoiseCov(f h5, coils int, b *byteBudget) ([]complex64, error) {
	d, err := f.dataset("noise_covariance", 0)
	if err != nil {
		return nil, err
	}
	defer d.close()
	info, err := d.info()
	if err != nil {
		return nil, err
	}
	re, im, err := complexMembers(info)
	if err != nil {
		return nil, err
	}
	if len(info.dims) != 2 || info.dims[0] != int64(coils) || info.dims[1] != int64(coils) {
		return nil, fmt.Errorf("shape %v, want (%d, %d)", info.dims, coils, coils)
	}
	if err := info.checkStorage(b); err != nil {
		return nil, err
	}
	cov := make([]complex64, coils*coils)
	return cov, d.readComplex(re, im, nil, nil, cov)
}

// WriteFastMRI writes v as a fastMRI-style HDF5 file: kspace complex64
// (slices, coils, H, W), or (slices, H, W) for single-coil data as fastMRI's
// single-coil files have it; mask float32 (W) when every row of every slice
// shares one column pattern, else (H, W) or (slices, H, W); ismrmrd_header
// XML built from v.Meta (missing matrices are taken from the k-space size);
// noise_covariance (coils, coils) complex64 when the slices share one (a
// kspaced extension); and v.Attrs as root attributes. The file is written
// beside path and renamed into place.
func WriteFastMRI(path string, v *Volume) error {
	if err := writeFastMRI(path, v); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func writeFastMRI(path string, v *Volume) error {
	if v == nil || len(v.Slices) == 0 {
		return fmt.Errorf("no slices")
	}
	s0 := v.Slices[0]
	for i := range v.Slices {
		s := &v.Slices[i]
		if err := s.Validate(); err != nil {
			return fmt.Errorf("slice %d: %w", i, err)
		}
		if s.Coils != s0.Coils || s.Rows != s0.Rows || s.Cols != s0.Cols {
			return fmt.Errorf("slice %d is %d×%d×%d, slice 0 is %d×%d×%d", i, s.Coils, s.Rows, s.Cols, s0.Coils, s0.Rows, s0.Cols)
		}
	}
	if len(v.Slices) > MaxSlices {
		return fmt.Errorf("%d slices, limit %d", len(v.Slices), MaxSlices)
	}
	m := v.Meta
	if m.EncodedMatrix == ([3]int{}) {
		m.EncodedMatrix = [3]int{s0.Rows, s0.Cols, 1}
	}
	if m.ReconMatrix == ([3]int{}) {
		m.ReconMatrix = m.EncodedMatrix
	}
	if !m.LimitsE1.Known {
		m.LimitsE1 = Limit{Min: 0, Max: s0.Cols - 1, Center: s0.Cols / 2, Known: true}
	}
	xmlHdr, err := buildHeader(m)
	if err != nil {
		return err
	}
	// Mask shape: the smallest that holds every slice's mask exactly.
	sameSlices, sameRows := true, true
	for i := range v.Slices {
		mk := v.Slices[i].Mask
		if !reflect.DeepEqual(mk, s0.Mask) {
			sameSlices = false
		}
		for r := 1; r < s0.Rows && sameRows; r++ {
			if !reflect.DeepEqual(mk[r*s0.Cols:(r+1)*s0.Cols], mk[:s0.Cols]) {
				sameRows = false
			}
		}
	}
	keys := make([]string, 0, len(v.Attrs))
	for k := range v.Attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return writeAtomic(path, func(f h5) error {
		dims := []int{len(v.Slices), s0.Coils, s0.Rows, s0.Cols}
		if s0.Coils == 1 {
			dims = []int{len(v.Slices), s0.Rows, s0.Cols}
		}
		per := s0.Coils * s0.Rows * s0.Cols
		err := f.writeSlabs("kspace", 0, dims, len(v.Slices), func(i int) any { return v.Slices[i].KSpace[:per] }, 0)
		if err != nil {
			return err
		}
		switch {
		case sameSlices && sameRows:
			err = f.writeFloat32("mask", []int{s0.Cols}, s0.Mask[:s0.Cols])
		case sameSlices:
			err = f.writeFloat32("mask", []int{s0.Rows, s0.Cols}, s0.Mask)
		default:
			err = f.writeSlabs("mask", 1, []int{len(v.Slices), s0.Rows, s0.Cols}, len(v.Slices), func(i int) any { return v.Slices[i].Mask }, 0)
		}
		if err != nil {
			return err
		}
		if err := f.writeString("ismrmrd_header", string(xmlHdr)); err != nil {
			return err
		}
		if cov := s0.NoiseCov; cov != nil {
			shared := true
			for i := range v.Slices {
				shared = shared && reflect.DeepEqual(v.Slices[i].NoiseCov, cov)
			}
			if shared {
				if err := f.writeComplex("noise_covariance", []int{s0.Coils, s0.Coils}, cov, 0); err != nil {
					return err
				}
			}
		}
		for _, k := range keys {
			if err := f.writeAttr(k, v.Attrs[k]); err != nil {
				return err
			}
		}
		return nil
	})
}

// WriteReconstruction writes images (slices × rows × cols, row-major) as a
// fastMRI-style reconstruction file: dataset `reconstruction` float32
// (slices, rows, cols) and attrs as root attributes (string, number or
// number-slice values).
func WriteReconstruction(path string, images []float32, slices, rows, cols int, attrs map[string]any) error {
	if err := checkGeometry(slices, 1, rows, cols); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if len(images) != slices*rows*cols {
		return fmt.Errorf("write %s: %d values for %d slices × %d × %d", path, len(images), slices, rows, cols)
	}
	for i, x := range images {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("write %s: value %d is %v", path, i, x)
		}
	}
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	err := writeAtomic(path, func(f h5) error {
		if err := f.writeFloat32("reconstruction", []int{slices, rows, cols}, images); err != nil {
			return err
		}
		for _, k := range keys {
			if err := f.writeAttr(k, attrs[k]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// writeAtomic creates a temporary HDF5 file beside path, lets fill write it,
// and renames it over path only when everything succeeded (synced, through
// internal/safefile), so watchers never see a half-written file.
func writeAtomic(path string, fill func(f h5) error) error {
	return safefile.Replace(path, 0o644, func(tmp string) error {
		return withHDF5(func() error {
			f, err := h5Create(tmp)
			if err != nil {
				return err
			}
			if err := fill(f); err != nil {
				f.close()
				return err
			}
			return f.close()
		})
	})
}
