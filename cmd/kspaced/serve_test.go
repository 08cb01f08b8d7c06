package main

// End-to-end tests of `kspaced serve`: the real binary, the real pipeline
// (zero-filled, small k-space) and a temporary spool.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/daemon"
	"github.com/kspaced/kspaced/internal/testutil"
	"github.com/kspaced/kspaced/mri/kspaceio"
	"github.com/kspaced/kspaced/mri/simulate"
	"github.com/kspaced/kspaced/pipeline"
)

// kspacedBin is the binary TestMain builds once for every test here.
var kspacedBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kspaced-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kspacedBin = filepath.Join(dir, "kspaced")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	if out, err := exec.Command(goBin, "build", "-o", kspacedBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ./cmd/kspaced: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Patient identity the simulated HDF5 header carries (pipeline.simMeta):
// it must reach the DICOM output and never the logs.
var patientData = []string{"KSPACED^SIMULATION", "KSPACED-SIM"}

// fixtures holds k-space made once per test binary.
var fixtures struct {
	once     sync.Once
	npy, h5  []byte
	cfl, hdr []byte
	err      error
}

// makeFixtures simulates a 4-coil 32×32 Shepp–Logan acquisition and writes
// it as .npy (complex64 [coil,ky,kx]), fastMRI .h5 and BART .cfl/.hdr.
func makeFixtures(t testing.TB) {
	t.Helper()
	fixtures.once.Do(func() {
		dir, err := os.MkdirTemp("", "kspaced-fixtures-")
		if err != nil {
			fixtures.err = err
			return
		}
		defer os.RemoveAll(dir)
		sm := configs.Default().Simulate
		sm.Rows, sm.Cols, sm.Coils = 32, 32, 4
		sim, err := simulate.Acquire(simulate.Options{Source: "shepp-logan", Slices: 1, Sim: sm})
		if err != nil {
			fixtures.err = err
			return
		}
		s := sim.Volume.Slices[0]
		if err = kspaceio.WriteNPYComplex64(filepath.Join(dir, "k.npy"), []int{4, 32, 32}, s.KSpace); err != nil {
			fixtures.err = err
			return
		}
		if err = kspaceio.WriteFastMRI(filepath.Join(dir, "k.h5"), sim.Volume); err != nil {
			fixtures.err = err
			return
		}
		// BART order [x y z coil], column-major: WriteCFL takes row-major data
		// with the last BART dimension slowest, i.e. our [coil][ky][kx].
		if err = kspaceio.WriteCFL(filepath.Join(dir, "k"), []int{32, 32, 1, 4}, s.KSpace); err != nil {
			fixtures.err = err
			return
		}
		read := func(n string) []byte {
			b, err := os.ReadFile(filepath.Join(dir, n))
			if err != nil && fixtures.err == nil {
				fixtures.err = err
			}
			return b
		}
		fixtures.npy, fixtures.h5, fixtures.cfl, fixtures.hdr = read("k.npy"), read("k.h5"), read("k.cfl"), read("k.hdr")
	})
	if fixtures.err != nil {
		t.Fatalf("fixtures: %v", fixtures.err)
	}
}

// server is one `kspaced serve` process.
type server struct {
	cmd    *exec.Cmd
	logs   *testutil.SyncBuffer
	exited chan struct{}
	err    error
}

// appendConfig adds YAML (a format and its arguments) to the config at path.
func appendConfig(t testing.TB, path, format string, args ...any) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, format, args...)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// writeConfig writes a serve config for tests: zero-filled, JSON logs.
func writeConfig(t testing.TB, dir, quiet string) string {
	t.Helper()
	p := filepath.Join(dir, "kspaced.yaml")
	body := `recon:
  method: zero-filled
daemon:
  quiet_period: ` + quiet + `
  rescan_interval: 2s
  grace_period: 5s
  min_free_mb: 0
  http_addr: ""
  log_format: json
`
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func startServer(t testing.TB, args ...string) *server {
	t.Helper()
	return startServerWith(t, kspacedBin, nil, args...)
}

// startServerWith runs `bin serve args` with env added to this process's.
func startServerWith(t testing.TB, bin string, env []string, args ...string) *server {
	t.Helper()
	s := &server{logs: &testutil.SyncBuffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(bin, append([]string{"serve"}, args...)...)
	if env != nil {
		s.cmd.Env = append(os.Environ(), env...)
	}
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.err = s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			s.cmd.Process.Kill()
			<-s.exited
		}
		if t.Failed() {
			t.Logf("kspaced serve %v log:\n%s", args, s.logs.String())
		}
	})
	testutil.WaitUntil(t, 20*time.Second, "kspaced serving", func() bool { return strings.Contains(s.logs.String(), "kspaced serving") })
	return s
}

// stop sends sig and waits for the process to exit.
func (s *server) stop(t testing.TB, sig os.Signal) error {
	t.Helper()
	s.cmd.Process.Signal(sig)
	select {
	case <-s.exited:
		return s.err
	case <-time.After(30 * time.Second):
		t.Fatal("kspaced serve did not exit")
		return nil
	}
}

// killWhen starts c, waits until cond holds (what names it), then kills c
// with SIGKILL and reaps it: a crash at that point of the work. A command
// that ended on its own first fails the test.
func killWhen(t testing.TB, c *exec.Cmd, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	var stderr bytes.Buffer
	if c.Stderr == nil {
		c.Stderr = &stderr
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			_ = c.Process.Kill()
			_ = c.Wait()
			t.Fatalf("timed out after %s waiting for %s\n%s", timeout, what, stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = c.Wait()
	if ws, ok := c.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("%v ended before the kill (%v)\n%s", c.Args, c.ProcessState, stderr.String())
	}
}

// put writes data beside the inbox and renames it in (the producer protocol).
func put(t testing.TB, spool, name string, data []byte) {
	t.Helper()
	tmp := filepath.Join(spool, "."+name+".part")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(spool, daemon.InboxDir, name)); err != nil {
		t.Fatal(err)
	}
}

func mkSpool(t testing.TB) string {
	spool := filepath.Join(t.TempDir(), "spool")
	if err := os.MkdirAll(filepath.Join(spool, daemon.InboxDir), 0o755); err != nil {
		t.Fatal(err)
	}
	return spool
}

// watchOutbox polls outbox/ until stop is closed and records every entry
// seen without its report.json (a partial result a reader could see).
func watchOutbox(spool string, stop <-chan struct{}) (partial *atomic.Int64, polls *atomic.Int64, done <-chan struct{}) {
	partial, polls = &atomic.Int64{}, &atomic.Int64{}
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		out := filepath.Join(spool, daemon.OutboxDir)
		for {
			select {
			case <-stop:
				return
			default:
			}
			des, _ := os.ReadDir(out)
			for _, d := range des {
				if _, err := os.Stat(filepath.Join(out, d.Name(), "report.json")); err != nil {
					// Gone since the listing is fine (nothing removes outbox
					// entries here); present without report.json is not.
					if _, err2 := os.Stat(filepath.Join(out, d.Name())); err2 == nil {
						partial.Add(1)
					}
				}
			}
			polls.Add(1)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return partial, polls, ch
}

// 50 mixed jobs through the real binary: every valid job gives exactly one
// published result, every invalid one lands in failed/ with a clear reason,
// a file still being written is not taken early, and the logs never carry
// the patient identity the data holds.
func TestServeMixedJobs(t *testing.T) {
	makeFixtures(t)
	spool := mkSpool(t)
	cfg := writeConfig(t, t.TempDir(), "1s")
	stopWatch := make(chan struct{})
	partial, polls, watchDone := watchOutbox(spool, stopWatch)
	srv := startServer(t, "--config", cfg, "--spool", spool, "--workers", "2")

	valid := map[string]string{}   // job id → inbox name
	invalid := map[string]string{} // job id → inbox name
	for i := range 30 {
		n := fmt.Sprintf("npy%02d.npy", i)
		put(t, spool, n, fixtures.npy)
		valid[strings.TrimSuffix(n, ".npy")] = n
	}
	put(t, spool, "with_patient.h5", fixtures.h5)
	valid["with_patient"] = "with_patient.h5"
	put(t, spool, "h5b.h5", fixtures.h5)
	valid["h5b"] = "h5b.h5"
	for _, st := range []string{"studyA", "studyB"} {
		tmp := filepath.Join(spool, "."+st)
		os.MkdirAll(tmp, 0o755)
		os.WriteFile(filepath.Join(tmp, "kspace.npy"), fixtures.npy, 0o644)
		os.WriteFile(filepath.Join(tmp, "notes.txt"), []byte("acquired on scanner 2"), 0o644)
		if err := os.Rename(tmp, filepath.Join(spool, daemon.InboxDir, st)); err != nil {
			t.Fatal(err)
		}
		valid[st] = st
	}
	put(t, spool, "bart.hdr", fixtures.hdr)
	put(t, spool, "bart.cfl", fixtures.cfl)
	valid["bart"] = "bart.cfl"
	for i := range 5 {
		n := fmt.Sprintf("trunc%d.npy", i)
		put(t, spool, n, fixtures.npy[:len(fixtures.npy)/(i+2)])
		invalid[strings.TrimSuffix(n, ".npy")] = n
	}
	put(t, spool, "trunc_patient.h5", fixtures.h5[:len(fixtures.h5)*2/3])
	invalid["trunc_patient"] = "trunc_patient.h5"
	for i := range 4 {
		n := fmt.Sprintf("wrong%d.dat", i)
		put(t, spool, n, bytes.Repeat([]byte("not k-space at all\n"), 10*(i+1)))
		invalid[strings.TrimSuffix(n, ".dat")] = n
	}
	for i := range 4 {
		n := fmt.Sprintf("empty%d.npy", i)
		put(t, spool, n, nil)
		invalid[strings.TrimSuffix(n, ".npy")] = n
	}
	// The slow writer: in place, in 20 pieces over ~2 s; the quiet period is
	// 1 s. Reopening by name makes an early claim fail the write.
	slow := filepath.Join(spool, daemon.InboxDir, "slow.npy")
	valid["slow"] = "slow.npy"
	pieces := 20
	step := (len(fixtures.npy) + pieces - 1) / pieces
	for off := 0; off < len(fixtures.npy); off += step {
		flags := os.O_WRONLY | os.O_APPEND
		if off == 0 {
			flags |= os.O_CREATE
		}
		f, err := os.OpenFile(slow, flags, 0o644)
		if err != nil {
			t.Fatalf("slow file taken while still being written: %v", err)
		}
		f.Write(fixtures.npy[off:min(off+step, len(fixtures.npy))])
		f.Close()
		time.Sleep(100 * time.Millisecond)
	}
	if n := len(valid) + len(invalid); n != 50 {
		t.Fatalf("test set has %d jobs, want 50", n)
	}
	testutil.WaitUntil(t, 90*time.Second, "all 50 jobs filed", func() bool {
		return len(testutil.Names(t, filepath.Join(spool, daemon.DoneDir)))+len(testutil.Names(t, filepath.Join(spool, daemon.FailedDir))) == 50
	})
	close(stopWatch)
	<-watchDone
	if err := srv.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("serve exited with %v after SIGTERM", err)
	}

	if got, want := testutil.Names(t, filepath.Join(spool, daemon.OutboxDir)), sortedKeys(valid); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("outbox = %v\nwant   %v", got, want)
	}
	for id, in := range valid {
		var rep pipeline.Report
		raw, err := os.ReadFile(filepath.Join(spool, daemon.OutboxDir, id, "report.json"))
		if err != nil || json.Unmarshal(raw, &rep) != nil {
			t.Errorf("%s: report.json: %v", id, err)
			continue
		}
		if rep.Job != id || rep.Method != "zero-filled" || rep.Slices != 1 || len(rep.Residual) != 1 || len(rep.Outputs) == 0 {
			t.Errorf("%s: report %+v", id, rep)
		}
		if !strings.HasPrefix(rep.Inputs[0], in) {
			t.Errorf("%s: report inputs %v, want %s first", id, rep.Inputs, in)
		}
		for _, o := range rep.Outputs {
			if _, err := os.Stat(filepath.Join(spool, daemon.OutboxDir, id, o)); err != nil {
				t.Errorf("%s: listed output %s missing: %v", id, o, err)
			}
		}
	}
	if got, want := testutil.Names(t, filepath.Join(spool, daemon.FailedDir)), sortedKeys(invalid); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("failed = %v\nwant   %v", got, want)
	}
	for id, in := range invalid {
		var f daemon.Failure
		raw, err := os.ReadFile(filepath.Join(spool, daemon.FailedDir, id, "error.json"))
		if err != nil || json.Unmarshal(raw, &f) != nil {
			t.Errorf("%s: error.json: %v", id, err)
			continue
		}
		if f.Outcome != daemon.OutcomeBadInput || f.Attempts > 1 || !strings.Contains(f.Message, "could not be used") ||
			!strings.Contains(f.Detail, in) || f.Action == "" {
			t.Errorf("%s: error.json %+v", id, f)
		}
		if _, err := os.Stat(filepath.Join(spool, daemon.FailedDir, id, "input", in)); err != nil {
			t.Errorf("%s: input not kept in failed/: %v", id, err)
		}
	}
	if got := testutil.Names(t, filepath.Join(spool, daemon.InboxDir)); len(got) != 0 {
		t.Errorf("inbox left with %v", got)
	}
	if got := testutil.Names(t, filepath.Join(spool, daemon.WorkDir)); len(got) != 0 {
		t.Errorf("work left with %v", got)
	}
	if partial.Load() != 0 {
		t.Errorf("a reader saw %d outbox entries without report.json", partial.Load())
	}
	t.Logf("outbox polled %d times while serving", polls.Load())

	// The patient identity went through to the DICOM (so the check below
	// can fail) but never into the logs.
	var dcm []byte
	filepath.Walk(filepath.Join(spool, daemon.OutboxDir, "with_patient"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".dcm") && dcm == nil {
			dcm, _ = os.ReadFile(p)
		}
		return nil
	})
	if !bytes.Contains(dcm, []byte(patientData[0])) {
		t.Errorf("DICOM output lacks the patient name the k-space header holds; the log check proves nothing")
	}
	logs := srv.logs.String()
	for _, pd := range patientData {
		if strings.Contains(logs, pd) {
			t.Errorf("logs contain patient data %q", pd)
		}
	}
	// Files are named by their place in the spool, not by host paths (the
	// start line names the spool once).
	if c := strings.Count(logs, spool); c != 1 {
		t.Errorf("logs name the spool's absolute path %d times, want once", c)
	}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("log line is not JSON: %q", line)
		}
	}
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// kill -9 in the middle of processing, restart: every job is done exactly
// once and no reader ever sees a partial result.
func TestServeKill9AndRestart(t *testing.T) {
	makeFixtures(t)
	spool := mkSpool(t)
	cfg := writeConfig(t, t.TempDir(), "300ms")
	stopWatch := make(chan struct{})
	partial, _, watchDone := watchOutbox(spool, stopWatch)
	const n = 12
	for i := range n {
		put(t, spool, fmt.Sprintf("k%02d.npy", i), fixtures.npy)
	}
	first := startServer(t, "--config", cfg, "--spool", spool, "--workers", "2", "--testing-job-delay", "400ms")
	// In progress means an attempt has started (state.json says running)
	// and not yet published. A job claimed but not started, or between its
	// publish and its filing, is in work/ too, and a kill there interrupts
	// nothing.
	inProgress := func() []string {
		published := map[string]bool{}
		for _, id := range testutil.Names(t, filepath.Join(spool, daemon.OutboxDir)) {
			published[id] = true
		}
		var ids []string
		for _, id := range testutil.Names(t, filepath.Join(spool, daemon.WorkDir)) {
			raw, _ := os.ReadFile(filepath.Join(spool, daemon.WorkDir, id, "state.json"))
			var st struct{ Running bool }
			if !published[id] && json.Unmarshal(raw, &st) == nil && st.Running {
				ids = append(ids, id)
			}
		}
		return ids
	}
	testutil.WaitUntil(t, 30*time.Second, "some jobs done and some in progress", func() bool {
		return len(testutil.Names(t, filepath.Join(spool, daemon.OutboxDir))) >= 3 && len(inProgress()) >= 1
	})
	first.cmd.Process.Signal(syscall.SIGKILL)
	<-first.exited
	var inWork []string // claimed jobs (a claim killed before its rename holds no input)
	for _, id := range testutil.Names(t, filepath.Join(spool, daemon.WorkDir)) {
		if len(testutil.Names(t, filepath.Join(spool, daemon.WorkDir, id, "input"))) > 0 {
			inWork = append(inWork, id)
		}
	}
	doneBefore := len(testutil.Names(t, filepath.Join(spool, daemon.OutboxDir)))
	if len(inWork) == 0 {
		t.Fatal("nothing was in progress at the kill")
	}
	midJob := inProgress()
	t.Logf("killed with %d published, %v in work/, %v of them mid-attempt", doneBefore, inWork, midJob)

	second := startServer(t, "--config", cfg, "--spool", spool, "--workers", "2")
	testutil.WaitUntil(t, 60*time.Second, "all jobs done", func() bool { return len(testutil.Names(t, filepath.Join(spool, daemon.DoneDir))) == n })
	close(stopWatch)
	<-watchDone
	if err := second.stop(t, syscall.SIGINT); err != nil {
		t.Errorf("serve exited with %v after SIGINT", err)
	}
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf("k%02d", i)
	}
	for _, d := range []string{daemon.OutboxDir, daemon.DoneDir} {
		if got := testutil.Names(t, filepath.Join(spool, d)); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s = %v, want each job exactly once", d, got)
		}
	}
	if got := testutil.Names(t, filepath.Join(spool, daemon.FailedDir)); len(got) != 0 {
		t.Errorf("failed = %v", got)
	}
	if partial.Load() != 0 {
		t.Errorf("a reader saw %d outbox entries without report.json", partial.Load())
	}
	// Jobs killed mid-attempt (midJob is read after the kill, so it is
	// exact) were redone and say so; none was done twice.
	for _, id := range midJob {
		raw, _ := os.ReadFile(filepath.Join(spool, daemon.DoneDir, id, "state.json"))
		var st struct{ Interruptions, Attempts int }
		json.Unmarshal(raw, &st)
		// Attempts is 1 for a job killed while it prepared its first
		// attempt (the interruption counts from the moment it touches its
		// input), 2 for one killed inside it.
		if st.Interruptions != 1 || (st.Attempts != 1 && st.Attempts != 2) {
			t.Errorf("job %s, killed mid-attempt, does not record one interruption: %s", id, raw)
		}
	}
	if c := strings.Count(second.logs.String(), "recovered an unfinished job"); c != len(inWork) {
		t.Errorf("second daemon recovered %d jobs, %d were in work/", c, len(inWork))
	}
	// No job finished twice (a kill between filing and its log line may
	// leave a job without one, which is fine).
	doneLines := map[string]int{}
	for _, m := range regexp.MustCompile(`"msg":"job done","job":"([^"]+)"`).FindAllStringSubmatch(first.logs.String()+second.logs.String(), -1) {
		doneLines[m[1]]++
	}
	for id, c := range doneLines {
		if c > 1 {
			t.Errorf("job %s logged done %d times", id, c)
		}
	}
	if len(doneLines) < n-2 {
		t.Errorf("only %d of %d jobs logged done", len(doneLines), n)
	}
}

// Two daemons on one spool: no job processed twice.
func TestServeTwoDaemonsOneSpool(t *testing.T) {
	makeFixtures(t)
	spool := mkSpool(t)
	cfg := writeConfig(t, t.TempDir(), "300ms")
	a := startServer(t, "--config", cfg, "--spool", spool, "--testing-job-delay", "60ms")
	b := startServer(t, "--config", cfg, "--spool", spool, "--testing-job-delay", "60ms")
	const n = 30
	for i := range n {
		put(t, spool, fmt.Sprintf("t%02d.npy", i), fixtures.npy)
	}
	testutil.WaitUntil(t, 60*time.Second, "all jobs done", func() bool { return len(testutil.Names(t, filepath.Join(spool, daemon.DoneDir))) == n })
	a.stop(t, syscall.SIGTERM)
	b.stop(t, syscall.SIGTERM)
	claimed := map[string]int{}
	re := regexp.MustCompile(`"msg":"job claimed","job":"([^"]+)"`)
	perDaemon := []int{}
	for _, s := range []*server{a, b} {
		ms := re.FindAllStringSubmatch(s.logs.String(), -1)
		perDaemon = append(perDaemon, len(ms))
		for _, m := range ms {
			claimed[m[1]]++
		}
	}
	t.Logf("jobs claimed per daemon: %v", perDaemon)
	if len(claimed) != n {
		t.Errorf("%d distinct jobs claimed, want %d", len(claimed), n)
	}
	for id, c := range claimed {
		if c != 1 {
			t.Errorf("job %s claimed %d times", id, c)
		}
	}
	if got := len(testutil.Names(t, filepath.Join(spool, daemon.OutboxDir))); got != n {
		t.Errorf("outbox holds %d results for %d jobs", got, n)
	}
	if perDaemon[0] == 0 || perDaemon[1] == 0 {
		t.Logf("note: one daemon took every job (%v)", perDaemon)
	}
}

// SIGHUP reloads the config for new jobs; a bad file keeps the old one; the
// HTTP endpoints answer; --once processes what is there and exits.
func TestServeReloadHTTPAndOnce(t *testing.T) {
	makeFixtures(t)
	spool := mkSpool(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "300ms")
	srv := startServer(t, "--config", cfg, "--spool", spool, "--http", "127.0.0.1:0")
	m := regexp.MustCompile(`"msg":"http listening","addr":"([^"]+)"`).FindStringSubmatch(srv.logs.String())
	if m == nil {
		t.Fatalf("no http address in the log")
	}
	base := "http://" + m[1]
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	testutil.WaitUntil(t, 10*time.Second, "ready", func() bool { c, _ := get("/readyz"); return c == 200 })
	if c, _ := get("/healthz"); c != 200 {
		t.Errorf("/healthz = %d", c)
	}

	reportMethod := func(id string) string {
		testutil.WaitUntil(t, 30*time.Second, id+" published", func() bool {
			_, err := os.Stat(filepath.Join(spool, daemon.OutboxDir, id, "report.json"))
			return err == nil
		})
		var rep pipeline.Report
		raw, _ := os.ReadFile(filepath.Join(spool, daemon.OutboxDir, id, "report.json"))
		json.Unmarshal(raw, &rep)
		return rep.Method
	}
	put(t, spool, "before.npy", fixtures.npy)
	if m := reportMethod("before"); m != "zero-filled" {
		t.Fatalf("method before reload = %q", m)
	}
	// Reload to cg-sense (few iterations keep it fast).
	os.WriteFile(cfg, []byte(strings.Replace(string(mustRead(t, cfg)), "method: zero-filled", "method: cg-sense\n  iterations: 3", 1)), 0o644)
	srv.cmd.Process.Signal(syscall.SIGHUP)
	testutil.WaitUntil(t, 10*time.Second, "reload logged", func() bool { return strings.Contains(srv.logs.String(), `"msg":"configuration reloaded"`) })
	put(t, spool, "after.npy", fixtures.npy)
	if m := reportMethod("after"); m != "cg-sense" {
		t.Errorf("method after reload = %q", m)
	}
	// A broken file is refused and the running config stays.
	os.WriteFile(cfg, []byte("recon:\n  methd: l1-wavelet\n"), 0o644)
	srv.cmd.Process.Signal(syscall.SIGHUP)
	testutil.WaitUntil(t, 10*time.Second, "failed reload logged", func() bool { return strings.Contains(srv.logs.String(), "reload failed") })
	put(t, spool, "kept.npy", fixtures.npy)
	if m := reportMethod("kept"); m != "cg-sense" {
		t.Errorf("method after a bad reload = %q", m)
	}
	// The result is published a moment before the job is counted.
	wants := []string{`kspaced_jobs_total{outcome="done"} 3`, `kspaced_config_reloads_total{result="failed"} 1`,
		`kspaced_config_reloads_total{result="ok"} 1`, `kspaced_job_duration_seconds_count{method="cg-sense"} 2`}
	var metrics string
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, metrics = get("/metrics")
		missing := 0
		for _, w := range wants {
			if !strings.Contains(metrics, w) {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range wants {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if c, page := get("/status"); c != 200 || !strings.Contains(page, "kept.npy") {
		t.Errorf("/status = %d without the last job", c)
	}
	if err := srv.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}

	// --once: a batch archive, processed and exited.
	spool2 := mkSpool(t)
	for i := range 4 {
		put(t, spool2, fmt.Sprintf("b%d.npy", i), fixtures.npy)
	}
	cfg2 := writeConfig(t, t.TempDir(), "300ms")
	out, err := exec.Command(kspacedBin, "serve", "--config", cfg2, "--spool", spool2, "--once").CombinedOutput()
	if err != nil {
		t.Fatalf("serve --once: %v\n%s", err, out)
	}
	if got := testutil.Names(t, filepath.Join(spool2, daemon.OutboxDir)); len(got) != 4 {
		t.Errorf("--once published %v", got)
	}
	if !bytes.Contains(out, []byte(`"jobs_done":4`)) {
		t.Errorf("--once summary missing:\n%s", out)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestServeUsageErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("daemon:\n  workerz: 2\n"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--config", bad}, `unknown key "workerz"`},
		{[]string{"serve", "--workers", "0", "--spool", dir}, "daemon.workers"},
		{[]string{"serve", "--bogus"}, "unknown flag"},
		{[]string{"serve", "extra-arg"}, "unknown command"},
	} {
		cmd := exec.Command(kspacedBin, c.args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitUsage || !strings.Contains(out.String(), c.want) {
			t.Errorf("%v: exit %v, output %q; want status 64 mentioning %q", c.args, err, out.String(), c.want)
		}
	}
	// The testing hook stays out of the help text.
	out, _ := exec.Command(kspacedBin, "serve", "--help").CombinedOutput()
	if bytes.Contains(out, []byte("testing-job-delay")) || !bytes.Contains(out, []byte("--once")) {
		t.Errorf("serve --help:\n%s", out)
	}
}

// A job that kills the process every time it starts (as a hostile file
// might) is set aside under failed/ as interrupted after the crash limit:
// the crash counter is saved before the job touches its input, not after.
// The good job that was running beside it when it first struck is done, not
// failed with it: after a crash, suspects run alone (issue 20, items 2 and 5).
func TestServePoisonJobIsQuarantined(t *testing.T) {
	makeFixtures(t)
	spool := mkSpool(t)
	cfg := writeConfig(t, t.TempDir(), "100ms")
	put(t, spool, "good.npy", fixtures.npy)
	put(t, spool, "poison.npy", fixtures.npy)
	starts := 0
	for ; starts < 6; starts++ {
		if len(testutil.Names(t, filepath.Join(spool, daemon.FailedDir))) > 0 {
			break
		}
		s := startServer(t, "--config", cfg, "--spool", spool, "--workers", "2", "--testing-job-delay", "1s", "--testing-crash-on", "poison.npy")
		exited := false
		testutil.WaitUntil(t, 20*time.Second, "a crash or the poison filed", func() bool {
			select {
			case <-s.exited:
				exited = true
			default:
			}
			return exited || len(testutil.Names(t, filepath.Join(spool, daemon.FailedDir))) > 0
		})
		if !exited {
			s.stop(t, syscall.SIGTERM)
		}
	}
	raw, err := os.ReadFile(filepath.Join(spool, daemon.FailedDir, "poison", "error.json"))
	if err != nil {
		t.Fatalf("poison job not quarantined after %d starts: %v; work/ = %v", starts, err, testutil.Names(t, filepath.Join(spool, daemon.WorkDir)))
	}
	var f daemon.Failure
	json.Unmarshal(raw, &f)
	if f.Outcome != daemon.OutcomeInterrupted {
		t.Errorf("error.json outcome = %q, want interrupted", f.Outcome)
	}
	if starts > 4 {
		t.Errorf("quarantined only after %d starts, want at most 4 (3 crashes)", starts)
	}
	if got := testutil.Names(t, filepath.Join(spool, daemon.FailedDir)); strings.Join(got, ",") != "poison" {
		t.Errorf("failed = %v, want only the poison job", got)
	}
	put(t, spool, "next.npy", fixtures.npy)
	s := startServer(t, "--config", cfg, "--spool", spool, "--testing-crash-on", "poison.npy")
	testutil.WaitUntil(t, 30*time.Second, "good jobs done", func() bool { return len(testutil.Names(t, filepath.Join(spool, daemon.DoneDir))) == 2 })
	s.stop(t, syscall.SIGTERM)
	if got := testutil.Names(t, filepath.Join(spool, daemon.DoneDir)); strings.Join(got, ",") != "good,next" {
		t.Errorf("done = %v, want good and next", got)
	}
}
