package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/device"
	"github.com/kspaced/kspaced/pipeline"
)

func newReconCmd() *cobra.Command {
	var (
		cfgPath, method, out, prior string
		covariance                  string
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
			if changed(cmd, "covariance") {
				cfg.Recon.Sampler.Covariance = covariance
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
	d := configs.Default().Recon
	f := cmd.Flags()
	f.StringVar(&cfgPath, "config", "", "YAML config merged over the defaults")
	f.StringVar(&method, "method", "", fmt.Sprintf("%s (default from config: %s)", strings.Join(configs.Methods, " | "), d.Method))
	f.StringVar(&out, "out", "", "output folder (created if missing)")
	f.BoolVar(&npy, "npy", false, "also write DIR/<input>.npy (complex64 [rows,cols] or [slices,rows,cols])")
	f.BoolVar(&dicom, "dicom", true, "write DICOM series")
	f.BoolVar(&previews, "previews", true, "write PNG previews")
	f.StringVar(&prior, "prior", "", "diffusion prior checkpoint (mmps, dps)")
	f.StringVar(&deviceName, "device", d.Device, "cpu | cuda: where mmps and dps run (cuda needs the CUDA build, make build-cuda; default from config)")
	f.IntVar(&steps, "steps", d.Sampler.Steps, "sampler steps (mmps, dps); 0: 32 with the diagonal covariance, 64 otherwise")
	f.IntVar(&cg, "cg", d.Sampler.CGIterations, "conjugate-gradient iterations per step (mmps, jacobian covariance)")
	f.StringVar(&covariance, "covariance", d.Sampler.Covariance, "auto | jacobian | diagonal: MMPS's covariance (diagonal needs a prior with a covariance head, kspaced prior fit-covariance; auto uses it when the prior has one)")
	f.IntVar(&samples, "samples", d.Sampler.Samples, "posterior samples (mmps, dps)")
	return cmd
}
