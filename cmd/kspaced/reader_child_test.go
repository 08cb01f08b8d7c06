package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kspaced/kspaced/daemon"
	"github.com/kspaced/kspaced/internal/testutil"
)

var faultsBin struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// faultsBinary builds kspaced with the kspaced_readerfaults tag once per
// test binary: its reader children obey KSPACED_TEST_READER_FAULT.
func faultsBinary(t *testing.T) string {
	t.Helper()
	faultsBin.once.Do(func() {
		faultsBin.path = filepath.Join(filepath.Dir(kspacedBin), "kspaced-faults")
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = "/usr/local/go/bin/go"
		}
		faultsBin.out, faultsBin.err = exec.Command(goBin, "build", "-tags", "kspaced_readerfaults", "-o", faultsBin.path, ".").CombinedOutput()
	})
	if faultsBin.err != nil {
		t.Fatalf("go build: %v\n%s", faultsBin.err, faultsBin.out)
	}
	return faultsBin.path
}

// TestServeReaderCrashFailsOnlyItsJob runs the daemon (two workers, --once)
// built with the kspaced_readerfaults tag, whose reader children crash on
// files named crash.h5: that job goes to failed/ saying in plain words that
// the file could not be read safely, the job beside it is done, and the
// daemon exits normally with no patient data in its log.
func TestServeReaderCrashFailsOnlyItsJob(t *testing.T) {
	makeFixtures(t)
	bin := faultsBinary(t)
	spool := mkSpool(t)
	put(t, spool, "crash.h5", fixtures.h5)
	put(t, spool, "good.h5", fixtures.h5)
	cmd := exec.Command(bin, "serve", "--config", writeConfig(t, t.TempDir(), "300ms"), "--spool", spool, "--once", "--workers", "2")
	cmd.Env = append(os.Environ(), "KSPACED_TEST_READER_FAULT=segv:crash.h5")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("serve --once: %v\n%s", err, out)
	}
	if got := testutil.Names(t, filepath.Join(spool, daemon.OutboxDir)); strings.Join(got, " ") != "good" {
		t.Errorf("outbox %v, want good", got)
	}
	var f daemon.Failure
	raw, err := os.ReadFile(filepath.Join(spool, daemon.FailedDir, "crash", "error.json"))
	if err != nil || json.Unmarshal(raw, &f) != nil {
		t.Fatalf("error.json: %v\n%s", err, out)
	}
	if f.Outcome != daemon.OutcomeBadInput || !strings.Contains(f.Detail, "could not be read safely: the reader crashed") {
		t.Errorf("error.json %+v", f)
	}
	for _, p := range patientData {
		if strings.Contains(string(out), p) {
			t.Errorf("log carries patient data %q", p)
		}
	}
}

// TestServeReaderLimitsAndMetrics: daemon.reader's keys reach the reader
// children (a hanging child is stopped after wall_seconds: 2, not the
// default 180 s), a Go runtime fatal error in a child (stack overflow, exit
// status 2) fails its job with that reason, and /metrics counts how each
// child ended.
func TestServeReaderLimitsAndMetrics(t *testing.T) {
	makeFixtures(t)
	bin := faultsBinary(t)
	spool := mkSpool(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "300ms")
	if err := os.WriteFile(cfg, append(mustRead(t, cfg), "  reader:\n    wall_seconds: 2\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startServerWith(t, bin, []string{"KSPACED_TEST_READER_FAULT=segv:crash.h5,hang:slow.h5,stack:fatal.h5"},
		"--config", cfg, "--spool", spool, "--http", "127.0.0.1:0", "--workers", "2")
	m := regexp.MustCompile(`"msg":"http listening","addr":"([^"]+)"`).FindStringSubmatch(srv.logs.String())
	if m == nil {
		t.Fatalf("no http address in the log")
	}
	metrics := func() string {
		resp, err := http.Get("http://" + m[1] + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if !strings.Contains(metrics(), `kspaced_reader_children_total{outcome="crash"} 0`) {
		t.Errorf("outcomes not declared at zero:\n%s", metrics())
	}
	start := time.Now()
	for _, n := range []string{"crash.h5", "slow.h5", "fatal.h5", "good.h5"} {
		put(t, spool, n, fixtures.h5)
	}
	testutil.WaitUntil(t, 60*time.Second, "four jobs filed", func() bool {
		return len(testutil.Names(t, filepath.Join(spool, daemon.DoneDir)))+len(testutil.Names(t, filepath.Join(spool, daemon.FailedDir))) == 4
	})
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("jobs took %s: the wall limit of 2 s did not apply", d)
	}
	var f daemon.Failure
	raw, err := os.ReadFile(filepath.Join(spool, daemon.FailedDir, "slow", "error.json"))
	if err != nil || json.Unmarshal(raw, &f) != nil || !strings.Contains(f.Detail, "took longer than 2s") {
		t.Errorf("slow: error.json %s (%v)", raw, err)
	}
	raw, err = os.ReadFile(filepath.Join(spool, daemon.FailedDir, "fatal", "error.json"))
	if err != nil || json.Unmarshal(raw, &f) != nil || f.Outcome != daemon.OutcomeBadInput ||
		!strings.Contains(f.Detail, "fatal error of the Go runtime (stack overflow)") {
		t.Errorf("fatal: error.json %s (%v)", raw, err)
	}
	wants := []string{`kspaced_reader_children_total{outcome="crash"} 1`, `kspaced_reader_children_total{outcome="timeout"} 1`,
		`kspaced_reader_children_total{outcome="ok"} 1`, `kspaced_reader_children_total{outcome="runtime_fatal"} 1`}
	var body string
	for deadline := time.Now().Add(5 * time.Second); ; {
		body = metrics()
		all := true
		for _, w := range wants {
			all = all && strings.Contains(body, w)
		}
		if all || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("/metrics lacks %q", w)
		}
	}
}
