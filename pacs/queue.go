package pacs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/internal/safefile"
)

// DeliveryDir is the spool folder holding the queue: delivery/<job>/<dest>.json.
const DeliveryDir = "delivery"

// States of one job's delivery to one destination.
const (
	StatePending   = "pending"
	StateDelivered = "delivered"
	StateFailed    = "failed"
)

// rescanInterval is how often a destination's worker rereads the queue for
// entries another process added.
const rescanInterval = 30 * time.Second

// State is the persistent record of one job's delivery to one destination.
type State struct {
	Job         string `json:"job"`
	Destination string `json:"destination"`
	State       string `json:"state"`
	// Files are the job's DICOM files, relative to outbox/<job>/, listed
	// when the job was queued: every attempt sends exactly these.
	Files       []string  `json:"files"`
	Attempts    int       `json:"attempts"`
	Stored      int       `json:"stored"` // confirmed by the destination, last attempt
	Queued      time.Time `json:"queued"`
	NextAttempt time.Time `json:"next_attempt"`
	Finished    time.Time `json:"finished,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
}

// FailedDelivery is written as delivery/<job>/<dest>.failed-delivery.json
// when a job could not be delivered: for the people who must act.
type FailedDelivery struct {
	Job         string    `json:"job"`
	Destination string    `json:"destination"`
	Message     string    `json:"message"`
	Action      string    `json:"action"`
	Detail      string    `json:"detail"`
	PeerSaid    string    `json:"peer_said,omitempty"`
	Attempts    int       `json:"attempts"`
	Time        time.Time `json:"time"`
}

// Queue delivers published jobs to the configured destinations, one worker
// per destination, keeping its state in SPOOL/delivery/.
type Queue struct {
	spool string
	cfg   configs.PACS
	log   *slog.Logger
	m     *metrics
	// send is Send; tests replace it.
	send func(ctx context.Context, p configs.PACS, d configs.Destination, files []string) (int, error)
	now  func() time.Time

	mu   sync.Mutex
	kick map[string]chan struct{}
}

type metrics struct {
	deliveries *prometheus.CounterVec
	retries    *prometheus.CounterVec
	instances  *prometheus.CounterVec
	pending    *prometheus.GaugeVec
}

// NewQueue prepares the delivery queue of spool for cfg's destinations.
func NewQueue(spool string, cfg configs.PACS, log *slog.Logger) (*Queue, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Join(spool, DeliveryDir), 0o755); err != nil {
		return nil, fmt.Errorf("delivery queue: %w", err)
	}
	q := &Queue{spool: spool, cfg: cfg, log: log, send: Send, now: time.Now, kick: map[string]chan struct{}{}}
	q.m = &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kspaced_deliveries_total",
			Help: "Jobs delivered to a destination, by outcome (delivered, failed after all retries)."}, []string{"destination", "outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kspaced_delivery_retries_total",
			Help: "Failed delivery attempts that will be retried."}, []string{"destination"}),
		instances: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kspaced_delivered_instances_total",
			Help: "DICOM instances a destination confirmed (resends included)."}, []string{"destination"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kspaced_delivery_pending",
			Help: "Jobs waiting to be delivered to a destination."}, []string{"destination"}),
	}
	for _, d := range cfg.Destinations {
		q.kick[d.Name] = make(chan struct{}, 1)
		q.m.deliveries.WithLabelValues(d.Name, StateDelivered)
		q.m.deliveries.WithLabelValues(d.Name, StateFailed)
		q.m.retries.WithLabelValues(d.Name)
		q.m.pending.WithLabelValues(d.Name)
	}
	return q, nil
}

// Collectors are the queue's Prometheus metrics.
func (q *Queue) Collectors() []prometheus.Collector {
	return []prometheus.Collector{q.m.deliveries, q.m.retries, q.m.instances, q.m.pending}
}

func (q *Queue) statePath(job, dest string) string {
	return filepath.Join(q.spool, DeliveryDir, job, dest+".json")
}

// Enqueue queues the published job in dir (outbox/<job>) for every
// destination. It is idempotent — a job already queued keeps its state — and
// durable when it returns, so the daemon calls it before filing the job.
func (q *Queue) Enqueue(job, dir string) error {
	if len(q.cfg.Destinations) == 0 {
		return nil
	}
	if job == "" || strings.ContainsAny(job, `/\`) || job == "." || job == ".." {
		return fmt.Errorf("enqueue: bad job id %q", job)
	}
	files, err := DICOMFiles(dir)
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", job, err)
	}
	if len(files) == 0 {
		q.log.Info("job has no DICOM output; nothing to deliver", "job", job)
		return nil
	}
	rel := make([]string, len(files))
	for i, f := range files {
		if rel[i], err = filepath.Rel(dir, f); err != nil {
			return fmt.Errorf("enqueue %s: %w", job, err)
		}
	}
	jd := filepath.Join(q.spool, DeliveryDir, job)
	if err := os.MkdirAll(jd, 0o755); err != nil {
		return fmt.Errorf("enqueue %s: %w", job, err)
	}
	now := q.now()
	for _, d := range q.cfg.Destinations {
		p := q.statePath(job, d.Name)
		if _, err := os.Stat(p); err == nil {
			continue
		}
		st := State{Job: job, Destination: d.Name, State: StatePending, Files: rel, Queued: now, NextAttempt: now}
		if err := writeAtomic(p, &st); err != nil {
			return fmt.Errorf("enqueue %s for %s: %w", job, d.Name, err)
		}
	}
	if err := safefile.SyncDir(filepath.Join(q.spool, DeliveryDir)); err != nil {
		return fmt.Errorf("enqueue %s: %w", job, err)
	}
	q.log.Info("job queued for delivery", "job", job, "instances", len(rel), "destinations", len(q.cfg.Destinations))
	for _, d := range q.cfg.Destinations {
		q.wake(d.Name)
	}
	return nil
}

func (q *Queue) wake(dest string) {
	q.mu.Lock()
	ch := q.kick[dest]
	q.mu.Unlock()
	if ch != nil {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Run delivers until ctx ends, one worker per destination.
func (q *Queue) Run(ctx context.Context) {
	q.eachDestination(func(d configs.Destination) { q.worker(ctx, d) })
}

// Drain makes one pass over the queue — every delivery that is due now is
// attempted once — and returns: for `serve --once`. Failures keep their
// back-off for the next run.
func (q *Queue) Drain(ctx context.Context) {
	q.eachDestination(func(d configs.Destination) { q.pass(ctx, d, map[string]bool{}) })
}

// eachDestination runs f for every destination at once and waits for all:
// destinations never wait on each other.
func (q *Queue) eachDestination(f func(configs.Destination)) {
	var wg sync.WaitGroup
	for _, d := range q.cfg.Destinations {
		wg.Go(func() { f(d) })
	}
	wg.Wait()
}

func (q *Queue) worker(ctx context.Context, d configs.Destination) {
	// finished remembers jobs already delivered or failed, so that a long
	// history is not reread on every pass.
	finished := map[string]bool{}
	for ctx.Err() == nil {
		next := q.pass(ctx, d, finished)
		wait := rescanInterval
		if !next.IsZero() {
			wait = min(wait, max(next.Sub(q.now()), 10*time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-q.kick[d.Name]:
		}
		t.Stop()
	}
}

// pass attempts every due job for d, oldest first, and returns when the
// next waiting one is due (zero if none).
func (q *Queue) pass(ctx context.Context, d configs.Destination, finished map[string]bool) time.Time {
	jobs, err := os.ReadDir(filepath.Join(q.spool, DeliveryDir))
	if err != nil {
		q.log.Error("read delivery queue", "err", err)
		return q.now().Add(rescanInterval)
	}
	var due []State
	var next time.Time
	pending := 0
	for _, j := range jobs {
		if !j.IsDir() || finished[j.Name()] {
			continue
		}
		st, err := readState(q.statePath(j.Name(), d.Name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			q.log.Error("unreadable delivery state", "job", j.Name(), "destination", d.Name, "err", err)
			continue
		}
		if st.State != StatePending {
			finished[j.Name()] = true
			continue
		}
		pending++
		if !st.NextAttempt.After(q.now()) {
			due = append(due, st)
		} else if next.IsZero() || st.NextAttempt.Before(next) {
			next = st.NextAttempt
		}
	}
	q.m.pending.WithLabelValues(d.Name).Set(float64(pending))
	sort.Slice(due, func(i, k int) bool { return due[i].Queued.Before(due[k].Queued) })
	for _, st := range due {
		if ctx.Err() != nil {
			return next
		}
		if at, done := q.attempt(ctx, d, st.Job); done {
			finished[st.Job] = true
			pending--
			q.m.pending.WithLabelValues(d.Name).Set(float64(pending))
		} else if !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	return next
}

// attempt delivers one job once, under a lock so that several daemons on a
// spool do not send it together. It returns the next attempt's time, or
// done when the job is delivered or failed for good.
func (q *Queue) attempt(ctx context.Context, d configs.Destination, job string) (next time.Time, done bool) {
	path := q.statePath(job, d.Name)
	unlock, err := lockFile(path + ".lock")
	if err != nil {
		return time.Time{}, false // another process is on it
	}
	defer unlock()
	st, err := readState(path)
	if err != nil || st.State != StatePending {
		return time.Time{}, err == nil
	}
	if st.NextAttempt.After(q.now()) {
		return st.NextAttempt, false
	}
	// Count the attempt before it starts: an attempt that kills the process
	// still counts, so a job cannot crash the daemon forever.
	st.Attempts++
	if err := writeAtomic(path, &st); err != nil {
		q.log.Error("write delivery state", "job", job, "destination", d.Name, "err", err)
		return q.now().Add(rescanInterval), false
	}
	dir := filepath.Join(q.spool, "outbox", job)
	files := make([]string, len(st.Files))
	var sendErr error
	for i, f := range st.Files {
		files[i] = filepath.Join(dir, f)
		if !filepath.IsLocal(f) {
			sendErr = fmt.Errorf("file %q is outside the job's outbox folder", f)
		}
	}
	started := q.now()
	n := 0
	if sendErr == nil {
		if _, err := os.Stat(dir); err != nil {
			sendErr = fmt.Errorf("the job's results are no longer in outbox/%s: %w", job, err)
			st.Attempts = q.cfg.Retries + 1 // nothing left to retry
		} else {
			n, sendErr = q.send(ctx, q.cfg, d, files)
		}
	}
	q.m.instances.WithLabelValues(d.Name).Add(float64(n))
	st.Stored = n
	if sendErr != nil && ctx.Err() != nil {
		// Shutting down: not the destination's fault.
		st.Attempts--
		_ = writeAtomic(path, &st)
		return time.Time{}, false
	}
	if sendErr == nil {
		st.State, st.Finished, st.LastError = StateDelivered, q.now(), ""
		q.m.deliveries.WithLabelValues(d.Name, StateDelivered).Inc()
		if err := writeAtomic(path, &st); err != nil {
			q.log.Error("write delivery state", "job", job, "destination", d.Name, "err", err)
		}
		q.log.Info("job delivered", "job", job, "destination", d.Name, "instances", n,
			"attempts", st.Attempts, "seconds", q.now().Sub(started).Round(time.Millisecond).Seconds())
		return time.Time{}, true
	}
	st.LastError = sendErr.Error()
	if st.Attempts > q.cfg.Retries {
		// The record first: the state is what says the job is finished.
		st.State, st.Finished = StateFailed, q.now()
		q.writeFailed(d, st, sendErr)
		q.m.deliveries.WithLabelValues(d.Name, StateFailed).Inc()
		if err := writeAtomic(path, &st); err != nil {
			q.log.Error("write delivery state", "job", job, "destination", d.Name, "err", err)
		}
		q.log.Error("delivery failed for good; see the failed-delivery record", "job", job, "destination", d.Name,
			"attempts", st.Attempts, "err", sendErr)
		return time.Time{}, true
	}
	wait := q.cfg.RetryBackoff << (st.Attempts - 1)
	if wait > q.cfg.MaxBackoff || wait <= 0 {
		wait = q.cfg.MaxBackoff
	}
	st.NextAttempt = q.now().Add(wait)
	if err := writeAtomic(path, &st); err != nil {
		q.log.Error("write delivery state", "job", job, "destination", d.Name, "err", err)
	}
	q.m.retries.WithLabelValues(d.Name).Inc()
	q.log.Warn("delivery attempt failed; will retry", "job", job, "destination", d.Name, "attempts", st.Attempts,
		"retry_in", wait.String(), "err", sendErr)
	return st.NextAttempt, false
}

func (q *Queue) writeFailed(d configs.Destination, st State, err error) {
	where := d.URL
	if !d.IsWeb() {
		where = fmt.Sprintf("%s at %s:%d", d.AETitle, d.Host, d.Port)
	}
	fd := FailedDelivery{
		Job: st.Job, Destination: d.Name, Attempts: st.Attempts, Time: q.now(),
		Message: fmt.Sprintf("The results of job %s were NOT delivered to %s (%s) after %d attempts; the images are not in that PACS.",
			st.Job, d.Name, where, st.Attempts),
		Action: fmt.Sprintf("Check that %s is reachable and accepts kspaced (kspaced pacs echo %s), then send again with "+
			"kspaced pacs send %s --to %s, or delete this file and set \"state\" to \"pending\" in %s.json to requeue it.",
			d.Name, d.Name, filepath.Join(q.spool, "outbox", st.Job), d.Name, d.Name),
		Detail:   err.Error(),
		PeerSaid: PeerDetail(err),
	}
	p := filepath.Join(q.spool, DeliveryDir, st.Job, d.Name+".failed-delivery.json")
	if werr := writeAtomic(p, &fd); werr != nil {
		q.log.Error("write failed-delivery record", "job", st.Job, "destination", d.Name, "err", werr)
	}
}

// States returns every delivery state in the spool, for status displays.
func States(spool string) ([]State, error) {
	paths, err := filepath.Glob(filepath.Join(spool, DeliveryDir, "*", "*.json"))
	if err != nil {
		return nil, err
	}
	var out []State
	for _, p := range paths {
		if strings.HasSuffix(p, ".failed-delivery.json") {
			continue
		}
		st, err := readState(p)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// JobStates returns one job's delivery state for each destination it was
// queued for, with the failed-delivery record of those that failed for good
// (nil otherwise), sorted by destination: the status page reads them for the
// jobs it shows without reading the whole queue.
func JobStates(spool, job string) ([]State, []*FailedDelivery, error) {
	if job == "" || job == "." || job == ".." || strings.ContainsAny(job, `/\`) {
		return nil, nil, fmt.Errorf("delivery state: invalid job id %q", job)
	}
	dir := filepath.Join(spool, DeliveryDir, job)
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("delivery state of %s: %w", job, err)
	}
	var states []State
	var failed []*FailedDelivery
	for _, de := range des {
		n := de.Name()
		if !de.Type().IsRegular() || !strings.HasSuffix(n, ".json") || strings.HasSuffix(n, ".failed-delivery.json") {
			continue
		}
		st, err := readState(filepath.Join(dir, n))
		if err != nil {
			return nil, nil, fmt.Errorf("delivery state of %s: %w", job, err)
		}
		var fd *FailedDelivery
		if st.State == StateFailed {
			fd, err = readFailed(filepath.Join(dir, strings.TrimSuffix(n, ".json")+".failed-delivery.json"))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, nil, fmt.Errorf("delivery state of %s: %w", job, err)
			}
		}
		states = append(states, st)
		failed = append(failed, fd)
	}
	return states, failed, nil
}

// maxFailed bounds a failed-delivery record we read (a PACS's words in it
// are bounded when written; this guards against anything else).
const maxFailed = 1 << 20

func readFailed(path string) (*FailedDelivery, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var fd FailedDelivery
	if err := json.NewDecoder(io.LimitReader(f, maxFailed)).Decode(&fd); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &fd, nil
}

// maxState bounds a state file we read (the file list dominates).
const maxState = 64 << 20

func readState(path string) (State, error) {
	var st State
	f, err := os.Open(path)
	if err != nil {
		return st, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return st, err
	}
	if fi.Size() > maxState {
		return st, fmt.Errorf("%s: %d bytes, over %d", path, fi.Size(), maxState)
	}
	if err := json.NewDecoder(f).Decode(&st); err != nil {
		return st, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

// writeAtomic writes v as JSON to path atomically and durably
// (internal/safefile), so a crash leaves the old or the new state, never half
// of one.
func writeAtomic(path string, v any) error {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return safefile.WriteFile(path, append(raw, '\n'), 0o644)
}

// lockFile takes an exclusive flock without waiting; the kernel drops it if
// the process dies.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}
