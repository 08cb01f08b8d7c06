package nn

import (
	"runtime"
	"sync"
)

// runner is one parallel kernel: run does the items [lo, hi).
type runner interface{ run(lo, hi int) }

type chunk struct {
	r      runner
	lo, hi int
	wg     *sync.WaitGroup
}

// pool is a fixed set of worker goroutines. Kernels reach it through dispatch,
// which recycles job structs and wait groups so that steady-state steps
// allocate nothing.
type pool struct {
	workers int
	ch      chan chunk
	wgs     sync.Pool
}

func newPool(workers int) *pool {
	p := &pool{workers: workers, ch: make(chan chunk, 4*workers)}
	p.wgs.New = func() any { return new(sync.WaitGroup) }
	for i := 1; i < workers; i++ {
		go func() {
			for c := range p.ch {
				c.r.run(c.lo, c.hi)
				c.wg.Done()
			}
		}()
	}
	return p
}

var (
	sharedPoolOnce sync.Once
	sharedPool     *pool
)

func defaultPool() *pool {
	sharedPoolOnce.Do(func() { sharedPool = newPool(runtime.GOMAXPROCS(0)) })
	return sharedPool
}

// do runs r over [0, n) in up to workers contiguous parts of at least grain
// items; the caller runs the first part itself. The split depends only on n,
// grain and the worker count, so results are reproducible run to run.
func (p *pool) do(n, grain int, r runner) {
	if grain < 1 {
		grain = 1
	}
	parts := min(p.workers, n/grain)
	if parts <= 1 {
		if n > 0 {
			r.run(0, n)
		}
		return
	}
	wg := p.wgs.Get().(*sync.WaitGroup)
	wg.Add(parts - 1)
	step := (n + parts - 1) / parts
	for i := 1; i < parts; i++ {
		lo, hi := i*step, min(n, (i+1)*step)
		if lo >= hi {
			wg.Done()
			continue
		}
		p.ch <- chunk{r: r, lo: lo, hi: hi, wg: wg}
	}
	r.run(0, min(n, step))
	wg.Wait()
	p.wgs.Put(wg)
}

// jobPool recycles job structs of one kernel type.
type jobPool[J any] struct{ sync.Pool }

// dispatch copies job into a recycled *J and runs it on p.
func dispatch[J any, P interface {
	*J
	runner
}](p *pool, jp *jobPool[J], n, grain int, job J) {
	var pj P
	if v := jp.Get(); v != nil {
		pj = v.(P)
	} else {
		pj = P(new(J))
	}
	*pj = job
	p.do(n, grain, pj)
	var zero J
	*pj = zero
	jp.Put(pj)
}
