package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/kspaced/kspaced/daemon"
	"github.com/kspaced/kspaced/internal/testutil"
	"github.com/kspaced/kspaced/pipeline"
)

// BenchmarkServeZeroFilled measures the service around the cheapest
// reconstruction (zero-filled, 4×32×32, DICOM + previews written): jobs per
// minute for a batch of 100, and drop-to-result latency of single jobs, with
// the pipeline's own time (report.json seconds.job) beside it so the
// difference is the daemon's overhead. Run:
//
//	go test -run '^$' -bench ServeZeroFilled -benchtime 1x ./cmd/kspaced
func BenchmarkServeZeroFilled(b *testing.B) {
	makeFixtures(b)
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			for range b.N {
				benchServe(b, workers)
			}
		})
	}
}

func benchServe(b *testing.B, workers int) {
	spool := mkSpool(b)
	cfg := writeConfig(b, b.TempDir(), "5s") // the default: markers make jobs ready at once
	srv := startServer(b, "--config", cfg, "--spool", spool, "--workers", fmt.Sprint(workers))
	defer srv.stop(b, syscall.SIGTERM)

	// Throughput: a batch dropped at once, each with its .ready marker.
	const batch = 100
	t0 := time.Now()
	for i := range batch {
		n := fmt.Sprintf("b%03d.npy", i)
		put(b, spool, n, fixtures.npy)
		put(b, spool, n+".ready", nil)
	}
	testutil.WaitUntil(b, 5*time.Minute, "batch done", func() bool { return len(testutil.Names(b, filepath.Join(spool, daemon.DoneDir))) == batch })
	perMin := batch / time.Since(t0).Minutes()

	// Latency: one job at a time, from the rename into the inbox to a
	// visible outbox/<job>/report.json.
	const singles = 30
	var lat, proc []float64
	for i := range singles {
		id := fmt.Sprintf("s%03d", i)
		tmp := filepath.Join(spool, ".s.part")
		os.WriteFile(tmp, fixtures.npy, 0o644)
		os.WriteFile(tmp+".ready", nil, 0o644)
		start := time.Now()
		os.Rename(tmp, filepath.Join(spool, daemon.InboxDir, id+".npy"))
		os.Rename(tmp+".ready", filepath.Join(spool, daemon.InboxDir, id+".npy.ready"))
		rp := filepath.Join(spool, daemon.OutboxDir, id, "report.json")
		for {
			if _, err := os.Stat(rp); err == nil {
				break
			}
			if time.Since(start) > time.Minute {
				b.Fatalf("%s not published", id)
			}
			time.Sleep(500 * time.Microsecond)
		}
		lat = append(lat, time.Since(start).Seconds()*1000)
		var rep pipeline.Report
		raw, _ := os.ReadFile(rp)
		json.Unmarshal(raw, &rep)
		proc = append(proc, rep.Seconds["job"]*1000)
	}
	overhead := make([]float64, singles)
	for i := range lat {
		overhead[i] = lat[i] - proc[i]
	}
	b.ReportMetric(perMin, "jobs/min")
	b.ReportMetric(median(lat), "latency-ms-p50")
	b.ReportMetric(pct(lat, 0.9), "latency-ms-p90")
	b.ReportMetric(median(proc), "pipeline-ms-p50")
	b.ReportMetric(median(overhead), "overhead-ms-p50")
}

func median(v []float64) float64 { return pct(v, 0.5) }

func pct(v []float64, q float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}
