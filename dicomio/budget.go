package dicomio

import (
	"bytes"
	"io"
	"os"
	"sync"

	"github.com/suyashkumar/dicom/pkg/uid"
)

// budget is a counting semaphore over bytes: ReadStudies' workers take what
// a file may need before reading it, so a folder of small files that
// inflate to large data sets is read a few at a time, not all at once.
type budget struct {
	mu   sync.Mutex
	cond *sync.Cond
	left int64
}

func newBudget(n int64) *budget {
	b := &budget{left: n}
	b.cond = sync.NewCond(&b.mu)
	return b
}

func (b *budget) acquire(n int64) {
	b.mu.Lock()
	for b.left < n {
		b.cond.Wait()
	}
	b.left -= n
	b.mu.Unlock()
}

func (b *budget) release(n int64) {
	b.mu.Lock()
	b.left += n
	b.mu.Unlock()
	b.cond.Broadcast()
}

// plan estimates what reading path will hold (the raw bytes, the walker's
// and the parser's copies; for a deflated data set also the inflated bytes
// twice) and returns options whose inflation cap keeps the estimate true.
// The transfer syntax is sniffed from the file meta at the start; a file
// that hides it there gets no inflation allowance and fails as too large.
func (o ReadOptions) plan(path string) (ReadOptions, int64) {
	total := o.budget()
	var size int64
	deflated := false
	if f, err := os.Open(path); err == nil {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			size = min(st.Size(), o.maxSize()+1)
			head := make([]byte, 64<<10)
			n, _ := io.ReadFull(f, head)
			deflated = bytes.Contains(head[:n], []byte(uid.DeflatedExplicitVRLittleEndian))
		}
		f.Close()
	}
	o.inflateCap = 1 // anything that inflates fails
	cost := 3 * size
	if deflated {
		o.inflateCap = max(1, min(o.maxSize(), total/4))
		cost += 2 * o.inflateCap
	}
	return o, max(1, min(cost, total))
}
