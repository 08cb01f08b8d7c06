package mri

import (
	"fmt"
	"sync"

	"github.com/kspaced/kspaced/fft"
	"github.com/kspaced/kspaced/internal/parallel"
)

// SENSE is the multi-coil Cartesian measurement operator A = M·F·S: image
// [rows][cols] → k-space [coil][ky][kx], full size with zeros off the mask.
// It is NewChain(CoilOp, FFTOp, MaskOp) fused per coil, with coils split
// across the CPUs. It is not safe for concurrent use (it owns scratch
// buffers); build one per goroutine — construction copies nothing.
type SENSE struct {
	coils, rows, cols, n int
	maps                 []complex64
	mask                 []float32

	parts   int
	scratch [][]complex64 // per part: one coil image
	acc     [][]complex64 // per part > 0: partial coil sums
	wg      sync.WaitGroup

	mode     int // what run does: opForward, opAdjoint, opNormal
	dst, src []complex64
}

const (
	opForward = iota
	opAdjoint
	opNormal
)

// CheckSENSE reports whether NewSENSE would accept these arguments; use it
// on anything read from a file before calling NewSENSE.
func CheckSENSE(maps []complex64, coils, rows, cols int, mask []float32) error {
	if coils < 1 || coils > MaxCoils || rows < 1 || rows > MaxDim || cols < 1 || cols > MaxDim {
		return fmt.Errorf("SENSE: %d coils × %d×%d outside [1, %d] coils and [1, %d] pixels", coils, rows, cols, MaxCoils, MaxDim)
	}
	if len(maps) != coils*rows*cols {
		return fmt.Errorf("SENSE: %d map values, want %d coils × %d × %d", len(maps), coils, rows, cols)
	}
	if len(mask) != rows*cols {
		return fmt.Errorf("SENSE: mask has %d entries, want %d × %d", len(mask), rows, cols)
	}
	return nil
}

// NewSENSE builds A from coil maps [coil][rows][cols] (all ones for a
// single coil) and a mask [ky][kx]; it keeps both slices without copying. It
// panics if the shapes disagree (see CheckSENSE).
func NewSENSE(maps []complex64, coils, rows, cols int, mask []float32) *SENSE {
	if err := CheckSENSE(maps, coils, rows, cols, mask); err != nil {
		panic("mri: " + err.Error())
	}
	n := rows * cols
	s := &SENSE{coils: coils, rows: rows, cols: cols, n: n, maps: maps, mask: mask, parts: parallel.Parts(coils)}
	s.scratch = make([][]complex64, s.parts)
	s.acc = make([][]complex64, s.parts)
	for p := range s.scratch {
		s.scratch[p] = make([]complex64, n)
		if p > 0 {
			s.acc[p] = make([]complex64, n)
		}
	}
	return s
}

func (s *SENSE) InLen() int  { return s.n }
func (s *SENSE) OutLen() int { return s.coils * s.n }

// Shape returns coils, rows and cols.
func (s *SENSE) Shape() (coils, rows, cols int) { return s.coils, s.rows, s.cols }

func (s *SENSE) Forward(dst, src []complex64) {
	checkLens("SENSE forward", dst, src, s.OutLen(), s.InLen())
	s.do(opForward, dst, src)
}

func (s *SENSE) Adjoint(dst, src []complex64) {
	checkLens("SENSE adjoint", dst, src, s.InLen(), s.OutLen())
	s.do(opAdjoint, dst, src)
}

// Normal is AᴴA without forming the k-space: per coil S, F, M, Fᴴ, Sᴴ.
func (s *SENSE) Normal(dst, src []complex64) {
	checkLens("SENSE normal", dst, src, s.InLen(), s.InLen())
	s.do(opNormal, dst, src)
}

func (s *SENSE) do(mode int, dst, src []complex64) {
	s.mode, s.dst, s.src = mode, dst, src
	parallel.Run((*senseParts)(s), s.parts, &s.wg)
	if mode != opForward {
		// Fixed-order reduction, so results do not depend on scheduling.
		for p := 1; p < s.parts; p++ {
			lo, hi := parallel.Range(s.coils, p, s.parts)
			if lo == hi {
				continue
			}
			a := s.acc[p]
			for i := range dst {
				dst[i] += a[i]
			}
		}
	}
	s.dst, s.src = nil, nil
}

// senseParts runs SENSE's coils on the worker pool without making Run part
// of SENSE's API.
type senseParts SENSE

func (j *senseParts) Run(p, parts int) { (*SENSE)(j).run(p, parts) }

func (s *SENSE) run(p, parts int) {
	lo, hi := parallel.Range(s.coils, p, parts)
	n := s.n
	if s.mode == opForward {
		for c := lo; c < hi; c++ {
			d := s.dst[c*n : (c+1)*n]
			mulInto(d, s.maps[c*n:(c+1)*n], s.src)
			fft.Forward(d, d, s.rows, s.cols)
			applyMask(d, s.mask)
		}
		return
	}
	acc := s.dst
	if p > 0 {
		acc = s.acc[p]
	}
	if lo == hi {
		clear(acc)
		return
	}
	tmp := s.scratch[p]
	for c := lo; c < hi; c++ {
		m := s.maps[c*n : (c+1)*n]
		if s.mode == opAdjoint {
			copy(tmp, s.src[c*n:(c+1)*n])
			applyMask(tmp, s.mask)
		} else {
			mulInto(tmp, m, s.src)
			fft.Forward(tmp, tmp, s.rows, s.cols)
			applyMask(tmp, s.mask)
		}
		fft.Inverse(tmp, tmp, s.rows, s.cols)
		if c == lo {
			conjMulInto(acc, m, tmp)
		} else {
			conjMulAdd(acc, m, tmp)
		}
	}
}

func applyMask(d []complex64, mask []float32) {
	mask = mask[:len(d)]
	for i, w := range mask {
		d[i] = complex(w*real(d[i]), w*imag(d[i]))
	}
}
