package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/kspaced/kspaced/batch"
	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/device"
)

// batchFlags are shared by `batch` and `slurm batch`.
type batchFlags struct {
	in, out string
	rf      reconFlags
}

func (b *batchFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&b.in, "in", "", "archive: a tree of k-space files and DICOM study folders")
	f.StringVar(&b.out, "out", "", "output tree (created if missing)")
	f.StringVar(&b.rf.cfgPath, "config", "", "YAML config merged over the defaults")
	f.StringVar(&b.rf.method, "method", "", "reconstruction method (default from config)")
	f.StringVar(&b.rf.prior, "prior", "", "diffusion prior checkpoint (mmps, dps)")
}

func (b *batchFlags) config(cmd *cobra.Command) (*configs.Config, error) {
	if b.in == "" || b.out == "" {
		return nil, usagef("--in ARCHIVE and --out DIR are required")
	}
	return b.rf.config(cmd)
}

func newBatchCmd() *cobra.Command {
	var (
		bf       batchFlags
		shard    string
		shards   int
		lockWait time.Duration
	)
	cmd := &cobra.Command{
		Use:   "batch --in ARCHIVE --out DIR [--shard i/N]",
		Short: "Reconstruct an archive into an output tree (idempotent, resumable, shardable)",
		Long: `batch reconstructs every k-space file under ARCHIVE (with the DICOM files of its
folder as its study) into DIR/<path>_recon/, mirroring the archive's folders.
A job whose output exists is skipped, so a rerun finishes what an interrupted
one left; each job is written aside and published by one rename, so no partial
output is ever visible. Failures are listed in the summary
(DIR/.batch/shard-I-of-N.json) and retried by the next run; the exit status is
1 when any job failed.

--shard i/N runs the i-th of N shards; without it the shard comes from a Slurm
array task (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT) or a Kubernetes
Indexed Job (JOB_COMPLETION_INDEX, with --shards N), else the whole archive.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := bf.config(cmd)
			if err != nil {
				return err
			}
			sh, err := taskShard(shard, shards)
			if err != nil {
				return err
			}
			var devs device.Set
			defer devs.Close()
			dev, err := jobDevice(&devs, cfg)
			if err != nil {
				return err
			}
			sum, err := batch.Run(cmd.Context(), batch.Options{In: bf.in, Out: bf.out, Config: cfg, Shard: sh, Device: dev,
				Reader: reader(cfg, nil), Log: os.Stderr, LockWait: lockWait})
			if err != nil {
				return err
			}
			if sum.Failed > 0 {
				return fmt.Errorf("%d of %d jobs failed (listed in %s)", sum.Failed, sum.Owned,
					filepath.Join(bf.out, ".batch", fmt.Sprintf("shard-%d-of-%d.json", sh.Index, sh.Count)))
			}
			return nil
		},
	}
	bf.register(cmd)
	cmd.Flags().StringVar(&shard, "shard", "", "run shard i of N (i/N, 0-based)")
	cmd.Flags().IntVar(&shards, "shards", 0, "shard count when the index comes from JOB_COMPLETION_INDEX")
	cmd.Flags().DurationVar(&lockWait, "lock-wait", 2*time.Minute, "wait this long for an earlier run of the same shard to exit")
	return cmd
}

// taskShard is the shard a command runs: --shard i/N, else the scheduler's
// array task (Slurm, or Kubernetes with count), else everything.
func taskShard(flag string, count int) (batch.Shard, error) {
	if flag != "" {
		s, err := batch.ParseShard(flag)
		if err != nil {
			return s, usageError{err}
		}
		return s, nil
	}
	s, ok, err := batch.ShardFromEnv(os.Getenv, count)
	if err != nil {
		return s, usageError{err}
	}
	if !ok {
		return batch.All, nil
	}
	return s, nil
}

func newSlurmCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "slurm",
		Short: "Write and submit Slurm jobs for kspaced's batch work",
	}
	var (
		bf     batchFlags
		sl     batch.Slurm
		submit bool
	)
	b := &cobra.Command{
		Use:   "batch --in ARCHIVE --out DIR --tasks N [--partition P --time T --gpus-per-task G]",
		Short: "Submit `kspaced batch` over an archive as a Slurm array of N tasks",
		Long: `slurm batch writes DIR/.batch/batch.sbatch — an array job of N requeueable tasks,
each running 'kspaced batch' on its shard — and submits it with sbatch (or, with
--submit=false, only writes it). Task logs go to DIR/.batch/logs/.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Checked here, so a bad config fails before anything is queued.
			if _, err := bf.config(cmd); err != nil {
				return err
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			abs := func(p string) string {
				a, err := filepath.Abs(p)
				if err != nil {
					return p
				}
				return a
			}
			sl.Command = []string{self, "batch", "--in", abs(bf.in), "--out", abs(bf.out)}
			if bf.rf.cfgPath != "" {
				sl.Command = append(sl.Command, "--config", abs(bf.rf.cfgPath))
			}
			if changed(cmd, "method") {
				sl.Command = append(sl.Command, "--method", bf.rf.method)
			}
			if changed(cmd, "prior") {
				sl.Command = append(sl.Command, "--prior", abs(bf.rf.prior))
			}
			meta := filepath.Join(abs(bf.out), ".batch")
			sl.LogDir = filepath.Join(meta, "logs")
			if err := os.MkdirAll(meta, 0o755); err != nil {
				return err
			}
			path := filepath.Join(meta, "batch.sbatch")
			if !submit {
				script, err := sl.Script()
				if err != nil {
					return usageError{err}
				}
				if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
					return err
				}
				fmt.Println(path)
				return nil
			}
			id, err := sl.Submit(path)
			if err != nil {
				return err
			}
			fmt.Println(id)
			return nil
		},
	}
	bf.register(b)
	f := b.Flags()
	f.IntVar(&sl.Tasks, "tasks", 1, "array tasks (shards)")
	f.StringVar(&sl.Name, "name", "kspaced-batch", "Slurm job name")
	slurmFlags(b, &sl)
	f.BoolVar(&submit, "submit", true, "submit with sbatch (false: only write the script)")
	cmd.AddCommand(b, newSlurmRetrainCmd())
	return cmd
}

// slurmFlags are the resource options every submitted job takes.
func slurmFlags(cmd *cobra.Command, sl *batch.Slurm) {
	f := cmd.Flags()
	f.StringVar(&sl.Partition, "partition", "", "Slurm partition")
	f.StringVar(&sl.Time, "time", "", "time limit per task (sbatch --time)")
	f.IntVar(&sl.CPUsPerTask, "cpus-per-task", 0, "CPUs per task")
	f.IntVar(&sl.GPUsPerTask, "gpus-per-task", 0, "GPUs per task")
	f.StringVar(&sl.MemPerCPU, "mem-per-cpu", "", "memory per CPU (sbatch --mem-per-cpu)")
	f.StringVar(&sl.Account, "account", "", "Slurm account")
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

func newSlurmRetrainCmd() *cobra.Command {
	var (
		data         []string
		out, cfgPath string
		laps, shards int
		sl           batch.Slurm
	)
	cmd := &cobra.Command{
		Use:   "retrain --data DIR --out PRIOR_DIR --shards N [--laps L] [--config FILE] [--partition P --time T --gpus-per-task G]",
		Short: "Submit `kspaced retrain` as a Slurm job chain: each lap's E-step as an array of N shards, then its M-step",
		Long: `slurm retrain submits an EM run as a chain of Slurm jobs in PRIOR_DIR/slurm/:
lap-00 (the Gaussian lap), then for each lap K an array estep-KK of N tasks
(each samples a shard of the scans under lap K-1's prior) and a job mstep-KK
that starts when every shard is in (--dependency=afterok), merges them and
trains lap K. The priors are those a single 'kspaced retrain' with the same
config writes. Every job is requeueable and resumes what is saved; submitting
the chain again continues a run that stopped. Settings come from --config
(section retrain) and the laps from --laps (default: retrain.laps).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cfgPath)
			if err != nil {
				return err
			}
			if !changed(cmd, "laps") {
				laps = cfg.Retrain.Laps
			}
			if len(data) == 0 || out == "" {
				return usagef("--data DIR and --out PRIOR_DIR are required")
			}
			if shards < 1 || laps < 0 || laps > 99 {
				return usagef("--shards must be at least 1 and --laps in [0, 99]")
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			base := []string{self, "retrain", "--out", absPath(out)}
			for _, d := range data {
				base = append(base, "--data", absPath(d))
			}
			if cfgPath != "" {
				base = append(base, "--config", absPath(cfgPath))
			}
			dir := filepath.Join(absPath(out), "slurm")
			sl.LogDir = filepath.Join(dir, "logs")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			submit := func(name string, tasks int, after string, args ...string) (string, error) {
				j := sl
				j.Name, j.Tasks, j.Command = "kspaced-em-"+name, tasks, append(slices.Clone(base), args...)
				if after != "" {
					j.Dependency = "afterok:" + after
				}
				return j.Submit(filepath.Join(dir, name+".sbatch"))
			}
			prev, err := submit("lap-00", 0, "", "--laps", "0")
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "lap 0 (Gaussian): job %s\n", prev)
			for k := 1; k <= laps; k++ {
				e, err := submit(fmt.Sprintf("estep-%02d", k), shards, prev, "--laps", fmt.Sprint(k), "--estep", fmt.Sprint(k))
				if err != nil {
					return err
				}
				m, err := submit(fmt.Sprintf("mstep-%02d", k), 0, e, "--laps", fmt.Sprint(k), "--merge-shards", fmt.Sprint(shards))
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "lap %d: E-step array %s (%d tasks), M-step job %s\n", k, e, shards, m)
				prev = m
			}
			fmt.Fprintln(cmd.OutOrStdout(), prev)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&data, "data", nil, "folder or file of undersampled k-space; repeatable")
	f.StringVar(&out, "out", "", "run folder for the priors (shared by every node)")
	f.StringVar(&cfgPath, "config", "", "YAML config (section retrain) every job uses")
	f.IntVar(&laps, "laps", 0, "network laps after the Gaussian lap 0 (default: retrain.laps)")
	f.IntVar(&shards, "shards", 1, "E-step array tasks per lap")
	slurmFlags(cmd, &sl)
	return cmd
}
