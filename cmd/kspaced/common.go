package main

import (
	"os"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/pipeline"
)

// loadConfig reads --config over the embedded defaults; a bad config is a
// usage error.
func loadConfig(path string) (*configs.Config, error) {
	c, err := configs.Load(path)
	if err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

// revalidate checks a config after flags changed it.
func revalidate(c *configs.Config) error {
	if err := c.Validate(); err != nil {
		return usageError{err}
	}
	return nil
}

// stderrProgress draws a progress bar on stderr for long work.
func stderrProgress(desc string) pipeline.Progress {
	var bar *progressbar.ProgressBar
	return func(done, total int) {
		if bar == nil {
			bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(os.Stderr),
				progressbar.OptionSetDescription(desc), progressbar.OptionShowCount(),
				progressbar.OptionSetElapsedTime(true), progressbar.OptionOnCompletion(func() { os.Stderr.WriteString("\n") }))
		}
		_ = bar.Set(done)
	}
}

// changed reports whether the named flag was given on the command line.
func changed(cmd *cobra.Command, name string) bool { return cmd.Flags().Changed(name) }
