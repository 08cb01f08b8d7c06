package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kspaced/kspaced/internal/testutil"
	"github.com/kspaced/kspaced/pipeline"
)

// BenchmarkSpoolOverhead is the daemon's own cost per job, in process, with
// a processor that does nothing: claim, state, publish (fsynced), filing.
// Jobs are dropped with .ready markers so no quiet period is waited.
//
//	go test -run '^$' -bench SpoolOverhead -benchtime 500x ./daemon
func BenchmarkSpoolOverhead(b *testing.B) {
	for _, workers := range []int{1, 4} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			spool := b.TempDir()
			c := testConfig(spool)
			c.Daemon.Workers = workers
			c.Daemon.QuietPeriod = time.Hour
			noop := func(ctx context.Context, job pipeline.Job, out string, _ pipeline.Progress) (*pipeline.Report, error) {
				return &pipeline.Report{}, os.WriteFile(filepath.Join(out, "x"), []byte("x"), 0o644)
			}
			d, err := New(Options{Config: c, Processor: noop})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- d.Run(ctx) }()
			defer func() { cancel(); <-done }()
			testutil.WaitUntil(b, 5*time.Second, "live", d.live.Load)
			inbox := filepath.Join(spool, InboxDir)
			b.ResetTimer()
			t0 := time.Now()
			for i := range b.N {
				n := fmt.Sprintf("j%06d.npy", i)
				os.WriteFile(filepath.Join(inbox, n), []byte("x"), 0o644)
				os.WriteFile(filepath.Join(inbox, n+".ready"), nil, 0o644)
			}
			testutil.WaitUntil(b, 10*time.Minute, "all done", func() bool {
				return len(testutil.Names(b, filepath.Join(spool, DoneDir))) == b.N
			})
			b.ReportMetric(float64(b.N)/time.Since(t0).Minutes(), "jobs/min")
		})
	}
}
