package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newServeCmd is the registration point of the daemon command; the daemon's
// own work replaces this placeholder.
func newServeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the drop-folder reconstruction service (not yet available)",
		RunE: func(*cobra.Command, []string) error {
			return errors.New("serve is not implemented yet")
		},
	}
}
