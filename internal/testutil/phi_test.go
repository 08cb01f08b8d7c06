package testutil

import "testing"

func TestQuotesPHI(t *testing.T) {
	markers := []string{"Qzvbex^Wyrmhold", "PIDQ7730215XK", "19230417", "ACCQ88213"}
	for _, c := range []struct{ s, want string }{
		// Quoted patient data, whole or in part, is caught.
		{`bad patient name "Qzvbex^Wyrmhold"`, "Qzvbe"},
		{`value "vbex^" not a code string`, "vbex^"},
		{"PN Wyrmh", "Wyrmh"},
		{"UID 7730215XK invalid", "0215X"},
		{"birth date 19230417", "19230417"},
		{"truncated at 1923041", "1923041"},
		{"id 7730215", "7730215"},
		{"accession 88213 too long", "88213"},
		// Numbers that merely hold a marker's digits are not.
		{"element (0010,0030) of 13041756 bytes", ""},
		{"offset 1192304170 past the end", ""},
		{"length 77302150 > 1024", ""},
		{"at byte 3041, 1923 left", ""},
		{"read k.h5: the reader crashed (SIGSEGV)", ""},
	} {
		if got := QuotesPHI(c.s, markers); got != c.want {
			t.Errorf("QuotesPHI(%q) = %q, want %q", c.s, got, c.want)
		}
	}
}
