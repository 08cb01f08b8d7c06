package main

import (
	"fmt"
	"math"
	"slices"

	"github.com/spf13/cobra"

	"github.com/kspaced/kspaced/internal/quality"
	"github.com/kspaced/kspaced/qc"
)

func newCheckSpreadCmd() *cobra.Command {
	var (
		rf       reconFlags
		data     string
		sidecar  string
		maxScans int
		write    bool
	)
	cmd := &cobra.Command{
		Use:   "check-spread --prior CKPT --data DIR [--write]",
		Short: "Calibrate a prior's posterior std without truth, on held-out k-space lines of undersampled scans",
		Long: `check-spread samples up to --max-scans k-space files of DIR (scans like the
prior's own: its training archive) with recon.sampler.spread_check: per
slice, a fifth of the measured lines outside the centre are held out, the
posterior is sampled from the rest, and the held-out values' residuals are
compared with the samples' spread there (1: calibrated; above 1 the std is
too small). One slice's ratio is noisy; their median is the prior's std
scale at the folder's median pixel size. --write stores it in the "spread"
list of the prior's QC sidecar (CKPT.qc.json, or --sidecar), replacing an
entry within 15 % of that pixel size; recon and the daemon multiply the std
by the scale at each file's pixel size (interpolated between entries;
recon.sampler.std_scale 0). Run it on the prior's training scans first, then
on scans at other pixel sizes. No truth is read.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := rf.config(cmd)
			if err != nil {
				return err
			}
			if data == "" {
				return usagef("--data DIR is required")
			}
			if !cfg.Recon.Sampling() {
				cfg.Recon.Method = "mmps"
			}
			if cfg.Recon.Sampler.Prior == "" && write && sidecar == "" {
				return usagef("the built-in prior's sidecar is embedded: give --prior CKPT or --sidecar FILE")
			}
			cfg.Recon.Device = "cpu"
			sp, _, err := quality.MeasureSpread(cmd.Context(), cfg, data, maxScans, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "std scale %.3f at %.2f mm pixels: median of %d slices' held-out-line ratios (quartiles %.3f, %.3f)\n", sp.Scale, sp.PixelMM, sp.Scans, sp.Q1, sp.Q3)
			if !write {
				return nil
			}
			if sidecar == "" {
				sidecar = qc.SidecarPath(cfg.Recon.Sampler.Prior)
			}
			return writeSpread(sidecar, sp)
		},
	}
	rf.registerSampler(cmd)
	f := cmd.Flags()
	f.StringVar(&rf.cfgPath, "config", "", "YAML config merged over the defaults (coil maps, sampler)")
	f.StringVar(&data, "data", "", "folder of undersampled k-space files like the prior's training scans")
	f.IntVar(&maxScans, "max-scans", 24, "at most this many files, spread over the folder (0: all)")
	f.BoolVar(&write, "write", false, "store the scale in the prior's QC sidecar")
	f.StringVar(&sidecar, "sidecar", "", "the sidecar to write (default CKPT.qc.json)")
	return cmd
}

// writeSpread puts sp into the spread part of the calibration in path: it
// replaces an entry within 15 % of its pixel size (or of unknown size when
// sp's is unknown) and keeps the others and the file's other parts, the
// prior's own training scans' entry first (a new file holds only sp).
func writeSpread(path string, sp *qc.Spread) error {
	cal, err := qc.LoadCalibration(path)
	if err != nil {
		return err
	}
	if cal == nil {
		cal = &qc.Calibration{}
	}
	same := func(o qc.Spread) bool {
		if o.PixelMM == 0 || sp.PixelMM == 0 {
			return o.PixelMM == sp.PixelMM
		}
		return math.Abs(math.Log(o.PixelMM/sp.PixelMM)) < math.Log(1.15)
	}
	if i := slices.IndexFunc(cal.Spread, same); i >= 0 {
		cal.Spread[i] = *sp
	} else {
		cal.Spread = append(cal.Spread, *sp)
	}
	return cal.Save(path)
}
