package main

import (
	"github.com/spf13/cobra"

	"github.com/kspaced/kspaced/retrain"
)

func newPriorCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "prior", Short: "Inspect diffusion prior checkpoints; fit their covariance heads; calibrate their std"}
	cmd.AddCommand(&cobra.Command{
		Use:   "show [CHECKPOINT]",
		Short: "Print a prior's architecture, image-size policy, training data, laps, scores and SHA-256 (no argument: the built-in default prior)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			describe := retrain.DescribeBuiltin
			if len(args) == 1 {
				describe = func() (*retrain.Description, error) { return retrain.Describe(args[0]) }
			}
			d, err := describe()
			if err != nil {
				return err
			}
			return d.Write(cmd.OutOrStdout())
		},
	})
	cmd.AddCommand(newFitCovarianceCmd(), newCheckSpreadCmd())
	return cmd
}
