package mri

import (
	"fmt"

	"github.com/kspaced/kspaced/fft"
)

// NormalOperator is an Operator that also applies AᴴA directly, often
// cheaper than Forward then Adjoint (no full-size intermediate).
type NormalOperator interface {
	Operator
	Normal(dst, src []complex64) // dst = AᴴA src
}

// The building blocks below compose like BART's linops: the SENSE model is
// NewChain(NewCoilOp(maps…), NewFFTOp(coils…), NewMaskOp(mask, coils)).
// SENSE (sense.go) is the same operator fused per coil and parallel. No
// operator here is safe for concurrent use: each owns scratch buffers.

// MaskOp multiplies each of blocks consecutive [rows][cols] blocks by the
// same real weights (a 0/1 sampling mask, or sampling density weights).
type MaskOp struct {
	mask   []float32
	blocks int
}

// NewMaskOp returns the diagonal operator that applies mask to each of
// blocks blocks (coils); it keeps mask without copying.
func NewMaskOp(mask []float32, blocks int) *MaskOp {
	if blocks < 1 || len(mask) == 0 {
		panic(fmt.Sprintf("mri: mask op with %d blocks of %d", blocks, len(mask)))
	}
	return &MaskOp{mask: mask, blocks: blocks}
}

func (m *MaskOp) InLen() int  { return m.blocks * len(m.mask) }
func (m *MaskOp) OutLen() int { return m.InLen() }

func (m *MaskOp) Forward(dst, src []complex64) {
	checkLens("mask op", dst, src, m.OutLen(), m.InLen())
	n := len(m.mask)
	for b := 0; b < m.blocks; b++ {
		d, s := dst[b*n:(b+1)*n], src[b*n:(b+1)*n]
		for i, w := range m.mask {
			d[i] = complex(w*real(s[i]), w*imag(s[i]))
		}
	}
}

// Adjoint equals Forward: the weights are real.
func (m *MaskOp) Adjoint(dst, src []complex64) { m.Forward(dst, src) }

func (m *MaskOp) Normal(dst, src []complex64) {
	checkLens("mask op", dst, src, m.InLen(), m.InLen())
	n := len(m.mask)
	for b := 0; b < m.blocks; b++ {
		d, s := dst[b*n:(b+1)*n], src[b*n:(b+1)*n]
		for i, w := range m.mask {
			w2 := w * w
			d[i] = complex(w2*real(s[i]), w2*imag(s[i]))
		}
	}
}

// FFTOp is the centred orthonormal 2-D FFT of batch rows×cols images.
type FFTOp struct{ batch, rows, cols int }

func NewFFTOp(batch, rows, cols int) *FFTOp {
	if batch < 1 || rows < 1 || cols < 1 {
		panic(fmt.Sprintf("mri: FFT op of %d × %d×%d", batch, rows, cols))
	}
	return &FFTOp{batch, rows, cols}
}

func (f *FFTOp) InLen() int  { return f.batch * f.rows * f.cols }
func (f *FFTOp) OutLen() int { return f.InLen() }
func (f *FFTOp) Forward(dst, src []complex64) {
	checkLens("FFT op", dst, src, f.OutLen(), f.InLen())
	fft.Forward(dst, src, f.rows, f.cols)
}
func (f *FFTOp) Adjoint(dst, src []complex64) {
	checkLens("FFT op", dst, src, f.InLen(), f.OutLen())
	fft.Inverse(dst, src, f.rows, f.cols)
}

// Normal is the identity: the transform is unitary.
func (f *FFTOp) Normal(dst, src []complex64) {
	checkLens("FFT op", dst, src, f.InLen(), f.InLen())
	copy(dst, src)
}

// CoilOp is S: an image [rows][cols] to coil images [coil][rows][cols],
// multiplying by each coil's sensitivity map.
type CoilOp struct {
	maps     []complex64
	coils, n int
}

// NewCoilOp keeps maps ([coil][rows][cols]) without copying.
func NewCoilOp(maps []complex64, coils, rows, cols int) *CoilOp {
	if coils < 1 || rows < 1 || cols < 1 || len(maps) != coils*rows*cols {
		panic(fmt.Sprintf("mri: coil op with %d map values for %d coils × %d×%d", len(maps), coils, rows, cols))
	}
	return &CoilOp{maps: maps, coils: coils, n: rows * cols}
}

func (s *CoilOp) InLen() int  { return s.n }
func (s *CoilOp) OutLen() int { return s.coils * s.n }

func (s *CoilOp) Forward(dst, src []complex64) {
	checkLens("coil op", dst, src, s.OutLen(), s.InLen())
	for c := 0; c < s.coils; c++ {
		mulInto(dst[c*s.n:(c+1)*s.n], s.maps[c*s.n:(c+1)*s.n], src)
	}
}

func (s *CoilOp) Adjoint(dst, src []complex64) {
	checkLens("coil op", dst, src, s.InLen(), s.OutLen())
	conjMulInto(dst, s.maps[:s.n], src[:s.n])
	for c := 1; c < s.coils; c++ {
		conjMulAdd(dst, s.maps[c*s.n:(c+1)*s.n], src[c*s.n:(c+1)*s.n])
	}
}

func (s *CoilOp) Normal(dst, src []complex64) {
	checkLens("coil op", dst, src, s.InLen(), s.InLen())
	for i := range dst {
		var w float32
		for c := 0; c < s.coils; c++ {
			v := s.maps[c*s.n+i]
			w += real(v)*real(v) + imag(v)*imag(v)
		}
		dst[i] = complex(w*real(src[i]), w*imag(src[i]))
	}
}

// Chain is the composition of operators, the first applied first:
// NewChain(S, F, M) is M·F·S. It owns the intermediate buffers.
type Chain struct {
	ops  []Operator
	bufs [][]complex64 // bufs[i] holds ops[i]'s output, i < len(ops)-1
	out  []complex64   // Normal's intermediate, OutLen long
}

// NewChain checks that consecutive lengths agree.
func NewChain(ops ...Operator) (*Chain, error) {
	if len(ops) == 0 {
		return nil, fmt.Errorf("chain of no operators")
	}
	ch := &Chain{ops: ops}
	for i := 0; i+1 < len(ops); i++ {
		if ops[i].OutLen() != ops[i+1].InLen() {
			return nil, fmt.Errorf("chain: operator %d gives %d values, operator %d takes %d", i, ops[i].OutLen(), i+1, ops[i+1].InLen())
		}
		ch.bufs = append(ch.bufs, make([]complex64, ops[i].OutLen()))
	}
	ch.out = make([]complex64, ops[len(ops)-1].OutLen())
	return ch, nil
}

func (ch *Chain) InLen() int  { return ch.ops[0].InLen() }
func (ch *Chain) OutLen() int { return ch.ops[len(ch.ops)-1].OutLen() }

func (ch *Chain) Forward(dst, src []complex64) {
	checkLens("chain", dst, src, ch.OutLen(), ch.InLen())
	in := src
	for i, op := range ch.ops {
		out := dst
		if i < len(ch.bufs) {
			out = ch.bufs[i]
		}
		op.Forward(out, in)
		in = out
	}
}

func (ch *Chain) Adjoint(dst, src []complex64) {
	checkLens("chain", dst, src, ch.InLen(), ch.OutLen())
	in := src
	for i := len(ch.ops) - 1; i >= 0; i-- {
		out := dst
		if i > 0 {
			out = ch.bufs[i-1]
		}
		ch.ops[i].Adjoint(out, in)
		in = out
	}
}

func (ch *Chain) Normal(dst, src []complex64) {
	ch.Forward(ch.out, src)
	ch.Adjoint(dst, ch.out)
}

func checkLens(what string, dst, src []complex64, wantDst, wantSrc int) {
	if len(dst) != wantDst || len(src) != wantSrc {
		panic(fmt.Sprintf("mri: %s: dst %d, src %d values, want %d and %d", what, len(dst), len(src), wantDst, wantSrc))
	}
}

// mulInto sets d = a ⊙ b.
func mulInto(d, a, b []complex64) {
	b = b[:len(d)]
	a = a[:len(d)]
	for i := range d {
		d[i] = a[i] * b[i]
	}
}

// conjMulInto sets d = conj(a) ⊙ b.
func conjMulInto(d, a, b []complex64) {
	b = b[:len(d)]
	a = a[:len(d)]
	for i := range d {
		x, y := a[i], b[i]
		d[i] = complex(real(x)*real(y)+imag(x)*imag(y), real(x)*imag(y)-imag(x)*real(y))
	}
}

// conjMulAdd adds conj(a) ⊙ b to d.
func conjMulAdd(d, a, b []complex64) {
	b = b[:len(d)]
	a = a[:len(d)]
	for i := range d {
		x, y := a[i], b[i]
		d[i] += complex(real(x)*real(y)+imag(x)*imag(y), real(x)*imag(y)-imag(x)*real(y))
	}
}
