package daemon

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/internal/safefile"
)

// limitJob checks a job's configuration (the service's with the job's
// options file laid over it) against the service's: the operator's limits
// may only be lowered, the service's own settings not changed at all, and a
// prior other than the service's must come from daemon.prior_dirs.
func limitJob(base, job *configs.Config) error {
	b, j := base.Daemon, job.Daemon
	var errs []error
	lower := func(key string, ok bool, got, limit any) {
		if !ok {
			errs = append(errs, fmt.Errorf("%s = %v: a job may only lower the service's %v", key, got, limit))
		}
	}
	lower("daemon.job_timeout", j.JobTimeout <= b.JobTimeout, j.JobTimeout, b.JobTimeout)
	lower("daemon.stall_timeout", b.StallTimeout == 0 || j.StallTimeout > 0 && j.StallTimeout <= b.StallTimeout, j.StallTimeout, b.StallTimeout)
	lower("daemon.retries", j.Retries <= b.Retries, j.Retries, b.Retries)
	lower("daemon.retry_backoff", j.RetryBackoff <= b.RetryBackoff, j.RetryBackoff, b.RetryBackoff)
	lower("recon.sampler.batch_pixels", job.Recon.Sampler.BatchPixels <= base.Recon.Sampler.BatchPixels,
		job.Recon.Sampler.BatchPixels, base.Recon.Sampler.BatchPixels)
	fixed := func(key string, same bool) {
		if !same {
			errs = append(errs, fmt.Errorf("%s is a service setting and cannot be set per job", key))
		}
	}
	fixed("daemon.spool", j.Spool == b.Spool)
	fixed("daemon.workers", j.Workers == b.Workers)
	fixed("daemon.quiet_period", j.QuietPeriod == b.QuietPeriod)
	fixed("daemon.rescan_interval", j.RescanInterval == b.RescanInterval)
	fixed("daemon.grace_period", j.GracePeriod == b.GracePeriod)
	fixed("daemon.min_free_mb", j.MinFreeMB == b.MinFreeMB)
	fixed("daemon.http_addr", j.HTTPAddr == b.HTTPAddr)
	fixed("daemon.log_format", j.LogFormat == b.LogFormat)
	fixed("daemon.prior_dirs", slices.Equal(j.PriorDirs, b.PriorDirs))
	fixed("daemon.reader", j.Reader == b.Reader)
	if p := job.Recon.Sampler.Prior; p != base.Recon.Sampler.Prior && p != "" { // "": the built-in prior
		if err := priorAllowed(p, b.PriorDirs); err != nil {
			errs = append(errs, fmt.Errorf("recon.sampler.prior: %w", err))
		}
	}
	return errors.Join(errs...)
}

// priorAllowed reports whether a job may use the checkpoint at p: an
// absolute path that, with every link resolved, lies inside one of dirs
// (also resolved).
func priorAllowed(p string, dirs []string) error {
	if len(dirs) == 0 {
		return errors.New("a job may not choose its own prior: daemon.prior_dirs is empty")
	}
	if !filepath.IsAbs(p) {
		return fmt.Errorf("%q is not an absolute path inside daemon.prior_dirs %v", p, dirs)
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return fmt.Errorf("%q is not a checkpoint inside daemon.prior_dirs %v", filepath.Base(p), dirs)
	}
	for _, d := range dirs {
		rd, err := filepath.EvalSymlinks(d)
		if err != nil {
			continue
		}
		if _, err := safefile.Within(rd, real); err == nil {
			return nil
		}
	}
	return fmt.Errorf("%q is outside daemon.prior_dirs %v", p, dirs)
}
