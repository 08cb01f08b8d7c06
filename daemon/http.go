package daemon

import (
	"encoding/json"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kspaced/kspaced/pipeline"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type metrics struct {
	jobs      *prometheus.CounterVec
	retries   prometheus.Counter
	queue     prometheus.Gauge
	pending   prometheus.Gauge
	inflight  prometheus.Gauge
	duration  *prometheus.HistogramVec
	latency   prometheus.Histogram
	paused    prometheus.Gauge
	free      prometheus.Gauge
	overflows prometheus.Counter
	rescans   prometheus.Counter
	reloads   *prometheus.CounterVec
	qcJobs    *prometheus.CounterVec
	qcFlagged *prometheus.CounterVec
	readers   *prometheus.CounterVec
}

func newMetrics(reg *prometheus.Registry) *metrics {
	buckets := prometheus.ExponentialBuckets(0.05, 2, 16) // 50 ms … ~27 min
	m := &metrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kspaced_jobs_total",
			Help: "Finished jobs by outcome (done, bad_input, timeout, error, interrupted)."}, []string{"outcome"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "kspaced_job_retries_total",
			Help: "Attempts retried after a possibly temporary error."}),
		queue: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kspaced_queue_depth",
			Help: "Complete inputs waiting for a worker."}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kspaced_inbox_pending",
			Help: "Inbox entries still being written (waiting for the quiet period)."}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kspaced_jobs_in_flight",
			Help: "Jobs being processed now."}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kspaced_job_duration_seconds",
			Help: "Processing time of successful attempts by reconstruction method.", Buckets: buckets}, []string{"method"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "kspaced_job_latency_seconds",
			Help: "Time from an input first seen in the inbox to its published result.", Buckets: buckets}),
		paused: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kspaced_claiming_paused",
			Help: "1 while free disk space is below daemon.min_free_mb."}),
		free: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kspaced_spool_free_bytes",
			Help: "Free bytes on the spool's filesystem."}),
		overflows: prometheus.NewCounter(prometheus.CounterOpts{Name: "kspaced_watch_overflows_total",
			Help: "File event queue overflows (each triggers a rescan)."}),
		rescans: prometheus.NewCounter(prometheus.CounterOpts{Name: "kspaced_rescans_total",
			Help: "Periodic full rescans of the spool."}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kspaced_config_reloads_total",
			Help: "Configuration reloads by result (ok, failed)."}, []string{"result"}),
		qcJobs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kspaced_qc_jobs_total",
			Help: "Published jobs by QC status (ok, check: some slice flagged, none: not measured)."}, []string{"status"}),
		qcFlagged: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kspaced_qc_flagged_jobs_total",
			Help: "Published jobs with at least one slice flagged, by flag code (data_mismatch, motion, noise, atypical, uncertain)."}, []string{"code"}),
		readers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kspaced_reader_children_total",
			Help: "Reader child processes (one per untrusted file read) by how they ended."}, []string{"outcome"}),
	}
	reg.MustRegister(m.jobs, m.retries, m.queue, m.pending, m.inflight, m.duration, m.latency,
		m.paused, m.free, m.overflows, m.rescans, m.reloads, m.qcJobs, m.qcFlagged, m.readers,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, o := range []string{OutcomeDone, OutcomeBadInput, OutcomeTimeout, OutcomeError, OutcomeInterrupted} {
		m.jobs.WithLabelValues(o)
	}
	for _, s := range []string{"ok", "check", "none"} {
		m.qcJobs.WithLabelValues(s)
	}
	return m
}

// countQC adds a published job's QC to the metrics.
func (m *metrics) countQC(rep *pipeline.Report) {
	if rep == nil || rep.QC == nil {
		m.qcJobs.WithLabelValues("none").Inc()
		return
	}
	m.qcJobs.WithLabelValues(rep.QC.Status).Inc()
	seen := map[string]bool{}
	for _, f := range rep.QC.Flags {
		if !seen[f.Code] {
			seen[f.Code] = true
			m.qcFlagged.WithLabelValues(f.Code).Inc()
		}
	}
}

// CountReaderChild counts one reader child process that ended with outcome
// (the processor's reader reports it; internal/isolate names the outcomes).
func (d *Daemon) CountReaderChild(outcome string) {
	d.m.readers.WithLabelValues(outcome).Inc()
}

// record is one job as /status shows it.
type record struct {
	ID, Input, Method, State, Outcome, Message string
	Seen, Started, Finished                    time.Time
	Attempts                                   int
	done, total                                atomic.Int64
}

// board keeps the most recent jobs for /status.
type board struct {
	mu   sync.Mutex
	max  int
	jobs []*record
}

func newBoard(n int) *board { return &board{max: n} }

func (b *board) start(id, input string, seen time.Time) *record {
	r := &record{ID: id, Input: input, State: "starting", Seen: seen, Started: time.Now()}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.jobs = append(b.jobs, r)
	if len(b.jobs) > b.max {
		// Drop the oldest finished job; running ones stay listed.
		for i, old := range b.jobs {
			if !old.Finished.IsZero() {
				b.jobs = slices.Delete(b.jobs, i, i+1)
				break
			}
		}
	}
	return r
}

func (r *record) progress(done, total int) {
	r.done.Store(int64(done))
	r.total.Store(int64(total))
}

// set changes a record under the board's lock (records are read by /status).
func (r *record) set(f func(*record)) {
	boardMu.Lock()
	f(r)
	boardMu.Unlock()
}

// boardMu guards record fields; one lock for all boards is plenty here.
var boardMu sync.Mutex

func (r *record) finish(outcome, msg string) {
	r.set(func(r *record) {
		r.State, r.Outcome, r.Message, r.Finished = "finished", outcome, msg, time.Now()
	})
}

// JobStatus is one row of /status (and /status.json).
type JobStatus struct {
	ID       string    `json:"job"`
	Input    string    `json:"input"`
	Method   string    `json:"method"`
	State    string    `json:"state"`
	Outcome  string    `json:"outcome,omitempty"`
	Message  string    `json:"message,omitempty"`
	Attempts int       `json:"attempts"`
	Progress string    `json:"progress,omitempty"`
	Seen     time.Time `json:"seen"`
	Started  time.Time `json:"started"`
	Seconds  float64   `json:"seconds"`
}

// Status lists recent jobs, newest first.
func (d *Daemon) Status() []JobStatus {
	d.board.mu.Lock()
	jobs := slices.Clone(d.board.jobs)
	d.board.mu.Unlock()
	out := make([]JobStatus, 0, len(jobs))
	boardMu.Lock()
	defer boardMu.Unlock()
	for i := len(jobs) - 1; i >= 0; i-- {
		r := jobs[i]
		end := r.Finished
		if end.IsZero() {
			end = time.Now()
		}
		s := JobStatus{ID: r.ID, Input: r.Input, Method: r.Method, State: r.State, Outcome: r.Outcome,
			Message: r.Message, Attempts: r.Attempts, Seen: r.Seen, Started: r.Started,
			Seconds: round3(end.Sub(r.Started).Seconds())}
		if t := r.total.Load(); t > 0 && r.Finished.IsZero() {
			s.Progress = itoa(r.done.Load()) + "/" + itoa(t)
		}
		out = append(out, s)
	}
	return out
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// Ready reports whether the daemon takes new jobs, and why not.
func (d *Daemon) Ready() (bool, string) {
	switch {
	case !d.live.Load():
		return false, "not serving (starting or stopping)"
	case d.paused.Load():
		return false, "free disk space below daemon.min_free_mb"
	}
	return true, "ready"
}

// Handler serves the people's page at / (with /previews/), /healthz,
// /readyz, /metrics, /status and /status.json; all read-only.
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		// Healthy while the watcher loop ticks; a wedged loop fails this.
		if last := time.Unix(0, d.beat.Load()); d.beat.Load() != 0 && time.Since(last) > 30*tickInterval {
			http.Error(w, "watcher loop stalled", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := d.Ready()
		if !ok {
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(why + "\n"))
	})
	mux.HandleFunc("GET /{$}", d.servePage)
	mux.HandleFunc("GET /previews/{job}/{path...}", d.servePreview)
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /status.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(d.Status())
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := d.Ready()
		d.mu.Lock()
		q := len(d.queue) + len(d.recovered)
		d.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := statusPage.Execute(w, map[string]any{
			"Ready": ok, "Why": why, "Queue": q, "Jobs": d.Status(), "Now": time.Now().Format(time.RFC3339),
		}); err != nil {
			d.log.Error("status page", "err", err)
		}
	})
	return mux
}

var statusPage = template.Must(template.New("status").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="5"><title>kspaced status</title>
<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}td,th{padding:.25em .7em;border-bottom:1px solid #ccc;text-align:left}
.done{color:#060}.bad_input,.timeout,.error,.interrupted{color:#a00}</style></head><body>
<h1>kspaced</h1>
<p>{{if .Ready}}Taking jobs{{else}}Not taking jobs: {{.Why}}{{end}} · {{.Queue}} waiting · {{.Now}}</p>
<table><tr><th>Job</th><th>Input</th><th>Method</th><th>State</th><th>Attempts</th><th>Seconds</th><th>Result</th></tr>
{{range .Jobs}}<tr><td>{{.ID}}</td><td>{{.Input}}</td><td>{{.Method}}</td><td>{{.State}}{{if .Progress}} {{.Progress}}{{end}}</td><td>{{.Attempts}}</td><td>{{.Seconds}}</td><td class="{{.Outcome}}">{{.Outcome}}{{if .Message}}: {{.Message}}{{end}}</td></tr>
{{else}}<tr><td colspan="7">No jobs yet.</td></tr>{{end}}
</table></body></html>
`))
