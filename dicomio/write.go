package dicomio

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
	"github.com/suyashkumar/dicom/pkg/uid"
)

// MRImageStorage is the SOP class of every image written.
const MRImageStorage = "1.2.840.10008.5.1.4.1.1.4"

// Kinds of output series.
const (
	KindMean       = "mean"
	KindStd        = "std"
	KindZeroFilled = "zero-filled"
)

// OutputSeries is one derived series: a reconstruction (posterior mean), its
// uncertainty map (posterior standard deviation) or the zero-filled input.
type OutputSeries struct {
	Kind   string // KindMean, KindStd or KindZeroFilled
	Method string // e.g. "MMPS"
	Prior  string // prior name and version, e.g. "knee-em8"
	// Description is the SeriesDescription; "" gives "kspaced <Method> <Kind>".
	Description string
	// DescriptionSuffix ends the SeriesDescription whatever its length (the
	// description is shortened to fit 64 characters), e.g. " [QC: check]".
	DescriptionSuffix string
	// Comments are each slice's ImageComments (one entry per slice, or one
	// for all; "" writes none), e.g. the QC flags a reader must see.
	Comments []string
	// Derivation is the DerivationDescription; "" gives one built from
	// method, prior and kind.
	Derivation string
	// Number is the SeriesNumber; 0 gives Source's number × 100 (or 9000)
	// plus 1 for mean, 2 for std, 3 for zero-filled.
	Number             int
	Images             []float32 // Slices×Rows×Cols, row-major, finite
	Slices, Rows, Cols int
	// Geometry places each slice; nil takes Source's (rescaled to this
	// matrix when the field of view is the same and slice counts match),
	// else an axial stack of 1 mm voxels centred on the origin.
	Geometry []SliceGeometry
	Source   *Series // the acquired series this derives from, if known
	// Acquisition gives the MR Image module's sequence attributes; nil takes
	// Source's, else marks the image as research-mode ("RM", "NONE", "2D").
	Acquisition *MRAcquisition
	// Scale multiplies Images before storing (0 means 1): the values a
	// viewer sees are Images × Scale. See DisplayScale.
	Scale float64
}

// WriteOptions hold what is common to every series written.
type WriteOptions struct {
	// UIDRoot roots new UIDs; "" gives "2.25." + a random UUID as decimal.
	UIDRoot string
	// FrameOfReferenceUID of the new series; "" takes Source's, else a new one.
	FrameOfReferenceUID string
	// Equipment written (Manufacturer "" gives "kspaced").
	Manufacturer, ModelName, SoftwareVersions string
	// Time stamps the series and instances; zero means now.
	Time time.Time
	// Related series (for example the mean written before a std map) are
	// listed in RelatedSeriesSequence next to Source.
	Related []SeriesRef
}

// SeriesRef describes a series that was written.
type SeriesRef struct {
	Dir                                                      string // dir/<SeriesInstanceUID>
	StudyInstanceUID, SeriesInstanceUID, FrameOfReferenceUID string
	Number                                                   int
	Description                                              string
	SOPInstanceUIDs, Files                                   []string
	// Stored value × RescaleSlope + RescaleIntercept = Images × Scale.
	RescaleSlope, RescaleIntercept float64
	WindowCenter, WindowWidth      float64
}

// NewStudy starts a study for a scan that arrived without one (k-space
// only): new StudyInstanceUID, date and time from t (zero: now).
func NewStudy(p Patient, description, uidRoot string, t time.Time) (Study, error) {
	u, err := NewUID(uidRoot)
	if err != nil {
		return Study{}, err
	}
	if t.IsZero() {
		t = time.Now()
	}
	return Study{
		InstanceUID: u,
		// StudyID is for people (worklists, DICOMDIR); the UID identifies.
		ID:          "KS" + t.Format("060102150405"),
		Date:        t.Format("20060102"),
		Time:        t.Format("150405"),
		Description: description,
		Patient:     p,
	}, nil
}

// DisplayScale is the power of ten that brings the largest magnitude in
// images into [1000, 10000). Some viewers (dcmtk among them) truncate
// rescaled values to integers, so images in arbitrary small units display
// as a few grey levels unless scaled; use one scale for all series of a scan
// so mean and std stay comparable.
func DisplayScale(images []float32) float64 {
	m := 0.0
	for _, v := range images {
		if a := math.Abs(float64(v)); a > m && !math.IsInf(a, 0) {
			m = a
		}
	}
	if m == 0 || math.IsNaN(m) {
		return 1
	}
	return math.Pow(10, 3-math.Floor(math.Log10(m)))
}

// WriteScan writes a scan's series (typically mean and std) into one study
// with one frame of reference, each listing the ones before it as related.
// Each series is atomic on its own.
func WriteScan(dir string, study Study, series []OutputSeries, opt WriteOptions) ([]SeriesRef, error) {
	if opt.FrameOfReferenceUID == "" {
		for _, s := range series {
			if s.Source != nil && s.Source.FrameOfReferenceUID != "" {
				opt.FrameOfReferenceUID = s.Source.FrameOfReferenceUID
				break
			}
		}
	}
	if opt.FrameOfReferenceUID == "" {
		u, err := NewUID(opt.UIDRoot)
		if err != nil {
			return nil, err
		}
		opt.FrameOfReferenceUID = u
	}
	if opt.Time.IsZero() {
		opt.Time = time.Now()
	}
	var refs []SeriesRef
	related := opt.Related
	for _, s := range series {
		o := opt
		o.Related = related
		ref, err := WriteSeries(dir, study, s, o)
		if err != nil {
			return refs, err
		}
		refs = append(refs, ref)
		related = append(related[:len(related):len(related)], ref)
	}
	return refs, nil
}

// WriteSeries writes s as one MR Image Storage series of study into
// dir/<SeriesInstanceUID>/IM0001.dcm…, atomically: the folder appears whole
// or not at all.
func WriteSeries(dir string, study Study, s OutputSeries, opt WriteOptions) (SeriesRef, error) {
	if err := s.check(study); err != nil {
		return SeriesRef{}, fmt.Errorf("write series: %w", err)
	}
	if opt.Time.IsZero() {
		opt.Time = time.Now()
	}
	scale := s.Scale
	if scale == 0 {
		scale = 1
	}
	stored := make([]int16, len(s.Images))
	q, err := quantize(stored, s.Images, scale)
	if err != nil {
		return SeriesRef{}, fmt.Errorf("write series: %w", err)
	}
	geom := s.geometry()

	ref := SeriesRef{
		StudyInstanceUID:    study.InstanceUID,
		FrameOfReferenceUID: opt.FrameOfReferenceUID,
		Number:              s.number(),
		Description:         s.description(),
		RescaleSlope:        q.slope,
		RescaleIntercept:    q.intercept,
		WindowCenter:        parseDS(q.center),
		WindowWidth:         parseDS(q.width),
	}
	if ref.FrameOfReferenceUID == "" && s.Source != nil {
		ref.FrameOfReferenceUID = s.Source.FrameOfReferenceUID
	}
	uids := make([]string, 0, s.Slices+2)
	for len(uids) < s.Slices+2 {
		u, err := NewUID(opt.UIDRoot)
		if err != nil {
			return SeriesRef{}, err
		}
		uids = append(uids, u)
	}
	ref.SeriesInstanceUID = uids[0]
	if ref.FrameOfReferenceUID == "" {
		ref.FrameOfReferenceUID = uids[1]
	}
	ref.SOPInstanceUIDs = uids[2:]
	ref.Dir = filepath.Join(dir, ref.SeriesInstanceUID)

	width := 4
	if n := len(strconv.Itoa(s.Slices)); n > width {
		width = n
	}
	names := make([]string, s.Slices)
	for i := range names {
		names[i] = fmt.Sprintf("IM%0*d.dcm", width, i+1)
	}
	plane := s.Rows * s.Cols
	err = writeDirAtomic(dir, ref.SeriesInstanceUID, func(tmp string) error {
		for i := 0; i < s.Slices; i++ {
			ds, err := s.dataset(study, opt, ref, q, geom[i], i, stored[i*plane:(i+1)*plane])
			if err != nil {
				return err
			}
			if err := writeFileSync(filepath.Join(tmp, names[i]), ds); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return SeriesRef{}, fmt.Errorf("write series %s: %w", ref.SeriesInstanceUID, err)
	}
	for _, n := range names {
		ref.Files = append(ref.Files, filepath.Join(ref.Dir, n))
	}
	return ref, nil
}

func (s *OutputSeries) check(study Study) error {
	switch s.Kind {
	case KindMean, KindStd, KindZeroFilled:
	default:
		return fmt.Errorf("kind %q is not %q, %q or %q", s.Kind, KindMean, KindStd, KindZeroFilled)
	}
	if err := validUID(study.InstanceUID); err != nil {
		return fmt.Errorf("study instance UID (use NewStudy for a scan without a study): %w", err)
	}
	if s.Slices < 1 || s.Rows < 1 || s.Cols < 1 || s.Rows > 65535 || s.Cols > 65535 {
		return fmt.Errorf("shape %d×%d×%d", s.Slices, s.Rows, s.Cols)
	}
	if len(s.Images) != s.Slices*s.Rows*s.Cols {
		return fmt.Errorf("%d image values for %d×%d×%d", len(s.Images), s.Slices, s.Rows, s.Cols)
	}
	if s.Geometry != nil && len(s.Geometry) != s.Slices {
		return fmt.Errorf("%d slice geometries for %d slices", len(s.Geometry), s.Slices)
	}
	for i, g := range s.Geometry {
		vals := append(append(append(g.Position[:0:0], g.Position[:]...), g.Orientation[:]...), g.PixelSpacing[:]...)
		for _, v := range append(vals, g.SliceThickness) {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("slice %d geometry is not finite: %+v", i, g)
			}
		}
		if g.PixelSpacing[0] <= 0 || g.PixelSpacing[1] <= 0 {
			return fmt.Errorf("slice %d pixel spacing %v", i, g.PixelSpacing)
		}
	}
	if math.IsNaN(s.Scale) || math.IsInf(s.Scale, 0) || s.Scale < 0 {
		return fmt.Errorf("scale %v", s.Scale)
	}
	for i, v := range s.Images {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("image value %d is %v", i, v)
		}
	}
	return nil
}

func (s *OutputSeries) number() int {
	if s.Number != 0 {
		return s.Number
	}
	base := 9000
	if s.Source != nil && s.Source.Number > 0 && s.Source.Number < 20000000 {
		base = s.Source.Number * 100
	}
	switch s.Kind {
	case KindMean:
		return base + 1
	case KindStd:
		return base + 2
	}
	return base + 3
}

func (s *OutputSeries) method() string {
	if s.Method == "" {
		return "recon"
	}
	return s.Method
}

func (s *OutputSeries) description() string {
	d := s.Description
	if d == "" {
		d = "kspaced " + s.method() + " " + s.Kind
	}
	suf := truncate(clean("LT", s.DescriptionSuffix), 64) // LT: cleaned, spaces kept
	return clean("LO", strings.TrimSpace(truncate(d, 64-len([]rune(suf))))+suf)
}

// comment is slice i's ImageComments.
func (s *OutputSeries) comment(i int) string {
	switch {
	case len(s.Comments) == 1:
		return clean("LT", s.Comments[0])
	case i < len(s.Comments):
		return clean("LT", s.Comments[i])
	}
	return ""
}

func (s *OutputSeries) derivation() string {
	if s.Derivation != "" {
		return clean("ST", s.Derivation)
	}
	var what string
	switch s.Kind {
	case KindMean:
		what = "posterior mean (reconstruction)"
	case KindStd:
		what = "pixelwise posterior standard deviation (uncertainty map)"
	default:
		what = "zero-filled inverse Fourier transform"
	}
	d := "kspaced " + s.method() + " " + what + " from undersampled k-space"
	if s.Prior != "" {
		d += "; prior " + s.Prior
	}
	if s.Scale != 0 && s.Scale != 1 {
		d += "; values scaled by " + formatDS(s.Scale)
	}
	return clean("ST", d)
}

// imageType is DERIVED\SECONDARY, an MR value 3 and a kspaced value 4.
func (s *OutputSeries) imageType() []string {
	v4 := map[string]string{KindMean: "MEAN", KindStd: "STD", KindZeroFilled: "ZERO FILLED"}[s.Kind]
	if s.Kind != KindZeroFilled {
		v4 = clean("CS", s.method()+" "+v4)
	}
	return []string{"DERIVED", "SECONDARY", "OTHER", v4}
}

// geometry resolves per-slice geometry (see OutputSeries.Geometry).
func (s *OutputSeries) geometry() []SliceGeometry {
	if s.Geometry != nil {
		return s.Geometry
	}
	if s.Source != nil {
		if g := s.Source.Geometry(); len(g) == s.Slices && len(s.Source.Instances) > 0 {
			in := s.Source.Instances[0]
			out := make([]SliceGeometry, len(g))
			for i, sg := range g {
				out[i] = refit(sg, in.Rows, in.Cols, s.Rows, s.Cols)
			}
			return out
		}
	}
	out := make([]SliceGeometry, s.Slices)
	for i := range out {
		out[i] = SliceGeometry{
			Position: [3]float64{
				-float64(s.Cols-1) / 2,
				-float64(s.Rows-1) / 2,
				float64(i) - float64(s.Slices-1)/2,
			},
			Orientation:    [6]float64{1, 0, 0, 0, 1, 0},
			PixelSpacing:   [2]float64{1, 1},
			SliceThickness: 1,
		}
	}
	return out
}

// refit keeps a slice's field of view while changing its matrix from
// r0×c0 to r×c: spacing scales, and the first pixel's centre moves with the
// half-pixel offset from the field-of-view corner.
func refit(g SliceGeometry, r0, c0, r, c int) SliceGeometry {
	if r0 == r && c0 == c || r0 < 1 || c0 < 1 {
		return g
	}
	rowDir := g.Orientation[0:3] // along a row: increasing column index
	colDir := g.Orientation[3:6] // down a column: increasing row index
	out := g
	out.PixelSpacing[0] = g.PixelSpacing[0] * float64(r0) / float64(r)
	out.PixelSpacing[1] = g.PixelSpacing[1] * float64(c0) / float64(c)
	for k := 0; k < 3; k++ {
		corner := g.Position[k] - 0.5*g.PixelSpacing[1]*rowDir[k] - 0.5*g.PixelSpacing[0]*colDir[k]
		out.Position[k] = corner + 0.5*out.PixelSpacing[1]*rowDir[k] + 0.5*out.PixelSpacing[0]*colDir[k]
	}
	return out
}

// quantization maps Images × scale to int16: value = stored × slope + intercept.
type quantization struct {
	slope, intercept float64
	slopeS, icptS    string
	center, width    string
}

// quantize stores src × scale in dst. Non-negative images keep zero at
// stored 0 (intercept 0, slope = max/32767) when that still resolves 1e-4
// of their range; others use the full int16 range around its midpoint. The slope and intercept are rounded to their DS text first so the
// stored values match what a reader reconstructs. The window maps the lower
// end (0 or the minimum) to the 99.5th percentile with the LINEAR function
// of PS3.3 C.11.2.1.2.1, whose ramp is width − 1 wide, so width stays ≥ 1
// whatever the units.
func quantize(dst []int16, src []float32, scale float64) (quantization, error) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range src {
		x := float64(v) * scale
		lo = math.Min(lo, x)
		hi = math.Max(hi, x)
	}
	if math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return quantization{}, fmt.Errorf("scaled image range [%v, %v] is not finite", lo, hi)
	}
	var q quantization
	if lo >= 0 && hi/65534 <= 1e-4*(hi-lo) {
		q.slopeS, q.icptS = formatDS(hi/32767), "0"
	} else {
		q.slopeS, q.icptS = formatDS((hi-lo)/65534), formatDS((hi+lo)/2)
	}
	q.slope, q.intercept = parseDS(q.slopeS), parseDS(q.icptS)
	if q.slope <= 0 || math.IsInf(q.slope, 0) {
		// Constant image: the intercept holds it, any slope will do.
		q.slopeS, q.slope = "1", 1
	}
	for i, v := range src {
		s := math.Round((float64(v)*scale - q.intercept) / q.slope)
		dst[i] = int16(math.Max(-32768, math.Min(32767, s)))
	}
	wlo := lo
	if lo >= 0 && lo <= 0.1*hi {
		wlo = 0
	}
	whi := percentile(src, scale, lo, hi, 0.995)
	if whi <= wlo {
		whi = hi
	}
	c := (wlo+whi)/2 + 0.5
	w := whi - wlo + 1
	q.center, q.width = formatDS(c), formatDS(w)
	return q, nil
}

// percentile estimates the p-quantile of src × scale from a 4096-bin
// histogram over [lo, hi]; the result is a bin's upper edge.
func percentile(src []float32, scale, lo, hi, p float64) float64 {
	if hi <= lo {
		return hi
	}
	const bins = 4096
	var h [bins]int
	for _, v := range src {
		b := int((float64(v)*scale - lo) / (hi - lo) * bins)
		h[min(max(b, 0), bins-1)]++
	}
	target := int(math.Ceil(p * float64(len(src))))
	n := 0
	for b := range h {
		n += h[b]
		if n >= target {
			return lo + (hi-lo)*float64(b+1)/bins
		}
	}
	return hi
}

// builder collects elements, remembering the first error.
type builder struct {
	els []*dicom.Element
	err error
}

func (b *builder) add(t tag.Tag, v any) {
	if b.err != nil {
		return
	}
	e, err := dicom.NewElement(t, v)
	if err != nil {
		b.err = fmt.Errorf("element %v: %w", t, err)
		return
	}
	b.els = append(b.els, e)
}

// str adds a string element; no values writes it empty (Type 2).
func (b *builder) str(t tag.Tag, vals ...string) {
	if len(vals) == 0 {
		vals = []string{""}
	}
	b.add(t, vals)
}

func (b *builder) ds(t tag.Tag, vals ...float64) {
	s := make([]string, len(vals))
	for i, v := range vals {
		s[i] = formatDS(v)
	}
	b.str(t, s...)
}

func (b *builder) seq(t tag.Tag, items ...[]*dicom.Element) {
	for _, it := range items {
		sortElements(it)
	}
	if items == nil {
		items = [][]*dicom.Element{}
	}
	b.add(t, items)
}

// sorted returns the elements in tag order: the library writes them in the
// order given and DICOM requires ascending tags.
func (b *builder) sorted() ([]*dicom.Element, error) {
	sortElements(b.els)
	return b.els, b.err
}

func sortElements(els []*dicom.Element) {
	sort.SliceStable(els, func(i, j int) bool { return els[i].Tag.Compare(els[j].Tag) < 0 })
}

// dataset builds instance i of the series.
func (s *OutputSeries) dataset(study Study, opt WriteOptions, ref SeriesRef, q quantization, g SliceGeometry, i int, pix []int16) (dicom.Dataset, error) {
	var b builder
	sop := ref.SOPInstanceUIDs[i]
	date, tm := opt.Time.Format("20060102"), opt.Time.Format("150405")

	// File meta group.
	b.add(tag.FileMetaInformationVersion, []byte{0, 1})
	b.str(tag.MediaStorageSOPClassUID, MRImageStorage)
	b.str(tag.MediaStorageSOPInstanceUID, sop)
	b.str(tag.TransferSyntaxUID, uid.ExplicitVRLittleEndian)
	b.str(tag.ImplementationClassUID, implementationClassUID)
	b.str(tag.ImplementationVersionName, implementationVersion)

	p := study.Patient

	// SOP Common, General Image, General Series, General Study, Patient.
	b.str(tag.ImageType, s.imageType()...)
	b.str(tag.InstanceCreationDate, date)
	b.str(tag.InstanceCreationTime, tm)
	b.str(tag.SOPClassUID, MRImageStorage)
	b.str(tag.SOPInstanceUID, sop)
	b.str(tag.StudyDate, clean("DA", study.Date))
	b.str(tag.SeriesDate, date)
	b.str(tag.ContentDate, date)
	b.str(tag.StudyTime, clean("TM", study.Time))
	b.str(tag.SeriesTime, tm)
	b.str(tag.ContentTime, tm)
	b.str(tag.AccessionNumber, clean("SH", study.AccessionNumber))
	b.str(tag.Modality, "MR")
	man := opt.Manufacturer
	if man == "" {
		man = "kspaced"
	}
	b.str(tag.Manufacturer, clean("LO", man))
	b.str(tag.ReferringPhysicianName, clean("PN", study.ReferringPhysician))
	if d := clean("LO", study.Description); d != "" {
		b.str(tag.StudyDescription, d)
	}
	b.str(tag.SeriesDescription, ref.Description)
	if m := clean("LO", opt.ModelName); m != "" {
		b.str(tag.ManufacturerModelName, m)
	}
	var related [][]*dicom.Element
	if s.Source != nil && validUID(s.Source.InstanceUID) == nil {
		related = append(related, relatedItem(study.InstanceUID, s.Source.InstanceUID))
	}
	for _, r := range opt.Related {
		if validUID(r.SeriesInstanceUID) == nil {
			st := r.StudyInstanceUID
			if st == "" {
				st = study.InstanceUID
			}
			related = append(related, relatedItem(st, r.SeriesInstanceUID))
		}
	}
	if related != nil {
		b.seq(tag.RelatedSeriesSequence, related...)
	}
	b.str(tag.DerivationDescription, s.derivation())
	if c := s.comment(i); c != "" {
		b.str(tag.ImageComments, c)
	}
	if it := s.sourceImage(i); it != nil {
		b.seq(tag.SourceImageSequence, it)
	}
	b.str(tag.PatientName, clean("PN", p.Name))
	b.str(tag.PatientID, clean("LO", p.ID))
	b.str(tag.PatientBirthDate, clean("DA", p.BirthDate))
	sex := clean("CS", p.Sex)
	if sex != "M" && sex != "F" && sex != "O" {
		sex = ""
	}
	b.str(tag.PatientSex, sex)

	// MR Image module: acquisition attributes.
	acq := MRAcquisition{ScanningSequence: "RM", SequenceVariant: "NONE", MRAcquisitionType: "2D"}
	if s.Acquisition != nil {
		acq = *s.Acquisition
	} else if s.Source != nil && s.Source.Acquisition.ScanningSequence != "" {
		acq = s.Source.Acquisition
	}
	seqs := cleanMulti("CS", acq.ScanningSequence)
	if len(seqs) == 0 {
		seqs = []string{"RM"}
	}
	vars := cleanMulti("CS", acq.SequenceVariant)
	if len(vars) == 0 {
		vars = []string{"NONE"}
	}
	b.str(tag.ScanningSequence, seqs...)
	b.str(tag.SequenceVariant, vars...)
	b.str(tag.ScanOptions, cleanMulti("CS", acq.ScanOptions)...)
	b.str(tag.MRAcquisitionType, clean("CS", acq.MRAcquisitionType))
	if v := clean("SH", acq.SequenceName); v != "" {
		b.str(tag.SequenceName, v)
	}
	b.ds(tag.SliceThickness, g.SliceThickness)
	b.str(tag.RepetitionTime, clean("DS", acq.RepetitionTime))
	b.str(tag.EchoTime, clean("DS", acq.EchoTime))
	if v := clean("DS", acq.InversionTime); v != "" {
		b.str(tag.InversionTime, v)
	}
	if v := clean("SH", acq.ImagedNucleus); v != "" {
		b.str(tag.ImagedNucleus, v)
	}
	if v := clean("DS", acq.MagneticFieldStrength); v != "" {
		b.str(tag.MagneticFieldStrength, v)
	}
	b.str(tag.EchoTrainLength, clean("IS", acq.EchoTrainLength))
	if sv := clean("LO", opt.SoftwareVersions); sv != "" {
		b.str(tag.SoftwareVersions, sv)
	}
	if s.Source != nil {
		if v := clean("LO", s.Source.ProtocolName); v != "" {
			b.str(tag.ProtocolName, v)
		}
		if v := clean("CS", s.Source.BodyPartExamined); v != "" {
			b.str(tag.BodyPartExamined, v)
		}
	}
	if v := clean("DS", acq.FlipAngle); v != "" {
		b.str(tag.FlipAngle, v)
	}
	pos := ""
	if s.Source != nil {
		pos = clean("CS", s.Source.PatientPosition)
	}
	b.str(tag.PatientPosition, pos)

	// Relationship, Image Plane.
	b.str(tag.StudyInstanceUID, study.InstanceUID)
	b.str(tag.SeriesInstanceUID, ref.SeriesInstanceUID)
	b.str(tag.StudyID, clean("SH", study.ID))
	b.str(tag.SeriesNumber, strconv.Itoa(ref.Number))
	b.str(tag.InstanceNumber, strconv.Itoa(i+1))
	b.ds(tag.ImagePositionPatient, g.Position[:]...)
	b.ds(tag.ImageOrientationPatient, g.Orientation[:]...)
	b.str(tag.FrameOfReferenceUID, ref.FrameOfReferenceUID)
	b.str(tag.Laterality)
	b.str(tag.PositionReferenceIndicator)
	n := normal(g.Orientation)
	b.ds(tag.SliceLocation, g.Position[0]*n[0]+g.Position[1]*n[1]+g.Position[2]*n[2])

	// Image Pixel, VOI LUT, rescale.
	b.add(tag.SamplesPerPixel, []int{1})
	b.str(tag.PhotometricInterpretation, "MONOCHROME2")
	b.add(tag.Rows, []int{s.Rows})
	b.add(tag.Columns, []int{s.Cols})
	b.ds(tag.PixelSpacing, g.PixelSpacing[:]...)
	b.add(tag.BitsAllocated, []int{16})
	b.add(tag.BitsStored, []int{16})
	b.add(tag.HighBit, []int{15})
	b.add(tag.PixelRepresentation, []int{1})
	b.str(tag.BurnedInAnnotation, "NO")
	b.str(tag.WindowCenter, q.center)
	b.str(tag.WindowWidth, q.width)
	b.str(tag.RescaleIntercept, q.icptS)
	b.str(tag.RescaleSlope, q.slopeS)
	raw := make([]byte, 2*len(pix))
	for k, v := range pix {
		binary.LittleEndian.PutUint16(raw[2*k:], uint16(v))
	}
	b.add(tag.PixelData, dicom.PixelDataInfo{IntentionallyUnprocessed: true, UnprocessedValueData: raw})

	// Text outside ASCII (names, descriptions) is written as UTF-8.
	for _, e := range b.els {
		if v, ok := e.Value.GetValue().([]string); ok && !isASCII(strings.Join(v, "")) {
			b.str(tag.SpecificCharacterSet, "ISO_IR 192")
			break
		}
	}
	els, err := b.sorted()
	return dicom.Dataset{Elements: els}, err
}

func relatedItem(study, series string) []*dicom.Element {
	var b builder
	b.str(tag.StudyInstanceUID, study)
	b.str(tag.SeriesInstanceUID, series)
	b.seq(tag.PurposeOfReferenceCodeSequence)
	return b.els
}

// sourceImage references the source image of slice i when the source has
// one image (or frame) per output slice.
func (s *OutputSeries) sourceImage(i int) []*dicom.Element {
	if s.Source == nil {
		return nil
	}
	ins := s.Source.Instances
	var in *Instance
	frame := 0
	switch {
	case len(ins) == s.Slices && ins[i].Frames == 1:
		in = ins[i]
	case len(ins) == 1 && ins[0].Frames == s.Slices && s.Slices > 1:
		in, frame = ins[0], i+1
	default:
		return nil
	}
	if validUID(in.SOPClassUID) != nil || validUID(in.SOPInstanceUID) != nil {
		return nil
	}
	var b builder
	b.str(tag.ReferencedSOPClassUID, in.SOPClassUID)
	b.str(tag.ReferencedSOPInstanceUID, in.SOPInstanceUID)
	if frame > 0 {
		b.str(tag.ReferencedFrameNumber, strconv.Itoa(frame))
	}
	if b.err != nil {
		return nil
	}
	return b.els
}

// writeFileSync writes one dataset and syncs it to disk.
func writeFileSync(path string, ds dicom.Dataset) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<16)
	err = dicom.Write(bw, ds)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
