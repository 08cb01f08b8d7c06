package dicomio

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Values written to a file are cleaned to their VR's rules, because the
// k-space header a study is built from is free text.

var (
	reDA = regexp.MustCompile(`^[0-9]{8}$`)
	reTM = regexp.MustCompile(`^[0-9]{2}([0-9]{2}([0-9]{2}(\.[0-9]{1,6})?)?)?$`)
)

// clean makes one value conform to vr (single-valued: backslashes removed).
func clean(vr, s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\\':
			return -1
		case r == '\t' && (vr == "ST" || vr == "LT"):
			return r
		case (r == '\n' || r == '\r') && (vr == "ST" || vr == "LT"):
			return r
		case unicode.IsControl(r), r == utf8.RuneError:
			return -1
		}
		return r
	}, s)
	switch vr {
	case "DA":
		s = strings.TrimSpace(s)
		if !reDA.MatchString(s) {
			return ""
		}
		return s
	case "TM":
		s = strings.TrimSpace(s)
		if !reTM.MatchString(s) {
			return ""
		}
		return s
	case "CS":
		s = strings.ToUpper(strings.TrimSpace(s))
		s = strings.Map(func(r rune) rune {
			if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == ' ' || r == '_' {
				return r
			}
			return '_'
		}, s)
		return truncate(s, 16)
	case "DS":
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return ""
		}
		return formatDS(f)
	case "IS":
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32)
		if err != nil {
			return ""
		}
		return strconv.FormatInt(n, 10)
	case "SH":
		return strings.TrimSpace(truncate(s, 16))
	case "LO", "PN":
		return strings.TrimSpace(truncate(s, 64))
	case "ST":
		return truncate(s, 1024)
	}
	return s
}

// cleanMulti cleans each backslash-separated value.
func cleanMulti(vr, s string) []string {
	parts := strings.Split(s, `\`)
	out := parts[:0]
	for _, p := range parts {
		if c := clean(vr, p); c != "" {
			out = append(out, c)
		}
	}
	return out
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n])
}

// formatDS writes v in at most 16 characters, the DS limit, keeping as many
// significant digits as fit.
func formatDS(v float64) string {
	if v == 0 {
		return "0"
	}
	for prec := 16; prec > 0; prec-- {
		s := strconv.FormatFloat(v, 'g', prec, 64)
		if len(s) <= 16 {
			// Shortest form that reads back the same, when it is shorter.
			if t := strconv.FormatFloat(v, 'g', -1, 64); len(t) <= len(s) {
				return t
			}
			return s
		}
	}
	return strconv.FormatFloat(v, 'g', 1, 64)
}

// parseDS reads back a DS written by formatDS.
func parseDS(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
