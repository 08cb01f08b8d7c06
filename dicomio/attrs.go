package dicomio

import (
	"math"
	"strconv"
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Accessors over a parsed element list that never panic: a value of an
// unexpected type reads as absent (the library's Must* helpers panic).

type elems []*dicom.Element

func (es elems) find(t tag.Tag) *dicom.Element {
	for _, e := range es {
		if e != nil && e.Tag == t && e.Value != nil {
			return e
		}
	}
	return nil
}

func (es elems) strings(t tag.Tag) []string {
	e := es.find(t)
	if e == nil || e.Value.ValueType() != dicom.Strings {
		return nil
	}
	v, _ := e.Value.GetValue().([]string)
	return v
}

// str is the first value of a string element, trimmed.
func (es elems) str(t tag.Tag) string {
	v := es.strings(t)
	if len(v) == 0 {
		return ""
	}
	return strings.TrimSpace(strings.Trim(v[0], "\x00"))
}

// all is the whole (multi-valued) string element joined back with '\'.
func (es elems) all(t tag.Tag) string {
	v := es.strings(t)
	out := make([]string, len(v))
	for i, s := range v {
		out[i] = strings.TrimSpace(strings.Trim(s, "\x00"))
	}
	return strings.Join(out, `\`)
}

// int reads the first value of a binary integer element or an IS string.
func (es elems) int(t tag.Tag) (int, bool) {
	e := es.find(t)
	if e == nil {
		return 0, false
	}
	switch e.Value.ValueType() {
	case dicom.Ints:
		v, _ := e.Value.GetValue().([]int)
		if len(v) > 0 {
			return v[0], true
		}
	case dicom.Strings:
		s := es.str(t)
		if s == "" {
			return 0, false
		}
		n, err := strconv.Atoi(s)
		if err == nil {
			return n, true
		}
		// IS values like "1.0" exist in the wild.
		if f, err := strconv.ParseFloat(s, 64); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<31 {
			return int(f), true
		}
	}
	return 0, false
}

// floats reads a DS (or FL/FD) element as numbers; nil when absent or
// when any value does not parse to a finite number.
func (es elems) floats(t tag.Tag) []float64 {
	e := es.find(t)
	if e == nil {
		return nil
	}
	switch e.Value.ValueType() {
	case dicom.Floats:
		v, _ := e.Value.GetValue().([]float64)
		for _, f := range v {
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return nil
			}
		}
		return v
	case dicom.Strings:
		v, _ := e.Value.GetValue().([]string)
		out := make([]float64, 0, len(v))
		for _, s := range v {
			f, err := strconv.ParseFloat(strings.TrimSpace(strings.Trim(s, "\x00")), 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return nil
			}
			out = append(out, f)
		}
		return out
	}
	return nil
}

func (es elems) float(t tag.Tag) (float64, bool) {
	v := es.floats(t)
	if len(v) == 0 {
		return 0, false
	}
	return v[0], true
}

// items returns the items of a sequence element.
func (es elems) items(t tag.Tag) []elems {
	e := es.find(t)
	if e == nil || e.Value.ValueType() != dicom.Sequences {
		return nil
	}
	seq, _ := e.Value.GetValue().([]*dicom.SequenceItemValue)
	out := make([]elems, 0, len(seq))
	for _, it := range seq {
		if it == nil {
			continue
		}
		sub, _ := it.GetValue().([]*dicom.Element)
		out = append(out, elems(sub))
	}
	return out
}

// item returns the first item of a sequence element, or nil.
func (es elems) item(t tag.Tag) elems {
	it := es.items(t)
	if len(it) == 0 {
		return nil
	}
	return it[0]
}
