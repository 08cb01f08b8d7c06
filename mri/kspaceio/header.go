package kspaceio

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/kspaced/kspaced/mri"
)

// MaxHeaderBytes bounds the ISMRMRD XML header read from any file.
const MaxHeaderBytes = 16 << 20

// gyromagnetic ratio of ¹H in Hz/T, to derive B0 from the resonance frequency.
const gammaHzPerT = 42.57747892e6

// ismrmrdNS is the ISMRMRD XML namespace written into headers we build.
const ismrmrdNS = "http://www.ismrm.org/ISMRMRD"

// Limit is one ISMRMRD encoding limit (minimum, maximum, centre index).
// Known is false when the header has no such limit.
type Limit struct {
	Min, Max, Center int
	Known            bool
}

// Meta is what kspaced keeps of the ISMRMRD XML header (either format).
// Dates and times are converted to DICOM form (YYYYMMDD, HHMMSS[.f]) when the
// header holds them in the xs:date / xs:time form the ISMRMRD schema uses.
// Matrices and FOVs are in ISMRMRD (x, y, z) order: x is the readout.
type Meta struct {
	PatientName, PatientID, PatientBirthDate, PatientSex                               string
	StudyInstanceUID, StudyID, AccessionNumber, StudyDate, StudyTime, StudyDescription string
	SeriesDescription, ProtocolName, FrameOfReferenceUID                               string
	SystemVendor, SystemModel, InstitutionName                                         string
	// FieldStrengthT is systemFieldStrength_T, or derived from the ¹H
	// resonance frequency when only that is given.
	FieldStrengthT             float64
	EncodedMatrix, ReconMatrix [3]int
	EncodedFOVmm, ReconFOVmm   [3]float64
	// AccelerationY/Z are the parallel-imaging factors, 0 when not stated.
	AccelerationY, AccelerationZ int
	CalibrationMode              string
	TR, TE, TI, FlipAngle        float64 // ms, ms, ms, degrees (zero when absent)

	PatientPosition        string  // e.g. HFS
	PatientWeightKg        float64 // 0 when absent
	ReferringPhysicianName string
	BodyPartExamined       string
	MeasurementID          string
	SequenceName           string
	StationName            string
	Trajectory             string // "cartesian", "radial", …
	// H1ResonanceHz is experimentalConditions/H1resonanceFrequency_Hz.
	H1ResonanceHz int64
	// LimitsE1/E2 are the kspace_encoding_step_1/2 encoding limits; fastMRI
	// derives its k-space padding from LimitsE1.
	LimitsE1, LimitsE2 Limit
}

// The XML structs follow the ISMRMRD schema (ismrmrd.xsd), element order
// included, so that Marshal writes a schema-ordered header.
type xmlHeader struct {
	XMLName     xml.Name        `xml:"ismrmrdHeader"`
	Xmlns       string          `xml:"xmlns,attr,omitempty"`
	Subject     *xmlSubject     `xml:"subjectInformation,omitempty"`
	Study       *xmlStudy       `xml:"studyInformation,omitempty"`
	Measurement *xmlMeasurement `xml:"measurementInformation,omitempty"`
	System      *xmlSystem      `xml:"acquisitionSystemInformation,omitempty"`
	Conditions  *xmlConditions  `xml:"experimentalConditions,omitempty"`
	Encoding    []xmlEncoding   `xml:"encoding"`
	Sequence    *xmlSequence    `xml:"sequenceParameters,omitempty"`
}

type xmlSubject struct {
	PatientName      string   `xml:"patientName,omitempty"`
	PatientWeightKg  *float64 `xml:"patientWeight_kg,omitempty"`
	PatientID        string   `xml:"patientID,omitempty"`
	PatientBirthdate string   `xml:"patientBirthdate,omitempty"`
	PatientGender    string   `xml:"patientGender,omitempty"`
}

type xmlStudy struct {
	StudyDate              string `xml:"studyDate,omitempty"`
	StudyTime              string `xml:"studyTime,omitempty"`
	StudyID                string `xml:"studyID,omitempty"`
	AccessionNumber        string `xml:"accessionNumber,omitempty"`
	ReferringPhysicianName string `xml:"referringPhysicianName,omitempty"`
	StudyDescription       string `xml:"studyDescription,omitempty"`
	StudyInstanceUID       string `xml:"studyInstanceUID,omitempty"`
	BodyPartExamined       string `xml:"bodyPartExamined,omitempty"`
}

type xmlMeasurement struct {
	MeasurementID       string `xml:"measurementID,omitempty"`
	PatientPosition     string `xml:"patientPosition"`
	ProtocolName        string `xml:"protocolName,omitempty"`
	SequenceName        string `xml:"sequenceName,omitempty"`
	SeriesDescription   string `xml:"seriesDescription,omitempty"`
	FrameOfReferenceUID string `xml:"frameOfReferenceUID,omitempty"`
}

type xmlSystem struct {
	SystemVendor     string   `xml:"systemVendor,omitempty"`
	SystemModel      string   `xml:"systemModel,omitempty"`
	FieldStrengthT   *float64 `xml:"systemFieldStrength_T,omitempty"`
	ReceiverChannels *int     `xml:"receiverChannels,omitempty"`
	InstitutionName  string   `xml:"institutionName,omitempty"`
	StationName      string   `xml:"stationName,omitempty"`
}

type xmlConditions struct {
	H1ResonanceHz int64 `xml:"H1resonanceFrequency_Hz"`
}

type xmlSpace struct {
	Matrix xmlXYZi `xml:"matrixSize"`
	FOV    xmlXYZf `xml:"fieldOfView_mm"`
}

type xmlXYZi struct {
	X int `xml:"x"`
	Y int `xml:"y"`
	Z int `xml:"z"`
}

type xmlXYZf struct {
	X float64 `xml:"x"`
	Y float64 `xml:"y"`
	Z float64 `xml:"z"`
}

type xmlLimit struct {
	Min    int `xml:"minimum"`
	Max    int `xml:"maximum"`
	Center int `xml:"center"`
}

type xmlLimits struct {
	E1 *xmlLimit `xml:"kspace_encoding_step_1,omitempty"`
	E2 *xmlLimit `xml:"kspace_encoding_step_2,omitempty"`
}

type xmlParallel struct {
	E1   int    `xml:"accelerationFactor>kspace_encoding_step_1"`
	E2   int    `xml:"accelerationFactor>kspace_encoding_step_2"`
	Mode string `xml:"calibrationMode,omitempty"`
}

type xmlEncoding struct {
	Encoded    xmlSpace     `xml:"encodedSpace"`
	Recon      xmlSpace     `xml:"reconSpace"`
	Limits     xmlLimits    `xml:"encodingLimits"`
	Trajectory string       `xml:"trajectory"`
	Parallel   *xmlParallel `xml:"parallelImaging,omitempty"`
}

type xmlSequence struct {
	TR   []float64 `xml:"TR"`
	TE   []float64 `xml:"TE"`
	TI   []float64 `xml:"TI"`
	Flip []float64 `xml:"flipAngle_deg"`
}

// errHeader marks every problem found in an XML header, so callers can tell
// a bad header from an I/O failure.
var errHeader = errors.New("ISMRMRD header")

func headerErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errHeader, fmt.Sprintf(format, args...))
}

// parseHeader decodes an ISMRMRD XML header into Meta and checks every number
// kspaced later sizes or indexes anything by. It is pure Go and fuzzed.
func parseHeader(raw []byte) (Meta, error) {
	var m Meta
	if len(raw) > MaxHeaderBytes {
		return m, headerErr("%d bytes, limit %d", len(raw), MaxHeaderBytes)
	}
	// HDF5 fixed-length strings may carry NUL padding.
	raw = bytes.TrimRight(raw, "\x00")
	var h xmlHeader
	if err := xml.Unmarshal(raw, &h); err != nil {
		return m, xmlErr(raw, err)
	}
	if len(h.Encoding) == 0 {
		return m, headerErr("no <encoding> section")
	}
	e := h.Encoding[0]
	for i, sp := range []*xmlSpace{&e.Encoded, &e.Recon} {
		name := [2]string{"encodedSpace", "reconSpace"}[i]
		for j, v := range []int{sp.Matrix.X, sp.Matrix.Y, sp.Matrix.Z} {
			if v < 1 || v > mri.MaxDim {
				return m, headerErr("%s matrixSize %c = %d outside [1, %d]", name, "xyz"[j], v, mri.MaxDim)
			}
		}
		for j, v := range []float64{sp.FOV.X, sp.FOV.Y, sp.FOV.Z} {
			if !(v >= 0 && v < 1e6) {
				return m, headerErr("%s fieldOfView_mm %c = %v is not a finite non-negative length", name, "xyz"[j], v)
			}
		}
	}
	m.EncodedMatrix = [3]int{e.Encoded.Matrix.X, e.Encoded.Matrix.Y, e.Encoded.Matrix.Z}
	m.ReconMatrix = [3]int{e.Recon.Matrix.X, e.Recon.Matrix.Y, e.Recon.Matrix.Z}
	m.EncodedFOVmm = [3]float64{e.Encoded.FOV.X, e.Encoded.FOV.Y, e.Encoded.FOV.Z}
	m.ReconFOVmm = [3]float64{e.Recon.FOV.X, e.Recon.FOV.Y, e.Recon.FOV.Z}
	m.Trajectory = strings.TrimSpace(e.Trajectory)
	var err error
	if m.LimitsE1, err = checkLimit("kspace_encoding_step_1", e.Limits.E1); err != nil {
		return m, err
	}
	if m.LimitsE2, err = checkLimit("kspace_encoding_step_2", e.Limits.E2); err != nil {
		return m, err
	}
	if p := e.Parallel; p != nil {
		if p.E1 < 0 || p.E1 > mri.MaxDim || p.E2 < 0 || p.E2 > mri.MaxDim {
			return m, headerErr("acceleration factors %d×%d outside [0, %d]", p.E1, p.E2, mri.MaxDim)
		}
		m.AccelerationY, m.AccelerationZ = p.E1, p.E2
		m.CalibrationMode = strings.TrimSpace(p.Mode)
	}
	if s := h.Subject; s != nil {
		m.PatientName = strings.TrimSpace(s.PatientName)
		m.PatientID = strings.TrimSpace(s.PatientID)
		m.PatientBirthDate = dicomDate(s.PatientBirthdate)
		m.PatientSex = strings.TrimSpace(s.PatientGender)
		if s.PatientWeightKg != nil {
			if !finiteNonNeg(*s.PatientWeightKg) {
				return m, headerErr("patientWeight_kg is not a finite non-negative number")
			}
			m.PatientWeightKg = *s.PatientWeightKg
		}
	}
	if s := h.Study; s != nil {
		m.StudyDate = dicomDate(s.StudyDate)
		m.StudyTime = dicomTime(s.StudyTime)
		m.StudyID = strings.TrimSpace(s.StudyID)
		m.AccessionNumber = strings.TrimSpace(s.AccessionNumber)
		m.ReferringPhysicianName = strings.TrimSpace(s.ReferringPhysicianName)
		m.StudyDescription = strings.TrimSpace(s.StudyDescription)
		m.StudyInstanceUID = strings.TrimSpace(s.StudyInstanceUID)
		m.BodyPartExamined = strings.TrimSpace(s.BodyPartExamined)
	}
	if s := h.Measurement; s != nil {
		m.MeasurementID = strings.TrimSpace(s.MeasurementID)
		m.PatientPosition = strings.TrimSpace(s.PatientPosition)
		m.ProtocolName = strings.TrimSpace(s.ProtocolName)
		m.SequenceName = strings.TrimSpace(s.SequenceName)
		m.SeriesDescription = strings.TrimSpace(s.SeriesDescription)
		m.FrameOfReferenceUID = strings.TrimSpace(s.FrameOfReferenceUID)
	}
	if c := h.Conditions; c != nil {
		if c.H1ResonanceHz < 0 || c.H1ResonanceHz > 2e10 {
			return m, headerErr("H1resonanceFrequency_Hz %d", c.H1ResonanceHz)
		}
		m.H1ResonanceHz = c.H1ResonanceHz
		m.FieldStrengthT = float64(c.H1ResonanceHz) / gammaHzPerT
	}
	if s := h.System; s != nil {
		m.SystemVendor = strings.TrimSpace(s.SystemVendor)
		m.SystemModel = strings.TrimSpace(s.SystemModel)
		m.InstitutionName = strings.TrimSpace(s.InstitutionName)
		m.StationName = strings.TrimSpace(s.StationName)
		if s.FieldStrengthT != nil {
			if !finiteNonNeg(*s.FieldStrengthT) || *s.FieldStrengthT > 100 {
				return m, headerErr("systemFieldStrength_T %v", *s.FieldStrengthT)
			}
			if *s.FieldStrengthT > 0 {
				m.FieldStrengthT = *s.FieldStrengthT
			}
		}
	}
	if s := h.Sequence; s != nil {
		for _, f := range []struct {
			name string
			v    []float64
			dst  *float64
		}{{"TR", s.TR, &m.TR}, {"TE", s.TE, &m.TE}, {"TI", s.TI, &m.TI}, {"flipAngle_deg", s.Flip, &m.FlipAngle}} {
			if len(f.v) == 0 {
				continue
			}
			if !finiteNonNeg(f.v[0]) || f.v[0] > 1e7 {
				return m, headerErr("sequenceParameters %s = %v", f.name, f.v[0])
			}
			*f.dst = f.v[0]
		}
	}
	return m, nil
}

// xmlErr describes an XML decoding error by line or element, never by the
// text it read: a header's values include the patient's name and ID, and
// errors end up in error.json and the log.
func xmlErr(raw []byte, err error) error {
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		return headerErr("XML syntax error on line %d", se.Line)
	}
	if path := badNumber(raw); path != "" {
		return headerErr("element %s does not hold a valid number", path)
	}
	return headerErr("XML does not fit the ISMRMRD header schema")
}

// numericElements maps the names of the header's numeric elements to
// whether they are integers, from the xml tags of xmlHeader.
var numericElements = sync.OnceValue(func() map[string]bool {
	out := map[string]bool{}
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("xml"), ",")
			if i := strings.LastIndex(name, ">"); i >= 0 {
				name = name[i+1:]
			}
			ft := f.Type
			for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			switch ft.Kind() {
			case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
				reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
				if name != "" && name != "-" {
					out[name] = true
				}
			case reflect.Float32, reflect.Float64:
				if name != "" && name != "-" {
					out[name] = false
				}
			case reflect.Struct:
				walk(ft)
			}
		}
	}
	walk(reflect.TypeOf(xmlHeader{}))
	return out
})

// badNumber returns the path of the first numeric element whose text does
// not parse, or "".
func badNumber(raw []byte) string {
	num := numericElements()
	d := xml.NewDecoder(bytes.NewReader(raw))
	var path []string
	for {
		tok, err := d.Token()
		if err != nil {
			return ""
		}
		switch t := tok.(type) {
		case xml.StartElement:
			path = append(path, t.Name.Local)
		case xml.EndElement:
			if len(path) > 0 {
				path = path[:len(path)-1]
			}
		case xml.CharData:
			if len(path) == 0 || len(t) == 0 {
				continue
			}
			isInt, ok := num[path[len(path)-1]]
			if !ok {
				continue
			}
			s := strings.TrimSpace(string(t))
			if isInt {
				_, err = strconv.ParseInt(s, 10, 64)
			} else {
				_, err = strconv.ParseFloat(s, 64)
			}
			if err != nil {
				return strings.Join(path, "/")
			}
		}
	}
}

func checkLimit(name string, l *xmlLimit) (Limit, error) {
	if l == nil {
		return Limit{}, nil
	}
	const top = 65535 // ISMRMRD counters are uint16
	if l.Min < 0 || l.Max < l.Min || l.Max > top || l.Center < 0 || l.Center > top {
		return Limit{}, headerErr("encodingLimits %s min %d max %d center %d inconsistent", name, l.Min, l.Max, l.Center)
	}
	return Limit{Min: l.Min, Max: l.Max, Center: l.Center, Known: true}, nil
}

func finiteNonNeg(v float64) bool { return v >= 0 && !math.IsInf(v, 1) }

var (
	reXSDate = regexp.MustCompile(`^(\d{4})-(\d{2})-(\d{2})$`)
	reXSTime = regexp.MustCompile(`^(\d{2}):(\d{2}):(\d{2})(\.\d+)?$`)
	reDADate = regexp.MustCompile(`^(\d{4})(\d{2})(\d{2})$`)
	reTMTime = regexp.MustCompile(`^(\d{2})(\d{2})(\d{2})(\.\d+)?$`)
)

// dicomDate turns an xs:date into DICOM DA; anything else is kept as given.
func dicomDate(s string) string {
	s = strings.TrimSpace(s)
	if m := reXSDate.FindStringSubmatch(s); m != nil {
		return m[1] + m[2] + m[3]
	}
	return s
}

func dicomTime(s string) string {
	s = strings.TrimSpace(s)
	if m := reXSTime.FindStringSubmatch(s); m != nil {
		return m[1] + m[2] + m[3] + m[4]
	}
	return s
}

// xsDate is the inverse of dicomDate for DICOM-form values.
func xsDate(s string) string {
	if m := reDADate.FindStringSubmatch(s); m != nil {
		return m[1] + "-" + m[2] + "-" + m[3]
	}
	return s
}

func xsTime(s string) string {
	if m := reTMTime.FindStringSubmatch(s); m != nil {
		return m[1] + ":" + m[2] + ":" + m[3] + m[4]
	}
	return s
}

// buildHeader writes Meta as an ISMRMRD XML header that parseHeader (and
// libismrmrd's deserialiser) read back to the same Meta. The matrices must
// be set; everything else is optional.
func buildHeader(m Meta) ([]byte, error) {
	for i := 0; i < 3; i++ {
		if m.EncodedMatrix[i] < 1 || m.EncodedMatrix[i] > mri.MaxDim || m.ReconMatrix[i] < 1 || m.ReconMatrix[i] > mri.MaxDim {
			return nil, fmt.Errorf("header: matrices %v / %v outside [1, %d]", m.EncodedMatrix, m.ReconMatrix, mri.MaxDim)
		}
	}
	// No <version>: libismrmrd refuses headers whose version differs from
	// its own schema version, and the element is optional.
	h := xmlHeader{Xmlns: ismrmrdNS}
	if m.PatientName != "" || m.PatientID != "" || m.PatientBirthDate != "" || m.PatientSex != "" || m.PatientWeightKg > 0 {
		h.Subject = &xmlSubject{PatientName: m.PatientName, PatientID: m.PatientID,
			PatientBirthdate: xsDate(m.PatientBirthDate), PatientGender: m.PatientSex}
		if m.PatientWeightKg > 0 {
			w := m.PatientWeightKg
			h.Subject.PatientWeightKg = &w
		}
	}
	st := xmlStudy{StudyDate: xsDate(m.StudyDate), StudyTime: xsTime(m.StudyTime), StudyID: m.StudyID,
		AccessionNumber: m.AccessionNumber, ReferringPhysicianName: m.ReferringPhysicianName,
		StudyDescription: m.StudyDescription, StudyInstanceUID: m.StudyInstanceUID, BodyPartExamined: m.BodyPartExamined}
	if st != (xmlStudy{}) {
		h.Study = &st
	}
	ms := xmlMeasurement{MeasurementID: m.MeasurementID, PatientPosition: m.PatientPosition, ProtocolName: m.ProtocolName,
		SequenceName: m.SequenceName, SeriesDescription: m.SeriesDescription, FrameOfReferenceUID: m.FrameOfReferenceUID}
	if ms != (xmlMeasurement{}) {
		h.Measurement = &ms
	}
	sys := xmlSystem{SystemVendor: m.SystemVendor, SystemModel: m.SystemModel, InstitutionName: m.InstitutionName, StationName: m.StationName}
	if m.FieldStrengthT > 0 {
		b := m.FieldStrengthT
		sys.FieldStrengthT = &b
	}
	if sys != (xmlSystem{}) {
		h.System = &sys
	}
	// experimentalConditions is required by the schema.
	hz := m.H1ResonanceHz
	if hz == 0 && m.FieldStrengthT > 0 {
		hz = int64(math.Round(m.FieldStrengthT * gammaHzPerT))
	}
	h.Conditions = &xmlConditions{H1ResonanceHz: hz}
	traj := m.Trajectory
	if traj == "" {
		traj = "cartesian"
	}
	e := xmlEncoding{
		Encoded:    xmlSpace{Matrix: xmlXYZi{m.EncodedMatrix[0], m.EncodedMatrix[1], m.EncodedMatrix[2]}, FOV: xmlXYZf{m.EncodedFOVmm[0], m.EncodedFOVmm[1], m.EncodedFOVmm[2]}},
		Recon:      xmlSpace{Matrix: xmlXYZi{m.ReconMatrix[0], m.ReconMatrix[1], m.ReconMatrix[2]}, FOV: xmlXYZf{m.ReconFOVmm[0], m.ReconFOVmm[1], m.ReconFOVmm[2]}},
		Trajectory: traj,
	}
	if l := m.LimitsE1; l.Known {
		e.Limits.E1 = &xmlLimit{l.Min, l.Max, l.Center}
	}
	if l := m.LimitsE2; l.Known {
		e.Limits.E2 = &xmlLimit{l.Min, l.Max, l.Center}
	}
	if m.AccelerationY > 0 || m.AccelerationZ > 0 || m.CalibrationMode != "" {
		e.Parallel = &xmlParallel{E1: m.AccelerationY, E2: m.AccelerationZ, Mode: m.CalibrationMode}
	}
	h.Encoding = []xmlEncoding{e}
	if m.TR > 0 || m.TE > 0 || m.TI > 0 || m.FlipAngle > 0 {
		sq := &xmlSequence{}
		if m.TR > 0 {
			sq.TR = []float64{m.TR}
		}
		if m.TE > 0 {
			sq.TE = []float64{m.TE}
		}
		if m.TI > 0 {
			sq.TI = []float64{m.TI}
		}
		if m.FlipAngle > 0 {
			sq.Flip = []float64{m.FlipAngle}
		}
		h.Sequence = sq
	}
	out, err := xml.MarshalIndent(h, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	return append([]byte(xml.Header), out...), nil
}
