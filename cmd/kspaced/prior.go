package main

import (
	"github.com/spf13/cobra"

	"github.com/kspaced/kspaced/retrain"
)

func newPriorCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "prior", Short: "Inspect diffusion prior checkpoints; fit their covariance heads"}
	cmd.AddCommand(&cobra.Command{
		Use:   "show CHECKPOINT",
		Short: "Print a prior's architecture, image-size policy, training data, laps, scores and SHA-256",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("no default prior is embedded in this build yet: give a checkpoint path")
			}
			d, err := retrain.Describe(args[0])
			if err != nil {
				return err
			}
			return d.Write(cmd.OutOrStdout())
		},
	})
	cmd.AddCommand(newFitCovarianceCmd())
	return cmd
}
