//go:build fftw

package fftw

/*
#cgo LDFLAGS: -lfftw3f_threads -lfftw3f -lm -lpthread
#include <fftw3.h>
#include <string.h>
*/
import "C"

import (
	"fmt"
	"sync"
	"unsafe"
)

var initThreads sync.Once

// Plan is an FFTW plan for a batch of rows×cols complex64 images, out of
// place, on buffers FFTW allocated (aligned for its SIMD kernels).
type Plan struct {
	p       C.fftwf_plan
	in, out *C.fftwf_complex
	n       int
	In, Out []complex64 // views of the plan's buffers
}

// NewPlan plans fftwf_plan_many_dft over batch rows×cols images with the
// given thread count, measuring candidate algorithms (FFTW_MEASURE).
// Planning overwrites the buffers.
func NewPlan(rows, cols, batch, threads int, inverse bool) (*Plan, error) {
	initThreads.Do(func() { C.fftwf_init_threads() })
	n := rows * cols * batch
	in := (*C.fftwf_complex)(C.fftwf_malloc(C.size_t(8 * n)))
	out := (*C.fftwf_complex)(C.fftwf_malloc(C.size_t(8 * n)))
	if in == nil || out == nil {
		return nil, fmt.Errorf("fftw: cannot allocate %d values", n)
	}
	C.fftwf_plan_with_nthreads(C.int(threads))
	dims := [2]C.int{C.int(rows), C.int(cols)}
	sign := C.int(C.FFTW_FORWARD)
	if inverse {
		sign = C.FFTW_BACKWARD
	}
	p := C.fftwf_plan_many_dft(2, &dims[0], C.int(batch),
		in, nil, 1, C.int(rows*cols),
		out, nil, 1, C.int(rows*cols),
		sign, C.FFTW_MEASURE)
	if p == nil {
		return nil, fmt.Errorf("fftw: no plan for %d×%d×%d", batch, rows, cols)
	}
	return &Plan{p: p, in: in, out: out, n: n,
		In:  unsafe.Slice((*complex64)(unsafe.Pointer(in)), n),
		Out: unsafe.Slice((*complex64)(unsafe.Pointer(out)), n)}, nil
}

// Execute runs the plan on its buffers.
func (p *Plan) Execute() { C.fftwf_execute(p.p) }

// Destroy frees the plan and its buffers.
func (p *Plan) Destroy() {
	C.fftwf_destroy_plan(p.p)
	C.fftwf_free(unsafe.Pointer(p.in))
	C.fftwf_free(unsafe.Pointer(p.out))
	p.In, p.Out = nil, nil
}
