package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"

	"github.com/spf13/cobra"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/device"
	"github.com/kspaced/kspaced/pipeline"
)

func newReconCmd() *cobra.Command {
	var (
		out, cpuProfile string
		rf              reconFlags
	)
	cmd := &cobra.Command{
		Use:   "recon INPUT [INPUT...] --out DIR",
		Short: "Reconstruct every slice of k-space files (or a study folder)",
		Long: `recon reconstructs every slice of the k-space files given (ISMRMRD or fastMRI
HDF5, BART .cfl, NumPy .npy; the format is detected from content). A folder is
searched recursively; DICOM files in it name the study the output joins.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := rf.config(cmd)
			if err != nil {
				return err
			}
			if out == "" {
				return usagef("--out DIR is required")
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			if cpuProfile != "" {
				stop, err := startCPUProfile(cpuProfile)
				if err != nil {
					return err
				}
				defer stop()
			}
			var devs device.Set
			defer devs.Close()
			dev, err := jobDevice(&devs, cfg)
			if err != nil {
				return err
			}
			rep, err := pipeline.Run(cmd.Context(), pipeline.Job{ID: filepath.Base(args[0]), Inputs: args, Config: cfg, Device: dev,
				Reader: reader(cfg, nil)}, // untrusted files: parsed in a child, as the daemon does
				out, stderrProgress("reconstructing"))
			if err != nil {
				return err
			}
			if err := rep.Write(out); err != nil {
				return err
			}
			for _, p := range rep.Outputs {
				fmt.Println(p)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&rf.cfgPath, "config", "", "YAML config merged over the defaults")
	f.StringVar(&rf.method, "method", "", methodUsage())
	f.StringVar(&out, "out", "", "output folder (created if missing)")
	f.BoolVar(&rf.npy, "npy", false, "also write DIR/<input>.npy (complex64 [rows,cols] or [slices,rows,cols])")
	f.BoolVar(&rf.dicom, "dicom", true, "write DICOM series")
	f.BoolVar(&rf.previews, "previews", true, "write PNG previews")
	f.StringVar(&rf.device, "device", configs.Default().Recon.Device, "cpu | cuda: where mmps and dps run (cuda needs the CUDA build, make build-cuda; default from config)")
	rf.registerSampler(cmd)
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the reconstruction to this file (go tool pprof)")
	return cmd
}

// startCPUProfile profiles the process's CPU into path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
