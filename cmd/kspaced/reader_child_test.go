package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kspaced/kspaced/daemon"
)

// TestServeReaderCrashFailsOnlyItsJob runs the daemon (two workers, --once)
// built with the kspaced_readerfaults tag, whose reader children crash on
// files named crash.h5: that job goes to failed/ saying in plain words that
// the file could not be read safely, the job beside it is done, and the
// daemon exits normally with no patient data in its log.
func TestServeReaderCrashFailsOnlyItsJob(t *testing.T) {
	makeFixtures(t)
	bin := filepath.Join(t.TempDir(), "kspaced-faults")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	if out, err := exec.Command(goBin, "build", "-tags", "kspaced_readerfaults", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	spool := mkSpool(t)
	put(t, spool, "crash.h5", fixtures.h5)
	put(t, spool, "good.h5", fixtures.h5)
	cmd := exec.Command(bin, "serve", "--config", writeConfig(t, t.TempDir(), "300ms"), "--spool", spool, "--once", "--workers", "2")
	cmd.Env = append(os.Environ(), "KSPACED_TEST_READER_FAULT=segv:crash.h5")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("serve --once: %v\n%s", err, out)
	}
	if got := names(t, filepath.Join(spool, daemon.OutboxDir)); strings.Join(got, " ") != "good" {
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
