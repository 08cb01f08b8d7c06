package isolate

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kspaced/kspaced/dicomio"
	"github.com/kspaced/kspaced/internal/testutil"
	"github.com/kspaced/kspaced/mri"
	"github.com/kspaced/kspaced/mri/kspaceio"
)

// The test binary, started as a reader child, obeys faultEnv (faults.go):
// the stand-ins for a parser that crashes, hangs, spins or hogs memory on a
// hostile file.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == ChildArg {
		beforeRead = envFault
		os.Exit(Main(os.Args[2:]))
	}
	if p := os.Getenv(parentEnv); p != "" {
		// The parent of TestChildDiesWithParent: read a file whose child hangs.
		(&Reader{Env: []string{faultEnv + "=hang"}}).KSpace(context.Background(), p)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// writeScan writes a small fastMRI file and returns its path and the
// volume the in-process reader returns for it.
func writeScan(t *testing.T, dir string) (string, *kspaceio.Volume) {
	t.Helper()
	rng := rand.New(rand.NewSource(1))
	var v kspaceio.Volume
	for s := 0; s < 2; s++ {
		sc := mri.Scan{Coils: 4, Rows: 32, Cols: 24, KSpace: make([]complex64, 4*32*24), Mask: make([]float32, 32*24)}
		for i := range sc.KSpace {
			if (i%24)%2 == 0 {
				sc.KSpace[i] = complex(rng.Float32(), rng.Float32())
			}
		}
		for i := range sc.Mask {
			if (i%24)%2 == 0 {
				sc.Mask[i] = 1
			}
		}
		v.Slices = append(v.Slices, sc)
	}
	v.Meta.PatientName = "Doe^Jane"
	v.Attrs = map[string]any{"acceleration": int64(2), "norm": 1.5, "max": []float64{1, 2}}
	p := filepath.Join(dir, "scan.h5")
	if err := kspaceio.WriteFastMRI(p, &v); err != nil {
		t.Skip(err) // no HDF5 in this build
	}
	want, err := kspaceio.Read(p)
	if err != nil {
		t.Fatal(err)
	}
	return p, want
}

func TestReadsLikeInProcess(t *testing.T) {
	p, want := writeScan(t, t.TempDir())
	got, err := (&Reader{}).KSpace(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("child read differs:\n got %+v\nwant %+v", got.Meta, want.Meta)
	}
}

// TestFaultsStayInTheChild runs a crashing, a hanging, a spinning and a
// memory-hogging read beside a good one: each bad read fails with its
// reason in plain words, the good one succeeds, and this process lives on.
func TestFaultsStayInTheChild(t *testing.T) {
	dir := t.TempDir()
	p, want := writeScan(t, dir)
	cases := []struct {
		fault   string
		limits  Limits
		want    string
		outcome string
	}{
		{"segv", Limits{}, "the reader crashed", OutcomeCrash},
		{"hang", Limits{Wall: 2 * time.Second}, "took longer than 2s", OutcomeTimeout},
		{"spin", Limits{CPU: time.Second, Wall: 20 * time.Second}, "more than 1s of CPU time", OutcomeCPU},
		{"hog", Limits{Memory: 512 << 20}, "more memory than the 512 MiB", OutcomeMemory},
		{"", Limits{}, "", OutcomeOK},
	}
	var wg sync.WaitGroup
	errs := make([]error, len(cases))
	vols := make([]*kspaceio.Volume, len(cases))
	use := make([]Usage, len(cases))
	start := time.Now()
	for i, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &Reader{Limits: c.limits, Env: []string{faultEnv + "=" + c.fault}, Observe: func(u Usage) { use[i] = u }}
			vols[i], errs[i] = r.KSpace(context.Background(), p)
		}()
	}
	wg.Wait()
	for i, c := range cases {
		if use[i].Outcome != c.outcome {
			t.Errorf("%q: outcome %q, want %q", c.fault, use[i].Outcome, c.outcome)
		}
		if c.want == "" {
			if errs[i] != nil || !reflect.DeepEqual(vols[i], want) {
				t.Errorf("good read beside the bad ones: %v", errs[i])
			}
			continue
		}
		if errs[i] == nil || !errors.Is(errs[i], ErrUnsafe) || !strings.Contains(errs[i].Error(), c.want) {
			t.Errorf("%s: error %v, want ErrUnsafe saying %q", c.fault, errs[i], c.want)
		} else {
			t.Logf("%s: %v", c.fault, errs[i])
		}
	}
	// The hog was stopped near its limit: peak resident memory within the
	// data limit (Memory plus what an idle child holds).
	if rss := use[3].MaxRSS; rss == 0 || rss > 512<<20+dataOverhead {
		t.Errorf("hog peaked at %d MiB resident, limit %d MiB", rss>>20, (512<<20+dataOverhead)>>20)
	} else {
		t.Logf("hog peaked at %d MiB resident", rss>>20)
	}
	// Generous: on a loaded machine the spinner needs long to use 1 s of CPU.
	if d := time.Since(start); d > 60*time.Second {
		t.Errorf("faults took %s to be stopped", d)
	}
}

// TestCancelStopsChild: the job's context (job_timeout, shutdown) ends the
// child as the wall limit does.
func TestCancelStopsChild(t *testing.T) {
	p, _ := writeScan(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	var u Usage
	_, err := (&Reader{Env: []string{faultEnv + "=hang"}, Observe: func(x Usage) { u = x }}).KSpace(ctx, p)
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("err %v after %s", err, time.Since(start))
	}
	if u.Outcome != OutcomeCanceled {
		t.Errorf("outcome %q, want %q", u.Outcome, OutcomeCanceled)
	}
}

// TestReadErrorOutcome: a file the reader refuses on its own is a read
// error, not a crash, in the error and in the outcome.
func TestReadErrorOutcome(t *testing.T) {
	p := filepath.Join(t.TempDir(), "junk.npy")
	if err := os.WriteFile(p, []byte("\x93NUMPY\x01\x00junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	var u Usage
	_, err := (&Reader{Observe: func(x Usage) { u = x }}).KSpace(context.Background(), p)
	if err == nil || errors.Is(err, ErrUnsafe) || u.Outcome != OutcomeReadError {
		t.Fatalf("err %v, outcome %q", err, u.Outcome)
	}
}

// TestChildConfinedToJobFolder: a companion that links outside the job's
// folder cannot be read by the child (Landlock), though this process could.
func TestChildConfinedToJobFolder(t *testing.T) {
	if !LandlockAvailable() {
		t.Skip("kernel without Landlock: children run with limits only")
	}
	job, elsewhere := t.TempDir(), t.TempDir()
	k := make([]complex64, 8*8)
	for i := range k {
		k[i] = 1
	}
	if err := kspaceio.WriteNPYComplex64(filepath.Join(job, "x.npy"), []int{8, 8}, k); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(elsewhere, "secret.npy")
	if err := kspaceio.WriteNPYFloat32(secret, []int{8}, []float32{1, 0, 1, 0, 1, 0, 1, 0}); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(job, "x_mask.npy")); err != nil {
		t.Fatal(err)
	}
	if _, err := kspaceio.Read(filepath.Join(job, "x.npy")); err != nil {
		t.Fatalf("in process the link is followed: %v", err)
	}
	_, err := (&Reader{}).KSpace(context.Background(), filepath.Join(job, "x.npy"))
	if err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("child read a file outside the job folder: err %v", err)
	}
}

// TestAnswerBounded: the parent refuses an answer announcing more than its
// limit before allocating it.
func TestAnswerBounded(t *testing.T) {
	v := &kspaceio.Volume{Slices: []mri.Scan{{Coils: 1, Rows: 4, Cols: 4, KSpace: make([]complex64, 16)}}}
	var b bytes.Buffer
	if err := writeVolume(&b, v); err != nil {
		t.Fatal(err)
	}
	if _, err := decodeVolume(bytes.NewReader(b.Bytes()), int64(b.Len())); err != nil {
		t.Fatalf("exact limit: %v", err)
	}
	if _, err := decodeVolume(bytes.NewReader(b.Bytes()), int64(b.Len()-1)); err == nil {
		t.Fatal("answer over the limit accepted")
	}
	// A header announcing 256 coils of 4096² (32 GiB) with no data behind it.
	big := &volHeader{Slices: []scanHead{{Coils: 256, Rows: 4096, Cols: 4096}}}
	b.Reset()
	if err := writeHeader(&b, big); err != nil {
		t.Fatal(err)
	}
	var before, after runtimeMem
	before.read()
	_, err := decodeVolume(bytes.NewReader(b.Bytes()), DefaultResult)
	after.read()
	if err == nil || after.total-before.total > 16<<20 {
		t.Fatalf("err %v, allocated %d bytes", err, after.total-before.total)
	}
}

func TestStudyLikeInProcess(t *testing.T) {
	f := testutil.File(t, "/usr/lib/python3/dist-packages/pydicom/data/test_files/MR_small.dcm")
	dir := t.TempDir()
	data, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "mr.dcm")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	want, _ := dicomio.ReadOptions{SkipPixels: true}.ReadStudies(p)
	got, fe, err := (&Reader{}).Study(context.Background(), []string{p})
	if err != nil || len(fe) != 0 {
		t.Fatal(err, fe)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("study differs")
	}
}

type runtimeMem struct{ total uint64 }

func (m *runtimeMem) read() {
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	m.total = s.TotalAlloc
}

// TestISMRMRDLikeInProcess: an ISMRMRD file (written by the reference
// tools) comes back from the child as read in process, attribute types
// included.
func TestISMRMRDLikeInProcess(t *testing.T) {
	gen := testutil.Tool(t, "ismrmrd_generate_cartesian_shepp_logan")
	p := filepath.Join(t.TempDir(), "sl.h5")
	if out, err := exec.Command(gen, "-m", "32", "-c", "4", "-C", "-o", p).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want, err := kspaceio.Read(p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := (&Reader{}).KSpace(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("child read differs: attrs %v, want %v", got.Attrs, want.Attrs)
	}
	// A read error comes back as the reader's, naming the file once.
	bad := filepath.Join(t.TempDir(), "bad.npy")
	if err := os.WriteFile(bad, []byte("\x93NUMPY\x01\x00\x10\x00{'descr': '<i2'}"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = (&Reader{}).KSpace(context.Background(), bad)
	if err == nil || errors.Is(err, ErrUnsafe) || strings.Count(err.Error(), "bad.npy") != 1 {
		t.Fatalf("err %v", err)
	}
}

const parentEnv = "KSPACED_TEST_READER_PARENT"

// readers lists the pids of reader children whose command line names path.
func readers(path string) []int {
	var pids []int
	ds, _ := os.ReadDir("/proc")
	for _, d := range ds {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(ChildArg)) && bytes.Contains(b, []byte(path)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestChildDiesWithParent: a daemon killed with SIGKILL leaves no reader
// child behind (Pdeathsig).
func TestChildDiesWithParent(t *testing.T) {
	p, _ := writeScan(t, t.TempDir())
	parent := exec.Command(os.Args[0], "-test.run=^$")
	parent.Env = append(os.Environ(), parentEnv+"="+p)
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { // should the test fail, leave no hanging child behind
		for _, pid := range readers(p) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}()
	// Wait until the child runs its second stage (after the Landlock
	// re-exec its command line is briefly unreadable) and hangs.
	deadline := time.Now().Add(10 * time.Second)
	for seen := 0; seen < 5 && time.Now().Before(deadline); {
		if len(readers(p)) > 0 {
			seen++
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(readers(p)) == 0 {
		parent.Process.Kill()
		t.Fatal("no reader child started")
	}
	parent.Process.Kill()
	parent.Wait()
	deadline = time.Now().Add(5 * time.Second)
	for len(readers(p)) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if pids := readers(p); len(pids) > 0 {
		t.Fatalf("reader children %v outlived their parent", pids)
	}
}

// phiScript writes, from pydicom's MR_small.dcm, copies whose patient
// attributes are distinctive markers: plain, with the markers also where a
// code string or UIDs belong, and a same-UID pair.
const phiScript = `
import sys, pydicom
src, out = sys.argv[1], sys.argv[2]
def base():
    d = pydicom.dcmread(src)
    d.PatientName = 'Qzvbex^Wyrmhold'; d.PatientID = 'PIDQ7730215XK'; d.PatientBirthDate = '19230417'
    d.ReferringPhysicianName = 'Drq^Fennimore'; d.AccessionNumber = 'ACCQ88213'; d.OtherPatientIDs = 'OPIDZZ5519'
    return d
base().save_as(out + '/plain.dcm')
d = base(); d.PhotometricInterpretation = 'Qzvbex^Wyrmhold'; d.save_as(out + '/photometric.dcm')
d = base(); d.SOPInstanceUID = 'PIDQ7730215XK'; d.save_as(out + '/sop1.dcm'); d.save_as(out + '/sop2.dcm')
d = base(); d.StudyInstanceUID = 'Qzvbex^Wyrmhold'; d.SeriesInstanceUID = 'OPIDZZ5519'; d.save_as(out + '/uids.dcm')
print('ok')
`

// TestStudyErrorsCarryNoPatientData reads, through the child, DICOM files
// with patient data where it belongs and where it does not, a copy whose
// transfer syntax UID is replaced by a patient ID, and truncated copies:
// neither the per-file errors nor the error quote the patient data.
func TestStudyErrorsCarryNoPatientData(t *testing.T) {
	src := testutil.File(t, "/usr/lib/python3/dist-packages/pydicom/data/test_files/MR_small.dcm")
	py := testutil.PythonWith(t, "pydicom")
	dir := t.TempDir()
	if out, err := exec.Command(py, "-c", phiScript, src, dir).CombinedOutput(); err != nil {
		t.Fatalf("pydicom: %v\n%s", err, out)
	}
	plain, err := os.ReadFile(filepath.Join(dir, "plain.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	const le = "1.2.840.10008.1.2.1\x00"
	if !bytes.Contains(plain, []byte(le)) {
		t.Fatal("no Explicit VR Little Endian UID to replace")
	}
	os.WriteFile(filepath.Join(dir, "syntax.dcm"), bytes.Replace(plain, []byte(le), []byte("PIDQ7730215XK\x00\x00\x00\x00\x00\x00\x00"), 1), 0o644)
	name := bytes.Index(plain, []byte("Qzvbex"))
	for i, cut := range []int{200, 400, name - 2, name + 3, name + 9, len(plain) / 2, len(plain) - 7} {
		os.WriteFile(filepath.Join(dir, "cut"+strconv.Itoa(i)+".dcm"), plain[:cut], 0o644)
	}
	studies, fe, err := (&Reader{}).Study(context.Background(), []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	markers := []string{"Qzvbex", "Wyrmhold", "PIDQ7730", "19230417", "Fennimore", "OPIDZZ", "ACCQ88"}
	for _, e := range fe {
		if m := testutil.QuotesPHI(e.Err.Error(), markers); m != "" {
			t.Errorf("%s: error quotes %q: %v", filepath.Base(e.Path), m, e.Err)
		}
	}
	// plain, sop1 and uids read; photometric, sop2, syntax and at least the
	// cuts inside the header fail.
	if len(studies) == 0 || len(fe) < 6 {
		t.Fatalf("%d studies, %d file errors: the hostile files were not hostile", len(studies), len(fe))
	}
	if studies[0].Study.Patient.Name != "Qzvbex^Wyrmhold" {
		t.Errorf("patient name %q: the data must still be read", studies[0].Study.Patient.Name)
	}
	t.Logf("%d studies, %d file errors", len(studies), len(fe))
}

// TestRuntimeFatalErrors: the Go runtime's own fatal errors in the child
// (stack overflow, concurrent map writes, an allocation beyond the limit,
// an unrecovered panic) all exit with status 2; each is told apart and
// named, not reported as a bare exit status.
func TestRuntimeFatalErrors(t *testing.T) {
	p, _ := writeScan(t, t.TempDir())
	for _, c := range []struct{ fault, want, outcome string }{
		{"stack", "fatal error of the Go runtime (stack overflow)", OutcomeRuntimeFatal},
		{"mapwrite", "fatal error of the Go runtime (concurrent map writes)", OutcomeRuntimeFatal},
		{"bigalloc", "more memory than the 512 MiB", OutcomeMemory},
		{"panic", "the reader panicked", OutcomePanic},
		{"nilderef", "the reader panicked", OutcomePanic},
	} {
		var u Usage
		r := &Reader{Limits: Limits{Memory: 512 << 20, Wall: 30 * time.Second}, Env: []string{faultEnv + "=" + c.fault}, Observe: func(x Usage) { u = x }}
		_, err := r.KSpace(context.Background(), p)
		if err == nil || !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), c.want) || u.Outcome != c.outcome {
			t.Errorf("%s: error %v, outcome %q; want ErrUnsafe saying %q, outcome %q", c.fault, err, u.Outcome, c.want, c.outcome)
		} else {
			t.Logf("%s: %v", c.fault, err)
		}
	}
}

// TestHDF5HeapCrashStaysInChild reads an ISMRMRD file (FuzzISMRMRD found
// it: 12 bytes changed from the generator's) whose global heap makes
// libhdf5 1.10 copy past its buffer in H5HG_read while reading the XML
// header: a bug of the C library that kspaced cannot check for first. The
// child dies, the read fails as unsafe, and this process lives on. (Kept out
// of the fuzz corpus, where it would fail the target until HDF5 is fixed.)
func TestHDF5HeapCrashStaysInChild(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "crash", "ismrmrd-global-heap.h5"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "k.h5")
	if err := os.WriteFile(p, src, 0o644); err != nil {
		t.Fatal(err)
	}
	var u Usage
	_, err = (&Reader{Observe: func(x Usage) { u = x }}).KSpace(context.Background(), p)
	switch {
	case err == nil:
		t.Fatal("the damaged file was read")
	case errors.Is(err, ErrUnsafe):
		if u.Outcome != OutcomeCrash {
			t.Errorf("outcome %q, want %q (%v)", u.Outcome, OutcomeCrash, err)
		}
		t.Logf("contained: %v", err)
	default:
		t.Logf("refused as a read error (a fixed HDF5, or a check of ours): %v", err)
	}
}
