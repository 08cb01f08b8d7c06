package daemon

// Regression tests for issue 20: hostile or broken files around a job.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kspaced/kspaced/internal/safefile"
	"github.com/kspaced/kspaced/internal/testutil"
	"github.com/kspaced/kspaced/pipeline"
)

// Options files and companions that are links to a secret or to /dev/zero,
// or FIFOs, fail their job as bad input at once: nothing of the secret
// reaches error.json or the log, nothing is read from /dev/zero, nothing
// blocks on the FIFO.
func TestHostileCompanionsFailSafely(t *testing.T) {
	spool := t.TempDir()
	os.MkdirAll(filepath.Join(spool, InboxDir), 0o755)
	secret := filepath.Join(t.TempDir(), "secret.json")
	os.WriteFile(secret, []byte("DOE^JANE MRN-4711"), 0o600)
	inbox := filepath.Join(spool, InboxDir)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// The companions first, as producers are told to.
	must(os.Symlink(secret, filepath.Join(inbox, "secret.npy.json")))
	must(os.Symlink("/dev/zero", filepath.Join(inbox, "zero.npy.json")))
	must(syscall.Mkfifo(filepath.Join(inbox, "fifo.npy.json"), 0o644))
	must(os.Symlink(secret, filepath.Join(inbox, "mask_mask.npy")))
	must(syscall.Mkfifo(filepath.Join(inbox, "truth_truth.npy"), 0o644))
	for _, n := range []string{"secret", "zero", "fifo", "mask", "truth"} {
		drop(t, spool, n+".npy", []byte("k-space"))
	}
	rec := newRecorder()
	c := testConfig(spool)
	c.Daemon.JobTimeout = 5 * time.Second
	r := start(t, c, rec.process, false)
	testutil.WaitUntil(t, 10*time.Second, "five failed jobs", func() bool { return len(testutil.Names(t, filepath.Join(spool, FailedDir))) == 5 })
	for _, id := range []string{"secret", "zero", "fifo", "mask", "truth"} {
		f := readFailure(t, spool, id)
		if f.Outcome != OutcomeBadInput || !strings.Contains(f.Detail, "not a regular file") {
			t.Errorf("%s: error.json = %+v", id, f)
		}
		raw, _ := os.ReadFile(filepath.Join(spool, FailedDir, id, errorFile))
		if strings.Contains(string(raw), "DOE^JANE") {
			t.Errorf("%s: error.json leaks the linked file: %s", id, raw)
		}
	}
	if rec.total() != 0 {
		t.Errorf("the processor ran %d times on hostile jobs", rec.total())
	}
	if strings.Contains(r.logs.String(), "DOE^JANE") {
		t.Error("the log leaks the linked file")
	}
}

// An options file may lower the operator's limits, never raise them, may
// not change the service's own settings, and may only name a prior inside
// daemon.prior_dirs (or the built-in one).
func TestJobOptionsCannotRaiseLimits(t *testing.T) {
	spool := t.TempDir()
	priors := t.TempDir()
	os.WriteFile(filepath.Join(priors, "p.safetensors"), []byte("x"), 0o644)
	outside := filepath.Join(t.TempDir(), "evil.safetensors")
	os.WriteFile(outside, []byte("x"), 0o644)
	os.Symlink(outside, filepath.Join(priors, "link.safetensors"))
	jobs := map[string]string{
		"lower":     `{"daemon": {"job_timeout": "10s", "stall_timeout": "10m", "retries": 0, "retry_backoff": "1ms"}}`,
		"nostall":   `{"daemon": {"stall_timeout": "0s"}}`,
		"timeout":   `{"daemon": {"job_timeout": "100h"}}`,
		"retries":   `{"daemon": {"retries": 50}}`,
		"backoff":   `{"daemon": {"retry_backoff": "1h"}}`,
		"batch":     `{"recon": {"sampler": {"batch_pixels": 268435456}}}`,
		"spool":     `{"daemon": {"spool": "/tmp"}}`,
		"dirs":      `{"daemon": {"prior_dirs": ["/"]}}`,
		"reader":    `{"daemon": {"reader": {"memory_mb": 65536}}}`,
		"prior":     `{"recon": {"method": "mmps", "sampler": {"prior": "` + outside + `"}}}`,
		"priorlink": `{"recon": {"method": "mmps", "sampler": {"prior": "` + filepath.Join(priors, "link.safetensors") + `"}}}`,
		"priorrel":  `{"recon": {"method": "mmps", "sampler": {"prior": "p.safetensors"}}}`,
		"priorok":   `{"recon": {"method": "mmps", "sampler": {"prior": "` + filepath.Join(priors, "p.safetensors") + `"}}}`,
		"builtin":   `{"recon": {"method": "mmps", "sampler": {"prior": ""}}}`, // the built-in prior is always allowed
	}
	for id, opts := range jobs {
		drop(t, spool, id+".npy.json", []byte(opts))
		drop(t, spool, id+".npy", []byte("x"))
	}
	rec := newRecorder()
	c := testConfig(spool)
	c.Daemon.PriorDirs = []string{priors}
	c.Recon.Sampler.Prior = filepath.Join(priors, "p.safetensors")
	start(t, c, rec.process, false)
	testutil.WaitUntil(t, 10*time.Second, "all jobs", func() bool {
		return len(testutil.Names(t, filepath.Join(spool, DoneDir)))+len(testutil.Names(t, filepath.Join(spool, FailedDir))) == len(jobs)
	})
	for _, id := range []string{"lower", "priorok", "builtin"} {
		if _, err := os.Stat(filepath.Join(spool, DoneDir, id)); err != nil {
			t.Errorf("%s: not done (%v)", id, err)
		}
	}
	rec.mu.Lock()
	low := rec.cfgs["lower.npy"]
	rec.mu.Unlock()
	if low == nil || low.Daemon.JobTimeout != 10*time.Second || low.Daemon.StallTimeout != 10*time.Minute || low.Daemon.Retries != 0 {
		t.Errorf("lowered limits not applied: %+v", low)
	}
	for id, key := range map[string]string{"timeout": "daemon.job_timeout", "nostall": "daemon.stall_timeout", "retries": "daemon.retries", "backoff": "daemon.retry_backoff", "batch": "recon.sampler.batch_pixels",
		"spool": "daemon.spool", "dirs": "daemon.prior_dirs", "reader": "daemon.reader", "prior": "outside daemon.prior_dirs", "priorlink": "outside daemon.prior_dirs",
		"priorrel": "not an absolute path"} {
		f := readFailure(t, spool, id)
		if f.Outcome != OutcomeBadInput || !strings.Contains(f.Detail, key) {
			t.Errorf("%s: error.json = %+v, want bad_input naming %s", id, f, key)
		}
	}
}

// A NAME_truth.npy dropped beside NAME.h5 (as `kspaced simulate` writes)
// travels with its scan and is never a job of its own.
func TestTruthFileIsNotAJob(t *testing.T) {
	spool := t.TempDir()
	drop(t, spool, "k_truth.npy", []byte("truth"))
	drop(t, spool, "k_mask.npy", []byte("mask"))
	drop(t, spool, "k.h5", []byte("kspace"))
	rec := newRecorder()
	r := start(t, testConfig(spool), rec.process, false)
	testutil.WaitUntil(t, 10*time.Second, "job done", func() bool { return len(testutil.Names(t, filepath.Join(spool, DoneDir))) == 1 })
	time.Sleep(300 * time.Millisecond) // a second job would be claimed by now
	if got := testutil.Names(t, filepath.Join(spool, DoneDir)); strings.Join(got, ",") != "k" || rec.total() != 1 {
		t.Errorf("done = %v after %d jobs, want the one job k", got, rec.total())
	}
	if got := testutil.Names(t, filepath.Join(spool, DoneDir, "k", inputDir)); strings.Join(got, ",") != "k.h5,k_mask.npy,k_truth.npy" {
		t.Errorf("k's inputs = %v", got)
	}
	if got := testutil.Names(t, filepath.Join(spool, InboxDir)); len(got) != 0 {
		t.Errorf("inbox = %v", got)
	}
	r.wait(t)
}

// Files the daemon leaves alone are logged once each, by name only.
func TestIgnoredFilesLoggedOnce(t *testing.T) {
	spool := t.TempDir()
	drop(t, spool, "scan.h5.part", []byte("half"))
	drop(t, spool, "orphan_mask.npy", []byte("m"))
	rec := newRecorder()
	c := testConfig(spool)
	c.Daemon.RescanInterval = time.Second
	r := start(t, c, rec.process, false)
	drop(t, spool, "x.npy", []byte("x")) // events and scans
	testutil.WaitUntil(t, 10*time.Second, "job", func() bool { return len(testutil.Names(t, filepath.Join(spool, DoneDir))) == 1 })
	time.Sleep(1200 * time.Millisecond) // one rescan more
	logs := r.logs.String()
	for _, n := range []string{"scan.h5.part", "orphan_mask.npy"} {
		if c := strings.Count(logs, `"msg":"inbox file ignored","input":"`+n+`"`); c != 1 {
			t.Errorf("%s logged %d times as ignored, want once:\n%s", n, c, logs)
		}
	}
}

// Past a thousand done/NAME* folders a new NAME is still claimed.
func TestJobIDsNeverRunOut(t *testing.T) {
	spool := t.TempDir()
	os.MkdirAll(filepath.Join(spool, DoneDir, "scan"), 0o755)
	for n := 2; n <= 1200; n++ {
		os.Mkdir(filepath.Join(spool, DoneDir, fmt.Sprintf("scan-%d", n)), 0o755)
	}
	drop(t, spool, "scan.h5", []byte("x"))
	rec := newRecorder()
	r := start(t, testConfig(spool), rec.process, true)
	select {
	case err := <-r.done:
		r.done <- err
		if err != nil {
			t.Fatalf("--once: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("--once did not return")
	}
	if _, err := os.Stat(filepath.Join(spool, OutboxDir, "scan-1201")); err != nil {
		t.Errorf("scan.h5 not published as scan-1201: %v; inbox %v", err, testutil.Names(t, filepath.Join(spool, InboxDir)))
	}
}

// --once does not report success while an input it could not claim is
// still in the inbox.
func TestOnceFailsOnUnclaimedInput(t *testing.T) {
	spool := t.TempDir()
	drop(t, spool, "a.npy", []byte("x"))
	// Every claim finds a file where its input folder should be, so the
	// claim rename fails (as a full disk or a permission problem would).
	testAfterMkdir = func(wd string) { os.WriteFile(filepath.Join(wd, inputDir), nil, 0o644) }
	defer func() { testAfterMkdir = nil }()
	rec := newRecorder()
	c := testConfig(spool)
	r := start(t, c, rec.process, true)
	select {
	case err := <-r.done:
		r.done <- err
		if err == nil || !strings.Contains(err.Error(), "a.npy") {
			t.Fatalf("--once returned %v, want an error naming a.npy", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("--once did not return")
	}
}

// A job whose inputs cannot be filed under done/ is counted done once, not
// on every rescan that retries the filing.
func TestUnwritableDoneCountsOnce(t *testing.T) {
	spool := t.TempDir()
	rec := newRecorder()
	c := testConfig(spool)
	c.Daemon.RescanInterval = time.Second
	r := start(t, c, rec.process, false)
	// done/ on another filesystem: renames into it fail (EXDEV), even for
	// root, as they would into a read-only or full done/.
	other, err := os.MkdirTemp("/dev/shm", "kspaced-done-")
	if err != nil {
		t.Skipf("no second filesystem: %v", err)
	}
	defer os.RemoveAll(other)
	if sameFS(t, spool, other) {
		t.Skip("/dev/shm is on the spool's filesystem")
	}
	os.Remove(filepath.Join(spool, DoneDir))
	if err := os.Symlink(other, filepath.Join(spool, DoneDir)); err != nil {
		t.Fatal(err)
	}
	drop(t, spool, "a.npy", []byte("x"))
	testutil.WaitUntil(t, 10*time.Second, "published", func() bool { return len(testutil.Names(t, filepath.Join(spool, OutboxDir))) == 1 })
	time.Sleep(3500 * time.Millisecond) // three rescans
	if n := r.d.nDone.Load(); n != 1 {
		t.Errorf("one job counted done %d times", n)
	}
	if c := strings.Count(r.logs.String(), `"msg":"job done"`); c != 1 {
		t.Errorf("job done logged %d times", c)
	}
	if rec.total() != 1 {
		t.Errorf("processed %d times", rec.total())
	}
}

func sameFS(t *testing.T, a, b string) bool {
	var sa, sb syscall.Stat_t
	if syscall.Stat(a, &sa) != nil || syscall.Stat(b, &sb) != nil {
		t.Fatal("stat")
	}
	return sa.Dev == sb.Dev
}

// Each kind of failure gets the advice that fits it: an options file or a
// configuration is not blamed on the data, unreadable files are not called
// damaged (issue 20).
func TestFailureAdviceFitsTheCause(t *testing.T) {
	cases := []struct {
		name, outcome string
		err           error
		want, notWant string
	}{
		{"options", OutcomeBadInput, fmt.Errorf("%w: %w: config x.json: recon.iterations = 0", pipeline.ErrBadInput, errOptions), "options file", "Export the raw data"},
		{"permission", OutcomeBadInput, fmt.Errorf("%w: k.h5: %w", pipeline.ErrBadInput, syscall.EACCES), "permissions", "damaged"},
		{"link", OutcomeBadInput, fmt.Errorf("%w: k_mask.npy: %w", pipeline.ErrBadInput, safefile.ErrNotRegular), "symbolic link", "Export the raw data"},
		{"config", OutcomeError, fmt.Errorf("%w: recon.sampler.prior: load prior: no such file", pipeline.ErrConfig), "configuration", "disk"},
		{"data", OutcomeBadInput, fmt.Errorf("%w: k.h5: truncated", pipeline.ErrBadInput), "damaged", "permissions"},
		{"server", OutcomeError, fmt.Errorf("write: %w", syscall.ENOSPC), "full disk", "Export"},
	}
	for _, c := range cases {
		f := explain(c.outcome, c.err, 0, 1)
		text := f.Message + " " + f.Action
		if !strings.Contains(text, c.want) || strings.Contains(text, c.notWant) {
			t.Errorf("%s: %q / %q; want %q and not %q", c.name, f.Message, f.Action, c.want, c.notWant)
		}
	}
}

// A prior that does not load is a configuration problem: failed at once,
// not retried as a possible disk problem.
func TestConfigErrorsAreNotRetried(t *testing.T) {
	spool := t.TempDir()
	drop(t, spool, "a.npy", []byte("x"))
	rec := newRecorder()
	rec.fail = func(pipeline.Job, int) error {
		return fmt.Errorf("%w: recon.sampler.prior: load prior: open /p/x: no such file", pipeline.ErrConfig)
	}
	start(t, testConfig(spool), rec.process, false)
	testutil.WaitUntil(t, 10*time.Second, "failed", func() bool { return len(testutil.Names(t, filepath.Join(spool, FailedDir))) == 1 })
	f := readFailure(t, spool, "a")
	if f.Outcome != OutcomeError || f.Attempts != 1 || !strings.Contains(f.Message, "configuration") {
		t.Errorf("error.json = %+v", f)
	}
}

// A panic in the daemon's own handling of one job (not the processor's)
// does not take the service or the job beside it down; the job stays in
// work/ for a later rescan, which counts the interruption.
func TestPanicOutsideProcessorKeepsServing(t *testing.T) {
	spool := t.TempDir()
	drop(t, spool, "bad.npy", []byte("x"))
	drop(t, spool, "good.npy", []byte("x"))
	rec := newRecorder()
	logs := &testutil.SyncBuffer{}
	d, err := New(Options{Config: testConfig(spool), Processor: rec.process,
		Logger: slog.New(slog.NewJSONHandler(logs, nil)),
		BeforeJob: func(_, entry string) {
			if entry == "bad.npy" {
				panic("boom")
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	testutil.WaitUntil(t, 10*time.Second, "good done", func() bool { return len(testutil.Names(t, filepath.Join(spool, DoneDir))) == 1 })
	cancel()
	<-done
	if st := readStateT(t, filepath.Join(spool, WorkDir, "bad")); !st.Running {
		t.Errorf("bad job's state %+v: a rescan would not count the interruption", st)
	}
	if !strings.Contains(logs.String(), "internal error while handling a job") {
		t.Errorf("no log of the panic:\n%s", logs.String())
	}
}
