package parallel

import (
	"sync"
	"sync/atomic"
	"testing"
)

type countJob struct {
	hits []atomic.Int32
	n    int
	nest bool
}

func (j *countJob) Run(p, parts int) {
	lo, hi := Range(j.n, p, parts)
	for i := lo; i < hi; i++ {
		j.hits[i].Add(1)
	}
	if j.nest { // a kernel inside a kernel must not deadlock
		inner := &countJob{hits: make([]atomic.Int32, 5), n: 5}
		var wg sync.WaitGroup
		Run(inner, Parts(5), &wg)
	}
}

// Every item runs exactly once, from many goroutines at once and nested.
func TestRunCoversEachPartOnce(t *testing.T) {
	var outer sync.WaitGroup
	for g := range 8 {
		outer.Add(1)
		go func() {
			defer outer.Done()
			j := &countJob{hits: make([]atomic.Int32, 37), n: 37, nest: g%2 == 0}
			var wg sync.WaitGroup
			for range 20 {
				Run(j, Parts(j.n), &wg)
			}
			for i := range j.hits {
				if h := j.hits[i].Load(); h != 20 {
					t.Errorf("item %d ran %d times, want 20", i, h)
				}
			}
		}()
	}
	outer.Wait()
	if lo, hi := Range(10, 2, 3); lo != 6 || hi != 10 {
		t.Errorf("Range(10, 2, 3) = %d, %d", lo, hi)
	}
}
