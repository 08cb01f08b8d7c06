package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kspaced/kspaced/daemon"
	"github.com/kspaced/kspaced/internal/peers"
	"github.com/kspaced/kspaced/internal/testutil"
	"github.com/kspaced/kspaced/pacs"
)

// slowProxy forwards TCP to target, pausing after every chunk sent
// upstream while delay is set: a send slow enough to kill the daemon in.
type slowProxy struct {
	addr  string
	delay atomic.Int64 // nanoseconds per 1 KiB chunk
	up    atomic.Int64 // bytes forwarded upstream
}

func startSlowProxy(t *testing.T, target string) *slowProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &slowProxy{addr: ln.Addr().String()}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, s)
			mu.Unlock()
			go func() {
				buf := make([]byte, 1024)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if d := p.delay.Load(); d > 0 {
							time.Sleep(time.Duration(d))
						}
						if _, werr := s.Write(buf[:n]); werr != nil {
							break
						}
						p.up.Add(int64(n))
					}
					if err != nil {
						break
					}
				}
				s.Close()
			}()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
	return p
}

// kill -9 of the daemon in the middle of a C-STORE association, then a
// restart: every published job reaches Orthanc, which holds each instance
// exactly once with the outbox's UIDs, and the delivery states say so.
func TestServeDeliversToPACSAcrossKill9(t *testing.T) {
	makeFixtures(t)
	o := peers.StartOrthanc(t)
	proxy := startSlowProxy(t, o.DICOMAddr)
	proxy.delay.Store(int64(40 * time.Millisecond))
	spool := mkSpool(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "200ms")
	host, port, _ := net.SplitHostPort(proxy.addr)
	appendConfig(t, cfg, "pacs:\n  destinations:\n    - {name: orthanc, ae_title: %s, host: %s, port: %s}\n  retry_backoff: 200ms\n  max_backoff: 1s\n  timeout: 10s\n", o.AE, host, port)

	const n = 4
	for i := range n {
		put(t, spool, fmt.Sprintf("k%02d.npy", i), fixtures.npy)
	}
	first := startServer(t, "--config", cfg, "--spool", spool, "--workers", "2")
	// inFlight lists jobs whose attempt has started and not ended.
	inFlight := func() []string {
		sts, _ := pacs.States(spool)
		var out []string
		for _, st := range sts {
			if st.State == pacs.StatePending && st.Attempts > 0 {
				out = append(out, st.Job)
			}
		}
		return out
	}
	testutil.WaitUntil(t, 60*time.Second, "a C-STORE under way", func() bool {
		return len(inFlight()) > 0 && proxy.up.Load() > 4096
	})
	first.cmd.Process.Signal(syscall.SIGKILL)
	<-first.exited
	cut := inFlight()
	if len(cut) == 0 {
		t.Fatal("no delivery was in flight at the kill")
	}
	t.Logf("killed after %d bytes upstream, during %v; Orthanc held %d instances", proxy.up.Load(), cut, len(o.Instances(t)))

	proxy.delay.Store(0)
	second := startServer(t, "--config", cfg, "--spool", spool, "--workers", "2")
	testutil.WaitUntil(t, 90*time.Second, "every job delivered", func() bool {
		sts, _ := pacs.States(spool)
		done := 0
		for _, st := range sts {
			if st.State == pacs.StateDelivered {
				done++
			}
		}
		return len(testutil.Names(t, filepath.Join(spool, daemon.DoneDir))) == n && done == n
	})
	if err := second.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("serve exited with %v", err)
	}

	// What Orthanc must hold: every DICOM file of every job, once.
	want := map[string]string{} // SOP Instance UID → series
	for i := range n {
		files, err := pacs.DICOMFiles(filepath.Join(spool, daemon.OutboxDir, fmt.Sprintf("k%02d", i)))
		if err != nil || len(files) == 0 {
			t.Fatalf("job k%02d: %d DICOM files, %v", i, len(files), err)
		}
		for _, f := range files {
			out, err := exec.Command("dcmdump", "+P", "0008,0018", "+P", "0020,000e", f).Output()
			if err != nil {
				t.Fatal(err)
			}
			var uids []string
			for _, line := range strings.Split(string(out), "\n") {
				if a, b := strings.Index(line, "["), strings.Index(line, "]"); a >= 0 && b > a {
					uids = append(uids, line[a+1:b])
				}
			}
			if len(uids) != 2 {
				t.Fatalf("dcmdump %s: %q", f, out)
			}
			want[uids[0]] = uids[1]
		}
	}
	got := o.Instances(t)
	seen := map[string]int{}
	for _, g := range got {
		seen[g.SOPInstanceUID]++
		if s, ok := want[g.SOPInstanceUID]; !ok || s != g.SeriesInstanceUID {
			t.Errorf("Orthanc holds %s in series %s; not an outbox instance (want series %q)", g.SOPInstanceUID, g.SeriesInstanceUID, s)
		}
	}
	for uid := range want {
		if seen[uid] != 1 {
			t.Errorf("instance %s stored %d times", uid, seen[uid])
		}
	}
	if len(got) != len(want) {
		t.Errorf("Orthanc holds %d instances, the outbox %d", len(got), len(want))
	}
	for _, job := range cut {
		st, err := os.ReadFile(filepath.Join(spool, pacs.DeliveryDir, job, "orthanc.json"))
		if err != nil || !strings.Contains(string(st), `"attempts": 2`) || !strings.Contains(string(st), `"state": "delivered"`) {
			t.Errorf("%s's state after the kill: %s (%v), want delivered at the second attempt", job, st, err)
		}
	}
	logs := first.logs.String() + second.logs.String()
	for _, p := range patientData {
		if strings.Contains(logs, p) {
			t.Errorf("logs name the patient (%q)", p)
		}
	}
}

// `kspaced pacs echo` and `pacs send` against dcmtk's storescp; a wrong name
// is a usage error, a closed port an error in words.
func TestPACSCommands(t *testing.T) {
	scp := peers.StartStoreSCP(t, "SCP1")
	host, port, _ := net.SplitHostPort(scp.Addr)
	cfg := filepath.Join(t.TempDir(), "pacs.yaml")
	closed := peers.FreePort(t)
	body := fmt.Sprintf("pacs:\n  destinations:\n    - {name: scp, ae_title: SCP1, host: %s, port: %s}\n    - {name: off, ae_title: X, host: 127.0.0.1, port: %d}\n  timeout: 5s\n", host, port, closed)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, int) {
		out, err := exec.Command(kspacedBin, append(args, "--config", cfg)...).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return string(out), code
	}
	if out, code := run("pacs", "echo", "scp"); code != 0 || !strings.Contains(out, "scp answered") {
		t.Errorf("echo: %d %s", code, out)
	}
	dir := t.TempDir()
	var files int
	for _, r := range peers.Series(t, dir, 3) {
		files += len(r.Files)
	}
	os.WriteFile(filepath.Join(dir, "report.json"), []byte("{}"), 0o644) // not DICOM: skipped
	if out, code := run("pacs", "send", dir, "--to", "scp"); code != 0 || !strings.Contains(out, fmt.Sprintf("stored %d of %d", files, files)) {
		t.Errorf("send: %d %s", code, out)
	}
	if got := len(scp.Files(t)); got != files {
		t.Errorf("storescp holds %d files, want %d", got, files)
	}
	if out, code := run("pacs", "echo", "nosuch"); code != exitUsage || !strings.Contains(out, "configured: scp, off") {
		t.Errorf("unknown destination: %d %s", code, out)
	}
	if out, code := run("pacs", "echo", "off"); code != 1 || !strings.Contains(out, "connection refused") {
		t.Errorf("closed port: %d %s", code, out)
	}
}

// A study sent with storescu to the daemon's listener becomes one inbox job
// with every instance, claimed whole; an unknown calling AE is rejected.
func TestServeReceivesStudy(t *testing.T) {
	storescu := peers.Need(t, "storescu")
	spool := mkSpool(t)
	cfg := writeConfig(t, t.TempDir(), "10s") // only the .ready marker can make it ready in time
	port := peers.FreePort(t)
	appendConfig(t, cfg, "pacs:\n  listen:\n    addr: 127.0.0.1:%d\n    ae_title: KSPACED\n    callers: [SCANNER]\n", port)
	s := startServer(t, "--config", cfg, "--spool", spool)
	var files []string
	for _, r := range peers.Series(t, t.TempDir(), 2) {
		files = append(files, r.Files...)
	}
	send := func(aet string) error {
		return exec.Command(storescu, append([]string{"-aet", aet, "-aec", "KSPACED", "127.0.0.1", fmt.Sprint(port)}, files...)...).Run()
	}
	if err := send("SCANNER"); err != nil {
		t.Fatalf("storescu: %v", err)
	}
	_ = send("INTRUDER")
	var job string
	testutil.WaitUntil(t, 30*time.Second, "the received study filed", func() bool {
		for _, d := range []string{daemon.DoneDir, daemon.FailedDir} {
			if got := testutil.Names(t, filepath.Join(spool, d)); len(got) > 0 {
				job = filepath.Join(spool, d, got[0])
				return true
			}
		}
		return false
	})
	var got int
	filepath.WalkDir(filepath.Join(job, "input"), func(p string, de os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".dcm") {
			got++
		}
		return nil
	})
	if got != len(files) {
		t.Errorf("job %s holds %d instances, sent %d", job, got, len(files))
	}
	if n := len(testutil.Names(t, filepath.Join(spool, daemon.DoneDir))) + len(testutil.Names(t, filepath.Join(spool, daemon.FailedDir))); n != 1 {
		t.Errorf("%d jobs from one association (the rejected one made any?)", n)
	}
	// The listener logs the rejection after answering it, so the line can
	// trail storescu's exit.
	testutil.WaitUntil(t, 10*time.Second, "the intruder's rejection logged", func() bool {
		return strings.Contains(s.logs.String(), "calling AE title not configured")
	})
	if logs := s.logs.String(); strings.Contains(logs, "Test^Patient") {
		t.Errorf("patient name in the logs: %s", logs)
	}
}

// serve --once delivers what it published before it exits (cron).
func TestServeOnceDelivers(t *testing.T) {
	makeFixtures(t)
	scp := peers.StartStoreSCP(t, "SCP1")
	host, port, _ := net.SplitHostPort(scp.Addr)
	spool := mkSpool(t)
	cfg := writeConfig(t, t.TempDir(), "0s")
	appendConfig(t, cfg, "pacs:\n  destinations:\n    - {name: scp, ae_title: SCP1, host: %s, port: %s}\n", host, port)
	put(t, spool, "a.npy", fixtures.npy)
	put(t, spool, "b.npy", fixtures.npy)
	if out, err := exec.Command(kspacedBin, "serve", "--once", "--config", cfg, "--spool", spool).CombinedOutput(); err != nil {
		t.Fatalf("serve --once: %v\n%s", err, out)
	}
	sts, err := pacs.States(spool)
	if err != nil || len(sts) != 2 {
		t.Fatalf("states %+v, %v", sts, err)
	}
	sent := 0
	for _, st := range sts {
		if st.State != pacs.StateDelivered {
			t.Errorf("%s: %s (%s)", st.Job, st.State, st.LastError)
		}
		sent += len(st.Files)
	}
	if got := len(scp.Files(t)); got != sent {
		t.Errorf("storescp holds %d files, the jobs %d", got, sent)
	}
}

// kill -9 of the daemon while its listener receives a study, then a restart
// and the modality's resend: every instance acknowledged before the kill
// reaches the inbox as a job of its own (nothing acknowledged is lost), no
// staging folder is left behind, and the resent study arrives whole, as an
// uninterrupted association delivers it (same instances, UIDs and pixels).
func TestServeReceivesStudyAcrossKill9(t *testing.T) {
	storescu := peers.Need(t, "storescu")
	spool := mkSpool(t)
	cfg := writeConfig(t, t.TempDir(), "10s")
	port := peers.FreePort(t)
	appendConfig(t, cfg, "pacs:\n  listen:\n    addr: 127.0.0.1:%d\n    ae_title: KSPACED\n    callers: [SCANNER]\n", port)
	var files []string
	for _, r := range peers.SeriesSized(t, t.TempDir(), 6, 64, 64) {
		files = append(files, r.Files...)
	}
	want := map[string]string{} // SOP Instance UID → pixels
	for _, p := range files {
		uid, px := peers.UIDAndPixels(t, p)
		want[uid] = px
	}
	proxy := startSlowProxy(t, fmt.Sprintf("127.0.0.1:%d", port))
	host, pport, _ := net.SplitHostPort(proxy.addr)
	send := func() *exec.Cmd {
		return exec.Command(storescu, append([]string{"-aet", "SCANNER", "-aec", "KSPACED", host, pport}, files...)...)
	}
	inbox := filepath.Join(spool, "inbox")
	acked := func() []string {
		got, _ := filepath.Glob(filepath.Join(inbox, ".rx-*.part", "*.dcm"))
		return got
	}

	first := startServer(t, "--config", cfg, "--spool", spool)
	proxy.delay.Store(int64(20 * time.Millisecond))
	scu := send()
	if err := scu.Start(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitUntil(t, 60*time.Second, "two instances acknowledged", func() bool { return len(acked()) >= 2 })
	first.cmd.Process.Signal(syscall.SIGKILL)
	<-first.exited
	_ = scu.Wait() // the association breaks
	kept := map[string]bool{}
	for _, p := range acked() {
		uid, _ := peers.UIDAndPixels(t, p)
		kept[uid] = true
	}
	if len(kept) == 0 || len(kept) >= len(files) {
		t.Fatalf("%d of %d instances acknowledged at the kill, want some but not all", len(kept), len(files))
	}

	proxy.delay.Store(0)
	second := startServer(t, "--config", cfg, "--spool", spool)
	if err := send().Run(); err != nil {
		t.Fatalf("resend: %v", err)
	}
	// Jobs end done or failed (a study without k-space has nothing to
	// reconstruct); what matters is what each one received.
	jobs := func() []string {
		var out []string
		for _, d := range []string{daemon.DoneDir, daemon.FailedDir} {
			for _, n := range testutil.Names(t, filepath.Join(spool, d)) {
				out = append(out, filepath.Join(spool, d, n))
			}
		}
		return out
	}
	testutil.WaitUntil(t, 60*time.Second, "two received studies filed", func() bool { return len(jobs()) == 2 })
	if err := second.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("serve exited with %v", err)
	}
	var whole, cut int
	for _, job := range jobs() {
		got := map[string]string{}
		filepath.WalkDir(filepath.Join(job, "input"), func(p string, de os.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(p, ".dcm") {
				uid, px := peers.UIDAndPixels(t, p)
				got[uid] = px
			}
			return nil
		})
		for uid, px := range got {
			if want[uid] != px {
				t.Errorf("%s: instance %s is not one that was sent intact", job, uid)
			}
		}
		t.Logf("%s: %d of %d instances", filepath.Base(job), len(got), len(want))
		switch {
		case len(got) == len(want):
			whole++
		case len(got) >= len(kept):
			cut++
			for uid := range kept {
				if _, ok := got[uid]; !ok {
					t.Errorf("%s: instance %s acknowledged before the kill is missing", job, uid)
				}
			}
		default:
			t.Errorf("%s holds %d instances: neither the %d acknowledged before the kill nor the whole %d", job, len(got), len(kept), len(want))
		}
	}
	if whole != 1 || cut != 1 {
		t.Errorf("%d whole and %d recovered studies, want one of each", whole, cut)
	}
	if left, _ := filepath.Glob(filepath.Join(inbox, ".rx-*")); len(left) > 0 {
		t.Errorf("staging left in the inbox: %v", left)
	}
}
