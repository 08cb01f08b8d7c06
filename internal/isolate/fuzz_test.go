package isolate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/mri/kspaceio"
)

// The HDF5 and DICOM targets run every input through a reader child, as
// the daemon does. Judged by fuzzOutcome: an ordinary read error is fine,
// and so is a contained crash of the child (libhdf5 1.10 has known crash
// classes kspaced cannot check for first, testdata/crash); a hang, a limit
// hit, a Go panic or runtime fatal of our reader, an unclassified failure or
// a leftover fail the target. Committed seeds: testdata/fuzz.
var fuzzReader = &Reader{Limits: Limits{Memory: 512 << 20, CPU: 5 * time.Second, Wall: 15 * time.Second, Result: 256 << 20}}

// crashDirEnv names a folder where the targets keep every input whose
// child crashed (NAME.in, with NAME.txt saying how), so that long runs can
// go on past known crash classes and be triaged afterwards
// (TestTriageCrashers).
const crashDirEnv = "KSPACED_FUZZ_CRASHDIR"

// containedCrash matches the reasons classify gives a child killed by a
// signal: the crash classes of C code. Any other ErrUnsafe is a finding.
var containedCrash = []string{"SIGSEGV", "SIGBUS", "SIGABRT", "SIGFPE", "SIGILL"}

// fuzzOutcome fails the target on a read that did not end acceptably
// (judgeRead) and records a contained crash.
func fuzzOutcome(t *testing.T, err error, u Usage, dir string, inputs []string, data []byte) {
	t.Helper()
	sig, bad := judgeRead(err, u, dir, len(inputs))
	if bad != nil {
		t.Fatal(bad)
	}
	if d := os.Getenv(crashDirEnv); sig != "" && d != "" {
		if err := recordCrash(d, t.Name(), sig, data); err != nil {
			t.Fatal(err)
		}
	}
}

// judgeRead returns the signal of a contained crash, or why the read's end
// is a finding: a reader child left running, a folder (which held n
// inputs) holding anything else, or an ErrUnsafe other than a crash by a
// signal. A nil err or an ordinary read error is fine.
func judgeRead(err error, u Usage, dir string, n int) (string, error) {
	if left := readers(dir); len(left) > 0 {
		return "", fmt.Errorf("reader children %v outlived the read (%v)", left, err)
	}
	ents, rerr := os.ReadDir(dir)
	if rerr != nil {
		return "", rerr
	}
	if len(ents) != n {
		return "", fmt.Errorf("the read left %d entries in its folder, want the %d inputs", len(ents), n)
	}
	if !errors.Is(err, ErrUnsafe) {
		return "", nil
	}
	for _, s := range containedCrash {
		if u.Outcome == OutcomeCrash && strings.Contains(err.Error(), "the reader crashed ("+s+")") {
			return s, nil
		}
	}
	return "", fmt.Errorf("outcome %q: %v", u.Outcome, err)
}

// recordCrash keeps one crashing input under dir, named by its hash.
func recordCrash(dir, target, sig string, data []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	h := sha256.Sum256(data)
	name := filepath.Join(dir, strings.SplitN(target, "/", 2)[0]+"-"+hex.EncodeToString(h[:8]))
	if err := os.WriteFile(name+".in", data, 0o644); err != nil {
		return err
	}
	return os.WriteFile(name+".txt", fmt.Appendf(nil, "%s %s %d bytes\n", target, sig, len(data)), 0o644)
}

func fuzzKSpace(t *testing.T, name string, data []byte) {
	dir := t.TempDir()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var u Usage
	r := *fuzzReader
	r.Observe = func(x Usage) { u = x }
	_, err := r.KSpace(context.Background(), p)
	fuzzOutcome(t, err, u, dir, []string{name}, data)
}

// FuzzFastMRI: fastMRI HDF5 through the child.
func FuzzFastMRI(f *testing.F) {
	s := mri.Scan{Coils: 2, Rows: 8, Cols: 8, KSpace: make([]complex64, 128), Mask: make([]float32, 64)}
	for i := range s.KSpace {
		s.KSpace[i] = complex(float32(i), 1)
	}
	for i := range s.Mask {
		s.Mask[i] = float32(i % 2)
	}
	p := filepath.Join(f.TempDir(), "seed.h5")
	if err := kspaceio.WriteFastMRI(p, &kspaceio.Volume{Slices: []mri.Scan{s}}); err == nil {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzKSpace(t, "k.h5", data) })
}

// FuzzISMRMRD: ISMRMRD HDF5 (seeded with ismrmrd_generate_cartesian_shepp_logan
// output) through the child.
func FuzzISMRMRD(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzKSpace(t, "k.h5", data) })
}

// FuzzDICOMFolder: a study folder of two files (the input split in two)
// read through the child.
func FuzzDICOMFolder(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		dir := t.TempDir()
		c := min(int(cut), len(data))
		names := []string{"a.dcm", "b.dcm"}
		for i, b := range [][]byte{data[:c], data[c:]} {
			if err := os.WriteFile(filepath.Join(dir, names[i]), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		var u Usage
		r := *fuzzReader
		r.Observe = func(x Usage) { u = x }
		_, _, err := r.Study(context.Background(), []string{dir})
		if err != nil && !errors.Is(err, ErrUnsafe) {
			t.Fatal(err) // per-file errors come back as FileErrors, not as the read's error
		}
		fuzzOutcome(t, err, u, dir, names, append([]byte{byte(c >> 8), byte(c)}, data...))
	})
}

// TestFuzzJudgement: the targets go on past a crash in C code (a stand-in,
// and the libhdf5 global-heap crasher) and record it, but stop on a Go
// panic, a runtime fatal, a hang, and a read that leaves a file behind.
func TestFuzzJudgement(t *testing.T) {
	heap, err := os.ReadFile(filepath.Join("testdata", "crash", "ismrmrd-global-heap.h5"))
	if err != nil {
		t.Fatal(err)
	}
	good := t.TempDir()
	p, _ := writeScan(t, good)
	scan, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, fault string
		data        []byte
		wall        time.Duration
		extra       bool   // a stray file beside the input
		sig         string // "" for a finding or a clean read
		finding     bool
	}{
		{"clean", "", scan, 0, false, "", false},
		{"C fault", "segv", scan, 0, false, "SIGSEGV", false},
		{"libhdf5 heap", "", heap, 0, false, "SIGSEGV", false},
		{"Go nil dereference", "nilderef", scan, 0, false, "", true},
		{"runtime fatal", "stack", scan, 0, false, "", true},
		{"hang", "hang", scan, 2 * time.Second, false, "", true},
		{"leftover", "", scan, 0, true, "", true},
	}
	for _, c := range cases {
		dir := t.TempDir()
		in := filepath.Join(dir, "k.h5")
		if err := os.WriteFile(in, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		if c.extra {
			os.WriteFile(filepath.Join(dir, "core"), nil, 0o644)
		}
		var u Usage
		r := &Reader{Limits: fuzzReader.Limits, Env: []string{faultEnv + "=" + c.fault}, Observe: func(x Usage) { u = x }}
		if c.wall > 0 {
			r.Limits.Wall = c.wall
		}
		_, rerr := r.KSpace(context.Background(), in)
		sig, bad := judgeRead(rerr, u, dir, 1)
		if sig != c.sig || (bad != nil) != c.finding {
			t.Errorf("%s: signal %q, finding %v (read: %v); want %q, finding %v", c.name, sig, bad, rerr, c.sig, c.finding)
		} else {
			t.Logf("%s: %q %v (read: %v)", c.name, sig, bad, rerr)
		}
	}
	d := t.TempDir()
	if err := recordCrash(d, "FuzzISMRMRD/seed#3", "SIGSEGV", heap); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(d)
	if len(ents) != 2 {
		t.Fatalf("recorded %d files, want the input and its note", len(ents))
	}
	if b, _ := os.ReadFile(filepath.Join(d, ents[0].Name())); !bytes.Equal(b, heap) {
		t.Errorf("%s does not hold the input", ents[0].Name())
	}
}
