package main

import (
	"os"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/kspaced/kspaced/configs"
)

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Show and check configuration"}
	var path string
	print := &cobra.Command{
		Use:   "print",
		Short: "Print the effective configuration (embedded defaults, or --config merged over them)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" {
				_, err := os.Stdout.Write(configs.DefaultYAML())
				return err
			}
			c, err := configs.Load(path)
			if err != nil {
				return usageError{err}
			}
			enc := yaml.NewEncoder(os.Stdout)
			enc.SetIndent(2)
			return enc.Encode(c)
		},
	}
	print.Flags().StringVar(&path, "config", "", "YAML config file to merge over the defaults")
	cmd.AddCommand(print)
	return cmd
}
