package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/daemon"
	"github.com/kspaced/kspaced/device"
	"github.com/kspaced/kspaced/internal/isolate"
	"github.com/kspaced/kspaced/pipeline"
)

func newServeCmd() *cobra.Command {
	var (
		cfgPath, spool, httpAddr string
		once                     bool
		workers                  int
		testDelay                time.Duration
		testCrashOn              string
	)
	cmd := &cobra.Command{
		Use:   "serve --config FILE [--spool DIR] [--once] [--workers N] [--http ADDR]",
		Short: "Run the drop-folder reconstruction service",
		Long: `serve watches SPOOL/inbox for k-space files and study folders, reconstructs each
complete one, and publishes the result as SPOOL/outbox/<job>/ (with report.json)
in one rename; inputs are filed under SPOOL/done/<job>/ or, with error.json,
SPOOL/failed/<job>/. See docs/spool.md for the protocol producers follow.

Signals: SIGTERM or SIGINT stop taking jobs and let running ones finish within
daemon.grace_period (a second signal exits at once; unfinished jobs are redone
on restart). SIGHUP reloads --config for new jobs; a bad file keeps the running
configuration. With --http (daemon.http_addr) it serves /healthz, /readyz,
/metrics (Prometheus) and /status.

With pacs.destinations configured, every published job is sent to each PACS
(C-STORE or DICOMweb STOW-RS) through a queue in SPOOL/delivery/ that survives
restarts; with pacs.listen.addr set, studies sent by DICOM arrive in the inbox.
See docs/pacs.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// load reads --config and applies the flags; SIGHUP calls it again.
			load := func() (*configs.Config, error) {
				c, err := configs.Load(cfgPath)
				if err != nil {
					return nil, err
				}
				if changed(cmd, "spool") {
					c.Daemon.Spool = spool
				}
				if changed(cmd, "workers") {
					c.Daemon.Workers = workers
				}
				if changed(cmd, "http") {
					c.Daemon.HTTPAddr = httpAddr
				} else if once {
					// A cron run must not collide with a resident daemon's port.
					c.Daemon.HTTPAddr = ""
				}
				if err := c.Validate(); err != nil {
					return nil, fmt.Errorf("config %s: %w", cfgPath, err)
				}
				return c, nil
			}
			cfg, err := load()
			if err != nil {
				return usageError{err}
			}
			log := newLogger(os.Stderr, cfg.Daemon.LogFormat)
			if !isolate.LandlockAvailable() {
				log.Warn("this kernel has no Landlock: file readers run in child processes with memory, CPU and time limits, but can read outside the job's folder")
			}
			var devs device.Set
			defer devs.Close()
			var d *daemon.Daemon // set before any job runs
			countChild := func(u isolate.Usage) { d.CountReaderChild(u.Outcome) }
			proc := daemon.Processor(func(ctx context.Context, job pipeline.Job, out string, p pipeline.Progress) (*pipeline.Report, error) {
				dev, err := jobDevice(&devs, job.Config)
				if err != nil {
					return nil, err
				}
				job.Device = dev
				// Untrusted files are parsed in a child process (internal/isolate)
				// under daemon.reader's limits, which a job cannot change.
				job.Reader = reader(job.Config, countChild)
				return pipeline.Run(ctx, job, out, p)
			})
			if testDelay > 0 {
				proc = delayed(proc, testDelay)
				log.Warn("--testing-job-delay is set: every job waits before processing (for tests only)", "delay", testDelay.String())
			}
			opts := daemon.Options{Config: cfg, Processor: proc, Logger: log, Once: once, ReaderOutcomes: isolate.Outcomes}
			if testCrashOn != "" {
				log.Warn("--testing-crash-on is set: the process kills itself when that input starts (for tests only)", "input", testCrashOn)
				opts.BeforeJob = func(_, entry string) {
					if entry == testCrashOn {
						// A moment first, so jobs claimed beside it are running.
						time.Sleep(500 * time.Millisecond)
						_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
						select {} // the signal is on its way
					}
				}
			}
			svc, err := withPACS(&opts, log, once)
			if err != nil {
				return err
			}
			if d, err = daemon.New(opts); err != nil {
				return err
			}
			if once {
				err := serve(cmd.Context(), d, cfg.Daemon.HTTPAddr, load, log)
				dctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
				defer stop()
				svc.drain(dctx)
				return err
			}
			// Delivery and the listener run while the daemon does; an
			// interrupted send is resumed by the next start.
			dctx, stopDelivery := context.WithCancel(context.Background())
			delivered := make(chan struct{})
			go func() { svc.run(dctx); close(delivered) }()
			defer func() { stopDelivery(); <-delivered }()
			return serve(cmd.Context(), d, cfg.Daemon.HTTPAddr, load, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgPath, "config", "", "YAML config merged over the defaults (section daemon, and recon/output for every job)")
	f.StringVar(&spool, "spool", "", "spool folder holding inbox/ work/ outbox/ done/ failed/ (default from config: daemon.spool)")
	f.BoolVar(&once, "once", false, "process the jobs present now, then exit (cron, batch archives); no HTTP unless --http")
	f.IntVar(&workers, "workers", 1, "jobs processed at once (default from config: daemon.workers)")
	f.StringVar(&httpAddr, "http", "", `address for /healthz /readyz /metrics /status, "" to disable (default from config: daemon.http_addr)`)
	// Hidden, for the end-to-end tests only: makes every job slow enough to
	// kill the daemon in the middle of one.
	f.DurationVar(&testDelay, "testing-job-delay", 0, "TESTING ONLY: wait this long at the start of every job")
	_ = f.MarkHidden("testing-job-delay")
	// Hidden, for the end-to-end tests only: a poison job that kills the
	// process while it reads its input, as a hostile file could.
	f.StringVar(&testCrashOn, "testing-crash-on", "", "TESTING ONLY: kill the process when the job of this inbox name starts")
	_ = f.MarkHidden("testing-crash-on")
	return cmd
}

// serve runs the daemon under signal handling and the optional HTTP server.
func serve(parent context.Context, d *daemon.Daemon, addr string, load func() (*configs.Config, error), log *slog.Logger) error {
	if parent == nil {
		parent = context.Background()
	}
	ctx, stop := signal.NotifyContext(parent, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second signal now takes the default action: exit at once
	}()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				log.Info("SIGHUP: reloading the configuration")
				_ = d.Reload(load)
			case <-ctx.Done():
				return
			}
		}
	}()
	if addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("http: %w", err)
		}
		srv := newHTTPServer(d.Handler())
		log.Info("http listening", "addr", ln.Addr().String())
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http server stopped", "err", err)
			}
		}()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
	}
	return d.Run(ctx)
}

// httpIdleTimeout closes keep-alive connections left idle, so clients that
// never hang up cannot pile up open connections (ReadHeaderTimeout alone
// does not end an idle one).
var httpIdleTimeout = 60 * time.Second

// newHTTPServer bounds every phase of a connection: the endpoints are small
// and local, so generous limits never cut a real client.
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    64 << 10,
	}
}

func newLogger(w io.Writer, format string) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

// delayed wraps a processor with a wait that honours cancellation.
func delayed(p daemon.Processor, wait time.Duration) daemon.Processor {
	return func(ctx context.Context, job pipeline.Job, out string, progress pipeline.Progress) (*pipeline.Report, error) {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return p(ctx, job, out, progress)
	}
}
