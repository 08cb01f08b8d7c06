//go:build cuda

package gpu

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"
)

// Allocator caches device memory by size class: cuMemAlloc and cuMemFree
// synchronise the device and cost tens of microseconds, so freed blocks are
// kept for the next request of the same class instead. Classes are powers
// of two from 256 bytes up to 4 MiB and multiples of 2 MiB above (at most
// 2 MiB, under 50% below that, of rounding waste). When the driver is out of
// memory the cache is released and the request retried once.
type Allocator struct {
	raw     func(bytes int) (Ptr, error)
	rawFree func(Ptr) error
	classOf func(bytes int) int

	mu    sync.Mutex
	cache map[int][]Ptr // class → free blocks
	live  map[Ptr]int   // allocated block → class
	st    AllocStats
}

// AllocStats is the allocator's bookkeeping, in bytes of size classes.
type AllocStats struct {
	Live, Cached, Peak int64 // handed out, kept for reuse, most ever live+cached
	RawAllocs, Reuses  int64 // requests served by the driver and by the cache
	RawFrees           int64
}

// NewAllocator caches blocks from raw, returning them with rawFree on Trim.
func NewAllocator(raw func(int) (Ptr, error), rawFree func(Ptr) error) *Allocator {
	return &Allocator{raw: raw, rawFree: rawFree, classOf: SizeClass, cache: map[int][]Ptr{}, live: map[Ptr]int{}}
}

// exactClasses makes every 16-byte multiple its own class, so that the
// emulator's guard page sits right behind each block.
func (a *Allocator) exactClasses() { a.classOf = func(n int) int { return (n + 15) &^ 15 } }

const (
	minClass   = 256
	largeClass = 4 << 20
	largeStep  = 2 << 20
)

// SizeClass is the block size that serves a request of bytes (> 0).
func SizeClass(bytes int) int {
	if bytes <= minClass {
		return minClass
	}
	if bytes <= largeClass {
		return 1 << bits.Len(uint(bytes-1))
	}
	return (bytes + largeStep - 1) / largeStep * largeStep
}

// Alloc returns a block of at least bytes (> 0).
func (a *Allocator) Alloc(bytes int) (Ptr, error) {
	if bytes <= 0 {
		return 0, fmt.Errorf("cuda: allocate %d bytes", bytes)
	}
	class := a.classOf(bytes)
	a.mu.Lock()
	defer a.mu.Unlock()
	if l := a.cache[class]; len(l) > 0 {
		p := l[len(l)-1]
		a.cache[class] = l[:len(l)-1]
		a.live[p] = class
		a.st.Cached -= int64(class)
		a.st.Live += int64(class)
		a.st.Reuses++
		return p, nil
	}
	p, err := a.raw(class)
	if err != nil {
		// Out of memory (or fragmented): give the cache back and retry.
		if terr := a.trimLocked(); terr != nil {
			return 0, errors.Join(err, terr)
		}
		if p, err = a.raw(class); err != nil {
			return 0, fmt.Errorf("cuda: allocate %d bytes (%d live): %w", class, a.st.Live, err)
		}
	}
	if p == 0 {
		return 0, fmt.Errorf("cuda: allocate %d bytes: driver returned a nil pointer", class)
	}
	a.live[p] = class
	a.st.Live += int64(class)
	a.st.RawAllocs++
	a.st.Peak = max(a.st.Peak, a.st.Live+a.st.Cached)
	return p, nil
}

// sizeOf is the class of a live block.
func (a *Allocator) sizeOf(p Ptr) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.live[p]
	if !ok {
		return 0, fmt.Errorf("cuda: free of %#x, which is not an allocated block", uintptr(p))
	}
	return c, nil
}

// Free returns a block to the cache.
func (a *Allocator) Free(p Ptr) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.live[p]
	if !ok {
		return fmt.Errorf("cuda: free of %#x, which is not an allocated block", uintptr(p))
	}
	delete(a.live, p)
	a.cache[c] = append(a.cache[c], p)
	a.st.Live -= int64(c)
	a.st.Cached += int64(c)
	return nil
}

// Trim releases every cached block to the driver. Queued work must not use
// them any more (Context.Trim synchronises first).
func (a *Allocator) Trim() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.trimLocked()
}

func (a *Allocator) trimLocked() error {
	var errs []error
	for c, l := range a.cache {
		kept := l[:0]
		for i, p := range l {
			if err := a.rawFree(p); err != nil {
				errs = append(errs, err)
				kept = l[i:] // keep what could not be freed
				break
			}
			a.st.Cached -= int64(c)
			a.st.RawFrees++
		}
		if len(kept) == 0 {
			delete(a.cache, c)
		} else {
			a.cache[c] = kept
		}
	}
	return errors.Join(errs...)
}

// Stats reports the bookkeeping.
func (a *Allocator) Stats() AllocStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st
}
