package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/kspaced/kspaced/internal/bench"
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
	return cmd
}
