package mri

import (
	"context"
	"fmt"
	"math"

	"github.com/kspaced/kspaced/fft"
)

// ZeroFilled writes the coil-combined zero-filled image
// Σ_c conj(S_c)·Fᴴ y_c / Σ_c |S_c|² into dst ([rows][cols]); pixels where
// every map is zero come out zero. maps are [coil][rows][cols].
func ZeroFilled(dst []complex64, s *Scan, maps []complex64) error {
	if err := checkScanMaps(s, maps); err != nil {
		return fmt.Errorf("zero-filled: %w", err)
	}
	n := s.Rows * s.Cols
	if len(dst) != n {
		return fmt.Errorf("zero-filled: dst has %d values, want %d", len(dst), n)
	}
	img := make([]complex64, len(s.KSpace))
	fft.Inverse(img, s.KSpace, s.Rows, s.Cols)
	NewCoilOp(maps, s.Coils, s.Rows, s.Cols).Adjoint(dst, img)
	for i := range dst {
		var w float32
		for c := 0; c < s.Coils; c++ {
			v := maps[c*n+i]
			w += real(v)*real(v) + imag(v)*imag(v)
		}
		if w > 0 {
			dst[i] /= complex(w, 0)
		} else {
			dst[i] = 0
		}
	}
	return nil
}

// RSS writes the root-sum-of-squares of the zero-filled coil images,
// sqrt(Σ_c |Fᴴ y_c|²), into dst ([rows][cols]).
func RSS(dst []float32, s *Scan) error {
	if s == nil || s.Coils < 1 || s.Rows < 1 || s.Cols < 1 || len(s.KSpace) != s.Coils*s.Rows*s.Cols {
		return fmt.Errorf("rss: scan shape does not match its k-space")
	}
	n := s.Rows * s.Cols
	if len(dst) != n {
		return fmt.Errorf("rss: dst has %d values, want %d", len(dst), n)
	}
	img := make([]complex64, len(s.KSpace))
	fft.Inverse(img, s.KSpace, s.Rows, s.Cols)
	for i := range dst {
		var a float64
		for c := 0; c < s.Coils; c++ {
			v := img[c*n+i]
			a += float64(real(v))*float64(real(v)) + float64(imag(v))*float64(imag(v))
		}
		dst[i] = float32(math.Sqrt(a))
	}
	return nil
}

func checkScanMaps(s *Scan, maps []complex64) error {
	if s == nil {
		return fmt.Errorf("no scan")
	}
	if s.Coils < 1 || s.Rows < 1 || s.Cols < 1 || len(s.KSpace) != s.Coils*s.Rows*s.Cols {
		return fmt.Errorf("scan %d coils × %d×%d does not match its %d k-space values", s.Coils, s.Rows, s.Cols, len(s.KSpace))
	}
	if len(maps) != len(s.KSpace) {
		return fmt.Errorf("%d map values for %d coils × %d × %d", len(maps), s.Coils, s.Rows, s.Cols)
	}
	return nil
}

// CGSENSE solves the Tikhonov-regularised least squares
// min ‖A x − y‖² + λ‖x‖², i.e. (AᴴA + λI) x = Aᴴ y, by conjugate gradients,
// starting from dst's contents (zero it for a cold start). This is the
// problem `bart pics -l2 -r λ -w 1` solves. It returns the iterations done
// and the final relative residual.
func CGSENSE(ctx context.Context, dst []complex64, op Operator, y []complex64, lambda float64, maxIter int, tol float64, progress Progress) (iters int, relres float64, err error) {
	if len(dst) != op.InLen() || len(y) != op.OutLen() {
		return 0, math.NaN(), fmt.Errorf("cg-sense: x has %d values, y %d; operator maps %d to %d", len(dst), len(y), op.InLen(), op.OutLen())
	}
	if !(lambda >= 0) || math.IsInf(lambda, 0) {
		return 0, math.NaN(), fmt.Errorf("cg-sense: λ = %v must be finite and ≥ 0", lambda)
	}
	rhs := make([]complex64, op.InLen())
	op.Adjoint(rhs, y)
	normal := normalOf(op)
	l := complex(float32(lambda), 0)
	reg := func(d, s []complex64) {
		normal(d, s)
		if lambda != 0 {
			axpy(d, l, s)
		}
	}
	iters, relres, err = NewCGSolver(len(rhs)).Solve(ctx, reg, dst, rhs, maxIter, tol, progress)
	if err != nil {
		return iters, relres, fmt.Errorf("cg-sense: %w", err)
	}
	return iters, relres, nil
}

// L1Options configures L1Wavelet.
type L1Options struct {
	Lambda  float64     // weight of ‖Ψx‖₁
	MaxIter int         // FISTA iterations
	Tol     float64     // stop when ‖x_k − x_{k−1}‖/‖x_k‖ ≤ Tol (0: run MaxIter)
	Wavelet WaveletKind // default Daubechies2
	Levels  int         // ≤ 0: as many as the size allows (see Wavelet)
	// Shift enables random cycle spinning as BART does by default: each
	// iteration thresholds in a randomly circularly shifted wavelet basis,
	// which removes blocking artefacts. The problem then changes slightly
	// from one iteration to the next, so leave it off when an exact
	// minimiser is wanted.
	Shift bool
	Seed  uint64 // for the shifts and the power iteration
	// Step is the gradient step; 0 means 1/L with L the largest eigenvalue
	// of AᴴA from 30 power iterations (raised by 2%, as power iteration
	// approaches L from below).
	Step     float64
	Progress Progress
}

// L1Wavelet solves min ½‖A x − y‖² + λ‖Ψ x‖₁ by FISTA (Beck & Teboulle
// 2009), where Ψ is an orthogonal 2-D wavelet, starting from dst's contents.
// Every coefficient is penalised, the coarse band included, as BART does;
// on noisy data that also clears the background. It is the problem of
// `bart pics -l1 -r λ -w 1` (-n when Shift is off) up to the wavelet's
// boundary handling: BART's is a slightly redundant symmetric extension,
// ours periodic and exactly orthogonal, so the proximal step is exact. The
// result is the last proximal (thresholded) iterate; BART returns the
// gradient step after it, which scores a little higher on noise-free data
// and lower on noisy data. It returns the iterations done.
func L1Wavelet(ctx context.Context, dst []complex64, op Operator, y []complex64, rows, cols int, opt L1Options) (iters int, err error) {
	n := rows * cols
	if op.InLen() != n || len(dst) != n || len(y) != op.OutLen() {
		return 0, fmt.Errorf("l1-wavelet: x has %d values, y %d; image %d×%d; operator maps %d to %d", len(dst), len(y), rows, cols, op.InLen(), op.OutLen())
	}
	if !(opt.Lambda >= 0) || math.IsInf(opt.Lambda, 0) || !(opt.Step >= 0) || math.IsInf(opt.Step, 0) {
		return 0, fmt.Errorf("l1-wavelet: λ = %v and step = %v must be finite and ≥ 0", opt.Lambda, opt.Step)
	}
	wav, err := NewWavelet(opt.Wavelet, rows, cols, opt.Levels)
	if err != nil {
		return 0, fmt.Errorf("l1-wavelet: %w", err)
	}
	normal := normalOf(op)
	step := opt.Step
	if step == 0 {
		l, err := MaxEigen(ctx, normal, n, 30, opt.Seed)
		if err != nil {
			return 0, fmt.Errorf("l1-wavelet: %w", err)
		}
		if l <= 0 {
			return 0, fmt.Errorf("l1-wavelet: AᴴA is zero")
		}
		step = 1 / (1.02 * l)
	}
	b := make([]complex64, n)
	op.Adjoint(b, y)
	x := dst
	prev := make([]complex64, n) // x_{k-1}
	z := make([]complex64, n)    // extrapolated point
	g := make([]complex64, n)
	sh := make([]complex64, n)
	copy(z, x)
	rng := newRand(opt.Seed ^ 0x5eed)
	tau := float32(opt.Lambda * step)
	span := 1 << wav.Levels()
	t := 1.0
	for iters < opt.MaxIter {
		if err := ctx.Err(); err != nil {
			return iters, err
		}
		// Gradient step from z: v = z − step·(AᴴA z − Aᴴy), into g.
		normal(g, z)
		fs := float32(step)
		for i := range g {
			g[i] = z[i] - complex(fs, 0)*(g[i]-b[i])
		}
		copy(prev, x)
		// Proximal step: x = Sᴴ Ψᴴ soft(Ψ S v) with S a circular shift;
		// shifts only matter modulo 2^levels (Ψ is periodic).
		dy, dx := 0, 0
		if opt.Shift {
			dy, dx = rng.IntN(min(span, rows)), rng.IntN(min(span, cols))
		}
		circShift(sh, g, rows, cols, dy, dx)
		wav.Forward(sh, sh)
		softThreshold(sh, tau)
		wav.Inverse(sh, sh)
		circShift(x, sh, rows, cols, rows-dy, cols-dx)
		tNext := (1 + math.Sqrt(1+4*t*t)) / 2
		mom := complex(float32((t-1)/tNext), 0)
		t = tNext
		var dn, xn float64
		for i := range x {
			d := x[i] - prev[i]
			z[i] = x[i] + mom*d
			dn += float64(real(d))*float64(real(d)) + float64(imag(d))*float64(imag(d))
			xn += float64(real(x[i]))*float64(real(x[i])) + float64(imag(x[i]))*float64(imag(x[i]))
		}
		iters++
		change := 0.0
		if xn > 0 {
			change = math.Sqrt(dn / xn)
		}
		if opt.Progress != nil {
			opt.Progress(iters, change)
		}
		if opt.Tol > 0 && change <= opt.Tol {
			break
		}
	}
	return iters, nil
}

// circShift writes src circularly shifted by (dy, dx) into dst:
// dst[(r+dy)%rows][(c+dx)%cols] = src[r][c].
func circShift(dst, src []complex64, rows, cols, dy, dx int) {
	dy, dx = dy%rows, dx%cols
	if dy == 0 && dx == 0 {
		copy(dst, src)
		return
	}
	for r := 0; r < rows; r++ {
		s := src[r*cols : (r+1)*cols]
		d := dst[((r+dy)%rows)*cols : ((r+dy)%rows+1)*cols]
		copy(d[dx:], s[:cols-dx])
		copy(d[:dx], s[cols-dx:])
	}
}

// softThreshold shrinks every coefficient towards zero by tau in magnitude.
func softThreshold(w []complex64, tau float32) {
	for i, v := range w {
		m := float32(math.Sqrt(float64(real(v)*real(v) + imag(v)*imag(v))))
		if m <= tau {
			w[i] = 0
		} else {
			f := 1 - tau/m
			w[i] = complex(f*real(v), f*imag(v))
		}
	}
}
