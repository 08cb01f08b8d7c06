package nn

import (
	"math"
)

// CPU is the reference backend: host memory, OpenBLAS sgemm for GEMM-shaped
// work and Go kernels split over all cores for the rest. A CPU value may be
// shared by graphs running in different goroutines.
type CPU struct {
	p *pool
	// goSplit splits convolutions across the worker pool, for use with
	// single-threaded BLAS.
	goSplit bool
}

// NewCPU returns the CPU backend using GOMAXPROCS worker goroutines.
func NewCPU() *CPU { return &CPU{p: defaultPool()} }

// Name implements Backend.
func (c *CPU) Name() string { return "cpu" }

// Alloc implements Backend.
func (c *CPU) Alloc(n int) Buffer { return Buffer{Host: make([]float32, n), N: n} }

// Upload implements Backend.
func (c *CPU) Upload(dst Buffer, src []float32) { copy(dst.Host, src[:dst.N]) }

// Download implements Backend.
func (c *CPU) Download(dst []float32, src Buffer) { copy(dst[:src.N], src.Host) }

// Fill implements Backend.
func (c *CPU) Fill(dst Buffer, v float32) {
	d := dst.Host
	if v == 0 {
		clear(d)
		return
	}
	for i := range d {
		d[i] = v
	}
}

// Copy implements Backend.
func (c *CPU) Copy(dst, src Buffer) { copy(dst.Host, src.Host[:dst.N]) }

const elemGrain = 1 << 14 // items per parallel part below which splitting costs more than it saves

type axpbyJob struct {
	d, x        []float32
	alpha, beta float32
}

func (j *axpbyJob) run(lo, hi int) {
	d, x := j.d[lo:hi], j.x[lo:hi]
	a, b := j.alpha, j.beta
	switch {
	case b == 1:
		for i := range d {
			d[i] += a * x[i]
		}
	case b == 0:
		for i := range d {
			d[i] = a * x[i]
		}
	default:
		for i := range d {
			d[i] = a*x[i] + b*d[i]
		}
	}
}

var axpbyJobs jobPool[axpbyJob]

// Axpby implements Backend.
func (c *CPU) Axpby(dst Buffer, alpha float32, x Buffer, beta float32) {
	dispatch(c.p, &axpbyJobs, dst.N, elemGrain, axpbyJob{dst.Host, x.Host[:dst.N], alpha, beta})
}

// Dot implements Backend. The float64 sum runs in fixed-size blocks so the
// result does not depend on the worker count.
func (c *CPU) Dot(a, b Buffer) float64 {
	x, y := a.Host, b.Host[:a.N]
	var s float64
	for i := 0; i < len(x); i += 256 {
		e := min(len(x), i+256)
		var p float32
		for k := i; k < e; k++ {
			p += x[k] * y[k]
		}
		s += float64(p)
	}
	return s
}

// Gemm implements Backend.
func (c *CPU) Gemm(transA, transB bool, m, n, k int, alpha float32, a Buffer, lda int, b Buffer, ldb int, beta float32, cc Buffer, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		c.scaleMat(cc, m, n, ldc, beta)
		return
	}
	sblas.Sgemm(tr(transA), tr(transB), m, n, k, alpha, a.Host, lda, b.Host, ldb, beta, cc.Host, ldc)
}

func (c *CPU) scaleMat(cc Buffer, m, n, ldc int, beta float32) {
	for i := 0; i < m; i++ {
		row := cc.Host[i*ldc : i*ldc+n]
		for j := range row {
			row[j] *= beta
		}
	}
}

type siluJob struct{ y, x, dy []float32 }

func (j *siluJob) run(lo, hi int) {
	x := j.x[lo:hi]
	if j.dy == nil {
		y := j.y[lo:hi]
		expAffine(y, x, -1, 0) // e^−x, then x·σ(x) = x/(1 + e^−x)
		for i, v := range x {
			y[i] = v * (1 / (1 + y[i]))
		}
		return
	}
	dx, dy := j.y[lo:hi], j.dy[lo:hi]
	var e [256]float32 // e^−x of a block (dx accumulates, so it cannot hold them)
	for b := 0; b < len(x); b += len(e) {
		xb := x[b:min(b+len(e), len(x))]
		eb := e[:len(xb)]
		expAffine(eb, xb, -1, 0)
		for i, v := range xb {
			s := 1 / (1 + eb[i])
			dx[b+i] += dy[b+i] * s * (1 + v*(1-s))
		}
	}
}

var siluJobs jobPool[siluJob]

// SiLU implements Backend.
func (c *CPU) SiLU(y, x Buffer) {
	dispatch(c.p, &siluJobs, y.N, elemGrain/4, siluJob{y: y.Host, x: x.Host[:y.N]})
}

// SiLUBackward implements Backend.
func (c *CPU) SiLUBackward(dx, dy, x Buffer) {
	dispatch(c.p, &siluJobs, dx.N, elemGrain/4, siluJob{y: dx.Host, x: x.Host[:dx.N], dy: dy.Host[:dx.N]})
}

type bcastJob struct {
	y, b      []float32
	n, c      int
	inner     int
	perSample bool
	reduce    bool
}

// run covers image-channel planes [lo, hi) of [n][c][inner] when adding or
// reducing per sample, and channels [lo, hi) when reducing over the batch, so
// every output value has one writer and a fixed summation order.
func (j *bcastJob) run(lo, hi int) {
	inner := j.inner
	if j.reduce && !j.perSample {
		for ch := lo; ch < hi; ch++ {
			var s float32
			for b := 0; b < j.n; b++ {
				p := b*j.c + ch
				for _, v := range j.y[p*inner : (p+1)*inner] {
					s += v
				}
			}
			j.b[ch] += s
		}
		return
	}
	for p := lo; p < hi; p++ {
		row := j.y[p*inner : (p+1)*inner]
		bi := p % j.c
		if j.perSample {
			bi = p
		}
		if j.reduce {
			var s float32
			for _, v := range row {
				s += v
			}
			j.b[bi] += s
			continue
		}
		v := j.b[bi]
		for i := range row {
			row[i] += v
		}
	}
}

var bcastJobs jobPool[bcastJob]

// AddBroadcast implements Backend.
func (c *CPU) AddBroadcast(y, b Buffer, n, ch, inner int, perSample bool) {
	dispatch(c.p, &bcastJobs, n*ch, max(1, elemGrain/max(1, inner)), bcastJob{y: y.Host, b: b.Host, n: n, c: ch, inner: inner, perSample: perSample})
}

// SumBroadcast implements Backend.
func (c *CPU) SumBroadcast(db, dy Buffer, n, ch, inner int, perSample bool) {
	items := ch
	if perSample {
		items = n * ch
	}
	dispatch(c.p, &bcastJobs, items, max(1, elemGrain/max(1, inner*n)), bcastJob{y: dy.Host, b: db.Host, n: n, c: ch, inner: inner, perSample: perSample, reduce: true})
}

type softmaxJob struct {
	y, x, dy []float32
	cols     int
}

func (j *softmaxJob) run(lo, hi int) {
	n := j.cols
	for r := lo; r < hi; r++ {
		if j.dy != nil { // backward: dx += y ⊙ (dy − Σ dy·y)
			dx, dy, y := j.x[r*n:(r+1)*n], j.dy[r*n:(r+1)*n], j.y[r*n:(r+1)*n]
			var s float32
			for i := range y {
				s += dy[i] * y[i]
			}
			for i := range y {
				dx[i] += y[i] * (dy[i] - s)
			}
			continue
		}
		softmaxRow(j.y[r*n:(r+1)*n], j.x[r*n:(r+1)*n])
	}
}

var softmaxJobs jobPool[softmaxJob]

// Softmax implements Backend.
func (c *CPU) Softmax(y, x Buffer, rows, cols int) {
	dispatch(c.p, &softmaxJobs, rows, max(1, elemGrain/(4*max(1, cols))), softmaxJob{y: y.Host, x: x.Host, cols: cols})
}

// SoftmaxBackward implements Backend.
func (c *CPU) SoftmaxBackward(dx, dy, y Buffer, rows, cols int) {
	dispatch(c.p, &softmaxJobs, rows, max(1, elemGrain/(4*max(1, cols))), softmaxJob{y: y.Host, x: dx.Host, dy: dy.Host, cols: cols})
}

type resampleJob struct {
	y, x     []float32
	h, w     int // the fine (input of pool, output of upsample) size
	up, back bool
}

// run covers planes [lo, hi). Fine images are h×w, coarse ones h/2×w/2.
func (j *resampleJob) run(lo, hi int) {
	h, w := j.h, j.w
	ho, wo := h/2, w/2
	for p := lo; p < hi; p++ {
		fb, cb := j.x, j.y
		if j.up {
			fb, cb = j.y, j.x
		}
		fine, coarse := fb[p*h*w:(p+1)*h*w], cb[p*ho*wo:(p+1)*ho*wo]
		for r := 0; r < ho; r++ {
			f0, f1 := fine[2*r*w:(2*r+1)*w], fine[(2*r+1)*w:(2*r+2)*w]
			cr := coarse[r*wo : (r+1)*wo]
			switch {
			case !j.up && !j.back: // pool: coarse = mean of block
				for q := range cr {
					cr[q] = 0.25 * (f0[2*q] + f0[2*q+1] + f1[2*q] + f1[2*q+1])
				}
			case !j.up && j.back: // pool backward: fine += coarse/4
				for q, v := range cr {
					v *= 0.25
					f0[2*q] += v
					f0[2*q+1] += v
					f1[2*q] += v
					f1[2*q+1] += v
				}
			case j.up && !j.back: // upsample: fine = coarse repeated
				for q, v := range cr {
					f0[2*q], f0[2*q+1], f1[2*q], f1[2*q+1] = v, v, v, v
				}
			default: // upsample backward: coarse += block sum
				for q := range cr {
					cr[q] += f0[2*q] + f0[2*q+1] + f1[2*q] + f1[2*q+1]
				}
			}
		}
	}
}

var resampleJobs jobPool[resampleJob]

// AvgPool2 implements Backend.
func (c *CPU) AvgPool2(y, x Buffer, planes, h, w int) {
	dispatch(c.p, &resampleJobs, planes, max(1, elemGrain/(h*w)), resampleJob{y: y.Host, x: x.Host, h: h, w: w})
}

// AvgPool2Backward implements Backend.
func (c *CPU) AvgPool2Backward(dx, dy Buffer, planes, h, w int) {
	dispatch(c.p, &resampleJobs, planes, max(1, elemGrain/(h*w)), resampleJob{y: dy.Host, x: dx.Host, h: h, w: w, back: true})
}

// Upsample2 implements Backend; h, w are the input (coarse) size.
func (c *CPU) Upsample2(y, x Buffer, planes, h, w int) {
	dispatch(c.p, &resampleJobs, planes, max(1, elemGrain/(4*h*w)), resampleJob{y: y.Host, x: x.Host, h: 2 * h, w: 2 * w, up: true})
}

// Upsample2Backward implements Backend; h, w are the coarse size.
func (c *CPU) Upsample2Backward(dx, dy Buffer, planes, h, w int) {
	dispatch(c.p, &resampleJobs, planes, max(1, elemGrain/(4*h*w)), resampleJob{y: dy.Host, x: dx.Host, h: 2 * h, w: 2 * w, up: true, back: true})
}

// PixelUnshuffle implements Backend.
func (c *CPU) PixelUnshuffle(y, x Buffer, n, ch, h, w, r int, inverse, accumulate bool) {
	ho, wo := h/r, w/r
	yd, xd := y.Host, x.Host
	for b := 0; b < n; b++ {
		for k := 0; k < ch; k++ {
			xp := xd[(b*ch+k)*h*w:]
			for i := 0; i < r; i++ {
				for jj := 0; jj < r; jj++ {
					yp := yd[((b*ch+k)*r*r+i*r+jj)*ho*wo:]
					for p := 0; p < ho; p++ {
						xrow := xp[(p*r+i)*w:]
						yrow := yp[p*wo : (p+1)*wo]
						switch {
						case !inverse && !accumulate:
							for q := range yrow {
								yrow[q] = xrow[q*r+jj]
							}
						case !inverse:
							for q := range yrow {
								yrow[q] += xrow[q*r+jj]
							}
						case !accumulate:
							for q, v := range yrow {
								xrow[q*r+jj] = v
							}
						default:
							for q, v := range yrow {
								xrow[q*r+jj] += v
							}
						}
					}
				}
			}
		}
	}
}

func embedFreq(k, half int, maxPeriod float32) float64 {
	return math.Exp(-math.Log(float64(maxPeriod)) * float64(k) / float64(half))
}

// Embed implements Backend.
func (c *CPU) Embed(y, x Buffer, n, dim int, maxPeriod float32) {
	half := dim / 2
	for i := 0; i < n; i++ {
		row := y.Host[i*dim : (i+1)*dim]
		for k := 0; k < half; k++ {
			a := float64(x.Host[i]) * embedFreq(k, half, maxPeriod)
			row[k] = float32(math.Cos(a))
			row[half+k] = float32(math.Sin(a))
		}
	}
}

// EmbedBackward implements Backend.
func (c *CPU) EmbedBackward(dx, dy, x Buffer, n, dim int, maxPeriod float32) {
	half := dim / 2
	for i := 0; i < n; i++ {
		row := dy.Host[i*dim : (i+1)*dim]
		var s float64
		for k := 0; k < half; k++ {
			f := embedFreq(k, half, maxPeriod)
			a := float64(x.Host[i]) * f
			s += f * (-math.Sin(a)*float64(row[k]) + math.Cos(a)*float64(row[half+k]))
		}
		dx.Host[i] += float32(s)
	}
}

type adamJob struct {
	p, g, m, v                []float32
	lr, b1, b2, eps, bc1, bc2 float32
}

func (j *adamJob) run(lo, hi int) {
	p, g, m, v := j.p[lo:hi], j.g[lo:hi], j.m[lo:hi], j.v[lo:hi]
	for i := range p {
		gi := g[i]
		m[i] = j.b1*m[i] + (1-j.b1)*gi
		v[i] = j.b2*v[i] + (1-j.b2)*gi*gi
		mh := m[i] / j.bc1
		vh := v[i] / j.bc2
		p[i] -= j.lr * mh / (float32(math.Sqrt(float64(vh))) + j.eps)
	}
}

var adamJobs jobPool[adamJob]

// Adam implements Backend.
func (c *CPU) Adam(p, g, m, v Buffer, lr, beta1, beta2, eps, bc1, bc2 float32) {
	dispatch(c.p, &adamJobs, p.N, elemGrain, adamJob{p.Host, g.Host, m.Host, v.Host, lr, beta1, beta2, eps, bc1, bc2})
}

// SplitConvolutions makes the backend run convolutions as row blocks on its
// own workers, each calling single-threaded BLAS, and sets OpenBLAS to one
// thread (process-wide). Off by default: it measured slower on an otherwise
// idle machine.
func (c *CPU) SplitConvolutions(on bool) {
	c.goSplit = on
	if on {
		SetBLASThreads(1)
	}
}
