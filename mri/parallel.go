package mri

import (
	"runtime"
	"sync"
)

// partJob is work split into parts; run(p, parts) does part p.
type partJob interface {
	run(part, parts int)
}

type poolTask struct {
	job         partJob
	part, parts int
	wg          *sync.WaitGroup
}

// A process-wide set of GOMAXPROCS workers. Tasks go only to idle workers
// (unbuffered channel, non-blocking send) and the caller runs whatever no
// worker took, so nested or concurrent use cannot deadlock, and dispatch
// allocates nothing.
var workers struct {
	once sync.Once
	ch   chan poolTask
}

func startWorkers() {
	workers.ch = make(chan poolTask)
	for i := 0; i < runtime.GOMAXPROCS(0); i++ {
		go func() {
			for t := range workers.ch {
				t.job.run(t.part, t.parts)
				t.wg.Done()
			}
		}()
	}
}

// numParts is how many parts to split n independent items into.
func numParts(n int) int {
	return max(1, min(n, runtime.GOMAXPROCS(0)))
}

// runParts runs job.run(p, parts) for every p and returns when all are done.
// wg must be owned by the caller and idle.
func runParts(job partJob, parts int, wg *sync.WaitGroup) {
	if parts <= 1 {
		job.run(0, 1)
		return
	}
	workers.once.Do(startWorkers)
	for p := 1; p < parts; p++ {
		wg.Add(1)
		select {
		case workers.ch <- poolTask{job, p, parts, wg}:
		default:
			job.run(p, parts)
			wg.Done()
		}
	}
	job.run(0, parts)
	wg.Wait()
}

// partRange is the half-open range of items [lo, hi) of part p out of parts.
func partRange(n, p, parts int) (lo, hi int) {
	return n * p / parts, n * (p + 1) / parts
}
