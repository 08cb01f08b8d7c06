package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/internal/safefile"
	"github.com/kspaced/kspaced/pipeline"
)

func newReconCmd() *cobra.Command {
	var (
		cfgPath, method, out, prior string
		deviceName                  string
		npy, dicom, previews        bool
		steps, cg, samples          int
	)
	cmd := &cobra.Command{
		Use:   "recon INPUT [INPUT...] --out DIR",
		Short: "Reconstruct every slice of k-space files (or a study folder)",
		Long: `recon reconstructs every slice of the k-space files given (ISMRMRD or fastMRI
HDF5, BART .cfl, NumPy .npy; the format is detected from content). A folder is
searched recursively; DICOM files in it name the study the output joins.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cfgPath)
			if err != nil {
				return err
			}
			if changed(cmd, "method") {
				cfg.Recon.Method = method
			}
			if changed(cmd, "prior") {
				cfg.Recon.Sampler.Prior = prior
			}
			if changed(cmd, "steps") {
				cfg.Recon.Sampler.Steps = steps
			}
			if changed(cmd, "cg") {
				cfg.Recon.Sampler.CGIterations = cg
			}
			if changed(cmd, "samples") {
				cfg.Recon.Sampler.Samples = samples
			}
			if changed(cmd, "device") {
				cfg.Recon.Device = deviceName
			}
			if changed(cmd, "npy") {
				cfg.Output.NPY = npy
			}
			if changed(cmd, "dicom") {
				cfg.Output.DICOM = dicom
			}
			if changed(cmd, "previews") {
				cfg.Output.Previews = previews
			}
			if !slices.Contains(configs.Methods, cfg.Recon.Method) {
				return usagef("--method %q: want one of %v", cfg.Recon.Method, configs.Methods)
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
			var devs devices
			defer devs.close()
			dev, err := devs.forJob(cfg)
			if err != nil {
				return err
			}
			rep, err := pipeline.Run(cmd.Context(), pipeline.Job{ID: filepath.Base(args[0]), Inputs: args, Config: cfg, Device: dev},
				out, stderrProgress("reconstructing slices"))
			if err != nil {
				return err
			}
			raw, _ := json.MarshalIndent(rep, "", "  ")
			if err := safefile.WriteFile(filepath.Join(out, "report.json"), append(raw, '\n'), 0o644); err != nil {
				return err
			}
			for _, p := range rep.Outputs {
				fmt.Println(p)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgPath, "config", "", "YAML config merged over the defaults")
	f.StringVar(&method, "method", "", "zero-filled | cg-sense | l1-wavelet | mmps | dps (default from config: cg-sense)")
	f.StringVar(&out, "out", "", "output folder (created if missing)")
	f.BoolVar(&npy, "npy", false, "also write DIR/<input>.npy (complex64 [rows,cols] or [slices,rows,cols])")
	f.BoolVar(&dicom, "dicom", true, "write DICOM series")
	f.BoolVar(&previews, "previews", true, "write PNG previews")
	f.StringVar(&prior, "prior", "", "diffusion prior checkpoint (mmps, dps)")
	f.StringVar(&deviceName, "device", "cpu", "cpu | cuda: where mmps and dps run (cuda needs the CUDA build, make build-cuda; default from config)")
	f.IntVar(&steps, "steps", 64, "sampler steps (mmps, dps)")
	f.IntVar(&cg, "cg", 3, "conjugate-gradient iterations per step (mmps)")
	f.IntVar(&samples, "samples", 8, "posterior samples (mmps, dps)")
	return cmd
}
