package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/kspaced/kspaced/mri/simulate"
)

func newSimulateCmd() *cobra.Command {
	var (
		cfgPath, out, name, source, mask string
		slices, coils, rows, cols        int
		accel, noise                     float64
		seed                             uint64
	)
	cmd := &cobra.Command{
		Use:   "simulate --out DIR",
		Short: "Make undersampled multi-coil k-space from a real MRI volume or a phantom",
		Long: `simulate takes axial slices of a real brain MRI volume (Debian mricron-data's
ch2 or ch2better, or any NIfTI-1 file) or a phantom, adds a smooth random phase,
simulated coil sensitivities, an undersampling mask and complex Gaussian noise,
and writes DIR/NAME.h5 (fastMRI layout), DIR/NAME_truth.npy (the complex image)
and DIR/NAME_mask.npy.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cfgPath)
			if err != nil {
				return err
			}
			sm := &cfg.Simulate
			for flag, set := range map[string]func(){
				"coils": func() { sm.Coils = coils }, "rows": func() { sm.Rows = rows }, "cols": func() { sm.Cols = cols },
				"accel": func() { sm.Acceleration = accel }, "noise": func() { sm.Noise = noise },
				"mask": func() { sm.Mask = mask }, "seed": func() { sm.Seed = seed },
			} {
				if changed(cmd, flag) {
					set()
				}
			}
			if err := revalidate(cfg); err != nil {
				return err
			}
			if out == "" {
				return usagef("--out DIR is required")
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			sim, err := simulate.Acquire(simulate.Options{Source: source, Slices: slices, Sim: *sm})
			if err != nil {
				return err
			}
			files, err := sim.Write(filepath.Join(out, name))
			if err != nil {
				return err
			}
			for _, f := range files {
				fmt.Println(f)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgPath, "config", "", "YAML config merged over the defaults (section simulate)")
	f.StringVar(&out, "out", "", "output folder (created if missing)")
	f.StringVar(&name, "name", "sim", "base name of the files written")
	f.StringVar(&source, "source", "ch2", "ch2 | ch2better (Debian mricron-data) | shepp-logan | ellipses | PATH.nii[.gz]")
	f.IntVar(&slices, "slices", 1, "number of slices")
	f.IntVar(&coils, "coils", 8, "receive coils (default from config)")
	f.IntVar(&rows, "rows", 128, "image rows (default from config)")
	f.IntVar(&cols, "cols", 128, "image columns (default from config)")
	f.Float64Var(&accel, "accel", 4, "acceleration (default from config)")
	f.Float64Var(&noise, "noise", 0.005, "complex noise std per k-space sample, image peak = 1 (default from config)")
	f.StringVar(&mask, "mask", "random", "random | equispaced | poisson (default from config)")
	f.Uint64Var(&seed, "seed", 1, "random seed (default from config)")
	cmd.AddCommand(newSimulateArchiveCmd())
	return cmd
}
