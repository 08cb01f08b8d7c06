package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func newInspectCmd() *cobra.Command {
	var phi bool
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "inspect FILE...",
		Short: "Summarise k-space files: format, dimensions, coils, sampling, calibration region",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Parsed in a child under the configured daemon.reader limits: a
			// file that crashes the HDF5 library fails with a reason instead.
			c, err := loadConfig(cfgPath)
			if err != nil {
				return err
			}
			rd := reader(c, nil)
			failed := 0
			for _, p := range args {
				v, err := rd.KSpace(cmd.Context(), p)
				if err != nil {
					fmt.Fprintln(os.Stderr, "kspaced:", err)
					failed++
					continue
				}
				v.Describe(os.Stdout, phi)
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d files could not be read", failed, len(args))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "YAML config merged over the defaults (daemon.reader: the reader child's limits)")
	cmd.Flags().BoolVar(&phi, "phi", false, "also print patient name and ID and every text attribute of the file (may hold protected health information)")
	return cmd
}
