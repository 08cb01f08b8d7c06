// Package daemon is kspaced's drop-folder service: it watches a spool's
// inbox, claims each complete job by an atomic rename into work/, runs a
// Processor on it with bounded retries and a timeout, publishes the outputs to
// outbox/<job>/ through one rename, and files the inputs under done/ or
// failed/. Several processes may share one spool: claims are renames and every
// claimed job is flocked while it is worked on, so a crashed daemon's jobs are
// redone by the next one that starts (or rescans) and a live daemon's never
// are. The protocol is documented in docs/spool.md.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/pipeline"
)

// Processor runs one job, writing its outputs into outDir (a private folder
// the daemon publishes afterwards). It must honour ctx. An error wrapping
// pipeline.ErrBadInput is final; any other error is retried.
type Processor func(ctx context.Context, job pipeline.Job, outDir string, progress pipeline.Progress) (*pipeline.Report, error)

// Options configure a Daemon.
type Options struct {
	// Config is the initial configuration; its Daemon section drives the
	// service and the whole of it is each job's base configuration.
	Config    *configs.Config
	Processor Processor
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Once processes the jobs present at start and returns (cron, batch).
	Once bool
	// Published, if set, is called with a published job's id and outbox
	// folder before its inputs are filed under done/ (delivery to PACS
	// queues the job here). It must be idempotent: after a crash it is
	// called again. On error the job stays in work/ and a rescan retries.
	Published func(job, dir string) error
	// Collectors are served on /metrics beside the daemon's own.
	Collectors []prometheus.Collector
	// ReaderOutcomes are the outcome labels of kspaced_reader_children_total
	// shown at zero before any child ends that way (CountReaderChild).
	ReaderOutcomes []string
	// BeforeJob, if set, is called as a job starts reading its input, after
	// its crash counter is saved. The end-to-end tests use it to make a job
	// that kills the process.
	BeforeJob func(id, entry string)
}

// maxInterruptions is how many times a job may be found half done after a
// crash before it is failed: a job that kills the daemon must not do so
// forever.
const maxInterruptions = 3

// Timings of the watcher loop.
const (
	scanDebounce = 5 * time.Millisecond
	tickInterval = time.Second
	abandonWait  = 5 * time.Second
	// claimBackoff delays the next claim of an entry whose claim failed for
	// a reason other than losing the race (permissions, full disk).
	claimBackoff = 2 * time.Second
	// staleClaimAge protects a peer's claim between its mkdir and its flock:
	// empty work folders younger than this are left alone.
	staleClaimAge = 10 * time.Second
)

// ErrLowDisk is returned by Run in Once mode when the spool's free space is
// below daemon.min_free_mb.
var ErrLowDisk = errors.New("free disk space below daemon.min_free_mb")

// Daemon is one drop-folder service over one spool.
type Daemon struct {
	proc      Processor
	beforeJob func(id, entry string)
	log       *slog.Logger
	once      bool
	spool     string
	workers   int

	cfg    atomic.Pointer[configs.Config]
	reg    *prometheus.Registry
	m      *metrics
	board  *board
	kick   chan struct{}
	busy   atomic.Int64 // tasks handed to workers and not yet finished
	alone  atomic.Bool  // a suspect job is running: hand out nothing else
	paused atomic.Bool
	live   atomic.Bool // the loop is running and accepting work
	beat   atomic.Int64
	nDone  atomic.Int64 // jobs finished by this process, for the stop log
	nFail  atomic.Int64

	mu        sync.Mutex
	entries   map[string]*entry // inbox entries by name
	queue     []*entry          // ready, not yet handed to a worker
	recovered []*claim          // orphaned jobs this process now holds
	active    map[string]bool   // job ids this process holds
	onceSet   map[string]bool

	published func(job, dir string) error // Options.Published
	// noted are inbox names already logged as ignored (one line per file).
	noted map[string]bool
	// unclaimed are inbox entries whose last claim failed (not lost to a
	// peer), with the error: Once must not report success while they wait.
	unclaimed map[string]error
}

type entryState int

const (
	pending entryState = iota // waiting to be quiet for the quiet period
	queued                    // ready, waiting for a worker
	taken                     // a worker is claiming it
)

// entry is an inbox name being watched.
type entry struct {
	name    string
	dir     bool
	sig     signature
	since   time.Time // when sig was first observed
	seen    time.Time // when the entry was first observed
	retryAt time.Time
	state   entryState
}

// task is one unit handed to a worker: an inbox entry to claim, or a job
// already claimed (recovered from work/).
type task struct {
	e *entry
	c *claim
}

// New checks the options and prepares a daemon; Run starts it.
func New(o Options) (*Daemon, error) {
	if o.Config == nil || o.Processor == nil {
		return nil, errors.New("daemon: Config and Processor are required")
	}
	if err := o.Config.Validate(); err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	spool, err := filepath.Abs(o.Config.Daemon.Spool)
	if err != nil {
		return nil, fmt.Errorf("daemon: spool %s: %w", o.Config.Daemon.Spool, err)
	}
	d := &Daemon{
		proc:      o.Processor,
		beforeJob: o.BeforeJob,
		noted:     map[string]bool{},
		unclaimed: map[string]error{},
		log:       log,
		once:      o.Once,
		spool:     spool,
		workers:   o.Config.Daemon.Workers,
		reg:       prometheus.NewRegistry(),
		board:     newBoard(200),
		kick:      make(chan struct{}, 1),
		entries:   map[string]*entry{},
		active:    map[string]bool{},
	}
	c := *o.Config
	c.Daemon.Spool = spool
	d.cfg.Store(&c)
	d.m = newMetrics(d.reg)
	for _, o := range o.ReaderOutcomes {
		d.m.readers.WithLabelValues(o)
	}
	d.published = o.Published
	for _, c := range o.Collectors {
		if err := d.reg.Register(c); err != nil {
			return nil, fmt.Errorf("daemon: metrics: %w", err)
		}
	}
	return d, nil
}

// Spool is the absolute spool root.
func (d *Daemon) Spool() string { return d.spool }

func (d *Daemon) config() *configs.Config { return d.cfg.Load() }

func (d *Daemon) path(parts ...string) string {
	return filepath.Join(append([]string{d.spool}, parts...)...)
}

// Reload replaces the configuration new jobs get with load's result. A
// failed load keeps the current configuration; keys that only take effect at
// start (spool, workers, http_addr, log_format) keep their running values.
func (d *Daemon) Reload(load func() (*configs.Config, error)) error {
	c, err := load()
	if err != nil {
		d.m.reloads.WithLabelValues("failed").Inc()
		d.log.Error("configuration reload failed; keeping the previous configuration", "err", err)
		return err
	}
	nc := *c
	old := d.config()
	keep := func(key string, changed bool) {
		if changed {
			d.log.Warn("configuration key takes effect only after a restart", "key", key)
		}
	}
	keep("daemon.spool", nc.Daemon.Spool != old.Daemon.Spool && absOr(nc.Daemon.Spool) != old.Daemon.Spool)
	keep("daemon.workers", nc.Daemon.Workers != old.Daemon.Workers)
	keep("daemon.http_addr", nc.Daemon.HTTPAddr != old.Daemon.HTTPAddr)
	keep("daemon.log_format", nc.Daemon.LogFormat != old.Daemon.LogFormat)
	nc.Daemon.Spool, nc.Daemon.Workers = old.Daemon.Spool, old.Daemon.Workers
	nc.Daemon.HTTPAddr, nc.Daemon.LogFormat = old.Daemon.HTTPAddr, old.Daemon.LogFormat
	d.cfg.Store(&nc)
	d.m.reloads.WithLabelValues("ok").Inc()
	d.log.Info("configuration reloaded", "method", nc.Recon.Method)
	d.wake()
	return nil
}

func absOr(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

func (d *Daemon) wake() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Run serves until ctx is cancelled (or, with Once, until the jobs present
// at start are finished). On cancellation it stops claiming, lets running
// jobs finish for daemon.grace_period, then cancels them; a cancelled job
// stays in work/ and is redone by the next daemon on this spool.
func (d *Daemon) Run(ctx context.Context) error {
	for _, sub := range []string{InboxDir, WorkDir, OutboxDir, DoneDir, FailedDir} {
		if err := os.MkdirAll(d.path(sub), 0o755); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
	}
	var w *fsnotify.Watcher
	if !d.once {
		var err error
		if w, err = fsnotify.NewBufferedWatcher(4096); err != nil {
			return fmt.Errorf("watch %s: %w", d.path(InboxDir), err)
		}
		defer w.Close()
		if err := w.Add(d.path(InboxDir)); err != nil {
			return fmt.Errorf("watch %s: %w", d.path(InboxDir), err)
		}
	}
	hard, cancelJobs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelJobs()
	tasks := make(chan task)
	var wg sync.WaitGroup
	for range d.workers {
		wg.Go(func() {
			for t := range tasks {
				d.handleSafe(ctx, hard, t)
				if t.c != nil && t.c.suspect {
					d.alone.Store(false)
				}
				d.busy.Add(-1)
				d.wake()
			}
		})
	}
	d.log.Info("kspaced serving", "spool", d.spool, "workers", d.workers, "once", d.once,
		"quiet_period", d.config().Daemon.QuietPeriod.String())
	loopErr := d.loop(ctx, w, tasks)
	d.live.Store(false)
	close(tasks)
	d.mu.Lock()
	for _, c := range d.recovered {
		c.release(false)
		delete(d.active, c.id)
	}
	d.recovered = nil
	d.mu.Unlock()

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d.config().Daemon.GracePeriod):
		d.log.Warn("grace period over; cancelling running jobs (they stay in work/ and will be redone)")
		cancelJobs()
		select {
		case <-done:
		case <-time.After(abandonWait):
			d.log.Error("running jobs did not stop; exiting without them")
		}
	}
	d.log.Info("kspaced stopped", "jobs_done", d.nDone.Load(), "jobs_failed", d.nFail.Load())
	return loopErr
}

// loop owns the inbox view: it scans on events, on a schedule and after
// overflows, recovers orphaned work, guards disk space and hands ready
// entries to idle workers (an entry is claimed only when a worker is free,
// so peers sharing the spool can take the rest).
func (d *Daemon) loop(ctx context.Context, w *fsnotify.Watcher, tasks chan<- task) error {
	var events <-chan fsnotify.Event
	var werrs <-chan error
	if w != nil {
		events, werrs = w.Events, w.Errors
	}
	start := time.Now()
	d.checkDisk()
	d.recoverWork(start)
	next := d.scan(start)
	d.live.Store(true)
	d.beat.Store(start.UnixNano())

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var due time.Time
	schedule := func(t time.Time) {
		if t.IsZero() || (!due.IsZero() && !t.Before(due)) {
			return
		}
		due = t
		timer.Reset(max(time.Until(t), 0))
	}
	schedule(next)
	var onceDeadline time.Time
	if d.once {
		onceDeadline = start.Add(d.config().Daemon.QuietPeriod + scanDebounce)
		schedule(onceDeadline)
	}
	interval := d.config().Daemon.RescanInterval
	rescan := time.NewTicker(interval)
	defer rescan.Stop()
	tick := time.NewTicker(tickInterval)
	defer tick.Stop()
	var lastScan time.Duration

	// offer is the task waiting for an idle worker. It leaves the queue (and
	// its entry is marked taken) before it is offered, so a worker that gets
	// it and fails fast cannot race the bookkeeping.
	var offer *task
	defer func() {
		if offer != nil {
			d.putBack(*offer)
		}
	}()
	for {
		if d.once && !onceDeadline.IsZero() && !time.Now().Before(onceDeadline) && offer == nil && d.onceFinished() {
			return d.onceUnclaimed()
		}
		if offer == nil {
			if t, ok := d.take(); ok {
				offer = &t
			}
		}
		var out chan<- task
		var t task
		if offer != nil {
			if d.paused.Load() {
				if d.once {
					return ErrLowDisk
				}
			} else if !d.alone.Load() && (offer.c == nil || !offer.c.suspect || d.busy.Load() == 0) {
				out, t = tasks, *offer
			}
		}
		select {
		case out <- t:
			d.busy.Add(1)
			if t.c != nil && t.c.suspect {
				d.alone.Store(true)
			}
			offer = nil
		case _, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			schedule(time.Now().Add(max(scanDebounce, 2*lastScan)))
		case err, ok := <-werrs:
			if !ok {
				werrs = nil
				continue
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				d.m.overflows.Inc()
				d.log.Warn("file event queue overflowed; rescanning the inbox")
			} else {
				d.log.Error("file watcher error; rescanning the inbox", "err", err)
			}
			schedule(time.Now())
		case <-timer.C:
			due = time.Time{}
			t0 := time.Now()
			next := d.scan(t0)
			lastScan = time.Since(t0)
			schedule(next)
			if d.once && !t0.Before(onceDeadline) {
				d.dropUnready()
			}
		case <-rescan.C:
			d.m.rescans.Inc()
			now := time.Now()
			d.recoverWork(now)
			if !d.once {
				schedule(d.scan(now))
			}
		case <-tick.C:
			d.beat.Store(time.Now().UnixNano())
			d.checkDisk()
			if iv := d.config().Daemon.RescanInterval; iv != interval {
				interval = iv
				rescan.Reset(iv)
			}
		case <-d.kick:
			if !d.once {
				schedule(time.Now().Add(scanDebounce))
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// take removes the next task from the queues, recovered jobs first.
func (d *Daemon) take() (task, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var t task
	switch {
	case len(d.recovered) > 0:
		t.c, d.recovered = d.recovered[0], d.recovered[1:]
	case len(d.queue) > 0:
		t.e, d.queue = d.queue[0], d.queue[1:]
		t.e.state = taken
	default:
		return t, false
	}
	d.gauges()
	return t, true
}

// putBack returns a task that was never handed out.
func (d *Daemon) putBack(t task) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t.c != nil {
		d.recovered = append([]*claim{t.c}, d.recovered...)
	} else {
		t.e.state = pending
	}
	d.gauges()
}

// gauges updates queue metrics; d.mu is held.
func (d *Daemon) gauges() {
	d.m.queue.Set(float64(len(d.queue) + len(d.recovered)))
	n := 0
	for _, e := range d.entries {
		if e.state == pending {
			n++
		}
	}
	d.m.pending.Set(float64(n))
}

// scan lists the inbox, updates each entry's readiness and queues the ready
// ones. It returns when the next pending entry could become ready (zero if
// none can without a change).
func (d *Daemon) scan(now time.Time) time.Time {
	inbox := d.path(InboxDir)
	des, err := os.ReadDir(inbox)
	if err != nil {
		d.log.Error("cannot list the inbox", "err", err)
		return now.Add(tickInterval)
	}
	quiet := d.config().Daemon.QuietPeriod
	d.mu.Lock()
	defer d.mu.Unlock()
	first := d.once && d.onceSet == nil
	if first {
		d.onceSet = map[string]bool{}
	}
	var next time.Time
	present := make(map[string]bool, len(des))
	for _, de := range des {
		name := de.Name()
		if why, ign := ignored(name); ign {
			present[name] = true
			if !d.noted[name] {
				d.noted[name] = true
				// Once per file, and only its name: a producer should see
				// why a file sits in the inbox untouched.
				d.log.Info("inbox file ignored", "input", name, "reason", why)
			}
			continue
		}
		present[name] = true
		if first {
			d.onceSet[name] = true
		}
		e := d.entries[name]
		if e != nil && e.state != pending {
			continue
		}
		if d.once && !d.onceSet[name] {
			continue // Once serves what was there at start
		}
		sig, dir, marked, err := statEntry(inbox, name)
		if errors.Is(err, os.ErrNotExist) {
			delete(present, name)
			continue
		}
		if e == nil {
			e = &entry{name: name, dir: dir, sig: sig, since: now, seen: now}
			d.entries[name] = e
		} else if sig != e.sig {
			e.sig, e.dir, e.since = sig, dir, now
		}
		if err != nil {
			continue // waiting for a companion (a .cfl's .hdr), or a stat error
		}
		readyAt := e.since.Add(quiet)
		if e.retryAt.After(readyAt) {
			readyAt = e.retryAt
		}
		if marked && !e.retryAt.After(now) || !readyAt.After(now) {
			e.state = queued
			d.queue = append(d.queue, e)
			continue
		}
		if next.IsZero() || readyAt.Before(next) {
			next = readyAt
		}
	}
	for name := range d.noted {
		if !present[name] {
			delete(d.noted, name)
		}
	}
	for name, e := range d.entries {
		if !present[name] && e.state != taken {
			delete(d.entries, name)
			if e.state == queued {
				d.unqueue(e)
			}
		}
	}
	d.gauges()
	return next
}

func (d *Daemon) unqueue(e *entry) {
	for i, q := range d.queue {
		if q == e {
			d.queue = append(d.queue[:i], d.queue[i+1:]...)
			return
		}
	}
}

// dropUnready ends Once mode's wait: entries still changing are left for a
// later run.
func (d *Daemon) dropUnready() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for name, e := range d.entries {
		if e.state == pending {
			if d.unclaimed[name] == nil {
				d.log.Info("input still changing; left in the inbox for the next run", "input", name)
			}
			delete(d.entries, name)
			delete(d.onceSet, name)
		}
	}
	d.gauges()
}

// onceUnclaimed is Once's result: an error naming the inputs it could not
// claim (they are still in the inbox), nil if there are none.
func (d *Daemon) onceUnclaimed() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.unclaimed) == 0 {
		return nil
	}
	var errs []error
	for name, err := range d.unclaimed {
		errs = append(errs, fmt.Errorf("%s: %s", name, d.clean(err)))
	}
	return fmt.Errorf("%d inputs could not be claimed and are still in the inbox: %w", len(errs), errors.Join(errs...))
}

func (d *Daemon) onceFinished() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, e := range d.entries {
		if e.state != pending {
			return false
		}
	}
	return len(d.queue) == 0 && len(d.recovered) == 0 && d.busy.Load() == 0
}

// checkDisk pauses claiming while the spool's free space is below
// daemon.min_free_mb.
func (d *Daemon) checkDisk() {
	need := uint64(d.config().Daemon.MinFreeMB) << 20
	free, err := freeBytes(d.spool)
	if err != nil {
		d.log.Error("cannot read free disk space", "err", err)
		return
	}
	d.m.free.Set(float64(free))
	low := free < need
	if d.paused.Swap(low) != low {
		if low {
			d.log.Warn("free disk space below daemon.min_free_mb; not taking new jobs", "free_mb", free>>20, "min_free_mb", need>>20)
			d.m.paused.Set(1)
		} else {
			d.log.Info("free disk space recovered; taking jobs again", "free_mb", free>>20)
			d.m.paused.Set(0)
		}
	}
}

// recoverWork takes over jobs left in work/ by a process that is gone: any
// folder whose lock it can take. Folders held by a live daemon (locked) are
// skipped; a claim that never received its entry is removed.
func (d *Daemon) recoverWork(now time.Time) {
	work := d.path(WorkDir)
	des, err := os.ReadDir(work)
	if err != nil {
		d.log.Error("cannot list work/", "err", err)
		return
	}
	for _, de := range des {
		id := de.Name()
		if !de.IsDir() || strings.HasPrefix(id, ".") {
			continue
		}
		d.mu.Lock()
		mine := d.active[id]
		d.mu.Unlock()
		if mine {
			continue
		}
		p := filepath.Join(work, id)
		lock, err := lockDir(p)
		if err != nil {
			continue // a live peer holds it, or it just left work/
		}
		input := filepath.Join(p, inputDir)
		name, err := mainEntry(input)
		if err != nil && emptyDir(input) {
			if fi, serr := lock.Stat(); serr == nil && now.Sub(fi.ModTime()) < staleClaimAge {
				lock.Close()
				continue
			}
			os.RemoveAll(p)
			lock.Close()
			continue
		}
		st, _ := readState(p)
		if err == nil && st.Entry == name {
			// Only the companions recorded at claim time: a same-named file
			// dropped since belongs to the next scan (issue 20, item 6).
			sweepCompanions(d.path(InboxDir), input, st.Companions)
		}
		seen := st.Seen
		if seen.IsZero() {
			seen = now
		}
		d.mu.Lock()
		d.active[id] = true
		d.recovered = append(d.recovered, &claim{id: id, dir: p, lock: lock, entry: name, seen: seen, suspect: st.Running})
		d.gauges()
		d.mu.Unlock()
		d.log.Info("recovered an unfinished job from work/", "job", id, "input", name)
	}
}

// handleSafe is handle that survives a panic in the daemon's own code for
// one job: the job's lock is released on the way out, its state still says
// running, so a later rescan redoes it and counts the interruption; the
// service and the jobs beside it go on.
func (d *Daemon) handleSafe(stop, hard context.Context, t task) {
	defer func() {
		if v := recover(); v != nil {
			d.log.Error("internal error while handling a job; it stays in work/ and will be retried", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
	}()
	d.handle(stop, hard, t)
}

// handle claims (if needed) and processes one task.
func (d *Daemon) handle(stop, hard context.Context, t task) {
	c := t.c
	if c == nil {
		e := t.e
		var err error
		c, err = claimEntry(d.spool, e.name, e.dir)
		d.mu.Lock()
		if err != nil {
			// Back to pending: the next scan drops it if it is gone (taken
			// by a peer) or re-queues it.
			e.state = pending
			if !errors.Is(err, errLost) {
				e.retryAt = time.Now().Add(claimBackoff)
				d.unclaimed[e.name] = err
				d.log.Error("cannot claim input", "input", e.name, "err", d.clean(err))
			}
			d.mu.Unlock()
			return
		}
		delete(d.unclaimed, e.name)
		delete(d.entries, e.name)
		d.active[c.id] = true
		d.mu.Unlock()
		c.seen = e.seen
		d.log.Info("job claimed", "job", c.id, "input", e.name)
	}
	defer func() {
		d.mu.Lock()
		delete(d.active, c.id)
		d.mu.Unlock()
	}()
	d.runJob(stop, hard, c)
}
