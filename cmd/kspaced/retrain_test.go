package main

// Tests of `kspaced retrain`: its cobra command in process (flags, usage
// errors, a run on a small simulated archive) and the real binary (exit
// statuses, kill -9 in the middle of a lap and a restart).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/mri/kspaceio"
	"github.com/kspaced/kspaced/mri/simulate"
	"github.com/kspaced/kspaced/pipeline"
	"github.com/kspaced/kspaced/priors"
	"github.com/kspaced/kspaced/retrain"
)

// smallEMArchive writes DIR/data/sim.h5: 10 slices of 32² two-coil ellipse
// phantoms, enough for a tiny EM run; it returns the data folder.
func smallEMArchive(t *testing.T, dir string) string {
	t.Helper()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	sm := configs.Default().Simulate
	sm.Rows, sm.Cols, sm.Coils, sm.CenterFraction, sm.Noise = 32, 32, 2, 0.125, 0.01
	sim, err := simulate.Acquire(simulate.Options{Source: "ellipses", Slices: 10, Sim: sm})
	if err != nil {
		t.Fatal(err)
	}
	if err := kspaceio.WriteFastMRI(filepath.Join(data, "sim.h5"), sim.Volume); err != nil {
		t.Fatal(err)
	}
	return data
}

// runRetrain executes the retrain command with args and returns what it
// printed on stdout and its error; its stderr goes to the test log.
func runRetrain(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return runCommand(t, newRetrainCmd(), args...)
}

// runCommand executes one command in process as main would (usage errors
// marked) and returns its stdout and error; its stderr goes to the test log.
func runCommand(t *testing.T, cmd *cobra.Command, args ...string) (string, error) {
	t.Helper()
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.Execute()
	if errOut.Len() > 0 {
		t.Logf("stderr:\n%s", errOut.String())
	}
	return out.String(), err
}

func isUsage(err error) bool {
	var ue usageError
	return errors.As(err, &ue)
}

func TestRetrainCommandUsage(t *testing.T) {
	dir := t.TempDir()
	cases := map[string][]string{
		"no data":          {"--out", dir},
		"no out":           {"--data", dir},
		"epochs and steps": {"--data", dir, "--out", dir, "--epochs", "2", "--train-steps", "9"},
		"bad rank":         {"--data", dir, "--out", dir, "--rank", "-3"},
		"bad network":      {"--data", dir, "--out", dir, "--network", "huge"},
		"bad fraction":     {"--data", dir, "--out", dir, "--val-fraction", "1.5"},
		"unknown flag":     {"--data", dir, "--out", dir, "--lapz", "2"},
		"bad number":       {"--data", dir, "--out", dir, "--laps", "many"},
		"stray argument":   {"--data", dir, "--out", dir, "extra"},
	}
	for name, args := range cases {
		_, err := runRetrain(t, args...)
		if err == nil || !(isUsage(err) || isCobraUsage(err)) {
			t.Errorf("%s: error %v is not a usage error (exit status 64)", name, err)
		}
	}
	cfg := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(cfg, []byte("retrain:\n  laps: -1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runRetrain(t, "--data", dir, "--out", dir, "--config", cfg); err == nil || !isUsage(err) || !strings.Contains(err.Error(), "retrain.laps") {
		t.Errorf("bad config: %v", err)
	}
}

func TestRetrainCommandDataErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := runRetrain(t, "--data", empty, "--out", filepath.Join(dir, "out"))
	if err == nil || isUsage(err) || !errors.Is(err, pipeline.ErrBadInput) || !strings.Contains(err.Error(), "no files") {
		t.Errorf("empty folder: %v (want a failure, exit status 1)", err)
	}
	_, err = runRetrain(t, "--data", filepath.Join(dir, "nope"), "--out", filepath.Join(dir, "out"))
	if err == nil || isUsage(err) {
		t.Errorf("missing folder: %v", err)
	}
}

// TestRetrainCommandRuns trains a tiny prior from a simulated archive and
// continues it with one more lap on a second call.
func TestRetrainCommandRuns(t *testing.T) {
	dir := t.TempDir()
	data := smallEMArchive(t, dir)
	out := filepath.Join(dir, "prior")
	args := []string{"--data", data, "--out", out, "--laps", "1", "--gaussian-laps", "1", "--rank", "2", "--steps", "4",
		"--cg", "1", "--train-steps", "5", "--batch-size", "2", "--network", "tiny", "--val-fraction", "0.2", "--seed", "3"}
	stdout, err := runRetrain(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	// retrain hands over the best lap by validation (issue 14), not the newest.
	if best := filepath.Join(out, retrain.BestCheckpoint); strings.TrimSpace(stdout) != best {
		t.Fatalf("stdout %q, want the best prior %q", stdout, best)
	}
	want := filepath.Join(out, retrain.LapCheckpoint(1))
	_, info, err := priors.LoadPrior(want)
	if err != nil || info.Kind != priors.KindUNet || info.Provenance.EMLap != 1 || info.Provenance.Seed == 0 {
		t.Fatalf("prior: %v %+v", err, info)
	}
	// One more lap continues the same run.
	args[5] = "2"
	stdout, err = runRetrain(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(stdout) != filepath.Join(out, retrain.BestCheckpoint) {
		t.Fatalf("second call printed %q", stdout)
	}
	if _, err := os.Stat(filepath.Join(out, retrain.LapCheckpoint(2))); err != nil {
		t.Fatalf("second call did not run lap 2: %v", err)
	}
	// Other settings that change what the run is are refused.
	args[9] = "3" // --rank
	if _, err := runRetrain(t, args...); err == nil || !strings.Contains(err.Error(), "another run") {
		t.Fatalf("changed rank accepted: %v", err)
	}
}

func simArchive(t *testing.T, dir string, slices int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sm := configs.Default().Simulate
	sm.Rows, sm.Cols, sm.Coils, sm.CenterFraction, sm.Noise = 32, 32, 2, 0.125, 0.01
	sim, err := simulate.Acquire(simulate.Options{Source: "ellipses", Slices: slices, Sim: sm})
	if err != nil {
		t.Fatal(err)
	}
	if err := kspaceio.WriteFastMRI(filepath.Join(dir, "sim.h5"), sim.Volume); err != nil {
		t.Fatal(err)
	}
}

func exitStatus(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestRetrainBinaryExitStatus(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"retrain", "--out", dir}, exitUsage, "--data"},
		{[]string{"retrain", "--data", empty, "--out", dir, "--rank", "x"}, exitUsage, "rank"},
		{[]string{"retrain", "--data", empty, "--out", dir, "--epochs", "1", "--train-steps", "3"}, exitUsage, "choose one"},
		{[]string{"retrain", "--data", empty, "--out", filepath.Join(dir, "o")}, 1, "no files"},
	} {
		out, err := exec.Command(kspacedBin, tc.args...).CombinedOutput()
		if code := exitStatus(err); code != tc.code || !strings.Contains(string(out), tc.msg) {
			t.Errorf("%v: exit %d, want %d; output %q should mention %q", tc.args, code, tc.code, out, tc.msg)
		}
	}
}

// TestRetrainBinaryKillResume kills `kspaced retrain` with SIGKILL while
// lap 1's M-step runs and checks that the same command line continues it.
func TestRetrainBinaryKillResume(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	simArchive(t, data, 12)
	out := filepath.Join(dir, "prior")
	args := []string{"retrain", "--data", data, "--out", out, "--laps", "1", "--gaussian-laps", "1", "--rank", "2",
		"--steps", "4", "--cg", "1", "--train-steps", "300", "--batch-size", "4", "--network", "tiny", "--val-fraction", "0.2"}
	killWhen(t, exec.Command(kspacedBin, args...), 90*time.Second, "an M-step checkpoint", func() bool {
		_, err := os.Stat(filepath.Join(out, "lap-01.train.safetensors"))
		return err == nil
	})
	if _, err := os.Stat(filepath.Join(out, retrain.LapCheckpoint(1))); err == nil {
		t.Fatal("lap 1 finished before the kill")
	}
	second := exec.Command(kspacedBin, args...)
	var stdout, stderr bytes.Buffer
	second.Stdout, second.Stderr = &stdout, &stderr
	if err := second.Run(); err != nil {
		t.Fatalf("restart: %v\n%s", err, stderr.String())
	}
	if strings.TrimSpace(stdout.String()) != filepath.Join(out, retrain.BestCheckpoint) {
		t.Errorf("restart printed %q", stdout.String())
	}
	if !strings.Contains(stderr.String(), "resuming after lap 0") || strings.Contains(stderr.String(), "gaussian EM 1/1") {
		t.Errorf("restart did not continue from lap 0:\n%s", stderr.String())
	}
	raw, err := os.ReadFile(filepath.Join(out, "laps.json"))
	if err != nil || !strings.Contains(string(raw), `"mstep_resumed": true`) || !strings.Contains(string(raw), `"estep_loaded": true`) {
		t.Errorf("laps.json does not record the resumed lap: %v\n%s", err, raw)
	}
}

// kill -9 of `kspaced retrain` inside the Gaussian lap 0 (after an EM
// iteration saved gaussian.partial.safetensors), then the same command:
// the fit continues from the saved iteration and lap 0's prior has the
// bytes of an uninterrupted run's.
func TestRetrainGaussianLapSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("two Gaussian fits, about a minute; the short lane keeps TestRetrainBinaryKillResume")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	simArchive(t, data, 12)
	const iters = 8
	run := func(out string) *exec.Cmd {
		return exec.Command(kspacedBin, "retrain", "--data", data, "--out", out, "--laps", "0", "--gaussian-laps", fmt.Sprint(iters),
			"--rank", "2", "--steps", "4", "--val-fraction", "0.2", "--network", "tiny")
	}
	whole, cut := filepath.Join(dir, "whole"), filepath.Join(dir, "cut")
	if out, err := run(whole).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}
	killWhen(t, run(cut), 2*time.Minute, "a saved Gaussian EM iteration", func() bool {
		_, err := os.Stat(filepath.Join(cut, "gaussian.partial.safetensors"))
		return err == nil
	})
	if _, err := os.Stat(filepath.Join(cut, retrain.LapCheckpoint(0))); err == nil {
		t.Fatal("lap 0 finished before the kill")
	}
	// The iteration records (.json) are saved just before the prior: a kill
	// between the two leaves one record more than the prior has iterations.
	recs := filepath.Join(cut, "gaussian.partial.safetensors.json")
	var its []map[string]any
	if raw, err := os.ReadFile(recs); err != nil || json.Unmarshal(raw, &its) != nil || len(its) == 0 {
		t.Fatalf("iteration records after the kill: %v %s", err, raw)
	}
	extra := maps.Clone(its[len(its)-1])
	extra["lap"] = float64(len(its) + 1)
	if raw, err := json.Marshal(append(its, extra)); err != nil || os.WriteFile(recs, raw, 0o644) != nil {
		t.Fatal(err)
	}
	second := run(cut)
	var stderr bytes.Buffer
	second.Stderr = &stderr
	if err := second.Run(); err != nil {
		t.Fatalf("restart: %v\n%s", err, stderr.String())
	}
	if strings.Contains(stderr.String(), fmt.Sprintf("gaussian EM 1/%d", iters)) || !strings.Contains(stderr.String(), fmt.Sprintf("gaussian EM %d/%d", iters, iters)) {
		t.Errorf("restart did not continue the Gaussian fit:\n%s", stderr.String())
	}
	a, err := os.ReadFile(filepath.Join(whole, retrain.LapCheckpoint(0)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(cut, retrain.LapCheckpoint(0)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("lap 0 after the kill (%d bytes) differs from the uninterrupted run's (%d bytes)", len(b), len(a))
	}
	var laps []retrain.LapRecord
	raw, err := os.ReadFile(filepath.Join(cut, "laps.json"))
	if err != nil || json.Unmarshal(raw, &laps) != nil || len(laps) != 1 || len(laps[0].GaussianLaps) != iters {
		t.Errorf("laps.json after the restart should record lap 0 with %d Gaussian iterations: %v\n%s", iters, err, raw)
	}
}
