package testutil

import "strings"

// QuotesPHI returns the piece of a marker (distinctive made-up patient
// data) that s quotes, or "": any 5 bytes of a marker holding a non-digit,
// or a whole run of 5 or more digits of s that lies inside a marker's run of
// digits. Runs of digits are compared whole so that a number that happens
// to hold a marker's digits ("13041756 bytes" and a birth date 19230417)
// does not count, while a quoted date, whole or cut, still does.
func QuotesPHI(s string, markers []string) string {
	for _, m := range markers {
		for i := 0; i+5 <= len(m); i++ {
			if w := m[i : i+5]; strings.IndexFunc(w, notDigit) >= 0 && strings.Contains(s, w) {
				return w
			}
		}
	}
	for _, r := range digitRuns(s) {
		if len(r) < 5 {
			continue
		}
		for _, m := range markers {
			for _, mr := range digitRuns(m) {
				if strings.Contains(mr, r) {
					return r
				}
			}
		}
	}
	return ""
}

func notDigit(r rune) bool { return r < '0' || r > '9' }

// digitRuns returns the maximal runs of ASCII digits in s.
func digitRuns(s string) []string {
	var runs []string
	for s != "" {
		i := strings.IndexFunc(s, func(r rune) bool { return !notDigit(r) })
		if i < 0 {
			break
		}
		s = s[i:]
		j := strings.IndexFunc(s, notDigit)
		if j < 0 {
			j = len(s)
		}
		runs = append(runs, s[:j])
		s = s[j:]
	}
	return runs
}
