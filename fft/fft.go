// Package fft computes the centred orthonormal 2-D discrete Fourier transform
// (fftshift ∘ fft2 ∘ ifftshift with norm "ortho", as fastMRI's fft2c and BART's
// `fft -u 3`) on batches of complex64 images stored row-major and contiguously.
//
// The engine needs no cgo: a mixed-radix (2, 3, 4, 5, generic odd up to 47)
// Stockham FFT with Bluestein's algorithm for larger prime factors, run on
// blocks of rows (transposed into a small buffer) and blocks of columns so
// every butterfly streams over contiguous memory with one scalar twiddle. On
// amd64 CPUs with AVX2 and FMA the butterflies and block copies are Go
// assembly; elsewhere, or built with -tags purego, portable Go kernels do the
// same work. The shifts are folded into the block copies as index rotations,
// so centring costs nothing for even or odd sizes. Work is spread over
// GOMAXPROCS goroutines: whole images when the batch is large, row and column
// blocks of each image otherwise.
package fft

import (
	"fmt"
	"math"
	"sync"
)

// Forward writes the centred orthonormal 2-D DFT of every rows×cols image in
// src into dst. len(src) must be a multiple of rows*cols; dst and src may be
// the same slice. Like copy with mismatched arguments it is a programming
// error, and a panic, to pass sizes outside 1…MaxLen, slices of different
// lengths, or slices that overlap without being equal.
func Forward(dst, src []complex64, rows, cols int) { planFor(rows, cols).run(dst, src, false) }

// Inverse is the adjoint (and inverse) of Forward.
func Inverse(dst, src []complex64, rows, cols int) { planFor(rows, cols).run(dst, src, true) }

// Plan is a reusable transform for rows×cols images. It is safe for
// concurrent use; Forward and Inverse allocate nothing in steady state.
type Plan struct {
	rows, cols int
	rl, cl     *line
	scale      float32
	// scratch sizes in values: ping-pong buffers, Bluestein buffers, generic temporaries
	mainLen, extraLen, genLen int
}

const (
	rowLanes = 16 // rows transposed together in the row pass
	colLanes = 16 // columns transformed together in the column pass
)

// MaxLen bounds rows and cols, so a size read from a corrupt header cannot
// make a plan allocate gigabytes of twiddles and scratch.
const MaxLen = 1 << 16

var plans sync.Map // [2]int -> *Plan

// NewPlan returns the plan for rows×cols images, shared with Forward and
// Inverse through a cache (one per size, kept for the life of the process).
func NewPlan(rows, cols int) (*Plan, error) {
	if rows <= 0 || cols <= 0 || rows > MaxLen || cols > MaxLen {
		return nil, fmt.Errorf("fft: image size %d×%d outside 1…%d", rows, cols, MaxLen)
	}
	key := [2]int{rows, cols}
	if p, ok := plans.Load(key); ok {
		return p.(*Plan), nil
	}
	p := &Plan{rows: rows, cols: cols, rl: lineFor(rows), cl: lineFor(cols),
		scale: float32(1 / math.Sqrt(float64(rows)*float64(cols)))}
	rm, re := p.rl.scratchLen()
	cm, ce := p.cl.scratchLen()
	p.mainLen = max(rm*colLanes, cm*rowLanes)
	p.extraLen = max(re*colLanes, ce*rowLanes)
	p.genLen = max(p.rl.genLen(), p.cl.genLen())
	q, _ := plans.LoadOrStore(key, p)
	return q.(*Plan), nil
}

func planFor(rows, cols int) *Plan {
	p, err := NewPlan(rows, cols)
	if err != nil {
		panic(err)
	}
	return p
}

// Rows and Cols give the image size.
func (p *Plan) Rows() int { return p.rows }
func (p *Plan) Cols() int { return p.cols }

// Forward is the package-level Forward for this plan's size.
func (p *Plan) Forward(dst, src []complex64) { p.run(dst, src, false) }

// Inverse is the package-level Inverse for this plan's size.
func (p *Plan) Inverse(dst, src []complex64) { p.run(dst, src, true) }

func (p *Plan) run(dst, src []complex64, inv bool) {
	n := p.rows * p.cols
	if len(src)%n != 0 || len(dst) != len(src) {
		panic(fmt.Sprintf("fft: %d values, %d destination values for %d×%d images", len(src), len(dst), p.rows, p.cols))
	}
	if len(src) == 0 {
		return
	}
	if &dst[0] != &src[0] && overlaps(dst, src) {
		panic("fft: dst and src overlap without being equal")
	}
	dispatch(p, dst, src, inv)
}

func overlaps(a, b []complex64) bool {
	pa, pb := &a[0], &b[0]
	ea, eb := &a[len(a)-1], &b[len(b)-1]
	return !(uintptrOf(ea) < uintptrOf(pb) || uintptrOf(eb) < uintptrOf(pa))
}

// scratch is one goroutine's working memory, grown to the largest plan seen.
type scratch struct {
	a, b, c, d, tmp []complex64
}

func (s *scratch) fit(p *Plan) {
	grow := func(b []complex64, n int) []complex64 {
		if cap(b) < n {
			return make([]complex64, n)
		}
		return b[:cap(b)]
	}
	s.a = grow(s.a, p.mainLen)
	s.b = grow(s.b, p.mainLen)
	s.c = grow(s.c, p.extraLen)
	s.d = grow(s.d, p.extraLen)
	s.tmp = grow(s.tmp, p.genLen)
}

// rowBlock transforms rows [r0, r0+nr) of one image from src into dst along
// the row direction (length cols). The rows become the lanes of a transposed
// buffer; ifftshift (and conjugation for the inverse) happen on the way in,
// fftshift on the way out.
func (p *Plan) rowBlock(dst, src []complex64, r0, nr int, inv bool, s *scratch) {
	cols := p.cols
	V := (nr + 3) &^ 3
	a := s.a[:cols*V]
	sh := (cols + 1) / 2 // ifftshift: input c goes to (c+sh) mod cols
	rs := src[r0*cols:]
	transposeIn(a[sh*V:], V, rs, cols, cols-sh, nr, inv)
	transposeIn(a, V, rs[cols-sh:], cols, sh, nr, inv)
	if nr < V {
		for c := 0; c < cols; c++ {
			clear(a[c*V+nr : c*V+V])
		}
	}
	res := p.cl.transform(a, s.b, s.c, s.d, V, s.tmp)
	h := cols / 2 // fftshift: output k goes to (k+h) mod cols
	rd := dst[r0*cols:]
	transposeOut(rd[h:], cols, res, V, cols-h, nr)
	transposeOut(rd, cols, res[(cols-h)*V:], V, h, nr)
}

// colBlock transforms columns [c0, c0+nc) of one image in place along the
// column direction (length rows), applying the shifts, the 1/√(rows·cols)
// scale and, for the inverse, the final conjugation.
func (p *Plan) colBlock(img []complex64, c0, nc int, inv bool, s *scratch) {
	rows, cols := p.rows, p.cols
	V := (nc + 3) &^ 3
	a := s.a[:rows*V]
	sh := (rows + 1) / 2
	scaleRows(a[sh*V:], V, img[c0:], cols, rows-sh, nc, 1, false)
	scaleRows(a, V, img[(rows-sh)*cols+c0:], cols, sh, nc, 1, false)
	if nc < V {
		for r := 0; r < rows; r++ {
			clear(a[r*V+nc : r*V+V])
		}
	}
	res := p.rl.transform(a, s.b, s.c, s.d, V, s.tmp)
	h := rows / 2
	scaleRows(img[h*cols+c0:], cols, res, V, rows-h, nc, p.scale, inv)
	scaleRows(img[c0:], cols, res[(rows-h)*V:], V, h, nc, p.scale, inv)
}

// image runs the whole 2-D transform of one image.
func (p *Plan) image(dst, src []complex64, inv bool, s *scratch) {
	for r := 0; r < p.rows; r += rowLanes {
		p.rowBlock(dst, src, r, min(rowLanes, p.rows-r), inv, s)
	}
	for c := 0; c < p.cols; c += colLanes {
		p.colBlock(dst, c, min(colLanes, p.cols-c), inv, s)
	}
}
