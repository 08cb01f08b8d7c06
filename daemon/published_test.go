package daemon

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kspaced/kspaced/internal/testutil"
)

// The Published hook sees each job's outbox folder before its inputs are
// filed; a failing hook leaves the job in work/ and a rescan calls it again,
// so a job is never filed without being queued for delivery.
func TestPublishedHook(t *testing.T) {
	spool := t.TempDir()
	c := testConfig(spool)
	c.Daemon.RescanInterval = time.Second
	var mu sync.Mutex
	calls := map[string]int{}
	hook := func(job, dir string) error {
		mu.Lock()
		defer mu.Unlock()
		calls[job]++
		if _, err := os.Stat(filepath.Join(dir, reportFile)); err != nil {
			t.Errorf("hook for %s before its result is published: %v", job, err)
		}
		if _, err := os.Stat(filepath.Join(spool, DoneDir, job)); err == nil {
			t.Errorf("hook for %s after its inputs were filed", job)
		}
		if job == "flaky" && calls[job] == 1 {
			return errors.New("disk full")
		}
		return nil
	}
	extra := prometheus.NewCounter(prometheus.CounterOpts{Name: "kspaced_test_extra_total", Help: "test"})
	logs := &testutil.SyncBuffer{}
	d, err := New(Options{Config: c, Processor: newRecorder().process, Published: hook,
		Collectors: []prometheus.Collector{extra}, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	drop(t, spool, "good.npy", []byte("x"))
	drop(t, spool, "flaky.npy", []byte("y"))
	testutil.WaitUntil(t, 15*time.Second, "both jobs filed", func() bool { return len(testutil.Names(t, filepath.Join(spool, DoneDir))) == 2 })
	mu.Lock()
	defer mu.Unlock()
	if calls["good"] != 1 || calls["flaky"] != 2 {
		t.Errorf("hook calls = %v, want good once, flaky twice", calls)
	}
	mfs, _ := d.reg.Gather()
	served := false
	for _, mf := range mfs {
		served = served || mf.GetName() == "kspaced_test_extra_total"
	}
	if !served {
		t.Error("extra collector not served")
	}
}
