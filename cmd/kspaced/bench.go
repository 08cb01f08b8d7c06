package main

import (
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kspaced/kspaced/internal/bench"
	"github.com/kspaced/kspaced/internal/quality"
)

func newBenchCmd() *cobra.Command {
	var opt bench.Options
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure FFT, operator, reconstruction, ESPIRiT, network-engine (and sampling) speed on this machine",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return bench.Run(cmd.Context(), os.Stdout, opt)
		},
	}
	f := cmd.Flags()
	f.IntVar(&opt.Reps, "reps", 3, "repetitions per figure (the best is reported)")
	f.BoolVar(&opt.Sampling, "sampling", false, "also time posterior sampling with a small U-Net (minutes on a CPU)")
	f.IntVar(&opt.Steps, "steps", 64, "sampler steps for --sampling")
	f.IntVar(&opt.CG, "cg", 3, "MMPS conjugate-gradient iterations for --sampling (CG 1 is always timed too)")
	cmd.AddCommand(newBenchQualityCmd(), newBenchCompareCmd())
	return cmd
}

func newBenchQualityCmd() *cobra.Command {
	var (
		opt            quality.Options
		jsonPath       string
		rf             reconFlags
		tests, methods []string
		grid, bartGrid []float64
	)
	cmd := &cobra.Command{
		Use:   "quality --test DIR[,DIR...] [flags]",
		Short: "Score reconstruction methods (PSNR, SSIM, coverage) on test scans with NAME_truth.npy companions",
		Long: `quality reconstructs every k-space file of each test folder that has a
NAME_truth.npy companion (as kspaced simulate and simulate archive write them)
with each method, exactly as recon does, and scores the magnitudes as fastMRI
does (PSNR and 7×7 SSIM, data range = the truth's max), per folder: mean ± sd,
seconds per scan, and for sampling methods the fraction of foreground pixels
(truth > 0.1·max) inside the 90 % interval mean ± k·std, k = Student t with
n − 1 degrees of freedom × √(1 + 1/n) for n samples (2.01 for 8; the JSON also
has the old ±1.645·std figure). l1-wavelet and bart-pics weights are
tuned on --tune-on (validation scans, never the test folders). Progress goes to
stderr, a markdown table to stdout. Sampling runs on the CPU.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := rf.config(cmd)
			if err != nil {
				return err
			}
			if len(tests) == 0 {
				return usagef("--test DIR is required")
			}
			cfg.Recon.Device = "cpu"
			opt.Config, opt.Tests, opt.Grid, opt.BartGrid = cfg, tests, grid, bartGrid
			for _, m := range methods {
				opt.Methods = append(opt.Methods, strings.TrimSpace(m))
			}
			if slices.Contains(opt.Methods, quality.BartPics) {
				if opt.Bart, err = exec.LookPath("bart"); err != nil {
					return usagef("bart-pics needs bart in PATH: %v", err)
				}
			}
			opt.Log = os.Stderr
			rep, err := quality.Run(cmd.Context(), opt)
			if err != nil {
				return err
			}
			rep.Markdown(os.Stdout)
			if jsonPath != "" {
				return rep.WriteJSON(jsonPath)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&tests, "test", nil, "test folders (comma-separated or repeated), one cell each")
	f.StringSliceVar(&methods, "methods", []string{"zero-filled", "cg-sense", "l1-wavelet", "bart-pics", "mmps"}, "methods: zero-filled, cg-sense, l1-wavelet, bart-pics, mmps, dps")
	f.StringVar(&rf.cfgPath, "config", "", "YAML config merged over the defaults (coil maps, iterations, cg-sense λ, sampler)")
	rf.registerSampler(cmd)
	f.IntVar(&opt.MaxScans, "max-scans", 0, "at most this many scans per test folder, spread over it (0: all)")
	f.StringVar(&opt.TuneOn, "tune-on", "", "folder of validation scans with truth to tune the l1-wavelet and bart-pics λ on")
	f.IntVar(&opt.TuneScans, "tune-scans", 4, "validation scans used from --tune-on, spread over it")
	f.Float64SliceVar(&grid, "lambdas", quality.DefaultGrid, "l1-wavelet λ grid for --tune-on")
	f.Float64SliceVar(&bartGrid, "bart-lambdas", quality.DefaultGrid, "bart pics -r λ grid for --tune-on")
	f.Float64Var(&opt.L1Lambda, "l1-lambda", 0, "l1-wavelet λ without --tune-on (0: recon.lambda)")
	f.Float64Var(&opt.BartLambda, "bart-lambda", 0.01, "bart pics -r λ without --tune-on")
	f.StringVar(&jsonPath, "json", "", "also write every scan's scores as JSON here")
	return cmd
}
