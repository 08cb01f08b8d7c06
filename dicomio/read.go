package dicomio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// DefaultMaxFileSize caps the size of one DICOM file (and of a deflated data
// set once inflated) unless ReadOptions says otherwise.
const DefaultMaxFileSize = 512 << 20

// Patient is the Patient module's identifying attributes.
type Patient struct{ Name, ID, BirthDate, Sex string }

// Study is the General Study module plus its patient.
type Study struct {
	InstanceUID, ID, AccessionNumber, Date, Time, Description, ReferringPhysician string
	Patient                                                                       Patient
}

// SliceGeometry places one image in the patient coordinate system (mm).
type SliceGeometry struct {
	Position    [3]float64 // ImagePositionPatient: centre of the first pixel
	Orientation [6]float64 // ImageOrientationPatient: row then column direction cosines
	// PixelSpacing is (row spacing, column spacing): the distance between
	// rows first, as DICOM orders it.
	PixelSpacing   [2]float64
	SliceThickness float64
}

// MRAcquisition holds MR Image module attributes as the DICOM text found in
// (or to be written to) a file; empty means absent.
type MRAcquisition struct {
	ScanningSequence, SequenceVariant, ScanOptions, MRAcquisitionType, SequenceName string
	RepetitionTime, EchoTime, InversionTime, EchoTrainLength, FlipAngle             string
	MagneticFieldStrength, ImagedNucleus                                            string
}

// Series is one series of a study with its instances in slice order.
type Series struct {
	InstanceUID, Description, Modality, FrameOfReferenceUID string
	Number                                                  int
	Date, Time, ProtocolName, BodyPartExamined              string
	PatientPosition, Manufacturer                           string
	Acquisition                                             MRAcquisition
	Instances                                               []*Instance
}

// Instance is one image file.
type Instance struct {
	Path, SOPInstanceUID, SOPClassUID, TransferSyntaxUID string
	Number                                               int // InstanceNumber (0 when absent)
	// HasGeometry reports whether position, orientation and pixel spacing
	// were all present; Geometry is that of the first frame.
	HasGeometry bool
	Geometry    SliceGeometry
	// FrameGeometry has one entry per frame for multi-frame images whose
	// functional groups place each frame; nil otherwise.
	FrameGeometry               []SliceGeometry
	Rows, Cols, Frames, Samples int
	BitsAllocated, BitsStored   int
	Signed                      bool
	Photometric                 string
	// RescaleSlope and RescaleIntercept of the first frame (1 and 0 when
	// absent); Pixels already have each frame's own applied.
	RescaleSlope, RescaleIntercept float64
	WindowCenter, WindowWidth      float64 // first window, 0 when absent
	// Pixels are Frames×Rows×Cols×Samples values (samples interleaved),
	// rescaled; nil with ReadOptions.SkipPixels.
	Pixels []float32
}

// StudyData is a study with the series read for it.
type StudyData struct {
	Study  Study
	Series []*Series
}

// FileError names a file that could not be used; it never fails the rest.
type FileError struct {
	Path string
	Err  error
}

func (e FileError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e FileError) Unwrap() error { return e.Err }

// ReadOptions tunes reading; the zero value is the default.
type ReadOptions struct {
	// MaxFileSize refuses larger files (and deflated data sets that inflate
	// beyond it); 0 means DefaultMaxFileSize.
	MaxFileSize int64
	// SkipPixels reads headers only; the pixel layout is still checked.
	SkipPixels bool
	// Workers reading files at once; 0 means GOMAXPROCS.
	Workers int
	// MemoryBudget bounds the bytes ReadStudies' workers hold at once (raw
	// files, inflated data sets and the parser's copies, estimated before
	// reading); 0 means DefaultMemoryBudget. A deflated data set may inflate
	// to at most a quarter of it.
	MemoryBudget int64

	inflateCap int64 // set per file by ReadStudies; 0 means maxSize
}

// DefaultMemoryBudget is ReadStudies' default MemoryBudget.
const DefaultMemoryBudget = 1 << 30

func (o ReadOptions) budget() int64 {
	if o.MemoryBudget <= 0 {
		return DefaultMemoryBudget
	}
	return o.MemoryBudget
}

func (o ReadOptions) maxInflated() int64 {
	if o.inflateCap > 0 {
		return min(o.inflateCap, o.maxSize())
	}
	return o.maxSize()
}

func (o ReadOptions) maxSize() int64 {
	if o.MaxFileSize <= 0 {
		return DefaultMaxFileSize
	}
	return o.MaxFileSize
}

// ReadStudies reads DICOM files and folders (recursively, skipping names
// that start with '.') with default options.
func ReadStudies(paths ...string) ([]*StudyData, []FileError) {
	return ReadOptions{}.ReadStudies(paths...)
}

// ReadStudies groups every readable image under paths into studies (by
// StudyInstanceUID, then date) and series (by SeriesNumber), with instances
// in slice order. Files that cannot be used are returned as FileErrors; a
// file without pixel data gives ErrNoImage, a second copy of an instance
// ErrDuplicate.
func (o ReadOptions) ReadStudies(paths ...string) ([]*StudyData, []FileError) {
	var files []string
	var errs []FileError
	for _, p := range paths {
		err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				errs = append(errs, FileError{path, err})
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if path != p && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if d.Type().IsRegular() || d.Type()&fs.ModeSymlink != 0 {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			errs = append(errs, FileError{p, err})
		}
	}
	sort.Strings(files)

	type result struct {
		sd  *StudyData
		err error
	}
	results := make([]result, len(files))
	workers := o.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var wg sync.WaitGroup
	next := make(chan int)
	budget := newBudget(o.budget())
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fo, cost := o.plan(files[i])
				budget.acquire(cost)
				sd, err := ReadFile(files[i], fo)
				budget.release(cost)
				results[i] = result{sd, err}
			}
		}()
	}
	for i := range files {
		next <- i
	}
	close(next)
	wg.Wait()

	studies := map[string]*StudyData{}
	series := map[string]*Series{}
	seen := map[string]string{}
	var order []*StudyData
	for i, r := range results {
		if r.err != nil {
			errs = append(errs, FileError{files[i], r.err})
			continue
		}
		in := r.sd.Series[0].Instances[0]
		if first, dup := seen[in.SOPInstanceUID]; dup {
			errs = append(errs, FileError{files[i], fmt.Errorf("%w %s (first read from %s)", ErrDuplicate, quoteUID(in.SOPInstanceUID), filepath.Base(first))})
			continue
		}
		seen[in.SOPInstanceUID] = files[i]
		st := studies[r.sd.Study.InstanceUID]
		if st == nil {
			st = &StudyData{Study: r.sd.Study}
			studies[r.sd.Study.InstanceUID] = st
			order = append(order, st)
		}
		key := r.sd.Study.InstanceUID + "/" + r.sd.Series[0].InstanceUID
		se := series[key]
		if se == nil {
			se = r.sd.Series[0]
			se.Instances = nil
			series[key] = se
			st.Series = append(st.Series, se)
		}
		se.Instances = append(se.Instances, in)
	}
	sort.SliceStable(order, func(i, j int) bool {
		a, b := order[i].Study, order[j].Study
		if a.Date+a.Time != b.Date+b.Time {
			return a.Date+a.Time < b.Date+b.Time
		}
		return a.InstanceUID < b.InstanceUID
	})
	for _, st := range order {
		sort.SliceStable(st.Series, func(i, j int) bool {
			a, b := st.Series[i], st.Series[j]
			if a.Number != b.Number {
				return a.Number < b.Number
			}
			return a.InstanceUID < b.InstanceUID
		})
		for _, se := range st.Series {
			sortInstances(se.Instances)
		}
	}
	return order, errs
}

// sortInstances orders slices along the normal of their common orientation
// when every instance has geometry and they share it, else by InstanceNumber.
func sortInstances(ins []*Instance) {
	byNumber := func(i, j int) bool {
		if ins[i].Number != ins[j].Number {
			return ins[i].Number < ins[j].Number
		}
		return ins[i].SOPInstanceUID < ins[j].SOPInstanceUID
	}
	geometric := len(ins) > 1
	for _, in := range ins {
		if !in.HasGeometry || !sameOrientation(in.Geometry.Orientation, ins[0].Geometry.Orientation) {
			geometric = false
			break
		}
	}
	if !geometric {
		sort.SliceStable(ins, byNumber)
		return
	}
	n := normal(ins[0].Geometry.Orientation)
	pos := func(in *Instance) float64 {
		p := in.Geometry.Position
		return p[0]*n[0] + p[1]*n[1] + p[2]*n[2]
	}
	sort.SliceStable(ins, func(i, j int) bool {
		a, b := pos(ins[i]), pos(ins[j])
		if math.Abs(a-b) > 1e-4 {
			return a < b
		}
		return byNumber(i, j)
	})
}

func sameOrientation(a, b [6]float64) bool {
	for i := range a {
		if math.Abs(a[i]-b[i]) > 1e-3 {
			return false
		}
	}
	return true
}

// normal is the slice normal, row × column direction.
func normal(o [6]float64) [3]float64 {
	return [3]float64{
		o[1]*o[5] - o[2]*o[4],
		o[2]*o[3] - o[0]*o[5],
		o[0]*o[4] - o[1]*o[3],
	}
}

// ReadFile reads one DICOM file as a StudyData holding one series with one
// instance.
func ReadFile(path string, opt ReadOptions) (*StudyData, error) {
	// Stat before opening: opening a FIFO would block.
	if info, err := os.Stat(path); err != nil {
		return nil, err
	} else if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: not a regular file", ErrNotDICOM)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: not a regular file", ErrNotDICOM)
	}
	if info.Size() > opt.maxSize() {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, info.Size(), opt.maxSize())
	}
	raw := make([]byte, info.Size())
	if _, err := io.ReadFull(f, raw); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	sd, err := decode(raw, opt)
	if err != nil {
		return nil, err
	}
	sd.Series[0].Instances[0].Path = path
	return sd, nil
}

// errLibraryPanic marks a panic inside the DICOM library that the walker
// should have prevented; the fuzz target fails on it.
var errLibraryPanic = errors.New("internal error: DICOM parser panicked")

func parseChecked(raw []byte) (ds dicom.Dataset, err error) {
	defer func() {
		if r := recover(); r != nil {
			// A runtime error's text holds no file content; any other
			// panic value might.
			if re, ok := r.(runtime.Error); ok {
				err = fmt.Errorf("%w: %v", errLibraryPanic, re)
			} else {
				err = errLibraryPanic
			}
		}
	}()
	ds, err = dicom.Parse(bytes.NewReader(raw), int64(len(raw)), nil,
		dicom.SkipPixelData(),
		dicom.AllowMissingMetaElementGroupLength(),
		dicom.AllowUnknownSpecificCharacterSet())
	return ds, libraryError(err)
}

// libraryError rewrites a DICOM library error without the library's text,
// which can print an element with its value: the first tag it names and
// the library's fixed sentinel, if one matches, are kept.
func libraryError(err error) error {
	if err == nil {
		return nil
	}
	where := ""
	if m := tagInText.FindString(err.Error()); m != "" {
		where = " at element " + m
	}
	for _, s := range []error{dicom.ErrorOWRequiresEvenVL, dicom.ErrorUnsupportedVR, dicom.ErrorUnsupportedBitsAllocated,
		dicom.ErrorExpectedEvenLength, dicom.ErrorExpectedDefinedLength, dicom.ErrorExpectedSequenceDelimitation,
		dicom.ErrorMismatchPixelDataLength, dicom.ErrorMagicWord, dicom.ErrorMetaElementGroupLength, io.ErrUnexpectedEOF, io.EOF} {
		if errors.Is(err, s) {
			return fmt.Errorf("%w%s: %w", ErrMalformed, where, s)
		}
	}
	return fmt.Errorf("%w%s: the parser could not read it", ErrMalformed, where)
}

var tagInText = regexp.MustCompile(`\([0-9a-fA-F]{4},[0-9a-fA-F]{4}\)`)

// decode turns the bytes of one file into a single-instance StudyData.
func decode(raw []byte, opt ReadOptions) (*StudyData, error) {
	if int64(len(raw)) > opt.maxSize() {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(raw), opt.maxSize())
	}
	w, err := walkFile(raw, opt.maxInflated())
	if err != nil {
		return nil, err
	}
	if w.pixelOff < 0 {
		return nil, ErrNoImage
	}
	if !w.ts.native || w.pixelEncapsulated {
		return nil, fmt.Errorf("%w %s (%s): compressed pixel data cannot be decoded", ErrUnsupportedTransferSyntax, w.ts.UID, w.ts.Name)
	}
	ds, err := parseChecked(raw)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	es := elems(ds.Elements)

	study := Study{
		InstanceUID:        es.str(tag.StudyInstanceUID),
		ID:                 es.str(tag.StudyID),
		AccessionNumber:    es.str(tag.AccessionNumber),
		Date:               es.str(tag.StudyDate),
		Time:               es.str(tag.StudyTime),
		Description:        es.str(tag.StudyDescription),
		ReferringPhysician: es.all(tag.ReferringPhysicianName),
		Patient: Patient{
			Name:      es.all(tag.PatientName),
			ID:        es.str(tag.PatientID),
			BirthDate: es.str(tag.PatientBirthDate),
			Sex:       es.str(tag.PatientSex),
		},
	}
	se := &Series{
		InstanceUID:         es.str(tag.SeriesInstanceUID),
		Description:         es.str(tag.SeriesDescription),
		Modality:            es.str(tag.Modality),
		FrameOfReferenceUID: es.str(tag.FrameOfReferenceUID),
		Date:                es.str(tag.SeriesDate),
		Time:                es.str(tag.SeriesTime),
		ProtocolName:        es.str(tag.ProtocolName),
		BodyPartExamined:    es.str(tag.BodyPartExamined),
		PatientPosition:     es.str(tag.PatientPosition),
		Manufacturer:        es.str(tag.Manufacturer),
		Acquisition: MRAcquisition{
			ScanningSequence:      es.all(tag.ScanningSequence),
			SequenceVariant:       es.all(tag.SequenceVariant),
			ScanOptions:           es.all(tag.ScanOptions),
			MRAcquisitionType:     es.str(tag.MRAcquisitionType),
			SequenceName:          es.str(tag.SequenceName),
			RepetitionTime:        es.str(tag.RepetitionTime),
			EchoTime:              es.str(tag.EchoTime),
			InversionTime:         es.str(tag.InversionTime),
			EchoTrainLength:       es.str(tag.EchoTrainLength),
			FlipAngle:             es.str(tag.FlipAngle),
			MagneticFieldStrength: es.str(tag.MagneticFieldStrength),
			ImagedNucleus:         es.str(tag.ImagedNucleus),
		},
	}
	se.Number, _ = es.int(tag.SeriesNumber)
	in := &Instance{
		SOPInstanceUID:    es.str(tag.SOPInstanceUID),
		SOPClassUID:       es.str(tag.SOPClassUID),
		TransferSyntaxUID: w.ts.UID,
		Photometric:       es.str(tag.PhotometricInterpretation),
	}
	in.Number, _ = es.int(tag.InstanceNumber)
	switch {
	case study.InstanceUID == "":
		return nil, fmt.Errorf("%w: no StudyInstanceUID", ErrMalformed)
	case se.InstanceUID == "":
		return nil, fmt.Errorf("%w: no SeriesInstanceUID", ErrMalformed)
	case in.SOPInstanceUID == "":
		return nil, fmt.Errorf("%w: no SOPInstanceUID", ErrMalformed)
	}
	if c, ok := es.float(tag.WindowCenter); ok {
		in.WindowCenter = c
	}
	if wd, ok := es.float(tag.WindowWidth); ok {
		in.WindowWidth = wd
	}

	pf, err := pixelFormatOf(es, w.pixelLen)
	if err != nil {
		return nil, err
	}
	in.Rows, in.Cols, in.Frames, in.Samples = pf.rows, pf.cols, pf.frames, pf.samples
	in.BitsAllocated, in.BitsStored, in.Signed = pf.bitsAllocated, pf.bitsStored, pf.signed

	frames := frameInfo(es, pf.frames)
	in.RescaleSlope, in.RescaleIntercept = frames[0].slope, frames[0].intercept
	in.Geometry, in.HasGeometry = frames[0].geom, frames[0].hasGeom
	if pf.frames > 1 && len(frames) == pf.frames && frames[0].fromGroups {
		in.FrameGeometry = make([]SliceGeometry, pf.frames)
		for i := range frames {
			if !frames[i].hasGeom {
				in.FrameGeometry = nil
				break
			}
			in.FrameGeometry[i] = frames[i].geom
		}
	}
	if !opt.SkipPixels {
		in.Pixels = make([]float32, pf.frames*pf.rows*pf.cols*pf.samples)
		decodeNative(in.Pixels, w.data[w.pixelOff:w.pixelOff+w.pixelLen], w.ts.bo, pf, frames)
	}
	se.Instances = []*Instance{in}
	return &StudyData{Study: study, Series: []*Series{se}}, nil
}

// frame is what functional groups (or the top level) say about one frame.
type frame struct {
	geom             SliceGeometry
	hasGeom          bool
	slope, intercept float64
	fromGroups       bool // placed by per-frame functional groups
}

// frameInfo resolves each frame's geometry and rescale: per-frame functional
// group first, then shared, then the top-level attributes. Without per-frame
// groups every frame is alike and one entry is returned, so the work and
// memory stay proportional to the items actually present in the file.
func frameInfo(es elems, n int) []frame {
	shared := es.item(tag.SharedFunctionalGroupsSequence)
	perFrame := es.items(tag.PerFrameFunctionalGroupsSequence)
	if len(perFrame) != n {
		perFrame = nil
	}
	type attr struct{ seq, tag tag.Tag }
	var (
		pos   = attr{tag.PlanePositionSequence, tag.ImagePositionPatient}
		ori   = attr{tag.PlaneOrientationSequence, tag.ImageOrientationPatient}
		space = attr{tag.PixelMeasuresSequence, tag.PixelSpacing}
		thick = attr{tag.PixelMeasuresSequence, tag.SliceThickness}
		slope = attr{tag.PixelValueTransformationSequence, tag.RescaleSlope}
		icpt  = attr{tag.PixelValueTransformationSequence, tag.RescaleIntercept}
	)
	// Shared groups, then the top level.
	common := map[attr][]float64{}
	for _, a := range []attr{pos, ori, space, thick, slope, icpt} {
		if v := shared.item(a.seq).floats(a.tag); v != nil {
			common[a] = v
		} else {
			common[a] = es.floats(a.tag)
		}
	}
	build := func(item elems) frame {
		var f frame
		get := func(a attr) []float64 {
			if item != nil {
				if v := item.item(a.seq).floats(a.tag); v != nil {
					if a == pos {
						f.fromGroups = true
					}
					return v
				}
			}
			return common[a]
		}
		p, o, sp, th := get(pos), get(ori), get(space), get(thick)
		if len(p) == 3 && len(o) == 6 && len(sp) == 2 {
			f.hasGeom = true
			copy(f.geom.Position[:], p)
			copy(f.geom.Orientation[:], o)
			copy(f.geom.PixelSpacing[:], sp)
		}
		if len(th) > 0 {
			f.geom.SliceThickness = th[0]
		}
		f.slope, f.intercept = 1, 0
		if s := get(slope); len(s) > 0 && s[0] != 0 {
			f.slope = s[0]
		}
		if c := get(icpt); len(c) > 0 {
			f.intercept = c[0]
		}
		return f
	}
	if perFrame == nil {
		return []frame{build(nil)}
	}
	out := make([]frame, n)
	for i := range out {
		out[i] = build(perFrame[i])
	}
	return out
}

// Volume stacks the series' frames in slice order into one
// slices×rows×cols array; every instance must share rows, cols and have one
// sample per pixel.
func (s *Series) Volume() (vol []float32, slices, rows, cols int, err error) {
	if len(s.Instances) == 0 {
		return nil, 0, 0, 0, fmt.Errorf("series %s has no instances", quoteUID(s.InstanceUID))
	}
	rows, cols = s.Instances[0].Rows, s.Instances[0].Cols
	for _, in := range s.Instances {
		switch {
		case in.Rows != rows || in.Cols != cols:
			return nil, 0, 0, 0, fmt.Errorf("series %s mixes %d×%d and %d×%d images", quoteUID(s.InstanceUID), rows, cols, in.Rows, in.Cols)
		case in.Samples != 1:
			return nil, 0, 0, 0, fmt.Errorf("series %s: %s has %d samples per pixel", quoteUID(s.InstanceUID), in.Path, in.Samples)
		case in.Pixels == nil:
			return nil, 0, 0, 0, fmt.Errorf("series %s: %s was read without pixels", quoteUID(s.InstanceUID), in.Path)
		}
		slices += in.Frames
	}
	vol = make([]float32, 0, slices*rows*cols)
	for _, in := range s.Instances {
		vol = append(vol, in.Pixels...)
	}
	return vol, slices, rows, cols, nil
}

// Geometry lists every slice's geometry in Volume order, or nil when any
// instance lacks it.
func (s *Series) Geometry() []SliceGeometry {
	var g []SliceGeometry
	for _, in := range s.Instances {
		switch {
		case in.FrameGeometry != nil:
			g = append(g, in.FrameGeometry...)
		case in.HasGeometry && in.Frames == 1:
			g = append(g, in.Geometry)
		default:
			return nil
		}
	}
	return g
}
