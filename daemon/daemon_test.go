package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/internal/testutil"
	"github.com/kspaced/kspaced/pipeline"
)

func TestJobStem(t *testing.T) {
	for _, c := range []struct {
		name string
		dir  bool
		want string
	}{
		{"scan1.npy", false, "scan1"},
		{"scan1.npy", true, "scan1.npy"},
		{"knee 8x (2).h5", false, "knee_8x__2_"},
		{"<b>x.npy", false, "_b_x"},
		{"..", true, "job"},
		{".h5", false, "h5"},
		{"Ünïcode.cfl", false, "__n__code"},
		{strings.Repeat("a", 300) + ".npy", false, strings.Repeat("a", 96)},
	} {
		if got := jobStem(c.name, c.dir); got != c.want {
			t.Errorf("jobStem(%q, %v) = %q, want %q", c.name, c.dir, got, c.want)
		}
	}
}

func TestIgnoredAndMainEntry(t *testing.T) {
	for name, want := range map[string]bool{
		"a.npy": false, "a.npy.json": true, "a.npy.ready": true, ".a.npy": true, "a.npy.part": true,
		"a.hdr": true, "a.cfl": false, "study": false, "a.h5~": true, "a_mask.npy": true,
		"a_truth.npy": true,
	} {
		if _, got := ignored(name); got != want {
			t.Errorf("ignored(%q) = %v, want %v", name, got, want)
		}
	}
	dir := t.TempDir()
	for _, n := range []string{"x.cfl", "x.hdr", "x.cfl.json", "x.cfl.ready"} {
		os.WriteFile(filepath.Join(dir, n), nil, 0o644)
	}
	if m, err := mainEntry(dir); err != nil || m != "x.cfl" {
		t.Fatalf("mainEntry = %q, %v; want x.cfl", m, err)
	}
	dir2 := t.TempDir()
	for _, n := range []string{"k.npy", "k_mask.npy", "k.npy.json"} {
		os.WriteFile(filepath.Join(dir2, n), nil, 0o644)
	}
	if m, err := mainEntry(dir2); err != nil || m != "k.npy" {
		t.Fatalf("mainEntry = %q, %v; want k.npy", m, err)
	}
	dir3 := t.TempDir()
	for _, n := range []string{"k.h5", "k_truth.npy", "k_mask.npy"} {
		os.WriteFile(filepath.Join(dir3, n), nil, 0o644)
	}
	if m, err := mainEntry(dir3); err != nil || m != "k.h5" {
		t.Fatalf("mainEntry = %q, %v; want k.h5", m, err)
	}
	os.WriteFile(filepath.Join(dir, "y.npy"), nil, 0o644)
	if _, err := mainEntry(dir); err == nil {
		t.Fatal("mainEntry accepted two entries")
	}
}

// The whole life of good jobs: write-then-rename drops, one published
// outbox folder each with report.json, inputs filed under done/.
func TestJobsArePublishedOnce(t *testing.T) {
	spool := t.TempDir()
	rec := newRecorder()
	r := start(t, testConfig(spool), rec.process, false)
	want := map[string]int{}
	for i := range 8 {
		name := fmt.Sprintf("scan%d.npy", i)
		data := bytes.Repeat([]byte{byte(i)}, 100+i)
		drop(t, spool, name, data)
		want[fmt.Sprintf("scan%d", i)] = len(data)
	}
	testutil.WaitUntil(t, 10*time.Second, "8 published jobs", func() bool { return len(testutil.Names(t, filepath.Join(spool, DoneDir))) == 8 })
	if got := testutil.Names(t, filepath.Join(spool, OutboxDir)); len(got) != 8 {
		t.Fatalf("outbox = %v", got)
	}
	for id, size := range want {
		rep := readReport(t, spool, id)
		if rep.Job != id || len(rep.Inputs) != 1 || rep.Inputs[0] != id+".npy" || rep.Method != "zero-filled" {
			t.Errorf("report of %s = %+v", id, rep)
		}
		if rep.Started.IsZero() || rep.Finished.Before(rep.Started) || rep.Seconds["job"] <= 0 {
			t.Errorf("report of %s lacks timings: %+v", id, rep)
		}
		if len(rep.Outputs) != 1 || rep.Outputs[0] != "result.txt" {
			t.Errorf("report of %s outputs = %v", id, rep.Outputs)
		}
		out, _ := os.ReadFile(filepath.Join(spool, OutboxDir, id, "result.txt"))
		if strings.TrimSpace(string(out)) != fmt.Sprint(size) {
			t.Errorf("%s result = %q, want %d", id, out, size)
		}
		if _, err := os.Stat(filepath.Join(spool, DoneDir, id, inputDir, id+".npy")); err != nil {
			t.Errorf("input of %s not filed under done/: %v", id, err)
		}
		if n := rec.count(id + ".npy"); n != 1 {
			t.Errorf("%s processed %d times", id, n)
		}
	}
	if l := testutil.Names(t, filepath.Join(spool, InboxDir)); len(l) != 0 {
		t.Errorf("inbox left with %v", l)
	}
	if l := testutil.Names(t, filepath.Join(spool, WorkDir)); len(l) != 0 {
		t.Errorf("work left with %v", l)
	}
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
}

func TestBadInputFailsWithoutRetry(t *testing.T) {
	spool := t.TempDir()
	rec := newRecorder()
	rec.fail = func(job pipeline.Job, _ int) error {
		return fmt.Errorf("read %s: %w: not a NumPy file", filepath.Base(job.Inputs[0]), pipeline.ErrBadInput)
	}
	start(t, testConfig(spool), rec.process, false)
	data := []byte("this is not k-space")
	drop(t, spool, "notes.txt", data)
	testutil.WaitUntil(t, 10*time.Second, "failed job", func() bool { return len(testutil.Names(t, filepath.Join(spool, FailedDir))) == 1 })
	f := readFailure(t, spool, "notes")
	if f.Outcome != OutcomeBadInput || f.Attempts != 1 || f.Input != "notes.txt" ||
		!strings.Contains(f.Detail, "not a NumPy file") || !strings.Contains(f.Message, "could not be used") {
		t.Errorf("error.json = %+v", f)
	}
	if rec.count("notes.txt") != 1 {
		t.Errorf("bad input processed %d times, want 1", rec.count("notes.txt"))
	}
	got, err := os.ReadFile(filepath.Join(spool, FailedDir, "notes", inputDir, "notes.txt"))
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("failed input not kept untouched: %q %v", got, err)
	}
	if l := testutil.Names(t, filepath.Join(spool, OutboxDir)); len(l) != 0 {
		t.Errorf("failed job published %v", l)
	}
}

func TestTransientErrorsAreRetried(t *testing.T) {
	spool := t.TempDir()
	rec := newRecorder()
	rec.fail = func(job pipeline.Job, call int) error {
		if strings.HasPrefix(filepath.Base(job.Inputs[0]), "flaky") && call <= 2 {
			return fmt.Errorf("write output: %w", syscall.ENOSPC)
		}
		if strings.HasPrefix(filepath.Base(job.Inputs[0]), "broken") {
			return fmt.Errorf("write output: %w", syscall.EACCES)
		}
		return nil
	}
	c := testConfig(spool)
	c.Daemon.Retries = 2
	start(t, c, rec.process, false)
	drop(t, spool, "flaky.npy", []byte("x"))
	drop(t, spool, "broken.npy", []byte("x"))
	testutil.WaitUntil(t, 10*time.Second, "both jobs finished", func() bool {
		return len(testutil.Names(t, filepath.Join(spool, DoneDir))) == 1 && len(testutil.Names(t, filepath.Join(spool, FailedDir))) == 1
	})
	rep := readReport(t, spool, "flaky")
	if len(rep.Warnings) != 2 || !strings.Contains(rep.Warnings[0], "no space left") {
		t.Errorf("flaky report warnings = %q", rep.Warnings)
	}
	if n := rec.count("flaky.npy"); n != 3 {
		t.Errorf("flaky processed %d times, want 3", n)
	}
	f := readFailure(t, spool, "broken")
	if f.Outcome != OutcomeError || f.Attempts != 3 || !strings.Contains(f.Detail, "permission denied") {
		t.Errorf("broken error.json = %+v", f)
	}
	if n := rec.count("broken.npy"); n != 3 {
		t.Errorf("broken processed %d times, want 1 + 2 retries", n)
	}
}

func TestTimeoutAndPanic(t *testing.T) {
	spool := t.TempDir()
	var calls atomic.Int32
	proc := func(ctx context.Context, job pipeline.Job, out string, _ pipeline.Progress) (*pipeline.Report, error) {
		calls.Add(1)
		if strings.HasPrefix(filepath.Base(job.Inputs[0]), "panic") {
			var m map[string]int
			m["x"]++ // a processor bug
		}
		<-ctx.Done()
		return nil, fmt.Errorf("reconstruct: %w", ctx.Err())
	}
	c := testConfig(spool)
	c.Daemon.JobTimeout = time.Second
	start(t, c, proc, false)
	drop(t, spool, "slow.npy", []byte("x"))
	drop(t, spool, "panic.npy", []byte("x"))
	testutil.WaitUntil(t, 10*time.Second, "two failures", func() bool { return len(testutil.Names(t, filepath.Join(spool, FailedDir))) == 2 })
	if f := readFailure(t, spool, "slow"); f.Outcome != OutcomeTimeout || f.Attempts != 1 || !strings.Contains(f.Message, "1s limit") {
		t.Errorf("timeout error.json = %+v", f)
	}
	if f := readFailure(t, spool, "panic"); f.Outcome != OutcomeError || f.Attempts != 1 || !strings.Contains(f.Detail, "panicked") {
		t.Errorf("panic error.json = %+v", f)
	}
	if calls.Load() != 2 {
		t.Errorf("processor called %d times, want 2 (neither retried)", calls.Load())
	}
}

// TestStallTimeout: an attempt that reports no progress for stall_timeout is
// stopped as timed out, while one that keeps reporting runs past that window
// and finishes.
func TestStallTimeout(t *testing.T) {
	spool := t.TempDir()
	proc := func(ctx context.Context, job pipeline.Job, out string, progress pipeline.Progress) (*pipeline.Report, error) {
		if strings.HasPrefix(filepath.Base(job.Inputs[0]), "hung") {
			progress(1, 10) // some work, then silence
			<-ctx.Done()
			return nil, fmt.Errorf("sample: %w", ctx.Err())
		}
		for i := range 10 { // 2.5 s in all, never 250 ms without progress
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(250 * time.Millisecond):
			}
			progress(i+1, 10)
		}
		return &pipeline.Report{}, nil
	}
	c := testConfig(spool)
	c.Daemon.StallTimeout = time.Second
	start(t, c, proc, false)
	drop(t, spool, "hung.npy", []byte("x"))
	drop(t, spool, "slow.npy", []byte("x"))
	testutil.WaitUntil(t, 10*time.Second, "both jobs", func() bool {
		return len(testutil.Names(t, filepath.Join(spool, DoneDir)))+len(testutil.Names(t, filepath.Join(spool, FailedDir))) == 2
	})
	if f := readFailure(t, spool, "hung"); f.Outcome != OutcomeTimeout || f.Attempts != 1 ||
		!strings.Contains(f.Message, "no progress for 1s") || !strings.Contains(f.Action, "stall_timeout") {
		t.Errorf("stalled job's error.json = %+v", f)
	}
	if _, err := os.Stat(filepath.Join(spool, OutboxDir, "slow", reportFile)); err != nil {
		t.Errorf("the job that kept reporting progress for 2.5 stall windows did not finish: %v", err)
	}
}

func TestSidecarOptions(t *testing.T) {
	spool := t.TempDir()
	rec := newRecorder()
	start(t, testConfig(spool), rec.process, false)
	drop(t, spool, "a.npy.json", []byte(`{"recon": {"method": "cg-sense", "iterations": 7}}`))
	drop(t, spool, "a.npy", []byte("x"))
	drop(t, spool, "b.npy.json", []byte(`{"recon": {"iterationz": 7}}`))
	drop(t, spool, "b.npy", []byte("x"))
	testutil.WaitUntil(t, 10*time.Second, "both jobs", func() bool {
		return len(testutil.Names(t, filepath.Join(spool, DoneDir)))+len(testutil.Names(t, filepath.Join(spool, FailedDir))) == 2
	})
	rec.mu.Lock()
	cfg := rec.cfgs["a.npy"]
	rec.mu.Unlock()
	if cfg == nil || cfg.Recon.Method != "cg-sense" || cfg.Recon.Iterations != 7 {
		t.Fatalf("sidecar not applied: %+v", cfg)
	}
	if rep := readReport(t, spool, "a"); rep.Method != "cg-sense" {
		t.Errorf("report method %q", rep.Method)
	}
	if _, err := os.Stat(filepath.Join(spool, DoneDir, "a", inputDir, "a.npy.json")); err != nil {
		t.Errorf("sidecar not filed with its job: %v", err)
	}
	f := readFailure(t, spool, "b")
	if f.Outcome != OutcomeBadInput || !strings.Contains(f.Detail, `unknown key "iterationz"`) {
		t.Errorf("bad sidecar error.json = %+v", f)
	}
	if rec.count("b.npy") != 0 {
		t.Error("job with an invalid options file was processed")
	}
}

// A producer that writes in place, slowly: the file must not be taken until
// it has been quiet for the quiet period.
func TestSlowWriterNotTakenEarly(t *testing.T) {
	spool := t.TempDir()
	rec := newRecorder()
	c := testConfig(spool)
	c.Daemon.QuietPeriod = time.Second // 10× the writer's pauses: load spikes must not flake this
	start(t, c, rec.process, false)
	p := filepath.Join(spool, InboxDir, "slow.npy")
	if err := os.WriteFile(p, []byte("head"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := int64(4)
	for range 15 {
		time.Sleep(100 * time.Millisecond)
		// Reopen by name each time: if the daemon had taken the file, the
		// open fails instead of writing into the claimed copy.
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatalf("file taken while still being written: %v", err)
		}
		f.Write(bytes.Repeat([]byte("k"), 1000))
		f.Close()
		want += 1000
	}
	testutil.WaitUntil(t, 10*time.Second, "slow job done", func() bool { return len(testutil.Names(t, filepath.Join(spool, DoneDir))) == 1 })
	rec.mu.Lock()
	got := rec.sizes["slow.npy"]
	rec.mu.Unlock()
	if got != want {
		t.Fatalf("processed %d bytes, file has %d", got, want)
	}
}

func TestReadyMarkerSkipsQuietPeriod(t *testing.T) {
	spool := t.TempDir()
	rec := newRecorder()
	c := testConfig(spool)
	c.Daemon.QuietPeriod = time.Hour
	start(t, c, rec.process, false)
	drop(t, spool, "m.npy", []byte("x"))
	drop(t, spool, "waits.npy", []byte("x"))
	drop(t, spool, "m.npy.ready", nil)
	// A study folder marked from inside.
	os.MkdirAll(filepath.Join(spool, "build", "s"), 0o755)
	os.WriteFile(filepath.Join(spool, "build", "s", "k.npy"), []byte("k"), 0o644)
	os.WriteFile(filepath.Join(spool, "build", "s", ".ready"), nil, 0o644)
	os.Rename(filepath.Join(spool, "build", "s"), filepath.Join(spool, InboxDir, "s"))
	testutil.WaitUntil(t, 5*time.Second, "marked jobs done", func() bool { return len(testutil.Names(t, filepath.Join(spool, DoneDir))) == 2 })
	if rep := readReport(t, spool, "s"); strings.Join(rep.Inputs, ",") != "s/k.npy" {
		t.Errorf("marked folder inputs = %v (the marker is not an input)", rep.Inputs)
	}
	if _, err := os.Stat(filepath.Join(spool, DoneDir, "m", inputDir, "m.npy.ready")); err != nil {
		t.Errorf("marker not moved with its job: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	if rec.count("waits.npy") != 0 {
		t.Error("unmarked file taken before its quiet period")
	}
}

func TestStudyFolderAndCFLPair(t *testing.T) {
	spool := t.TempDir()
	rec := newRecorder()
	c := testConfig(spool)
	start(t, c, rec.process, false)
	// A study folder: built outside, renamed in, with a nested DICOM folder.
	tmp := filepath.Join(spool, "study-build")
	os.MkdirAll(filepath.Join(tmp, "dicom"), 0o755)
	os.WriteFile(filepath.Join(tmp, "kspace.npy"), []byte("k"), 0o644)
	os.WriteFile(filepath.Join(tmp, "dicom", "IM0001"), []byte("d1"), 0o644)
	os.WriteFile(filepath.Join(tmp, "dicom", "IM0002"), []byte("d2"), 0o644)
	os.WriteFile(filepath.Join(tmp, ".DS_Store"), []byte("junk"), 0o644)
	if err := os.Rename(tmp, filepath.Join(spool, InboxDir, "study1")); err != nil {
		t.Fatal(err)
	}
	// A .cfl without its .hdr waits; the pair goes as one job.
	drop(t, spool, "x.cfl", []byte("cfl"))
	time.Sleep(400 * time.Millisecond)
	if rec.count("x.cfl") != 0 {
		t.Fatal("x.cfl taken without x.hdr")
	}
	drop(t, spool, "x.hdr", []byte("# Dimensions\n1 1\n"))
	// A .npy with its sampling mask is one job too.
	drop(t, spool, "k_mask.npy", []byte("mask"))
	drop(t, spool, "k.npy", []byte("kspace"))
	testutil.WaitUntil(t, 10*time.Second, "three jobs", func() bool { return len(testutil.Names(t, filepath.Join(spool, DoneDir))) == 3 })
	if got := testutil.Names(t, filepath.Join(spool, DoneDir, "k", inputDir)); strings.Join(got, ",") != "k.npy,k_mask.npy" {
		t.Errorf("npy job input folder = %v", got)
	}
	if rec.count("k_mask.npy") != 0 {
		t.Error("a sampling mask was processed as a job of its own")
	}
	rep := readReport(t, spool, "study1")
	want := []string{"study1/dicom/IM0001", "study1/dicom/IM0002", "study1/kspace.npy"}
	if strings.Join(rep.Inputs, ",") != strings.Join(want, ",") {
		t.Errorf("study inputs = %v, want %v", rep.Inputs, want)
	}
	if got := testutil.Names(t, filepath.Join(spool, DoneDir, "x", inputDir)); strings.Join(got, ",") != "x.cfl,x.hdr" {
		t.Errorf("cfl job input folder = %v", got)
	}
}

// Jobs left in work/ by a dead daemon: redone, finished or cleaned up; a
// job another live process holds is left alone.
func TestRecoveryAfterCrash(t *testing.T) {
	spool := t.TempDir()
	for _, d := range []string{InboxDir, WorkDir, OutboxDir, DoneDir, FailedDir} {
		os.MkdirAll(filepath.Join(spool, d), 0o755)
	}
	mkjob := func(id, entry string, st *jobState) string {
		wd := filepath.Join(spool, WorkDir, id)
		os.MkdirAll(filepath.Join(wd, inputDir), 0o755)
		if entry != "" {
			os.WriteFile(filepath.Join(wd, inputDir, entry), []byte("data"), 0o644)
		}
		if st != nil {
			writeJSON(filepath.Join(wd, stateFile), st)
		}
		return wd
	}
	seen := time.Now().Add(-time.Minute)
	// Crashed mid-attempt, with a half-written output folder.
	wd := mkjob("midway", "midway.npy", &jobState{Entry: "midway.npy", Seen: seen, Claimed: seen, Attempts: 1, Running: true})
	os.MkdirAll(filepath.Join(wd, outTmpDir), 0o755)
	os.WriteFile(filepath.Join(wd, outTmpDir, "partial.dcm"), []byte("half"), 0o644)
	inboxIno := func(name string) uint64 {
		fi, err := os.Lstat(filepath.Join(spool, InboxDir, name))
		if err != nil {
			t.Fatal(err)
		}
		return inode(fi)
	}
	// Crashed after the claim rename, before its sidecar followed: the claim
	// recorded the sidecar, which recovery reunites with its job.
	drop(t, spool, "nosidecar.npy.json", []byte(`{"recon": {"iterations": 9}}`))
	mkjob("nosidecar", "nosidecar.npy", &jobState{Entry: "nosidecar.npy", Claimed: seen,
		Companions: map[string]uint64{"nosidecar.npy.json": inboxIno("nosidecar.npy.json")}})
	// Issue 20, item 6: a recovered job keeps its own options; a newer
	// same-named sidecar in the inbox belongs to the next scan.
	own := mkjob("ownopts", "ownopts.npy", &jobState{Entry: "ownopts.npy", Seen: seen, Claimed: seen, Attempts: 1, Running: true})
	os.WriteFile(filepath.Join(own, inputDir, "ownopts.npy.json"), []byte(`{"recon": {"iterations": 7}}`), 0o644)
	drop(t, spool, "ownopts.npy.json", []byte(`{"recon": {"iterations": 11}}`))
	// The same when the crash came before the sweep and the producer has
	// since dropped a new sidecar under the recorded name.
	drop(t, spool, "swapped.npy.json", []byte(`{"recon": {"iterations": 5}}`))
	oldIno := inboxIno("swapped.npy.json")
	os.Remove(filepath.Join(spool, InboxDir, "swapped.npy.json"))
	keep, _ := os.Create(filepath.Join(t.TempDir(), "pin")) // keep the old inode number from being reused
	defer keep.Close()
	drop(t, spool, "swapped.npy.json", []byte(`{"recon": {"iterations": 13}}`))
	if inboxIno("swapped.npy.json") == oldIno {
		t.Skip("filesystem reused the inode number")
	}
	mkjob("swapped", "swapped.npy", &jobState{Entry: "swapped.npy", Claimed: seen,
		Companions: map[string]uint64{"swapped.npy.json": oldIno}})
	// Crashed after publishing, before filing the inputs.
	mkjob("published", "published.npy", &jobState{Entry: "published.npy", Seen: seen, Claimed: seen, Attempts: 1})
	os.MkdirAll(filepath.Join(spool, OutboxDir, "published"), 0o755)
	os.WriteFile(filepath.Join(spool, OutboxDir, "published", reportFile), []byte("{}"), 0o644)
	// Crashed three times on the same job: set aside.
	mkjob("poison", "poison.npy", &jobState{Entry: "poison.npy", Seen: seen, Claimed: seen, Attempts: 3, Interruptions: 2, Running: true})
	// Crashed between mkdir and rename of a claim: removed once stale.
	empty := mkjob("emptyclaim", "", nil)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(empty, old, old)
	// Held by another live daemon.
	held := mkjob("held", "held.npy", &jobState{Entry: "held.npy", Seen: seen, Claimed: seen, Attempts: 1, Running: true})
	lock, err := lockDir(held)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()

	rec := newRecorder()
	start(t, testConfig(spool), rec.process, false)
	testutil.WaitUntil(t, 10*time.Second, "recovered jobs filed", func() bool {
		return len(testutil.Names(t, filepath.Join(spool, DoneDir))) == 5 && len(testutil.Names(t, filepath.Join(spool, FailedDir))) == 1
	})
	if n := rec.count("midway.npy"); n != 1 {
		t.Errorf("midway processed %d times", n)
	}
	if st := readStateT(t, filepath.Join(spool, DoneDir, "midway")); st.Interruptions != 1 || st.Attempts != 2 || st.Running {
		t.Errorf("midway state = %+v", st)
	}
	if _, err := os.Stat(filepath.Join(spool, OutboxDir, "midway", "partial.dcm")); err == nil {
		t.Error("partial output from the crashed attempt was published")
	}
	rec.mu.Lock()
	cfg := rec.cfgs["nosidecar.npy"]
	rec.mu.Unlock()
	if cfg == nil || cfg.Recon.Iterations != 9 {
		t.Errorf("sidecar left in the inbox by a crash was not reunited with its job: %+v", cfg)
	}
	rec.mu.Lock()
	ownCfg, swCfg := rec.cfgs["ownopts.npy"], rec.cfgs["swapped.npy"]
	rec.mu.Unlock()
	if ownCfg == nil || ownCfg.Recon.Iterations != 7 {
		t.Errorf("recovered job ran with another scan's options: %+v", ownCfg)
	}
	if swCfg == nil || swCfg.Recon.Iterations != 40 {
		t.Errorf("recovered job took a sidecar dropped after its claim: %+v", swCfg)
	}
	for name, want := range map[string]string{"ownopts.npy.json": "11", "swapped.npy.json": "13"} {
		if b, err := os.ReadFile(filepath.Join(spool, InboxDir, name)); err != nil || !strings.Contains(string(b), want) {
			t.Errorf("the next scan's %s was taken from the inbox: %q, %v", name, b, err)
		}
	}
	if rec.count("published.npy") != 0 {
		t.Error("an already published job was processed again")
	}
	if f := readFailure(t, spool, "poison"); f.Outcome != OutcomeInterrupted {
		t.Errorf("poison error.json = %+v", f)
	}
	if _, err := os.Stat(empty); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale empty claim not removed: %v", err)
	}
	if rec.count("held.npy") != 0 {
		t.Error("a job locked by a live process was taken")
	}
	if _, err := os.Stat(held); err != nil {
		t.Errorf("locked job disturbed: %v", err)
	}
}

func TestGracefulShutdown(t *testing.T) {
	spool := t.TempDir()
	started := make(chan string, 4)
	proc := func(ctx context.Context, job pipeline.Job, out string, _ pipeline.Progress) (*pipeline.Report, error) {
		name := filepath.Base(job.Inputs[0])
		started <- name
		d := 300 * time.Millisecond
		if strings.HasPrefix(name, "long") {
			d = time.Hour
		}
		select {
		case <-time.After(d):
			return &pipeline.Report{}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	c := testConfig(spool)
	c.Daemon.GracePeriod = time.Second
	r := start(t, c, proc, false)
	drop(t, spool, "short.npy", []byte("x"))
	drop(t, spool, "long.npy", []byte("x"))
	<-started
	<-started
	drop(t, spool, "late.npy", []byte("x"))
	time.Sleep(50 * time.Millisecond)
	t0 := time.Now()
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(t0); took > 3*time.Second {
		t.Errorf("shutdown took %s with a 1s grace period", took)
	}
	if got := testutil.Names(t, filepath.Join(spool, OutboxDir)); strings.Join(got, ",") != "short" {
		t.Errorf("outbox after shutdown = %v, want the short job only", got)
	}
	st := readStateT(t, filepath.Join(spool, WorkDir, "long"))
	if st.Running || st.Attempts != 1 {
		t.Errorf("abandoned job state = %+v", st)
	}
	if _, err := os.Stat(filepath.Join(spool, WorkDir, "long", outTmpDir)); err == nil {
		t.Error("abandoned job kept its private output folder")
	}
	if got := testutil.Names(t, filepath.Join(spool, InboxDir)); strings.Join(got, ",") != "late.npy" {
		t.Errorf("inbox after shutdown = %v: no new claims during shutdown", got)
	}
	// The next daemon redoes the abandoned job without counting a crash.
	rec := newRecorder()
	start(t, testConfig(spool), rec.process, false)
	testutil.WaitUntil(t, 10*time.Second, "all done", func() bool { return len(testutil.Names(t, filepath.Join(spool, DoneDir))) == 3 })
	if st := readStateT(t, filepath.Join(spool, DoneDir, "long")); st.Interruptions != 0 || st.Attempts != 2 {
		t.Errorf("redone job state = %+v", st)
	}
}

func TestOnce(t *testing.T) {
	spool := t.TempDir()
	for i := range 5 {
		drop(t, spool, fmt.Sprintf("j%d.npy", i), []byte("x"))
	}
	// Still being written at start: left for the next run.
	growing := filepath.Join(spool, InboxDir, "growing.npy")
	os.WriteFile(growing, []byte("x"), 0o644)
	stopGrowing := make(chan struct{})
	go func() {
		for {
			select {
			case <-stopGrowing:
				return
			case <-time.After(20 * time.Millisecond):
				f, err := os.OpenFile(growing, os.O_WRONLY|os.O_APPEND, 0)
				if err == nil {
					f.Write([]byte("y"))
					f.Close()
				}
			}
		}
	}()
	defer close(stopGrowing)
	rec := newRecorder()
	c := testConfig(spool)
	c.Daemon.QuietPeriod = 500 * time.Millisecond
	r := start(t, c, rec.process, true)
	select {
	case err := <-r.done:
		r.done <- err
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("--once did not return")
	}
	if got := testutil.Names(t, filepath.Join(spool, DoneDir)); len(got) != 5 {
		t.Errorf("done = %v", got)
	}
	if got := testutil.Names(t, filepath.Join(spool, InboxDir)); strings.Join(got, ",") != "growing.npy" {
		t.Errorf("inbox = %v, want the growing file left", got)
	}
}

func TestDiskGuardAndReload(t *testing.T) {
	spool := t.TempDir()
	rec := newRecorder()
	c := testConfig(spool)
	c.Daemon.MinFreeMB = 1 << 40 // more than any disk
	r := start(t, c, rec.process, false)
	drop(t, spool, "a.npy", []byte("x"))
	testutil.WaitUntil(t, 5*time.Second, "paused", func() bool { ok, _ := r.d.Ready(); return !ok && r.d.live.Load() })
	time.Sleep(400 * time.Millisecond)
	if rec.total() != 0 {
		t.Fatal("claimed a job while disk space was low")
	}
	// A bad reload keeps the old config; a good one lifts the guard.
	if err := r.d.Reload(func() (*configs.Config, error) { return nil, errors.New("line 3: bad") }); err == nil {
		t.Fatal("failed reload reported success")
	}
	nc := testConfig(spool)
	nc.Recon.Method = "cg-sense"
	nc.Daemon.Workers = 7 // restart-only: ignored
	if err := r.d.Reload(func() (*configs.Config, error) { return nc, nil }); err != nil {
		t.Fatal(err)
	}
	testutil.WaitUntil(t, 5*time.Second, "job done after reload", func() bool { return len(testutil.Names(t, filepath.Join(spool, DoneDir))) == 1 })
	rec.mu.Lock()
	m := rec.cfgs["a.npy"].Recon.Method
	rec.mu.Unlock()
	if m != "cg-sense" || r.d.config().Daemon.Workers != 2 {
		t.Errorf("after reload: method %q workers %d", m, r.d.config().Daemon.Workers)
	}
	if !strings.Contains(r.logs.String(), "daemon.workers") {
		t.Error("restart-only key change not logged")
	}

	// Once mode refuses to run with too little space.
	spool2 := t.TempDir()
	drop(t, spool2, "b.npy", []byte("x"))
	c2 := testConfig(spool2)
	c2.Daemon.MinFreeMB = 1 << 40
	c2.Daemon.QuietPeriod = 0
	r2 := start(t, c2, rec.process, true)
	select {
	case err := <-r2.done:
		r2.done <- err
		if !errors.Is(err, ErrLowDisk) {
			t.Fatalf("once with low disk: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("once did not return")
	}
}

// A claim that died between its mkdir and its rename leaves an empty
// work/<id>; the retry of the same entry keeps the id.
func TestInterruptedClaimKeepsID(t *testing.T) {
	spool := t.TempDir()
	os.MkdirAll(filepath.Join(spool, WorkDir, "c", inputDir), 0o755)
	drop(t, spool, "c.npy", []byte("x"))
	rec := newRecorder()
	start(t, testConfig(spool), rec.process, false)
	testutil.WaitUntil(t, 5*time.Second, "done", func() bool { return len(testutil.Names(t, filepath.Join(spool, DoneDir))) == 1 })
	if got := testutil.Names(t, filepath.Join(spool, OutboxDir)); strings.Join(got, ",") != "c" {
		t.Errorf("outbox = %v, want c", got)
	}
}

func TestIDsNeverCollide(t *testing.T) {
	spool := t.TempDir()
	os.MkdirAll(filepath.Join(spool, OutboxDir, "a"), 0o755) // an earlier job "a", still in outbox
	rec := newRecorder()
	start(t, testConfig(spool), rec.process, false)
	drop(t, spool, "a.npy", []byte("1"))
	drop(t, spool, "a.h5", []byte("22"))
	testutil.WaitUntil(t, 10*time.Second, "two jobs", func() bool { return len(testutil.Names(t, filepath.Join(spool, DoneDir))) == 2 })
	if got := testutil.Names(t, filepath.Join(spool, OutboxDir)); strings.Join(got, ",") != "a,a-2,a-3" {
		t.Errorf("outbox = %v, want a (old), a-2, a-3", got)
	}
}

// Two daemons on one spool, in process: each job is processed exactly once.
func TestTwoDaemonsShareASpool(t *testing.T) {
	spool := t.TempDir()
	rec := newRecorder()
	rec.delay = 5 * time.Millisecond
	c := testConfig(spool)
	c.Daemon.RescanInterval = time.Second // both also sweep work/ for orphans
	a := start(t, c, rec.process, false)
	b := start(t, c, rec.process, false)
	const n = 200
	for i := range n {
		drop(t, spool, fmt.Sprintf("s%03d.npy", i), []byte("x"))
	}
	testutil.WaitUntil(t, 30*time.Second, "all jobs", func() bool { return len(testutil.Names(t, filepath.Join(spool, DoneDir))) == n })
	time.Sleep(1200 * time.Millisecond) // let a rescan run over the finished spool
	if rec.total() != n {
		t.Errorf("%d processor calls for %d jobs", rec.total(), n)
	}
	for i := range n {
		if k := rec.count(fmt.Sprintf("s%03d.npy", i)); k != 1 {
			t.Errorf("s%03d processed %d times", i, k)
		}
	}
	if got := len(testutil.Names(t, filepath.Join(spool, OutboxDir))); got != n {
		t.Errorf("outbox holds %d entries", got)
	}
	na, nb := strings.Count(a.logs.String(), `"msg":"job done"`), strings.Count(b.logs.String(), `"msg":"job done"`)
	t.Logf("daemon A did %d jobs, daemon B %d", na, nb)
	if na+nb != n {
		t.Errorf("logs report %d+%d jobs", na, nb)
	}
}

// A burst of file events with no periodic rescan: 1,100 files written in 20
// interleaved pieces (23,100 events inotify cannot coalesce) while the
// watcher loop is held, so the event channel (4,096) and the kernel queue
// (max_queued_events, 16,384 by default) overflow. Every job must still be
// found, and processed once.
func TestEventBurstMissesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("burst test in -short mode")
	}
	spool := t.TempDir()
	var calls atomic.Int64
	proc := func(ctx context.Context, job pipeline.Job, out string, _ pipeline.Progress) (*pipeline.Report, error) {
		calls.Add(1)
		return &pipeline.Report{}, nil
	}
	c := testConfig(spool)
	c.Daemon.Workers = 4
	c.Daemon.QuietPeriod = 200 * time.Millisecond
	r := start(t, c, proc, false)
	const files, pieces = 1100, 20
	inbox := filepath.Join(spool, InboxDir)
	piece := bytes.Repeat([]byte("z"), 16)
	fs := make([]*os.File, files)
	r.d.mu.Lock() // the loop blocks at its next turn: nobody reads events
	for i := range fs {
		f, err := os.Create(filepath.Join(inbox, fmt.Sprintf("b%04d.npy", i)))
		if err != nil {
			r.d.mu.Unlock()
			t.Fatal(err)
		}
		fs[i] = f
	}
	for range pieces {
		for _, f := range fs {
			f.Write(piece)
		}
	}
	for _, f := range fs {
		f.Close()
	}
	r.d.mu.Unlock()
	testutil.WaitUntil(t, 120*time.Second, "all burst jobs", func() bool { return len(testutil.Names(t, filepath.Join(spool, DoneDir))) == files })
	if calls.Load() != files {
		t.Errorf("%d processor calls for %d files", calls.Load(), files)
	}
	if got := len(testutil.Names(t, filepath.Join(spool, OutboxDir))); got != files {
		t.Errorf("outbox holds %d entries", got)
	}
	overflows := strings.Count(r.logs.String(), "overflowed")
	t.Logf("event queue overflows during the burst: %d", overflows)
	if raw, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events"); err == nil {
		var maxQueued int
		fmt.Sscan(string(raw), &maxQueued)
		if files*(pieces+1) > maxQueued+4096+1000 && overflows == 0 {
			t.Errorf("%d events against a queue of %d did not overflow: the overflow path went untested", files*(pieces+1), maxQueued)
		}
	}
}

func TestHTTPEndpoints(t *testing.T) {
	spool := t.TempDir()
	rec := newRecorder()
	rec.fail = func(job pipeline.Job, _ int) error {
		if strings.Contains(job.Inputs[0], "bad") {
			return pipeline.ErrBadInput
		}
		return nil
	}
	r := start(t, testConfig(spool), rec.process, false)
	srv := httptest.NewServer(r.d.Handler())
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	testutil.WaitUntil(t, 5*time.Second, "ready", func() bool { code, _ := get("/readyz"); return code == 200 })
	drop(t, spool, "<img src=x onerror=alert(1)>.npy", []byte("x"))
	drop(t, spool, "bad.npy", []byte("x"))
	testutil.WaitUntil(t, 10*time.Second, "jobs", func() bool {
		return len(testutil.Names(t, filepath.Join(spool, DoneDir)))+len(testutil.Names(t, filepath.Join(spool, FailedDir))) == 2
	})
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	wants := []string{`kspaced_jobs_total{outcome="done"} 1`, `kspaced_jobs_total{outcome="bad_input"} 1`,
		`kspaced_job_duration_seconds_count{method="zero-filled"} 1`, "kspaced_queue_depth 0", "kspaced_jobs_in_flight 0",
		"kspaced_job_latency_seconds_count 1"}
	var metrics string
	// Inputs are filed a moment before the worker's gauges settle.
	for deadline := time.Now().Add(5 * time.Second); ; {
		_, metrics = get("/metrics")
		all := true
		for _, w := range wants {
			all = all && strings.Contains(metrics, w)
		}
		if all || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, want := range wants {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	code, page := get("/status")
	if code != 200 || strings.Contains(page, "<img") || !strings.Contains(page, "&lt;img src=x onerror=alert(1)&gt;.npy") {
		t.Errorf("/status did not escape the input name:\n%s", page)
	}
	if !strings.Contains(page, "bad_input") {
		t.Errorf("/status lacks the failed job:\n%s", page)
	}
	r.wait(t)
	if code, _ := get("/readyz"); code != 503 {
		t.Errorf("/readyz after stop = %d, want 503", code)
	}
}

// A symlink dropped into the inbox is not followed: it lands in failed/ with
// a reason rather than waiting forever.
func TestSymlinkFails(t *testing.T) {
	spool := t.TempDir()
	target := filepath.Join(t.TempDir(), "elsewhere.npy")
	os.WriteFile(target, []byte("x"), 0o644)
	os.MkdirAll(filepath.Join(spool, InboxDir), 0o755)
	if err := os.Symlink(target, filepath.Join(spool, InboxDir, "link.npy")); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	start(t, testConfig(spool), rec.process, false)
	testutil.WaitUntil(t, 5*time.Second, "failed symlink", func() bool { return len(testutil.Names(t, filepath.Join(spool, FailedDir))) == 1 })
	if f := readFailure(t, spool, "link"); f.Outcome != OutcomeBadInput || !strings.Contains(f.Detail, "symbolic links") {
		t.Errorf("error.json = %+v", f)
	}
	if rec.total() != 0 {
		t.Error("symlink was processed")
	}
}

// A processor that lists no outputs gets them listed from its folder.
func TestReportListsOutputs(t *testing.T) {
	spool := t.TempDir()
	proc := func(ctx context.Context, job pipeline.Job, out string, _ pipeline.Progress) (*pipeline.Report, error) {
		os.MkdirAll(filepath.Join(out, "dicom"), 0o755)
		os.WriteFile(filepath.Join(out, "dicom", "IM1.dcm"), []byte("d"), 0o644)
		os.WriteFile(filepath.Join(out, "a.npy"), []byte("a"), 0o644)
		return &pipeline.Report{}, nil
	}
	start(t, testConfig(spool), proc, false)
	drop(t, spool, "o.npy", []byte("x"))
	testutil.WaitUntil(t, 5*time.Second, "done", func() bool { return len(testutil.Names(t, filepath.Join(spool, DoneDir))) == 1 })
	if rep := readReport(t, spool, "o"); strings.Join(rep.Outputs, ",") != "a.npy,dicom/IM1.dcm" || rep.Method != "zero-filled" {
		t.Errorf("report = %+v", rep)
	}
}
