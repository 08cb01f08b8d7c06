package configs

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"time"
)

// MaxDim and MaxCoils mirror mri's bounds (configs does not import mri).
const (
	maxDim   = 4096
	maxCoils = 256
)

// Validate checks every value's range and returns all problems at once, each
// naming its key.
func (c *Config) Validate() error {
	var v validator
	r := c.Recon
	v.oneOf("recon.method", r.Method, Methods...)
	v.rangeF("recon.lambda", r.Lambda, 0, 1e6)
	v.rangeI("recon.iterations", r.Iterations, 1, 100000)
	v.check(r.Tolerance > 0 && r.Tolerance < 1, "recon.tolerance = %g, want in (0, 1)", r.Tolerance)
	v.oneOf("recon.device", r.Device, "cpu", "cuda")
	m := r.CoilMaps
	v.oneOf("recon.coil_maps.method", m.Method, "espirit")
	v.rangeI("recon.coil_maps.calib", m.Calib, 4, 512)
	v.rangeI("recon.coil_maps.kernel", m.Kernel, 2, 16)
	v.check(m.Kernel < m.Calib, "recon.coil_maps.kernel = %d must be smaller than calib = %d", m.Kernel, m.Calib)
	v.check(m.Threshold > 0 && m.Threshold < 1, "recon.coil_maps.threshold = %g, want in (0, 1)", m.Threshold)
	v.rangeF("recon.coil_maps.crop", m.Crop, 0, 1)
	s := r.Sampler
	v.rangeI("recon.sampler.steps", s.Steps, 0, 10000)
	v.rangeI("recon.sampler.cg_iterations", s.CGIterations, 1, 100)
	v.rangeI("recon.sampler.samples", s.Samples, 1, 1024)
	v.oneOf("recon.sampler.covariance", s.Covariance, Covariances...)
	v.oneOf("recon.sampler.step_variance", s.StepVariance, StepVariances...)
	if j := s.JacobianSigma; len(j) > 0 {
		v.check(len(j) == 2 && j[0] >= 0 && j[0] <= j[1] && !math.IsInf(j[1], 0),
			"recon.sampler.jacobian_sigma = %v, want [lo, hi] with 0 ≤ lo ≤ hi, finite, or empty", j)
		v.check(s.StepVariance != "posterior",
			"recon.sampler.jacobian_sigma needs step_variance ddpm (the posterior draw needs the diagonal covariance at every step)")
	}
	v.check(s.Zeta > 0, "recon.sampler.zeta = %g, want > 0", s.Zeta)
	v.rangeI("recon.sampler.batch_pixels", s.BatchPixels, 1, 1<<28)
	v.rangeF("recon.sampler.std_scale", s.StdScale, 0, 10)
	sm := c.Simulate
	v.rangeI("simulate.rows", sm.Rows, 8, maxDim)
	v.rangeI("simulate.cols", sm.Cols, 8, maxDim)
	v.rangeI("simulate.coils", sm.Coils, 1, maxCoils)
	v.oneOf("simulate.mask", sm.Mask, "random", "equispaced", "poisson")
	v.rangeF("simulate.acceleration", sm.Acceleration, 1, 64)
	v.check(sm.CenterFraction > 0 && sm.CenterFraction < 1, "simulate.center_fraction = %g, want in (0, 1)", sm.CenterFraction)
	v.check(sm.CenterFraction*sm.Acceleration < 1, "simulate.center_fraction × acceleration = %g must stay below 1", sm.CenterFraction*sm.Acceleration)
	v.rangeF("simulate.noise", sm.Noise, 0, 10)
	d := c.Daemon
	v.check(d.Spool != "", "daemon.spool is empty")
	v.rangeI("daemon.workers", d.Workers, 1, 64)
	v.dur("daemon.quiet_period", d.QuietPeriod, 0, 24*time.Hour)
	v.dur("daemon.rescan_interval", d.RescanInterval, time.Second, 24*time.Hour)
	v.dur("daemon.job_timeout", d.JobTimeout, time.Second, 7*24*time.Hour)
	if d.StallTimeout != 0 {
		v.dur("daemon.stall_timeout", d.StallTimeout, time.Second, 7*24*time.Hour)
	}
	v.dur("daemon.grace_period", d.GracePeriod, 0, time.Hour)
	v.rangeI("daemon.retries", d.Retries, 0, 100)
	v.dur("daemon.retry_backoff", d.RetryBackoff, 0, 24*time.Hour)
	v.check(d.MinFreeMB >= 0, "daemon.min_free_mb = %d, want ≥ 0", d.MinFreeMB)
	v.oneOf("daemon.log_format", d.LogFormat, "text", "json")
	for _, p := range d.PriorDirs {
		v.check(filepath.IsAbs(p), "daemon.prior_dirs: %q is not an absolute path", p)
	}
	rd := d.Reader
	v.rangeI64("daemon.reader.memory_mb", rd.MemoryMB, 256, 1<<20)
	v.rangeI64("daemon.reader.cpu_seconds", rd.CPUSeconds, 1, 86400)
	v.rangeI64("daemon.reader.wall_seconds", rd.WallSeconds, 1, 86400)
	v.rangeI64("daemon.reader.max_output_mb", rd.MaxOutputMB, 1, 1<<20)
	c.Retrain.validate(&v)
	c.PACS.validate(&v)
	return errors.Join(v.errs...)
}

type validator struct{ errs []error }

func (v *validator) check(ok bool, format string, args ...any) {
	if !ok {
		v.errs = append(v.errs, fmt.Errorf(format, args...))
	}
}

func (v *validator) oneOf(key, val string, allowed ...string) {
	v.check(slices.Contains(allowed, val), "%s = %q, want one of %v", key, val, allowed)
}

func (v *validator) rangeI(key string, val, lo, hi int) {
	v.check(val >= lo && val <= hi, "%s = %d, want in [%d, %d]", key, val, lo, hi)
}

func (v *validator) rangeI64(key string, val, lo, hi int64) {
	v.check(val >= lo && val <= hi, "%s = %d, want in [%d, %d]", key, val, lo, hi)
}

func (v *validator) rangeF(key string, val, lo, hi float64) {
	v.check(val >= lo && val <= hi, "%s = %g, want in [%g, %g]", key, val, lo, hi)
}

func (v *validator) dur(key string, val, lo, hi time.Duration) {
	v.check(val >= lo && val <= hi, "%s = %s, want in [%s, %s]", key, val, lo, hi)
}
