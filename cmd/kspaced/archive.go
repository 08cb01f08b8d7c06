package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/kspaced/kspaced/mri/simulate"
)

func newSimulateArchiveCmd() *cobra.Command {
	var cfgPath, out string
	cmd := &cobra.Command{
		Use:   "archive --config RECIPE --out DIR",
		Short: "Write a simulated hospital archive (section archive of the recipe) to learn a prior from",
		Long: `archive writes DIR/train/*.h5 — one slice of real anatomy per fastMRI-style
file, without a noise scan, in all three orientations, each with its own pixel
size, rotation, flips, coil count, mask (random or equispaced 1-D, 2-D Poisson),
acceleration, centre fraction, noise level and phase — and DIR/test/mM-Ax/ with
the held-out axial slab of each volume. NAME_truth.npy beside each file is for
scoring only. Feed DIR/train to 'kspaced retrain'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfgPath == "" || out == "" {
				return usagef("--config RECIPE and --out DIR are required")
			}
			cfg, err := loadConfig(cfgPath)
			if err != nil {
				return err
			}
			if err := cfg.Archive.Validate(); err != nil {
				return usageError{fmt.Errorf("config %s: %w", cfgPath, err)}
			}
			res, err := simulate.SimulateArchive(cmd.Context(), cfg.Archive, out, func(done int) {
				if done%50 == 0 {
					fmt.Fprintf(os.Stderr, "archive: %d scans written\n", done)
				}
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d training scans\n", res.TrainDir, res.Train)
			for _, d := range res.TestDirs {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\n", d)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d test scans in all\n", res.Test)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgPath, "config", "", "recipe YAML with an archive section (e.g. configs/prior-default.yaml)")
	f.StringVar(&out, "out", "", "output folder (created if missing)")
	return cmd
}
