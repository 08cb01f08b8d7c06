package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kspaced/kspaced/configs"
)

// reconFlags are the recon.* flags that recon, batch, slurm batch, bench
// quality and qc share. A command registers the ones it takes; apply
// overrides a config key only for a flag given on the command line, so a
// flag's default never hides the config's value.
type reconFlags struct {
	cfgPath                           string // --config
	method, prior, covariance, device string
	stepVariance                      string
	steps, cg, samples                int
	jacobianSigma                     []float64
	npy, dicom, previews, antithetic  bool
	precondition                      bool
}

// registerSampler adds the sampler flags (mmps, dps), defaults from
// default.yaml.
func (r *reconFlags) registerSampler(cmd *cobra.Command) {
	d, f := configs.Default().Recon.Sampler, cmd.Flags()
	f.StringVar(&r.prior, "prior", "", "diffusion prior checkpoint (mmps, dps; empty: the built-in prior)")
	f.IntVar(&r.steps, "steps", d.Steps, "sampler steps (mmps, dps); 0: 32 with the diagonal covariance, 64 otherwise")
	f.IntVar(&r.cg, "cg", d.CGIterations, "conjugate-gradient iterations per step (mmps, jacobian covariance)")
	f.StringVar(&r.covariance, "covariance", d.Covariance, "auto | jacobian | diagonal: MMPS's covariance (diagonal needs a prior with a covariance head, kspaced prior fit-covariance; auto uses it when the prior has one)")
	f.StringVar(&r.stepVariance, "step-variance", d.StepVariance, "ddpm | posterior: what each sampler step draws around its mean (posterior: also the posterior covariance term DDPM omits; mmps with the diagonal covariance)")
	f.IntVar(&r.samples, "samples", d.Samples, "posterior samples (mmps, dps)")
	f.Float64SliceVar(&r.jacobianSigma, "jacobian-sigma", d.JacobianSigma, "LO,HI: with the diagonal covariance, the steps whose σ lies in [LO, HI] use the Jacobian covariance (mmps; empty: none)")
	f.BoolVar(&r.precondition, "precondition", d.Precondition, "precondition the Jacobian steps' CG by the diagonal covariance's system (mmps; needs a prior with a covariance head)")
	f.BoolVar(&r.antithetic, "antithetic", d.Antithetic, "draw the samples in pairs with negated random draws (mmps, dps): a pair's errors cancel in the mean where the sampler is close to linear in its noise")
}

// methodUsage is the --method help of commands that run any method.
func methodUsage() string {
	return fmt.Sprintf("%s (default from config: %s)", strings.Join(configs.Methods, " | "), configs.Default().Recon.Method)
}

// config loads --config over the defaults and applies the flags to it.
func (r *reconFlags) config(cmd *cobra.Command) (*configs.Config, error) {
	cfg, err := loadConfig(r.cfgPath)
	if err != nil {
		return nil, err
	}
	if err := r.apply(cmd, cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// apply sets the config keys of the flags given on cmd's command line and
// validates the result; a bad value is a usage error.
func (r *reconFlags) apply(cmd *cobra.Command, cfg *configs.Config) error {
	rc, s, o := &cfg.Recon, &cfg.Recon.Sampler, &cfg.Output
	for flag, set := range map[string]func(){
		"method": func() { rc.Method = r.method }, "device": func() { rc.Device = r.device },
		"prior": func() { s.Prior = r.prior }, "steps": func() { s.Steps = r.steps },
		"cg": func() { s.CGIterations = r.cg }, "covariance": func() { s.Covariance = r.covariance },
		"samples": func() { s.Samples = r.samples }, "step-variance": func() { s.StepVariance = r.stepVariance },
		"antithetic": func() { s.Antithetic = r.antithetic }, "jacobian-sigma": func() { s.JacobianSigma = r.jacobianSigma },
		"precondition": func() { s.Precondition = r.precondition },
		"npy":          func() { o.NPY = r.npy }, "dicom": func() { o.DICOM = r.dicom }, "previews": func() { o.Previews = r.previews },
	} {
		if cmd.Flags().Changed(flag) {
			set()
		}
	}
	if cmd.Flags().Changed("method") && !slices.Contains(configs.Methods, rc.Method) {
		return usagef("--method %q: want one of %v", rc.Method, configs.Methods)
	}
	return revalidate(cfg)
}
