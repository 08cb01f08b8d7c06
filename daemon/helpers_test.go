package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/internal/testutil"
	"github.com/kspaced/kspaced/pipeline"
)

// testConfig is the default config with a fast daemon section on spool.
func testConfig(spool string) *configs.Config {
	c := configs.Default()
	c.Recon.Method = "zero-filled"
	c.Daemon.Spool = spool
	c.Daemon.Workers = 2
	c.Daemon.QuietPeriod = 150 * time.Millisecond
	c.Daemon.RescanInterval = time.Hour
	c.Daemon.JobTimeout = time.Minute
	c.Daemon.GracePeriod = 5 * time.Second
	c.Daemon.Retries = 2
	c.Daemon.RetryBackoff = 10 * time.Millisecond
	c.Daemon.MinFreeMB = 0
	return c
}

// recorder is a fake processor: it copies the input's size into result.txt
// and counts calls per job input; fail decides an error per call.
type recorder struct {
	mu    sync.Mutex
	calls map[string]int
	cfgs  map[string]*configs.Config
	sizes map[string]int64
	fail  func(job pipeline.Job, call int) error
	delay time.Duration
}

func newRecorder() *recorder {
	return &recorder{calls: map[string]int{}, cfgs: map[string]*configs.Config{}, sizes: map[string]int64{}}
}

func (r *recorder) process(ctx context.Context, job pipeline.Job, out string, p pipeline.Progress) (*pipeline.Report, error) {
	key := filepath.Base(job.Inputs[0])
	r.mu.Lock()
	r.calls[key]++
	call := r.calls[key]
	r.cfgs[key] = job.Config
	r.mu.Unlock()
	if r.delay > 0 {
		select {
		case <-time.After(r.delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if r.fail != nil {
		if err := r.fail(job, call); err != nil {
			return nil, err
		}
	}
	var total int64
	for _, in := range job.Inputs {
		fi, err := os.Stat(in)
		if err != nil {
			return nil, err
		}
		total += fi.Size()
	}
	r.mu.Lock()
	r.sizes[key] = total
	r.mu.Unlock()
	if p != nil {
		p(1, 1)
	}
	if err := os.WriteFile(filepath.Join(out, "result.txt"), fmt.Appendf(nil, "%d\n", total), 0o644); err != nil {
		return nil, err
	}
	// Absolute output paths, as pipeline.Run reports them.
	return &pipeline.Report{Method: job.Config.Recon.Method, Slices: 1, Residual: []float64{0},
		Outputs: []string{filepath.Join(out, "result.txt")}}, nil
}

func (r *recorder) count(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[key]
}

func (r *recorder) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.calls {
		n += c
	}
	return n
}

// running is a daemon started in the background.
type running struct {
	d    *Daemon
	logs *testutil.SyncBuffer
	stop context.CancelFunc
	done chan error
}

func start(t *testing.T, c *configs.Config, proc Processor, once bool) *running {
	t.Helper()
	logs := &testutil.SyncBuffer{}
	d, err := New(Options{Config: c, Processor: proc, Once: once,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{d: d, logs: logs, stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- d.Run(ctx) }()
	if !once {
		testutil.WaitUntil(t, 5*time.Second, "daemon serving", d.live.Load)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(20 * time.Second):
			t.Error("daemon did not stop")
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	})
	return r
}

// wait stops the daemon and returns Run's error.
func (r *running) wait(t *testing.T) error {
	t.Helper()
	r.stop()
	select {
	case err := <-r.done:
		r.done <- err // for Cleanup
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("daemon did not stop")
		return nil
	}
}

// drop writes a file elsewhere in the spool and renames it into the inbox,
// as docs/spool.md asks producers to.
func drop(t testing.TB, spool, name string, data []byte) {
	t.Helper()
	tmp := filepath.Join(spool, ".incoming-"+name)
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(spool, InboxDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(spool, InboxDir, name)); err != nil {
		t.Fatal(err)
	}
}

func readReport(t testing.TB, spool, id string) pipeline.Report {
	t.Helper()
	var r pipeline.Report
	raw, err := os.ReadFile(filepath.Join(spool, OutboxDir, id, reportFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func readFailure(t testing.TB, spool, id string) Failure {
	t.Helper()
	var f Failure
	raw, err := os.ReadFile(filepath.Join(spool, FailedDir, id, errorFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

func readStateT(t testing.TB, dir string) jobState {
	t.Helper()
	st, err := readState(dir)
	if err != nil {
		t.Fatal(err)
	}
	return st
}
