package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kspaced/kspaced/mri/kspaceio"
	"github.com/kspaced/kspaced/priors"
)

func newFitCovarianceCmd() *cobra.Command {
	var (
		prior, data, out, network string
		steps, batch, crop, every int
		seed                      uint64
		lr                        float64
		maxDur                    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "fit-covariance --prior CKPT --data DIR --out CKPT2",
		Short: "Train a diagonal covariance head (OCM) for a U-Net prior and store it with the prior",
		Long: `fit-covariance trains a small network that predicts the diagonal of
Cov[x | x_t] for the frozen denoiser of CKPT, against the unbiased probe
estimate σ²·(v ⊙ Jᵀv) (one VJP per step), and writes CKPT with the head to
CKPT2; recon --covariance diagonal then needs no VJP. DIR holds .npy images
(complex [rows, cols], e.g. recon --npy outputs of scans like the prior's
own; *_truth.npy files are skipped unless --truth), each scaled by its
99th-percentile magnitude as reconstruction scales a scan. A run stopped
early resumes from CKPT2.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if prior == "" || data == "" || out == "" {
				return usagef("--prior, --data and --out are required")
			}
			d, info, err := priors.LoadPrior(prior)
			if err != nil {
				return err
			}
			u, ok := d.(*priors.UNet)
			if !ok {
				return usagef("%s is a %s prior: its diagonal covariance is exact, no head needed", prior, info.Kind)
			}
			truth, _ := cmd.Flags().GetBool("truth")
			ds, desc, err := npyImages(data, info.Rows, info.Cols, truth)
			if err != nil {
				return err
			}
			h, err := priors.NewCovHead(network, info.Channels, info.Rows, info.Cols, seed)
			if err != nil {
				return usagef("%v", err)
			}
			st, err := priors.FitCovariance(cmd.Context(), u, h, ds, priors.CovTrainOptions{
				Steps: steps, BatchSize: batch, LR: lr, Seed: seed, CropRows: crop, CropCols: crop,
				PriorPath: prior, OutPath: out, CheckpointEvery: every, MaxDuration: maxDur, DataDescription: desc,
			}, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			state := "done"
			if st.TimedOut {
				state = "stopped at --max-duration; run again to resume"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: covariance head %s, step %d of %d (from %d), loss %.4f, %.0f s: %s\n",
				out, network, st.Steps, steps, st.ResumedFrom, st.Loss, st.Duration.Seconds(), state)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&prior, "prior", "", "U-Net prior checkpoint (its denoiser is frozen)")
	f.StringVar(&data, "data", "", "folder of .npy complex images (not recursive)")
	f.Bool("truth", false, "also use *_truth.npy files (measurement runs only: a deployed prior learns from corrupted data)")
	f.StringVar(&out, "out", "", "checkpoint to write: the prior with the head")
	f.StringVar(&network, "network", "head", fmt.Sprintf("head architecture, one of %v or a denoiser's %v", priors.CovHeadNetworks, priors.Networks))
	f.IntVar(&steps, "steps", 2000, "optimiser steps")
	f.IntVar(&batch, "batch", 4, "images per step")
	f.IntVar(&crop, "crop", 64, "train on random crop×crop windows (0: whole images)")
	f.IntVar(&every, "checkpoint-every", 100, "write a resumable checkpoint every this many steps")
	f.Uint64Var(&seed, "seed", 1, "random seed")
	f.Float64Var(&lr, "lr", 1e-3, "Adam learning rate")
	f.DurationVar(&maxDur, "max-duration", 0, "stop (resumably) after this long; 0: no limit")
	return cmd
}

// npyImages reads the 2-D complex .npy images of dir, each scaled by its
// 99th-percentile magnitude, as a two-channel dataset of rows×cols images.
func npyImages(dir string, rows, cols int, truth bool) (*priors.SliceDataset, string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, "", err
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if e.Type().IsRegular() && strings.HasSuffix(n, ".npy") && (truth || !strings.HasSuffix(n, "_truth.npy")) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	ds := &priors.SliceDataset{C: 2, H: rows, W: cols}
	hw := rows * cols
	mags := make([]float32, hw)
	for _, n := range names {
		a, err := kspaceio.ReadNPY(filepath.Join(dir, n))
		if err != nil {
			return nil, "", err
		}
		if len(a.Shape) != 2 || a.Shape[0] != rows || a.Shape[1] != cols {
			return nil, "", fmt.Errorf("%s: shape %v, the prior's images are %d×%d", n, a.Shape, rows, cols)
		}
		for i, v := range a.Data {
			mags[i] = float32(abs64(v))
		}
		slices.Sort(mags)
		scale := mags[int(0.99*float64(hw-1))]
		if !(scale > 0) {
			continue
		}
		img := make([]float32, 2*hw)
		for i, v := range a.Data {
			img[i], img[hw+i] = real(v)/scale, imag(v)/scale
		}
		ds.Data = append(ds.Data, img...)
	}
	if ds.Len() == 0 {
		return nil, "", fmt.Errorf("%s holds no usable %d×%d .npy images", dir, rows, cols)
	}
	return ds, fmt.Sprintf("%d images of %s, each scaled by its 99th-percentile magnitude", ds.Len(), dir), nil
}

func abs64(v complex64) float64 { return math.Hypot(float64(real(v)), float64(imag(v))) }
