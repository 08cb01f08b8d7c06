package pacs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kspaced/kspaced/configs"
	"github.com/kspaced/kspaced/internal/peers"
)

// publish writes a job's result into spool/outbox/<job> as the daemon does.
func publish(t *testing.T, spool, job string, slices int) (string, int) {
	t.Helper()
	dir := filepath.Join(spool, "outbox", job)
	refs := peers.Series(t, filepath.Join(dir, "dicom"), slices)
	if err := os.WriteFile(filepath.Join(dir, "report.json"), []byte(`{"job":"`+job+`"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range refs {
		n += len(r.Files)
	}
	return dir, n
}

func waitState(t *testing.T, spool, job, dest, want string) State {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := readState(filepath.Join(spool, DeliveryDir, job, dest+".json"))
		if err == nil && st.State == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s to %s: state %+v (%v), want %s", job, dest, st, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testPACS(dests ...configs.Destination) configs.PACS {
	p := configs.Default().PACS
	p.Destinations = dests
	p.Retries, p.RetryBackoff, p.MaxBackoff, p.Timeout = 2, 10*time.Millisecond, 40*time.Millisecond, 10*time.Second
	return p
}

// A destination that keeps failing gets each attempt with back-off, then a
// failed-delivery record in words and a metric; the job is not dropped and
// the other destination still gets it.
func TestQueueRetriesThenRecordsFailure(t *testing.T) {
	spool := t.TempDir()
	dir, n := publish(t, spool, "knee1", 2)
	cfg := testPACS(configs.Destination{Name: "down", AETitle: "X", Host: "127.0.0.1", Port: 1},
		configs.Destination{Name: "up", URL: "http://127.0.0.1:1/dw"})
	q, err := NewQueue(spool, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var times []time.Time
	q.send = func(_ context.Context, _ configs.PACS, d configs.Destination, files []string) (int, error) {
		if len(files) != n {
			t.Errorf("attempt sends %d files, want %d", len(files), n)
		}
		if d.Name == "up" {
			return len(files), nil
		}
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		return 1, errors.New("connect 127.0.0.1:1: connection refused")
	}
	if err := q.Enqueue("knee1", dir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go q.Run(ctx)
	st := waitState(t, spool, "knee1", "down", StateFailed)
	waitState(t, spool, "knee1", "up", StateDelivered)
	if st.Attempts != 3 || !strings.Contains(st.LastError, "connection refused") {
		t.Errorf("failed state %+v", st)
	}
	mu.Lock()
	if len(times) != 3 || times[1].Sub(times[0]) < 10*time.Millisecond || times[2].Sub(times[1]) < 20*time.Millisecond {
		t.Errorf("attempts at %v, want 3 with doubling back-off", times)
	}
	mu.Unlock()
	raw, err := os.ReadFile(filepath.Join(spool, DeliveryDir, "knee1", "down.failed-delivery.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fd FailedDelivery
	if err := json.Unmarshal(raw, &fd); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(fd.Message, "NOT delivered") || !strings.Contains(fd.Action, "kspaced pacs send") || fd.Attempts != 3 {
		t.Errorf("failed-delivery record: %+v", fd)
	}
	if got := metric(t, q, "kspaced_deliveries_total", "down", StateFailed); got != 1 {
		t.Errorf("failed deliveries metric = %v", got)
	}
	if got := metric(t, q, "kspaced_delivery_retries_total", "down", ""); got != 2 {
		t.Errorf("retries metric = %v", got)
	}
	if got := metric(t, q, "kspaced_deliveries_total", "up", StateDelivered); got != 1 {
		t.Errorf("delivered metric = %v", got)
	}
	// Queuing again (the daemon's recovery does) changes nothing.
	if err := q.Enqueue("knee1", dir); err != nil {
		t.Fatal(err)
	}
	if st2, _ := readState(filepath.Join(spool, DeliveryDir, "knee1", "down.json")); st2.State != StateFailed {
		t.Errorf("re-enqueue reset the state: %+v", st2)
	}
}

// An attempt cut short by a crash was counted before it started; the next
// process resumes the job from its state file. Results removed from the
// outbox fail the delivery in words at once.
func TestQueueResumesAfterCrashAndMissingOutbox(t *testing.T) {
	spool := t.TempDir()
	dir, n := publish(t, spool, "a", 1)
	cfg := testPACS(configs.Destination{Name: "p", AETitle: "X", Host: "127.0.0.1", Port: 1})
	q, _ := NewQueue(spool, cfg, nil)
	if err := q.Enqueue("a", dir); err != nil {
		t.Fatal(err)
	}
	// As a process killed in the middle of its first attempt leaves it.
	p := filepath.Join(spool, DeliveryDir, "a", "p.json")
	st, _ := readState(p)
	st.Attempts = 1
	if err := writeAtomic(p, &st); err != nil {
		t.Fatal(err)
	}
	q2, _ := NewQueue(spool, cfg, nil)
	sent := 0
	q2.send = func(_ context.Context, _ configs.PACS, _ configs.Destination, files []string) (int, error) {
		sent += len(files)
		return len(files), nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped := make(chan struct{})
	go func() { q2.Run(ctx); close(stopped) }()
	st = waitState(t, spool, "a", "p", StateDelivered)
	if st.Attempts != 2 || sent != n || st.Stored != n {
		t.Errorf("resumed: %+v, sent %d of %d", st, sent, n)
	}

	cancel()
	<-stopped
	dir2, _ := publish(t, spool, "gone", 1)
	if err := q2.Enqueue("gone", dir2); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(dir2)
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	go q2.Run(ctx)
	st = waitState(t, spool, "gone", "p", StateFailed)
	if !strings.Contains(st.LastError, "no longer in outbox") {
		t.Errorf("missing outbox: %+v", st)
	}
}

// End to end against Orthanc, by C-STORE and by STOW-RS at once: both
// deliveries complete, Orthanc holds each instance once, and neither logs
// nor metrics name the patient.
func TestQueueDeliversToOrthanc(t *testing.T) {
	o := peers.StartOrthanc(t)
	spool := t.TempDir()
	dir, n := publish(t, spool, "study7", 3)
	host, port := splitAddr(t, o.DICOMAddr)
	cfg := testPACS(configs.Destination{Name: "dimse", AETitle: o.AE, Host: host, Port: port},
		configs.Destination{Name: "web", URL: o.URL + "/dicom-web"})
	var logs bytes.Buffer
	q, err := NewQueue(spool, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(q.Collectors()...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go q.Run(ctx)
	if err := q.Enqueue("study7", dir); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"dimse", "web"} {
		if st := waitState(t, spool, "study7", d, StateDelivered); st.Stored != n {
			t.Errorf("%s: %+v, want %d stored", d, st, n)
		}
	}
	if got := len(o.Instances(t)); got != n {
		t.Errorf("Orthanc holds %d instances, want %d", got, n)
	}
	mfs, _ := reg.Gather()
	var metrics strings.Builder
	for _, mf := range mfs {
		metrics.WriteString(mf.String())
	}
	for _, secret := range []string{"Test^Patient", "PID-SECRET-1", "Patient"} {
		if strings.Contains(logs.String(), secret) || strings.Contains(metrics.String(), secret) {
			t.Errorf("%q appears in logs or metrics", secret)
		}
	}
	if !strings.Contains(logs.String(), "job delivered") {
		t.Errorf("logs: %s", logs.String())
	}
}

// Two daemons on one spool: each delivery is attempted by one of them only.
func TestQueueTwoProcessesOneSpool(t *testing.T) {
	spool := t.TempDir()
	cfg := testPACS(configs.Destination{Name: "p", AETitle: "X", Host: "127.0.0.1", Port: 1})
	var mu sync.Mutex
	sends := map[string]int{}
	mk := func() *Queue {
		q, err := NewQueue(spool, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		q.send = func(_ context.Context, _ configs.PACS, _ configs.Destination, files []string) (int, error) {
			mu.Lock()
			sends[filepath.Base(filepath.Dir(filepath.Dir(filepath.Dir(files[0]))))]++
			mu.Unlock()
			time.Sleep(30 * time.Millisecond)
			return len(files), nil
		}
		return q
	}
	q1, q2 := mk(), mk()
	const n = 6
	for i := range n {
		job := fmt.Sprintf("j%d", i)
		dir, _ := publish(t, spool, job, 1)
		if err := q1.Enqueue(job, dir); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go q1.Run(ctx)
	go q2.Run(ctx)
	for i := range n {
		waitState(t, spool, fmt.Sprintf("j%d", i), "p", StateDelivered)
	}
	mu.Lock()
	defer mu.Unlock()
	for job, c := range sends {
		if c != 1 {
			t.Errorf("%s sent %d times", job, c)
		}
	}
	if len(sends) != n {
		t.Errorf("sent %v", sends)
	}
}

// JobStates reads one job's states, with the failed-delivery record of a
// failed destination, and ignores temporary and lock files.
func TestJobStates(t *testing.T) {
	spool := t.TempDir()
	dir := filepath.Join(spool, DeliveryDir, "knee")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]any{
		"a.json":                 State{Job: "knee", Destination: "a", State: StateDelivered, Stored: 3},
		"b.json":                 State{Job: "knee", Destination: "b", State: StateFailed, Attempts: 9},
		"b.failed-delivery.json": FailedDelivery{Job: "knee", Destination: "b", Message: "NOT delivered"},
	} {
		if err := writeAtomic(filepath.Join(dir, name), v); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "c.json.tmp"), []byte("{"), 0o644)
	os.WriteFile(filepath.Join(dir, "a.json.lock"), nil, 0o644)
	states, failed, err := JobStates(spool, "knee")
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 2 || states[0].Destination != "a" || states[0].Stored != 3 || failed[0] != nil ||
		states[1].State != StateFailed || failed[1] == nil || failed[1].Message != "NOT delivered" {
		t.Errorf("JobStates = %+v, %+v", states, failed)
	}
	if s, f, err := JobStates(spool, "none"); err != nil || s != nil || f != nil {
		t.Errorf("JobStates of a job never queued = %v, %v, %v", s, f, err)
	}
	for _, bad := range []string{"", "..", "../x", "a/b"} {
		if _, _, err := JobStates(spool, bad); err == nil {
			t.Errorf("JobStates(%q) accepted", bad)
		}
	}
}
