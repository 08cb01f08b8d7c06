// Package parallel is kspaced's CPU worker pool for data-parallel kernels
// (the SENSE operator's coils, the network engine's ops): one process-wide
// set of GOMAXPROCS goroutines. Work goes only to idle workers (unbuffered
// channel, non-blocking send) and the caller runs whatever no worker took,
// so nested or concurrent use cannot deadlock, and Run allocates nothing.
// (The FFT keeps its own helpers: they claim tasks dynamically and each
// keeps FFT scratch of its own.)
package parallel

import (
	"runtime"
	"sync"
)

// Job is work split into parts; Run(p, parts) does part p.
type Job interface {
	Run(part, parts int)
}

type task struct {
	job         Job
	part, parts int
	wg          *sync.WaitGroup
}

var workers struct {
	once sync.Once
	ch   chan task
}

func start() {
	workers.ch = make(chan task)
	for i := 0; i < runtime.GOMAXPROCS(0); i++ {
		go func() {
			for t := range workers.ch {
				t.job.Run(t.part, t.parts)
				t.wg.Done()
			}
		}()
	}
}

// Parts is how many parts to split n independent items into.
func Parts(n int) int {
	return max(1, min(n, runtime.GOMAXPROCS(0)))
}

// Run runs job.Run(p, parts) for every p and returns when all are done.
// wg must be owned by the caller and idle.
func Run(job Job, parts int, wg *sync.WaitGroup) {
	if parts <= 1 {
		job.Run(0, 1)
		return
	}
	workers.once.Do(start)
	for p := 1; p < parts; p++ {
		wg.Add(1)
		select {
		case workers.ch <- task{job, p, parts, wg}:
		default:
			job.Run(p, parts)
			wg.Done()
		}
	}
	job.Run(0, parts)
	wg.Wait()
}

// Range is the half-open range of items [lo, hi) of part p out of parts.
func Range(n, p, parts int) (lo, hi int) {
	return n * p / parts, n * (p + 1) / parts
}
