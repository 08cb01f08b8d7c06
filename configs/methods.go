package configs

import "slices"

// Method is one reconstruction method as configs, the CLI and the daemon
// see it. pipeline holds the function that runs each (TestMethodsRun
// there checks it covers this table).
type Method struct {
	Name string
	// Sampling methods draw posterior samples under a diffusion prior: they
	// need recon.sampler.prior and run on recon.device.
	Sampling bool
	// Params are the recon settings the method reads, as report.json lists
	// them under "parameters".
	Params []string
}

// MethodTable lists the reconstruction methods kspaced knows.
var MethodTable = []Method{
	{Name: "zero-filled"},
	{Name: "cg-sense", Params: []string{"lambda", "iterations", "tolerance"}},
	{Name: "l1-wavelet", Params: []string{"lambda", "iterations", "tolerance"}},
	{Name: "mmps", Sampling: true, Params: []string{"steps", "samples", "seed", "covariance", "step_variance", "antithetic", "jacobian_sigma", "precondition", "cg_iterations", "spread_check", "std_scale"}},
	{Name: "dps", Sampling: true, Params: []string{"steps", "samples", "seed", "antithetic", "zeta", "spread_check", "std_scale"}},
}

// Methods are the names of MethodTable, in order.
var Methods = func() []string {
	n := make([]string, len(MethodTable))
	for i, m := range MethodTable {
		n[i] = m.Name
	}
	return n
}()

// LookupMethod returns the method called name.
func LookupMethod(name string) (Method, bool) {
	for _, m := range MethodTable {
		if m.Name == name {
			return m, true
		}
	}
	return Method{}, false
}

// Sampling reports whether r.Method samples under a diffusion prior.
func (r *Recon) Sampling() bool {
	m, _ := LookupMethod(r.Method)
	return m.Sampling
}

// Reads reports whether r.Method reads the recon setting name (one of its
// Params, e.g. "covariance": MMPS's covariance applies).
func (r *Recon) Reads(name string) bool {
	m, _ := LookupMethod(r.Method)
	return slices.Contains(m.Params, name)
}

// Param is the value of the recon setting name (a Method.Params entry).
func (r *Recon) Param(name string) any {
	s := r.Sampler
	switch name {
	case "lambda":
		return r.Lambda
	case "iterations":
		return r.Iterations
	case "tolerance":
		return r.Tolerance
	case "steps":
		return s.Steps
	case "samples":
		return s.Samples
	case "seed":
		return s.Seed
	case "covariance":
		return s.Covariance
	case "step_variance":
		return s.StepVariance
	case "antithetic":
		return s.Antithetic
	case "jacobian_sigma":
		return s.JacobianSigma
	case "precondition":
		return s.Precondition
	case "cg_iterations":
		return s.CGIterations
	case "zeta":
		return s.Zeta
	case "spread_check":
		return s.SpreadCheck
	case "std_scale":
		return s.StdScale
	}
	return nil
}
