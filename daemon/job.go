package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/internal/companion"
	"github.com/kspaced/kspaced/internal/safefile"
	"github.com/kspaced/kspaced/pipeline"
)

// Outcomes of a job, as reported in metrics, error.json and /status.
const (
	OutcomeDone        = "done"
	OutcomeBadInput    = "bad_input"
	OutcomeTimeout     = "timeout"
	OutcomeError       = "error"
	OutcomeInterrupted = "interrupted"
)

// jobState is work/<job>/state.json: what must survive a crash.
type jobState struct {
	Entry         string    `json:"entry"`
	Seen          time.Time `json:"seen"`
	Claimed       time.Time `json:"claimed"`
	Attempts      int       `json:"attempts"`
	Interruptions int       `json:"interruptions"`
	// Running is true while an attempt is under way; finding it true in a
	// job nobody holds means the daemon died during that attempt.
	Running bool   `json:"running"`
	Host    string `json:"host"`
	PID     int    `json:"pid"`
	// Published is set once the result is in outbox/: a job filed again
	// after a failed move to done/ is not counted twice.
	Published bool `json:"published,omitempty"`
	// Companions are the files that travel with the entry, by inode, as
	// they were in the inbox at claim time.
	Companions map[string]uint64 `json:"companions,omitempty"`
}

func readState(dir string) (jobState, error) {
	var st jobState
	raw, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return st, err
	}
	err = json.Unmarshal(raw, &st)
	return st, err
}

// writeJSON writes v atomically and durably: state.json must survive a
// power cut as well as a crash, or a poison job escapes its limit.
func writeJSON(path string, v any) error {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return safefile.WriteFile(path, append(raw, '\n'), 0o644)
}

// Failure is failed/<job>/error.json.
type Failure struct {
	Job     string `json:"job"`
	Input   string `json:"input"`
	Outcome string `json:"outcome"`
	// Message says what went wrong in words for the technologist at the
	// scanner; Action what to do about it; Detail is for the physicist.
	Message  string    `json:"message"`
	Action   string    `json:"action"`
	Detail   string    `json:"detail"`
	Attempts int       `json:"attempts"`
	Time     time.Time `json:"time"`
}

// runJob processes a claimed job to its end: published and filed under
// done/, filed under failed/, or (at shutdown) left in work/ for the next
// daemon.
func (d *Daemon) runJob(stop, hard context.Context, c *claim) {
	defer c.lock.Close()
	d.m.inflight.Inc()
	defer d.m.inflight.Dec()
	rec := d.board.start(c.id, c.entry, c.seen)
	st, _ := readState(c.dir)
	if st.Claimed.IsZero() {
		st = jobState{Entry: c.entry, Claimed: time.Now()}
	}
	if st.Seen.IsZero() {
		st.Seen = c.seen
	}
	st.Host, _ = os.Hostname()
	st.PID = os.Getpid()
	if st.Running {
		st.Running = false
		st.Interruptions++
		d.log.Warn("job was interrupted by a daemon stop or crash; redoing it", "job", c.id, "interruptions", st.Interruptions)
	}

	if fi, err := os.Stat(d.path(OutboxDir, c.id)); err == nil && fi.IsDir() {
		// Published before a crash: only the filing is left to do.
		d.finishDone(c, &st, rec, "", 0)
		return
	}
	if c.entry == "" {
		d.fail(c, &st, rec, OutcomeBadInput, errors.New("the job folder in work/ does not hold exactly one input"), 0)
		return
	}
	if st.Interruptions >= maxInterruptions {
		d.fail(c, &st, rec, OutcomeInterrupted, fmt.Errorf("the service stopped %d times while processing this job", st.Interruptions), 0)
		return
	}
	// From here on the job touches its input: mark it running on disk
	// first, so a crash anywhere below (a poison options file, a reader
	// that takes the process down) counts towards maxInterruptions.
	st.Running = true
	if err := writeJSON(filepath.Join(c.dir, stateFile), st); err != nil {
		// Without a saved crash counter a poison job could kill the service
		// forever: leave it for a later rescan instead.
		d.log.Error("cannot save the job's state; leaving it in work/", "job", c.id, "err", d.clean(err))
		rec.finish("abandoned", "cannot save state; will be retried")
		return
	}
	input := filepath.Join(c.dir, inputDir)
	inputs, err := jobInputs(input, c.entry)
	if err != nil {
		d.fail(c, &st, rec, OutcomeBadInput, fmt.Errorf("%w: %s: %w", pipeline.ErrBadInput, c.entry, err), 0)
		return
	}
	if d.beforeJob != nil {
		d.beforeJob(c.id, c.entry)
	}
	cfg, err := jobConfig(d.config(), input, c.entry)
	if err != nil {
		d.fail(c, &st, rec, OutcomeBadInput, err, 0)
		return
	}
	rec.set(func(r *record) { r.Method = cfg.Recon.Method })

	var warnings []string
	for try := 1; ; try++ {
		st.Attempts++
		st.Running = true
		if try > 1 {
			// The first attempt's Running is on disk already; a crash in it
			// counts the same, only the attempt count lags by one.
			_ = writeJSON(filepath.Join(c.dir, stateFile), st)
		}
		rec.set(func(r *record) { r.State, r.Attempts = "running", st.Attempts })
		t0 := time.Now()
		rep, timedOut, err := d.attempt(hard, c, cfg, inputs, &st, warnings, rec)
		// Running goes back to false in memory; the final filing (or the
		// next attempt) writes it, saving a write per attempt.
		st.Running = false
		if err == nil {
			d.m.duration.WithLabelValues(cfg.Recon.Method).Observe(time.Since(t0).Seconds())
			d.m.countQC(rep)
			d.finishDone(c, &st, rec, rep.Method, time.Since(t0))
			return
		}
		if hard.Err() != nil {
			d.abandon(c, &st, rec)
			return
		}
		switch {
		case timedOut:
			limit := cfg.Daemon.JobTimeout
			if errors.Is(err, errStalled) {
				limit = cfg.Daemon.StallTimeout
			}
			d.fail(c, &st, rec, OutcomeTimeout, err, limit)
			return
		case errors.Is(err, pipeline.ErrBadInput):
			d.fail(c, &st, rec, OutcomeBadInput, err, 0)
			return
		case errors.Is(err, pipeline.ErrConfig):
			d.fail(c, &st, rec, OutcomeError, err, 0)
			return
		case errors.Is(err, errPanic) || try > cfg.Daemon.Retries:
			d.fail(c, &st, rec, OutcomeError, err, 0)
			return
		}
		wait := backoff(cfg.Daemon.RetryBackoff, try)
		d.m.retries.Inc()
		warnings = append(warnings, fmt.Sprintf("attempt %d failed (%s); retried", st.Attempts, d.clean(err)))
		d.log.Warn("job failed with a possibly temporary error; retrying", "job", c.id, "attempt", st.Attempts, "retry_in", wait.String(), "err", d.clean(err))
		rec.set(func(r *record) { r.State, r.Message = "waiting to retry", d.clean(err) })
		select {
		case <-time.After(wait):
		case <-stop.Done():
			d.abandon(c, &st, rec)
			return
		}
	}
}

// backoff doubles the configured delay per retry, capped at 64×.
func backoff(base time.Duration, try int) time.Duration {
	return base << min(try-1, 6)
}

// maxSidecar bounds an options file: real ones are a few hundred bytes.
const maxSidecar = 1 << 20

// jobConfig overlays the job's sidecar (<entry>.json) on the base config.
// The sidecar is opened as a regular file inside the job's input folder
// (never through a link, never a FIFO or device) and read up to maxSidecar.
func jobConfig(base *configs.Config, input, entry string) (*configs.Config, error) {
	name := entry + companion.Sidecar
	raw, err := safefile.ReadFile(input, filepath.Join(input, name), maxSidecar)
	if errors.Is(err, fs.ErrNotExist) {
		return base, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w %s: %w", pipeline.ErrBadInput, errOptions, name, err)
	}
	return parseOptions(base, raw, name)
}

// errOptions marks a job failed by its options file, not its data.
var errOptions = errors.New("options file")

// parseOptions lays an options file's content over base and checks it
// against the operator's limits.
func parseOptions(base *configs.Config, raw []byte, name string) (*configs.Config, error) {
	c, err := configs.Overlay(base, raw, name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w: %w", pipeline.ErrBadInput, errOptions, err)
	}
	if err := limitJob(base, c); err != nil {
		return nil, fmt.Errorf("%w: %w %s: %w", pipeline.ErrBadInput, errOptions, name, err)
	}
	return c, nil
}

var errPanic = errors.New("internal error")

// errStalled is the cause of an attempt stopped by daemon.stall_timeout.
var errStalled = errors.New("no progress within daemon.stall_timeout")

// watchStall returns a child of parent that is cancelled with errStalled once
// the returned progress function has not been called for limit, and a stop
// function that ends the watch.
func watchStall(parent context.Context, limit time.Duration, p pipeline.Progress) (context.Context, pipeline.Progress, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	go func() {
		tick := time.NewTicker(max(limit/8, time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				if now.Sub(time.Unix(0, last.Load())) >= limit {
					cancel(errStalled)
					return
				}
			}
		}
	}()
	seen := func(done, total int) {
		last.Store(time.Now().UnixNano())
		p(done, total)
	}
	return ctx, seen, func() { cancel(context.Canceled) }
}

// progressLog records a job's progress for /status and logs it at every
// tenth of the work, so a long job (minutes of posterior sampling) shows it
// is moving.
func (d *Daemon) progressLog(id string, rec *record) pipeline.Progress {
	last := 0
	return func(done, total int) {
		rec.progress(done, total)
		if total <= 1 {
			return
		}
		if tenth := 10 * done / total; tenth > last && done < total {
			last = tenth
			d.log.Info("job progress", "job", id, "percent", 10*tenth, "done", done, "total", total)
		}
	}
}

// attempt runs the processor once into a fresh private folder and publishes
// it with report.json as outbox/<job> in one rename.
func (d *Daemon) attempt(hard context.Context, c *claim, cfg *configs.Config, inputs []string, st *jobState, warnings []string, rec *record) (rep *pipeline.Report, timedOut bool, err error) {
	tmp := filepath.Join(c.dir, outTmpDir)
	if err := os.RemoveAll(tmp); err != nil {
		return nil, false, fmt.Errorf("clear %s: %w", outTmpDir, err)
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return nil, false, fmt.Errorf("create output folder: %w", err)
	}
	ctx, cancel := context.WithTimeout(hard, cfg.Daemon.JobTimeout)
	defer cancel()
	progress := d.progressLog(c.id, rec)
	if limit := cfg.Daemon.StallTimeout; limit > 0 {
		var stop context.CancelFunc
		ctx, progress, stop = watchStall(ctx, limit, progress)
		defer stop()
	}
	started := time.Now()
	job := pipeline.Job{ID: c.id, Inputs: inputs, Config: cfg}
	rep, err = d.call(ctx, job, tmp, progress)
	if err != nil {
		if hard.Err() != nil {
			return nil, false, err
		}
		if errors.Is(context.Cause(ctx), errStalled) {
			return nil, true, fmt.Errorf("%w: %w", errStalled, err)
		}
		return nil, errors.Is(ctx.Err(), context.DeadlineExceeded), err
	}
	if rep == nil {
		return nil, false, fmt.Errorf("%w: processor returned no report", errPanic)
	}
	r := *rep
	r.Job = c.id
	r.Inputs = relInputs(filepath.Join(c.dir, inputDir), inputs)
	if r.Method == "" {
		r.Method = cfg.Recon.Method
	}
	if r.Started.IsZero() {
		r.Started = started
	}
	if r.Finished.IsZero() {
		r.Finished = time.Now()
	}
	if r.Seconds == nil {
		r.Seconds = map[string]float64{}
	}
	r.Seconds["job"] = time.Since(started).Seconds()
	r.Seconds["queue"] = st.Claimed.Sub(st.Seen).Seconds()
	r.Warnings = append(append([]string{}, r.Warnings...), warnings...)
	if r.Outputs == nil {
		r.Outputs = listFiles(tmp)
	} else {
		// Paths inside the private folder mean nothing once it is published.
		r.Outputs = relInputs(tmp, r.Outputs)
	}
	if err := r.Write(tmp); err != nil {
		return nil, false, err
	}
	if err := safefile.SyncTree(tmp); err != nil {
		return nil, false, fmt.Errorf("flush outputs: %w", err)
	}
	dst := d.path(OutboxDir, c.id)
	if err := os.Rename(tmp, dst); err != nil {
		if !errors.Is(err, fs.ErrExist) && !errors.Is(err, syscall.ENOTEMPTY) {
			return nil, false, fmt.Errorf("publish to outbox: %w", err)
		}
		// Ids are unique, so an existing outbox/<job> is this job's own
		// earlier result: keep it, never a second copy.
		os.RemoveAll(tmp)
	}
	_ = safefile.SyncDir(d.path(OutboxDir))
	return &r, false, nil
}

// call runs the processor, turning a panic into an error so one bad job
// cannot take the service down.
func (d *Daemon) call(ctx context.Context, job pipeline.Job, out string, p pipeline.Progress) (rep *pipeline.Report, err error) {
	defer func() {
		if v := recover(); v != nil {
			d.log.Error("processor panicked", "job", job.ID, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			rep, err = nil, fmt.Errorf("%w: processor panicked: %v", errPanic, v)
		}
	}()
	return d.proc(ctx, job, out, p)
}

// relInputs makes paths under root relative to it (others stay as given).
func relInputs(root string, inputs []string) []string {
	out := make([]string, len(inputs))
	for i, p := range inputs {
		if r, err := filepath.Rel(root, p); err == nil && filepath.IsAbs(p) && r != ".." && !strings.HasPrefix(r, "../") {
			p = r
		}
		out[i] = filepath.ToSlash(p)
	}
	return out
}

func listFiles(root string) []string {
	out := []string{}
	_ = filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err == nil && de.Type().IsRegular() {
			r, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(r))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// finishDone files a published job's inputs under done/. The job is
// counted (metrics, log) the first time only: if done/ cannot be written the
// job stays in work/ and every rescan tries the filing again.
func (d *Daemon) finishDone(c *claim, st *jobState, rec *record, method string, took time.Duration) {
	first := !st.Published
	st.Published, st.Running = true, false
	_ = writeJSON(filepath.Join(c.dir, stateFile), st)
	if d.published != nil {
		if err := d.published(c.id, d.path(OutboxDir, c.id)); err != nil {
			d.log.Error("job published but not queued for delivery; a rescan retries", "job", c.id, "err", d.clean(err))
			return
		}
	}
	dest, err := moveOut(c.dir, d.path(DoneDir), c.id)
	if err != nil {
		// The result is published; a later recovery retries the filing.
		d.log.Error("job published but its inputs could not be moved to done/", "job", c.id, "err", d.clean(err))
	}
	rec.finish(OutcomeDone, "")
	if !first {
		if err == nil {
			d.log.Info("published job filed under done/", "job", c.id, "done", filepath.Base(dest))
		}
		return
	}
	d.m.jobs.WithLabelValues(OutcomeDone).Inc()
	d.nDone.Add(1)
	d.m.latency.Observe(time.Since(st.Seen).Seconds())
	d.log.Info("job done", "job", c.id, "method", method, "seconds", round3(took.Seconds()),
		"attempts", st.Attempts, "done", filepath.Base(dest))
}

// fail files the untouched inputs under failed/<job> with error.json.
func (d *Daemon) fail(c *claim, st *jobState, rec *record, outcome string, err error, limit time.Duration) {
	os.RemoveAll(filepath.Join(c.dir, outTmpDir))
	f := explain(outcome, err, limit, st.Attempts)
	f.Job, f.Input, f.Time = c.id, c.entry, time.Now()
	f.Detail = d.clean(err)
	if c.entry != "" && !strings.Contains(f.Detail, c.entry) {
		f.Detail = c.entry + ": " + f.Detail // say which drop it was
	}
	if werr := writeJSON(filepath.Join(c.dir, errorFile), f); werr != nil {
		d.log.Error("cannot write error.json", "job", c.id, "err", d.clean(werr))
	}
	st.Running = false
	_ = writeJSON(filepath.Join(c.dir, stateFile), st)
	dest, merr := moveOut(c.dir, d.path(FailedDir), c.id)
	if merr != nil {
		d.log.Error("job failed and its inputs could not be moved to failed/", "job", c.id, "err", merr)
	}
	d.m.jobs.WithLabelValues(outcome).Inc()
	d.nFail.Add(1)
	rec.finish(outcome, f.Message)
	d.log.Warn("job failed", "job", c.id, "input", c.entry, "outcome", outcome, "reason", f.Message,
		"err", f.Detail, "failed", filepath.Base(dest))
}

// abandon leaves a job in work/ at shutdown; the lock is released by the
// caller and the next daemon redoes the job.
func (d *Daemon) abandon(c *claim, st *jobState, rec *record) {
	os.RemoveAll(filepath.Join(c.dir, outTmpDir))
	// Not running any more: the next daemon must not count a crash.
	_ = writeJSON(filepath.Join(c.dir, stateFile), st)
	rec.finish("abandoned", "stopped at shutdown; will be redone")
	d.log.Info("job stopped at shutdown; it stays in work/ and will be redone", "job", c.id)
}

// moveOut renames a job folder into dir as <id> (or <id>-N if an operator
// left something by that name).
func moveOut(src, dir, id string) (string, error) {
	var err error
	for n := 1; n <= 100; n++ {
		name := id
		if n > 1 {
			name = id + "-" + strconv.Itoa(n)
		}
		dst := filepath.Join(dir, name)
		if err = os.Rename(src, dst); err == nil {
			_ = safefile.SyncDir(dir)
			return dst, nil
		}
		if !errors.Is(err, fs.ErrExist) && !errors.Is(err, syscall.ENOTEMPTY) {
			return "", err
		}
	}
	return "", err
}

// explain turns an error into words for the person at the scanner.
func explain(outcome string, err error, limit time.Duration, attempts int) Failure {
	f := Failure{Outcome: outcome, Detail: err.Error(), Attempts: attempts}
	switch outcome {
	case OutcomeBadInput:
		switch {
		case errors.Is(err, errOptions):
			f.Message = "The options file dropped with this scan (<name>.json) is invalid or asks for something this service does not allow; the scan itself was not looked at."
			f.Action = "Correct or remove the options file (the detail line names the key and why), then move the input back into the inbox; the raw data need not be exported again."
		case errors.Is(err, fs.ErrPermission):
			f.Message = "kspaced is not allowed to read the dropped files: their permissions shut the service out (the data itself may be fine)."
			f.Action = "Ask IT to let the kspaced service user read what the producer writes (file permissions or the producer's umask), then move the input back into the inbox."
		case errors.Is(err, safefile.ErrNotRegular):
			f.Message = "The drop holds a symbolic link, FIFO or device instead of a file; kspaced reads regular files only."
			f.Action = "Copy the real files (not links) into the inbox; the detail line names the one refused."
		default:
			f.Message = "The dropped data could not be used: it is incomplete, damaged, empty, or not a k-space format kspaced reads (ISMRMRD, fastMRI HDF5, BART .cfl/.hdr, NumPy .npy)."
			f.Action = "Export the raw data from the scanner again and drop it into the inbox; the detail line says which file and why. Retrying this same data will fail the same way."
		}
	case OutcomeTimeout:
		if errors.Is(err, errStalled) {
			f.Message = fmt.Sprintf("The reconstruction made no progress for %s (the stall limit) and was stopped: it hung, or the machine is far too loaded.", limit)
			f.Action = "Report this scan to the physicist (it may hang the service again), or raise daemon.stall_timeout; then move the input back into the inbox."
			break
		}
		f.Message = fmt.Sprintf("The reconstruction took longer than the %s limit and was stopped.", limit)
		f.Action = "Ask the physicist to check the data size and method, or raise daemon.job_timeout; then move the input back into the inbox."
	case OutcomeInterrupted:
		f.Message = "The service stopped or crashed several times while working on this scan, so it was set aside."
		f.Action = "Report this scan to the physicist; it may be what makes the service stop. The input is kept here unchanged."
	case OutcomeError:
		if errors.Is(err, pipeline.ErrConfig) {
			f.Message = "kspaced's configuration could not be used for this scan (for example a prior that is missing or does not load, or a device that cannot be opened); the data was not the problem."
			f.Action = "Ask the physicist to check the configuration named in the detail line; then move the input back into the inbox."
			break
		}
		if errors.Is(err, errPanic) {
			f.Message = "kspaced hit an internal error on this scan."
			f.Action = "Report this scan and the detail line to the kspaced maintainers; the input is kept here unchanged."
			break
		}
		fallthrough
	default:
		f.Message = fmt.Sprintf("The reconstruction failed after %d attempts because of a problem on the server (for example a full disk or missing permissions).", attempts)
		f.Action = "Ask IT to check the server's disk and permissions, then move the input back into the inbox."
	}
	return f
}

// clean shortens paths inside the spool in an error message to their part
// below the spool root (work/<job>/input/<file>): logs and error.json carry
// job ids and file names, not the host's directory layout.
func (d *Daemon) clean(err error) string {
	return strings.ReplaceAll(err.Error(), d.spool+string(filepath.Separator), "")
}

func round3(x float64) float64 { return float64(int64(x*1000+0.5)) / 1000 }
