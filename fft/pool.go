package fft

import (
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

func uintptrOf(p *complex64) uintptr { return uintptr(unsafe.Pointer(p)) }

// Work is shared by the calling goroutine and long-lived helper goroutines,
// each with its own scratch; helpers are handed a *job over a channel and all
// participants claim task indices from an atomic counter. Jobs and the
// callers' scratch come from free lists, so a call allocates nothing once
// warm. (Buffered channels rather than sync.Pool: the GC empties a sync.Pool,
// and refilling it means reallocating scratch buffers of hundreds of KB.)

const (
	kindImages = iota // task i: whole image i
	kindRows          // task i: one block of rowLanes rows of one image
	kindCols          // task i: one block of colLanes columns of one image
)

type job struct {
	p        *Plan
	dst, src []complex64
	inv      bool
	kind     int
	ntask    int
	next     atomic.Int64
	wg       sync.WaitGroup
}

func (j *job) work(s *scratch) {
	s.fit(j.p)
	p, n := j.p, j.p.rows*j.p.cols
	for {
		i := int(j.next.Add(1)) - 1
		if i >= j.ntask {
			return
		}
		switch j.kind {
		case kindImages:
			p.image(j.dst[i*n:(i+1)*n], j.src[i*n:(i+1)*n], j.inv, s)
		case kindRows:
			per := (p.rows + rowLanes - 1) / rowLanes
			img, blk := i/per, i%per
			r := blk * rowLanes
			p.rowBlock(j.dst[img*n:(img+1)*n], j.src[img*n:(img+1)*n], r, min(rowLanes, p.rows-r), j.inv, s)
		case kindCols:
			per := (p.cols + colLanes - 1) / colLanes
			img, blk := i/per, i%per
			c := blk * colLanes
			p.colBlock(j.dst[img*n:(img+1)*n], c, min(colLanes, p.cols-c), j.inv, s)
		}
	}
}

var (
	freeJobs    = make(chan *job, 64)
	freeScratch = make(chan *scratch, 64)

	helperMu sync.Mutex
	helpers  int
	queue    = make(chan *job, 1024)
)

// ensureHelpers starts helper goroutines until there are k.
func ensureHelpers(k int) {
	helperMu.Lock()
	for helpers < k {
		helpers++
		go func() {
			s := new(scratch)
			for j := range queue {
				j.work(s)
				j.wg.Done()
			}
		}()
	}
	helperMu.Unlock()
}

// serialBelow is the total size (values) under which a call runs on the
// caller alone: handing work to helpers costs a few microseconds.
const serialBelow = 1 << 14

func dispatch(p *Plan, dst, src []complex64, inv bool) {
	n := p.rows * p.cols
	batch := len(src) / n
	workers := runtime.GOMAXPROCS(0)
	var s *scratch
	select {
	case s = <-freeScratch:
	default:
		s = new(scratch)
	}
	defer func() {
		select {
		case freeScratch <- s:
		default: // more concurrent callers than slots: let it go
		}
	}()
	if workers == 1 || len(src) < serialBelow {
		s.fit(p)
		for i := 0; i < batch; i++ {
			p.image(dst[i*n:(i+1)*n], src[i*n:(i+1)*n], inv, s)
		}
		return
	}
	// Whole images keep each image in one core's cache; split images only
	// when that would leave cores idle or badly balanced.
	if batch%workers == 0 || batch >= 4*workers {
		parallel(p, dst, src, inv, kindImages, batch, workers, s)
		return
	}
	per := (p.rows + rowLanes - 1) / rowLanes
	parallel(p, dst, src, inv, kindRows, batch*per, workers, s)
	per = (p.cols + colLanes - 1) / colLanes
	parallel(p, dst, dst, inv, kindCols, batch*per, workers, s)
}

func parallel(p *Plan, dst, src []complex64, inv bool, kind, ntask, workers int, s *scratch) {
	var j *job
	select {
	case j = <-freeJobs:
	default:
		j = new(job)
	}
	j.p, j.dst, j.src, j.inv, j.kind, j.ntask = p, dst, src, inv, kind, ntask
	j.next.Store(0)
	h := min(workers, ntask) - 1
	ensureHelpers(h)
	for i := 0; i < h; i++ {
		j.wg.Add(1)
		select {
		case queue <- j:
		default: // helpers swamped by other callers: do without
			j.wg.Done()
		}
	}
	j.work(s)
	j.wg.Wait()
	j.p, j.dst, j.src = nil, nil, nil
	select {
	case freeJobs <- j:
	default:
	}
}
