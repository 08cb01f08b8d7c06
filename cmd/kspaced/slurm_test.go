package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kspaced/kspaced/batch"
	"github.com/kspaced/kspaced/internal/testutil"
	"github.com/kspaced/kspaced/priors"
	"github.com/kspaced/kspaced/retrain"
)

// slurm starts a real single-node Slurm (scripts/slurm-local.sh) for the
// test and returns the environment that reaches it.
func slurm(t *testing.T) []string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a Slurm cluster")
	}
	for _, tool := range []string{"munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol"} {
		testutil.Tool(t, tool)
	}
	if os.Geteuid() != 0 {
		t.Skip("the test cluster runs as root (SlurmUser=root)")
	}
	dir := t.TempDir()
	script, _ := filepath.Abs("../../scripts/slurm-local.sh")
	out, err := exec.Command(script, "start", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("start Slurm: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command(script, "stop", dir).Run() })
	return append(os.Environ(), "SLURM_CONF="+filepath.Join(dir, "slurm.conf"))
}

func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// waitJob waits until finished reports that the job's work is on disk and
// squeue no longer lists job id (three answers in a row: a job moving
// between states, or an array task requeued under a record of its own, can
// vanish from one answer while it still runs).
func waitJob(t *testing.T, env []string, id string, limit time.Duration, finished func() bool) {
	t.Helper()
	gone := 0
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if !finished() || run(t, env, "squeue", "-h", "-r", "-j", id) != "" {
			gone = 0
		} else if gone++; gone == 3 {
			return
		}
	}
	t.Fatalf("Slurm job %s not finished after %v: %s", id, limit, run(t, env, "squeue", "-j", id))
}

// summaries counts the shard summaries batch writes when a shard is done.
func summaries(out string) func() bool {
	return func() bool {
		files, _ := filepath.Glob(filepath.Join(out, ".batch", "shard-*.json"))
		return len(files) > 0
	}
}

// slurmArchive simulates n scans into nested study folders.
func slurmArchive(t *testing.T, n int) string {
	t.Helper()
	in := t.TempDir()
	for i := 0; i < n; i++ {
		dir := filepath.Join(in, fmt.Sprintf("study%d", i%3))
		cmd := exec.Command(kspacedBin, "simulate", "--source", "ellipses", "--coils", "4", "--rows", "64", "--cols", "64",
			"--seed", fmt.Sprint(i+1), "--out", dir, "--name", fmt.Sprintf("scan%d", i))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("simulate: %v\n%s", err, out)
		}
	}
	return in
}

// checkOutputs asserts every job of in has exactly one published output in
// out and nothing half-written remains; it returns the shard summaries.
func checkOutputs(t *testing.T, in, out string) []batch.Summary {
	t.Helper()
	jobs, err := batch.Discover(in)
	if err != nil {
		t.Fatal(err)
	}
	reports, _ := filepath.Glob(filepath.Join(out, "*", "*_recon", "report.json"))
	if len(reports) != len(jobs) {
		t.Errorf("%d published reports for %d jobs", len(reports), len(jobs))
	}
	for _, j := range jobs {
		if _, err := os.Stat(filepath.Join(j.OutDir(out), "report.json")); err != nil {
			t.Errorf("%s: no output: %v", j.Rel, err)
		}
	}
	partial, _ := filepath.Glob(filepath.Join(out, ".batch", "partial", "*", "*"))
	if len(partial) != 0 {
		t.Errorf("partial outputs remain: %v", partial)
	}
	var sums []batch.Summary
	files, _ := filepath.Glob(filepath.Join(out, ".batch", "shard-*.json"))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var s batch.Summary
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if s.Failed != 0 {
			t.Errorf("%s: %d failures: %+v", f, s.Failed, s.Failures)
		}
		sums = append(sums, s)
	}
	return sums
}

// An array of 4 tasks over an archive writes every output exactly once, and
// costs about what one process does.
func TestSlurmBatchArray(t *testing.T) {
	env := slurm(t)
	in := slurmArchive(t, 10)
	out := t.TempDir()
	start := time.Now()
	id := run(t, env, kspacedBin, "slurm", "batch", "--in", in, "--out", out, "--tasks", "4", "--method", "l1-wavelet")
	waitJob(t, env, id, 3*time.Minute, func() bool {
		files, _ := filepath.Glob(filepath.Join(out, ".batch", "shard-*.json"))
		return len(files) == 4
	})
	slurmWall := time.Since(start)
	sums := checkOutputs(t, in, out)
	done := 0
	for _, s := range sums {
		done += s.Done
	}
	if len(sums) != 4 || done != 10 {
		t.Fatalf("%d shard summaries doing %d jobs, want 4 shards doing 10", len(sums), done)
	}
	// The same archive in one process, for the cost of going through Slurm.
	start = time.Now()
	run(t, env, kspacedBin, "batch", "--in", in, "--out", t.TempDir(), "--method", "l1-wavelet")
	t.Logf("10 jobs: Slurm array of 4 tasks %.2f s wall (submit to last task out), one process %.2f s",
		slurmWall.Seconds(), time.Since(start).Seconds())
}

// A task killed mid-way and requeued (as on a node failure or preemption)
// finishes the rest and leaves no duplicate and no partial output.
func TestSlurmBatchRequeue(t *testing.T) {
	env := slurm(t)
	in := slurmArchive(t, 6)
	out := t.TempDir()
	// Slow jobs (~1-2 s each), so the kill lands inside one.
	cfg := filepath.Join(t.TempDir(), "slow.yaml")
	if err := os.WriteFile(cfg, []byte("recon:\n  method: l1-wavelet\n  iterations: 3000\n  tolerance: 1.0e-12\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	id := run(t, env, kspacedBin, "slurm", "batch", "--in", in, "--out", out, "--tasks", "1", "--config", cfg)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		reports, _ := filepath.Glob(filepath.Join(out, "*", "*_recon", "report.json"))
		if len(reports) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no 2 outputs after 2 minutes: %s", run(t, env, "squeue", "-j", id))
		}
		time.Sleep(100 * time.Millisecond)
	}
	run(t, env, "scontrol", "requeue", id+"_0")
	// Slurm holds a requeued job until the killed run's credential has
	// expired (forcing an earlier start gets it killed as "Job credential
	// revoked"): about a minute with slurm-local.sh's cred_expire.
	waitJob(t, env, id, 4*time.Minute, summaries(out))
	sums := checkOutputs(t, in, out)
	if len(sums) != 1 {
		t.Fatalf("%d summaries, want 1", len(sums))
	}
	s := sums[0]
	if s.Skipped < 2 || s.Done+s.Skipped != 6 {
		t.Errorf("the requeued task did %d and skipped %d of 6 jobs; want it to skip the ≥ 2 published before the kill", s.Done, s.Skipped)
	}
}

// A two-lap EM run through `kspaced slurm retrain` (each lap's E-step an
// array of 2 shards, then a dependent M-step job) writes the same priors,
// bit for bit, as `kspaced retrain` in one process with the same config.
func TestSlurmRetrainMatchesOneProcess(t *testing.T) {
	env := slurm(t)
	dir := t.TempDir()
	data := smallEMArchive(t, dir)
	cfg := filepath.Join(dir, "em.yaml")
	recipe := "retrain:\n  laps: 2\n  gaussian_laps: 1\n  rank: 2\n  steps: 4\n  cg_iterations: 1\n  train_steps: 20\n" +
		"  batch_size: 2\n  network: tiny\n  val_fraction: 0.2\n  eval_samples: 1\n  samples_per_scan: 2\n  seed: 3\n"
	if err := os.WriteFile(cfg, []byte(recipe), 0o644); err != nil {
		t.Fatal(err)
	}
	one, viaSlurm := filepath.Join(dir, "one"), filepath.Join(dir, "slurm")
	run(t, env, kspacedBin, "retrain", "--data", data, "--out", one, "--config", cfg)
	printed := run(t, env, kspacedBin, "slurm", "retrain", "--data", data, "--out", viaSlurm, "--config", cfg, "--shards", "2")
	last := printed[strings.LastIndexByte(printed, '\n')+1:] // the last job's id; the chain went to stderr
	waitJob(t, env, last, 4*time.Minute, func() bool {
		_, err := os.Stat(filepath.Join(viaSlurm, retrain.LapCheckpoint(2)))
		return err == nil
	})
	logs, _ := filepath.Glob(filepath.Join(viaSlurm, "slurm", "logs", "*"))
	if len(logs) != 1+2*(2+1) { // lap 0, and per lap 2 E-step tasks and an M-step
		t.Errorf("%d job logs, want 7: %v", len(logs), logs)
	}
	for k := 0; k <= 2; k++ {
		a, _, err := priors.ReadTensors(filepath.Join(one, retrain.LapCheckpoint(k)))
		if err != nil {
			t.Fatal(err)
		}
		b, _, err := priors.ReadTensors(filepath.Join(viaSlurm, retrain.LapCheckpoint(k)))
		if err != nil {
			for _, l := range logs {
				raw, _ := os.ReadFile(l)
				t.Logf("%s:\n%s", filepath.Base(l), raw)
			}
			t.Fatalf("lap %d through Slurm: %v", k, err)
		}
		if len(a) == 0 || len(a) != len(b) {
			t.Fatalf("lap %d: %d and %d tensors", k, len(a), len(b))
		}
		for name, ta := range a {
			if !slices.Equal(ta.Data, b[name].Data) {
				t.Errorf("lap %d: tensor %s differs between Slurm and one process", k, name)
			}
		}
	}
	if shards, _ := filepath.Glob(filepath.Join(viaSlurm, "*.shard-*")); len(shards) != 0 {
		t.Errorf("E-step shards left behind: %v", shards)
	}
}
