package nn

import (
	"runtime"
	"sync"

	"github.com/kspaced/kspaced/internal/parallel"
)

// runner is one parallel kernel: run does the items [lo, hi).
type runner interface{ run(lo, hi int) }

// pool splits kernels over the process's worker pool (internal/parallel)
// in up to workers parts. Kernels reach it through dispatch, which recycles
// job structs so that steady-state steps allocate nothing.
type pool struct {
	workers int
	parts   sync.Pool // *split
}

// split runs a runner's contiguous part p of [0, n) in steps of step.
type split struct {
	r       runner
	n, step int
	wg      sync.WaitGroup
}

func (s *split) Run(p, _ int) {
	lo, hi := p*s.step, min(s.n, (p+1)*s.step)
	if lo < hi {
		s.r.run(lo, hi)
	}
}

func newPool(workers int) *pool {
	p := &pool{workers: workers}
	p.parts.New = func() any { return new(split) }
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
	s := p.parts.Get().(*split)
	s.r, s.n, s.step = r, n, (n+parts-1)/parts
	parallel.Run(s, parts, &s.wg)
	s.r = nil
	p.parts.Put(s)
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
