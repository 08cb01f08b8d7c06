package dicomio

import (
	"fmt"
	"maps"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/suyashkumar/dicom/pkg/uid"

	"github.com/kspaced/kspaced/internal/testutil"
)

// Distinctive patient data the hostile files carry; no error may quote any
// piece of them (testutil.QuotesPHI: 5 bytes with a letter, or a run of 5
// or more digits that is part of a marker's, not a number that holds them).
var phiMarkers = []string{"Qzvbex^Wyrmhold", "PIDQ7730215XK", "19230417", "Drq^Fennimore", "OPIDZZ5519", "ACCQ88213"}

// phiLeak returns the marker piece s quotes, or "".
func phiLeak(s string) string { return testutil.QuotesPHI(s, phiMarkers) }

// TestPHICheckCatchesQuotes: the check TestErrorsCarryNoPatientData relies
// on passes the real errors of a cut file, fails the same error when it
// quotes the patient's name or birth date, and is not fooled by a byte
// count whose digits hold the birth date (a CI run once was).
func TestPHICheckCatchesQuotes(t *testing.T) {
	b := hostilePHIFiles()["plain "+uid.ExplicitVRLittleEndian]
	_, err := decode(b[:len(b)/2], ReadOptions{})
	if err == nil {
		t.Fatal("a file cut in half was read")
	}
	if p := phiLeak(err.Error()); p != "" {
		t.Fatalf("a real error quotes %q: %v", p, err)
	}
	for _, bad := range []error{
		fmt.Errorf("%w: patient %q", err, phiMarkers[0]),
		fmt.Errorf("%w: name %s", err, phiMarkers[0][3:9]),
		fmt.Errorf("%w: date %s", err, phiMarkers[2]),
	} {
		if phiLeak(bad.Error()) == "" {
			t.Errorf("not caught: %v", bad)
		}
	}
	if p := phiLeak(fmt.Errorf("%w: element of 13041756 bytes", err).Error()); p != "" {
		t.Errorf("a byte count 13041756 read as patient data %q", p)
	}
}

// phiVal is one element's VR and value.
type phiVal struct {
	vr  string
	val []byte
}

// phiImage is a small MR image in syntax ts whose header holds the
// markers; set replaces elements' VR and value by (group, element), a nil
// value drops the element.
func phiImage(ts string, set map[[2]uint16]phiVal) []byte {
	els := []struct {
		g, e uint16
		v    phiVal
	}{
		{0x0008, 0x0005, phiVal{"CS", []byte("ISO_IR 100")}},
		{0x0008, 0x0016, phiVal{"UI", []byte(MRImageStorage)}},
		{0x0008, 0x0018, phiVal{"UI", []byte("1.2.3.4")}},
		{0x0008, 0x0050, phiVal{"SH", []byte(phiMarkers[5])}},
		{0x0008, 0x0060, phiVal{"CS", []byte("MR")}},
		{0x0008, 0x0090, phiVal{"PN", []byte(phiMarkers[3])}},
		{0x0010, 0x0010, phiVal{"PN", []byte(phiMarkers[0])}},
		{0x0010, 0x0020, phiVal{"LO", []byte(phiMarkers[1])}},
		{0x0010, 0x0030, phiVal{"DA", []byte(phiMarkers[2])}},
		{0x0010, 0x1000, phiVal{"LO", []byte(phiMarkers[4])}},
		{0x0020, 0x000D, phiVal{"UI", []byte("1.2.3.1")}},
		{0x0020, 0x000E, phiVal{"UI", []byte("1.2.3.2")}},
		{0x0028, 0x0002, phiVal{"US", []byte{1, 0}}},
		{0x0028, 0x0004, phiVal{"CS", []byte("MONOCHROME2")}},
		{0x0028, 0x0010, phiVal{"US", []byte{4, 0}}},
		{0x0028, 0x0011, phiVal{"US", []byte{3, 0}}},
		{0x0028, 0x0100, phiVal{"US", []byte{16, 0}}},
		{0x0028, 0x0101, phiVal{"US", []byte{16, 0}}},
		{0x0028, 0x0102, phiVal{"US", []byte{15, 0}}},
		{0x0028, 0x0103, phiVal{"US", []byte{0, 0}}},
		{0x7FE0, 0x0010, phiVal{"OW", make([]byte, 24)}},
	}
	e := newEnc(ts)
	for _, x := range els {
		v := x.v
		if r, ok := set[[2]uint16{x.g, x.e}]; ok {
			if r.val == nil {
				continue
			}
			v = r
		}
		if v.vr == "US" {
			// Values above are little endian; rewrite in the syntax's order.
			b := make([]byte, 0, len(v.val))
			for i := 0; i+1 < len(v.val); i += 2 {
				b = e.bo.AppendUint16(b, uint16(v.val[i])|uint16(v.val[i+1])<<8)
			}
			v.val = b
		}
		e.el(x.g, x.e, v.vr, v.val)
	}
	return part10(ts, e.b)
}

// hostilePHIFiles are the variants: the plain file in every syntax, values
// under a wrong VR, PHI where a UID, a code string or a number belongs, and
// a broken character set.
func hostilePHIFiles() map[string][]byte {
	le := uid.ExplicitVRLittleEndian
	name, id := [2]uint16{0x0010, 0x0010}, [2]uint16{0x0010, 0x0020}
	files := map[string][]byte{}
	for _, ts := range syntaxes {
		files["plain "+ts] = phiImage(ts, nil)
	}
	for _, vr := range []string{"DS", "IS", "US", "UL", "SS", "FL", "FD", "AT", "SQ", "UI", "DA", "TM", "OB", "UN", "OW"} {
		files["name as "+vr] = phiImage(le, map[[2]uint16]phiVal{name: {vr, []byte(phiMarkers[0] + "X")}})
		files["id as "+vr] = phiImage(le, map[[2]uint16]phiVal{id: {vr, []byte(phiMarkers[1] + "XYZ")}})
	}
	files["PHI as SOP instance UID"] = phiImage(le, map[[2]uint16]phiVal{{0x0008, 0x0018}: {"UI", []byte(phiMarkers[1])}})
	files["PHI as study UID"] = phiImage(le, map[[2]uint16]phiVal{{0x0020, 0x000D}: {"UI", []byte(phiMarkers[0])}})
	files["PHI as series UID"] = phiImage(le, map[[2]uint16]phiVal{{0x0020, 0x000E}: {"UI", []byte(phiMarkers[4])}})
	files["PHI as photometric"] = phiImage(le, map[[2]uint16]phiVal{{0x0028, 0x0004}: {"CS", []byte(phiMarkers[0])}})
	files["PHI as rows"] = phiImage(le, map[[2]uint16]phiVal{{0x0028, 0x0010}: {"IS", []byte(phiMarkers[1])}})
	files["PHI as frames"] = phiImage(le, map[[2]uint16]phiVal{{0x0028, 0x0008}: {"IS", []byte(phiMarkers[1])}})
	files["PHI as charset"] = phiImage(le, map[[2]uint16]phiVal{{0x0008, 0x0005}: {"CS", []byte(phiMarkers[0])}})
	files["broken ISO 2022 name"] = phiImage(le, map[[2]uint16]phiVal{
		{0x0008, 0x0005}: {"CS", []byte(`\ISO 2022 IR 87`)},
		name:             {"PN", []byte("\x1b$B" + phiMarkers[0] + "\x1b(\xff")}})
	// The meta group's transfer syntax UID (20 bytes) replaced in place.
	files["PHI as transfer syntax"] = []byte(strings.Replace(string(phiImage(le, nil)), le+"\x00", phiMarkers[1]+"\x00\x00\x00\x00\x00\x00\x00", 1))
	files["no pixel data, PHI"] = phiImage(le, map[[2]uint16]phiVal{{0x7FE0, 0x0010}: {}})
	files["short pixel data, PHI"] = phiImage(le, map[[2]uint16]phiVal{{0x7FE0, 0x0010}: {"OW", make([]byte, 10)}})
	return files
}

// TestErrorsCarryNoPatientData reads hostile files holding patient data
// (whole, truncated at every byte, and with random bytes changed) through
// ReadFile and ReadStudies: no error text may quote any of it.
func TestErrorsCarryNoPatientData(t *testing.T) {
	files := hostilePHIFiles()
	check := func(what string, err error) {
		t.Helper()
		if err == nil {
			return
		}
		if p := phiLeak(err.Error()); p != "" {
			t.Errorf("%s: error quotes patient data %q: %v", what, p, err)
		}
	}
	rng := rand.New(rand.NewSource(20))
	reads, failures := 0, 0
	// In a fixed order: map order would hand each file different random
	// mutations on every run.
	for _, name := range slices.Sorted(maps.Keys(files)) {
		b := files[name]
		_, err := decode(b, ReadOptions{})
		check(name, err)
		reads++
		if err != nil {
			failures++
		}
		for cut := 0; cut < len(b); cut++ {
			_, err := decode(b[:cut], ReadOptions{})
			check(name+" cut", err)
			reads++
			if err != nil {
				failures++
			}
		}
		for k := 0; k < 200; k++ {
			m := append([]byte(nil), b...)
			for j := rng.Intn(4); j >= 0; j-- {
				m[128+rng.Intn(len(m)-128)] = byte(rng.Intn(256))
			}
			_, err := decode(m, ReadOptions{})
			check(name+" mutated", err)
			reads++
			if err != nil {
				failures++
			}
		}
	}
	if failures < reads/2 {
		t.Errorf("only %d of %d reads failed: the hostile cases are not hostile", failures, reads)
	}
	// ReadStudies: the same files on disk, each twice (duplicate instances).
	dir := t.TempDir()
	i := 0
	for _, b := range files {
		for _, n := range []string{"a", "b"} {
			if err := os.WriteFile(filepath.Join(dir, n+string(rune('0'+i/10))+string(rune('0'+i%10))+".dcm"), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		i++
	}
	_, errs := ReadStudies(dir)
	for _, e := range errs {
		check("ReadStudies "+filepath.Base(e.Path), e.Err)
	}
	t.Logf("%d reads, %d failed; %d file errors from ReadStudies", reads, failures, len(errs))
}

// TestWriteErrorsCarryNoPatientData: a source study whose UIDs hold patient
// data (a hostile file read as a job's study) fails the write without
// quoting them; hostile patient attributes are written or refused, never
// quoted.
func TestWriteErrorsCarryNoPatientData(t *testing.T) {
	mean, _, _ := phantom(1, 8, 8)
	series := []OutputSeries{{Kind: KindMean, Method: "MMPS", Images: mean, Slices: 1, Rows: 8, Cols: 8,
		Source: &Series{InstanceUID: phiMarkers[4], FrameOfReferenceUID: phiMarkers[1]}}}
	hostile := Patient{Name: phiMarkers[0] + "\xff\x1b$B\\=" + strings.Repeat("Z", 300), ID: phiMarkers[1] + "\\" + phiMarkers[4], BirthDate: phiMarkers[2] + "X"}
	for _, st := range []Study{
		{InstanceUID: phiMarkers[0], Patient: hostile},
		{InstanceUID: "1.2.3.0" + phiMarkers[2], Patient: hostile}, // a leading zero
		{InstanceUID: "1.2.3", AccessionNumber: phiMarkers[5] + strings.Repeat("9", 40), ReferringPhysician: phiMarkers[3], Patient: hostile},
	} {
		_, err := WriteScan(t.TempDir(), st, series, WriteOptions{Time: fixedTime})
		if err != nil {
			if p := phiLeak(err.Error()); p != "" {
				t.Errorf("study %.12q…: write error quotes patient data %q: %v", st.InstanceUID, p, err)
			}
		} else if st.InstanceUID != "1.2.3" {
			t.Errorf("study UID %q accepted", st.InstanceUID)
		}
	}
}
