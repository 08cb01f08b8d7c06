package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/retrain"
)

func newRetrainCmd() *cobra.Command {
	var (
		cfgPath, out, network                    string
		data                                     []string
		laps, rank, steps, cg, epochs, trainStep int
		gaussLaps, batch, workers                int
		valFrac                                  float64
		seed                                     uint64
		estepLap, shards, mergeShards            int
		shard                                    string
		adopt                                    bool
	)
	cmd := &cobra.Command{
		Use:   "retrain --data DIR --out PRIOR_DIR",
		Short: "Learn a diffusion prior from undersampled scans by expectation-maximisation",
		Long: `retrain learns a diffusion prior from an archive of undersampled k-space alone
(any format kspaced reads; each scan keeps its own mask, coil maps are estimated
and noise measured per scan, exactly as recon prepares them). Lap 0 fits a
Gaussian prior (mean, diagonal plus low-rank covariance) by EM with exact
posteriors; every further lap draws one MMPS posterior sample per scan under the
last prior and trains the network on them, warm started.

Each lap writes PRIOR_DIR/lap-NN.safetensors (usable as recon --prior) and
appends its record to PRIOR_DIR/laps.json, with the validation scans' data
consistency ‖y − Ax‖²/(mσ²) and, where NAME_truth.npy lies beside NAME.h5 (as
kspaced simulate writes), PSNR and SSIM of their posterior means. Run the same
command again after an interruption to continue: saved laps, E-step samples and
M-step checkpoints are not recomputed. Unreadable files and slices without a
noise estimate are skipped with a warning; scans must share one image size.

Across nodes (what 'kspaced slurm retrain' submits): --estep K runs only lap K's
E-step for one shard of the scans (--shard i/N, or the Slurm array task, or
JOB_COMPLETION_INDEX with --shards N) and saves it in PRIOR_DIR; --laps K
--merge-shards N then merges lap K's N shards and finishes the lap (M-step,
validation). A rerun of a shard or lap that is done does nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cfgPath)
			if err != nil {
				return err
			}
			if changed(cmd, "epochs") && changed(cmd, "train-steps") {
				return usagef("--epochs and --train-steps both given: choose one")
			}
			r := &cfg.Retrain
			for flag, set := range map[string]func(){
				"laps": func() { r.Laps = laps }, "rank": func() { r.Rank = rank }, "steps": func() { r.Steps = steps },
				"cg": func() { r.CGIterations = cg }, "epochs": func() { r.Epochs = epochs },
				"train-steps": func() { r.TrainSteps, r.Epochs = trainStep, 0 }, "val-fraction": func() { r.ValFraction = valFrac },
				"seed": func() { r.Seed = seed }, "network": func() { r.Network = network },
				"gaussian-laps": func() { r.GaussianLaps = gaussLaps }, "batch-size": func() { r.BatchSize = batch },
				"workers": func() { r.Workers = workers },
			} {
				if changed(cmd, flag) {
					set()
				}
			}
			if err := revalidate(cfg); err != nil {
				return err
			}
			if len(data) == 0 {
				return usagef("--data DIR is required (a folder or files of undersampled k-space)")
			}
			if out == "" {
				return usagef("--out PRIOR_DIR is required")
			}
			ropt := retrain.RetrainOptions{Data: data, Out: out, Config: cfg, MergeShards: mergeShards, AdoptData: adopt}
			if changed(cmd, "estep") {
				sh, err := taskShard(shard, shards)
				if err != nil {
					return err
				}
				ropt.EStep = &retrain.EStepTask{Lap: estepLap, Index: sh.Index, Count: sh.Count}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			stderr := cmd.ErrOrStderr()
			ropt.Progress, ropt.Log = stderr, stderr
			res, err := retrain.Retrain(ctx, ropt)
			if err != nil {
				if errors.Is(err, context.Canceled) {
					return fmt.Errorf("interrupted; run the same command again to continue from the last saved step")
				}
				return err
			}
			if t := ropt.EStep; t != nil {
				fmt.Fprintf(stderr, "retrain: lap %d E-step shard %d/%d done\n", t.Lap, t.Index, t.Count)
				return nil
			}
			fmt.Fprintf(stderr, "retrain: %d laps done, %d scans skipped\n", len(res.Laps)-1, len(res.Skipped))
			fmt.Fprintln(cmd.OutOrStdout(), res.Prior)
			return nil
		},
	}
	// Flag defaults are the embedded config's, so --help shows what a run uses.
	d := configs.Default().Retrain
	f := cmd.Flags()
	f.StringVar(&cfgPath, "config", "", "YAML config merged over the defaults (section retrain; recon.coil_maps); flags given override it")
	f.StringSliceVar(&data, "data", nil, "folder (searched recursively) or file of undersampled k-space; repeatable")
	f.StringVar(&out, "out", "", "run folder for the priors (created; an existing run continues)")
	f.IntVar(&laps, "laps", d.Laps, "network EM laps after the Gaussian lap 0")
	f.IntVar(&gaussLaps, "gaussian-laps", d.GaussianLaps, "EM iterations of the initial Gaussian prior")
	f.IntVar(&rank, "rank", d.Rank, "rank of the Gaussian prior's low-rank covariance")
	f.IntVar(&steps, "steps", d.Steps, "E-step sampler steps")
	f.IntVar(&cg, "cg", d.CGIterations, "E-step CG iterations per sampler step")
	f.IntVar(&trainStep, "train-steps", d.TrainSteps, "M-step optimiser steps per lap")
	f.IntVar(&epochs, "epochs", d.Epochs, "M-step passes over the lap's samples, instead of --train-steps")
	f.IntVar(&batch, "batch-size", d.BatchSize, "M-step batch size")
	f.StringVar(&network, "network", d.Network, strings.Join(configs.Networks, " | "))
	f.Float64Var(&valFrac, "val-fraction", d.ValFraction, "fraction of scans held out to score each lap")
	f.IntVar(&workers, "workers", d.Workers, "E-step goroutines; 0: one per CPU for the Gaussian, one for the network")
	f.Uint64Var(&seed, "seed", d.Seed, "random seed")
	f.IntVar(&estepLap, "estep", 0, "run only this lap's E-step, for one shard of the scans (--shard or the scheduler's task)")
	f.StringVar(&shard, "shard", "", "with --estep: shard i/N (default: SLURM_ARRAY_TASK_ID/COUNT or JOB_COMPLETION_INDEX)")
	f.IntVar(&shards, "shards", 0, "with --estep: shard count when the index comes from JOB_COMPLETION_INDEX")
	f.BoolVar(&adopt, "adopt-data", false, "continue a run folder made on other data of the same shape (e.g. the same scans read by a newer kspaced) on this data; run.json keeps the old data id")
	f.IntVar(&mergeShards, "merge-shards", 0, "merge the last lap's N E-step shards, then finish the lap")
	return cmd
}
