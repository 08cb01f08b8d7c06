package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/mri/kspaceio"
	"github.com/kspaced/kspaced/mri/simulate"
	"github.com/kspaced/kspaced/pipeline"
)

func TestShardsPartitionJobs(t *testing.T) {
	t.Parallel()
	for n := 1; n <= 7; n++ {
		counts := make([]int, n)
		for k := 0; k < 2000; k++ {
			rel := fmt.Sprintf("study%d/series%d/scan.h5", k/7, k)
			owners := 0
			for i := 0; i < n; i++ {
				if (Shard{i, n}).Owns(rel) {
					owners++
					counts[i]++
				}
			}
			if owners != 1 {
				t.Fatalf("N=%d: %s owned by %d shards", n, rel, owners)
			}
		}
		// FNV spreads paths: no shard gets less than half its share.
		for i, c := range counts {
			if c < 2000/n/2 {
				t.Errorf("N=%d: shard %d got %d of 2000 jobs", n, i, c)
			}
		}
	}
}

func TestParseShard(t *testing.T) {
	t.Parallel()
	if s, err := ParseShard("2/5"); err != nil || s != (Shard{2, 5}) {
		t.Fatalf("2/5 → %v, %v", s, err)
	}
	for _, bad := range []string{"", "3", "5/5", "-1/3", "a/b", "1/0"} {
		if _, err := ParseShard(bad); err == nil {
			t.Errorf("ParseShard(%q) accepted", bad)
		}
	}
}

func TestShardFromEnv(t *testing.T) {
	t.Parallel()
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	cases := []struct {
		env   func(string) string
		count int
		want  Shard
		ok    bool
		err   bool
	}{
		{env(), 0, Shard{}, false, false},
		{env("SLURM_ARRAY_TASK_ID", "3", "SLURM_ARRAY_TASK_COUNT", "4"), 0, Shard{3, 4}, true, false},
		// An array 10-13 is shards 0..3.
		{env("SLURM_ARRAY_TASK_ID", "11", "SLURM_ARRAY_TASK_COUNT", "4", "SLURM_ARRAY_TASK_MIN", "10"), 0, Shard{1, 4}, true, false},
		{env("SLURM_ARRAY_TASK_ID", "1"), 0, Shard{}, false, true},
		{env("SLURM_ARRAY_TASK_ID", "1"), 3, Shard{1, 3}, true, false},
		{env("SLURM_ARRAY_TASK_ID", "4", "SLURM_ARRAY_TASK_COUNT", "4"), 0, Shard{}, false, true},
		{env("JOB_COMPLETION_INDEX", "2"), 3, Shard{2, 3}, true, false},
		{env("JOB_COMPLETION_INDEX", "2"), 0, Shard{}, false, true},
	}
	for i, c := range cases {
		s, ok, err := ShardFromEnv(c.env, c.count)
		if s != c.want || ok != c.ok || (err != nil) != c.err {
			t.Errorf("case %d: got %v %v %v, want %v %v err=%v", i, s, ok, err, c.want, c.ok, c.err)
		}
	}
}

// archive writes n single-slice simulated scans into nested folders, and
// returns their relative paths.
func archive(t *testing.T, dir string, n int) []string {
	t.Helper()
	cfg := configs.Default()
	cfg.Simulate.Rows, cfg.Simulate.Cols, cfg.Simulate.Coils = 32, 32, 2
	var rels []string
	for i := 0; i < n; i++ {
		cfg.Simulate.Seed = uint64(i + 1)
		sim, err := simulate.Acquire(simulate.Options{Source: "ellipses", Slices: 1, Sim: cfg.Simulate})
		if err != nil {
			t.Fatal(err)
		}
		s := sim.Volume.Slices[0]
		rel := fmt.Sprintf("study%d/scan%d.npy", i%3, i)
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := kspaceio.WriteNPYComplex64(p, []int{s.Coils, s.Rows, s.Cols}, s.KSpace); err != nil {
			t.Fatal(err)
		}
		mp := strings.TrimSuffix(p, ".npy") + "_mask.npy"
		if err := kspaceio.WriteNPYFloat32(mp, []int{s.Rows, s.Cols}, s.Mask); err != nil {
			t.Fatal(err)
		}
		rels = append(rels, rel)
	}
	return rels
}

func options(in, out string, s Shard) Options {
	cfg := configs.Default()
	cfg.Recon.Method = "zero-filled"
	return Options{In: in, Out: out, Config: cfg, Shard: s}
}

func TestRunShardsIdempotentResumable(t *testing.T) {
	t.Parallel()
	in, out := t.TempDir(), t.TempDir()
	rels := archive(t, in, 7)
	jobs, err := Discover(in)
	if err != nil || len(jobs) != len(rels) {
		t.Fatalf("Discover: %d jobs (%v), want %d: masks are companions, not jobs", len(jobs), err, len(rels))
	}
	// A killed earlier run of shard 0 left a half-written job behind.
	junk := filepath.Join(out, ".batch", "partial", "0-of-2", "deadbeef")
	if err := os.MkdirAll(junk, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(junk, "half.dcm"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	total := 0
	for i := 0; i < 2; i++ {
		sum, err := Run(context.Background(), options(in, out, Shard{i, 2}))
		if err != nil {
			t.Fatal(err)
		}
		if sum.Failed != 0 || sum.Done != sum.Owned || sum.Archive != len(rels) {
			t.Fatalf("shard %d: %+v", i, sum)
		}
		total += sum.Done
	}
	if total != len(rels) {
		t.Fatalf("shards did %d jobs, archive has %d", total, len(rels))
	}
	if _, err := os.Stat(junk); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("partial output of a killed run survives: %v", err)
	}
	for _, j := range jobs {
		var rep pipeline.Report
		raw, err := os.ReadFile(filepath.Join(j.OutDir(out), "report.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &rep); err != nil || rep.Slices != 1 || len(rep.Outputs) == 0 {
			t.Fatalf("%s: report %+v, %v", j.Rel, rep, err)
		}
		for _, o := range rep.Outputs {
			if _, err := os.Stat(filepath.Join(j.OutDir(out), filepath.FromSlash(o))); err != nil {
				t.Errorf("%s: report names %s: %v", j.Rel, o, err)
			}
		}
	}
	// A rerun of the whole archive finds everything done.
	sum, err := Run(context.Background(), options(in, out, All))
	if err != nil || sum.Done != 0 || sum.Skipped != len(rels) {
		t.Fatalf("rerun: %+v, %v", sum, err)
	}
}

func TestRunRecordsFailureAndGoesOn(t *testing.T) {
	t.Parallel()
	in, out := t.TempDir(), t.TempDir()
	rels := archive(t, in, 3)
	// A truncated .npy: its job fails, the others are done.
	bad := filepath.Join(in, "study0", "broken.npy")
	raw, err := os.ReadFile(filepath.Join(in, rels[0]))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, raw[:200], 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := Run(context.Background(), options(in, out, All))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Done != len(rels) || sum.Failed != 1 || len(sum.Failures) != 1 || sum.Failures[0].Job != "study0/broken.npy" {
		t.Fatalf("summary %+v", sum)
	}
	if _, err := os.Stat(Job{Rel: "study0/broken.npy"}.OutDir(out)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed job published output: %v", err)
	}
	raw, err = os.ReadFile(filepath.Join(out, ".batch", "shard-0-of-1.json"))
	if err != nil || !strings.Contains(string(raw), "broken.npy") {
		t.Fatalf("summary file: %s, %v", raw, err)
	}
	// Fixed and rerun: only the failed job runs, and its failure record goes.
	if err := os.Remove(bad); err != nil {
		t.Fatal(err)
	}
	sum, err = Run(context.Background(), options(in, out, All))
	if err != nil || sum.Done != 0 || sum.Failed != 0 || sum.Skipped != len(rels) {
		t.Fatalf("rerun: %+v, %v", sum, err)
	}
}

func TestSameShardTwiceIsRefused(t *testing.T) {
	out := t.TempDir()
	dir := filepath.Join(out, ".batch", "partial")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	unlock, err := lock(filepath.Join(dir, "0-of-1.lock"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	o := options(t.TempDir(), out, All)
	o.LockWait = 300 * time.Millisecond
	start := time.Now()
	_, err = Run(context.Background(), o)
	if !errors.Is(err, ErrShardBusy) || time.Since(start) < o.LockWait {
		t.Fatalf("second run of a busy shard: %v after %v, want ErrShardBusy after waiting %v", err, time.Since(start), o.LockWait)
	}
}

func TestSlurmScript(t *testing.T) {
	t.Parallel()
	s := Slurm{Name: "kspaced-batch", Tasks: 4, Partition: "gpu", Time: "2:00:00", GPUsPerTask: 1,
		LogDir: "/out/.batch/logs", Command: []string{"/usr/bin/kspaced", "batch", "--in", "/data/my archive", "--out", "/out"}}
	got, err := s.Script()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"#!/bin/bash\n", "#SBATCH --array=0-3\n", "#SBATCH --partition=gpu\n", "#SBATCH --time=2:00:00\n",
		"#SBATCH --gpus-per-task=1\n", "#SBATCH --requeue\n", "#SBATCH --output=/out/.batch/logs/%A_%a.log\n",
		"exec /usr/bin/kspaced batch --in '/data/my archive' --out /out\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("script lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "cpus-per-task") {
		t.Errorf("unset option written:\n%s", got)
	}
	if _, err := (Slurm{Tasks: -1, Command: []string{"x"}}).Script(); err == nil {
		t.Error("-1 tasks accepted")
	}
	one, err := (Slurm{Command: []string{"x"}, Dependency: "afterok:12"}).Script()
	if err != nil || strings.Contains(one, "--array") || !strings.Contains(one, "#SBATCH --dependency=afterok:12\n") {
		t.Errorf("single dependent job:\n%s (%v)", one, err)
	}
	if q := shellQuote("it's"); q != `'it'\''s'` {
		t.Errorf("shellQuote: %s", q)
	}
}
