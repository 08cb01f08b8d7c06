package nn

// Stride-1 convolution without im2col. The batch is copied once into a
// zero-padded channel-major layout xp[ci][b][Hp][Wp] (Hp = H+2·Pad,
// Wp = W+2·Pad). In that layout the input seen by kernel tap (ky, kx) is
// xp shifted by ky·Wp+kx, a plain strided matrix, so the convolution is K²
// accumulating sgemms of Cout×Cin by Cin×(N·Hp·Wp) straight from xp into an
// output of the same padded layout; the few columns that straddle a row or
// image edge are computed and dropped. The backward passes are the same
// sgemms transposed. For 1×1 convolutions without padding each image is one
// sgemm on the NCHW data itself.

func (g ConvGeom) padded() (hp, wp, np int) {
	hp, wp = g.H+2*g.Pad, g.W+2*g.Pad
	return hp, wp, g.N * hp * wp
}

func (g ConvGeom) pointwise() bool { return g.K == 1 && g.Pad == 0 }

// cols is the number of padded-layout columns every tap can read in bounds.
func (g ConvGeom) cols() int {
	_, wp, np := g.padded()
	return np - (g.K-1)*wp - (g.K - 1)
}

// ConvWorkspace implements Backend.
func (c *CPU) ConvWorkspace(g ConvGeom) int {
	if g.pointwise() {
		return 0
	}
	_, _, np := g.padded()
	kk := g.K * g.K * g.Cout * g.Cin
	return 2*g.Cin*np + g.Cout*np + 2*kk
}

type convWS struct{ xp, yp, dxp, wt, wg []float32 }

func (c *CPU) convSplit(ws Buffer, g ConvGeom) convWS {
	_, _, np := g.padded()
	kk := g.K * g.K * g.Cout * g.Cin
	s := ws.Host
	var w convWS
	w.xp, s = s[:g.Cin*np], s[g.Cin*np:]
	w.yp, s = s[:g.Cout*np], s[g.Cout*np:]
	w.dxp, s = s[:g.Cin*np], s[g.Cin*np:]
	w.wt, s = s[:kk], s[kk:]
	w.wg = s[:kk]
	return w
}

// padJob moves planes between NCHW and the padded channel-major layout.
type padJob struct {
	nchw, pad []float32
	g         ConvGeom
	c         int // channels of the NCHW tensor
	mode      int // 0: NCHW → padded, zero elsewhere; 1: padded → NCHW (+bias); 2: NCHW += padded
	bias      []float32
	off       int // offset of the valid region inside each padded image (Pad·Wp+Pad for inputs, 0 for outputs)
	oh, ow    int // valid region size
}

func (j *padJob) run(lo, hi int) {
	g := j.g
	hp, wp, _ := g.padded()
	for p := lo; p < hi; p++ {
		b, ch := p/j.c, p%j.c
		src := j.nchw[p*j.oh*j.ow : (p+1)*j.oh*j.ow]
		img := j.pad[(ch*g.N+b)*hp*wp : (ch*g.N+b+1)*hp*wp]
		switch j.mode {
		case 0:
			clear(img[:j.off])
			for r := 0; r < j.oh; r++ {
				o := j.off + r*wp
				copy(img[o:o+j.ow], src[r*j.ow:(r+1)*j.ow])
				clear(img[o+j.ow : min(len(img), o+wp)])
			}
			clear(img[j.off+(j.oh-1)*wp+j.ow:])
		case 1:
			var bv float32
			if j.bias != nil {
				bv = j.bias[ch]
			}
			for r := 0; r < j.oh; r++ {
				row := img[j.off+r*wp : j.off+r*wp+j.ow]
				dst := src[r*j.ow : (r+1)*j.ow]
				for i, v := range row {
					dst[i] = v + bv
				}
			}
		case 2:
			for r := 0; r < j.oh; r++ {
				row := img[j.off+r*wp : j.off+r*wp+j.ow]
				dst := src[r*j.ow : (r+1)*j.ow]
				for i, v := range row {
					dst[i] += v
				}
			}
		}
	}
}

var padJobs jobPool[padJob]

func (c *CPU) toPadded(pad, x []float32, g ConvGeom) {
	_, wp, _ := g.padded()
	dispatch(c.p, &padJobs, g.N*g.Cin, 4, padJob{nchw: x, pad: pad, g: g, c: g.Cin, mode: 0,
		off: g.Pad*wp + g.Pad, oh: g.H, ow: g.W})
}

// outToPadded lays dy out like the forward output, zero outside the valid region.
func (c *CPU) outToPadded(pad, y []float32, g ConvGeom) {
	dispatch(c.p, &padJobs, g.N*g.Cout, 4, padJob{nchw: y, pad: pad, g: g, c: g.Cout, mode: 0,
		off: 0, oh: g.OutH(), ow: g.OutW()})
}

// transposeTaps writes wt[k][co][ci] = w[co][ci][k] (or the reverse, adding).
func transposeTaps(wt, w []float32, g ConvGeom, back bool) {
	kk := g.K * g.K
	for co := 0; co < g.Cout; co++ {
		for ci := 0; ci < g.Cin; ci++ {
			src := w[(co*g.Cin+ci)*kk : (co*g.Cin+ci+1)*kk]
			for k := range src {
				if back {
					src[k] += wt[(k*g.Cout+co)*g.Cin+ci]
				} else {
					wt[(k*g.Cout+co)*g.Cin+ci] = src[k]
				}
			}
		}
	}
}

// ConvForward implements Backend.
func (c *CPU) ConvForward(y, x, w, bias, ws Buffer, g ConvGeom) {
	if g.pointwise() {
		hw := g.H * g.W
		for b := 0; b < g.N; b++ {
			sblas.Sgemm(tr(false), tr(false), g.Cout, hw, g.Cin, 1, w.Host, g.Cin,
				x.Host[b*g.Cin*hw:(b+1)*g.Cin*hw], hw, 0, y.Host[b*g.Cout*hw:(b+1)*g.Cout*hw], hw)
		}
		if bias.N > 0 {
			c.AddBroadcast(y, bias, g.N, g.Cout, hw, false)
		}
		return
	}
	s := c.convSplit(ws, g)
	c.toPadded(s.xp, x.Host, g)
	transposeTaps(s.wt, w.Host, g, false)
	c.taps(tapForward, s, g, g.Cout)
	var bh []float32
	if bias.N > 0 {
		bh = bias.Host
	}
	dispatch(c.p, &padJobs, g.N*g.Cout, 4, padJob{nchw: y.Host, pad: s.yp, g: g, c: g.Cout, mode: 1,
		bias: bh, off: 0, oh: g.OutH(), ow: g.OutW()})
}

// ConvBackward implements Backend.
func (c *CPU) ConvBackward(dx, dw, db, dy, x, w, ws Buffer, g ConvGeom) {
	if db.N > 0 {
		c.SumBroadcast(db, dy, g.N, g.Cout, g.OutH()*g.OutW(), false)
	}
	if g.pointwise() {
		hw := g.H * g.W
		for b := 0; b < g.N; b++ {
			xb, dyb := x.Host[b*g.Cin*hw:(b+1)*g.Cin*hw], dy.Host[b*g.Cout*hw:(b+1)*g.Cout*hw]
			if dw.N > 0 {
				sblas.Sgemm(tr(false), tr(true), g.Cout, g.Cin, hw, 1, dyb, hw, xb, hw, 1, dw.Host, g.Cin)
			}
			if dx.N > 0 {
				sblas.Sgemm(tr(true), tr(false), g.Cin, hw, g.Cout, 1, w.Host, g.Cin, dyb, hw, 1, dx.Host[b*g.Cin*hw:(b+1)*g.Cin*hw], hw)
			}
		}
		return
	}
	if dw.N == 0 && dx.N == 0 {
		return
	}
	s := c.convSplit(ws, g)
	_, wp, _ := g.padded()
	c.outToPadded(s.yp, dy.Host, g)
	if dw.N > 0 {
		c.toPadded(s.xp, x.Host, g)
		c.taps(tapFilter, s, g, g.Cout)
		transposeTaps(s.wg, dw.Host, g, true)
	}
	if dx.N > 0 {
		transposeTaps(s.wt, w.Host, g, false)
		c.taps(tapData, s, g, g.Cin)
		dispatch(c.p, &padJobs, g.N*g.Cin, 4, padJob{nchw: dx.Host, pad: s.dxp, g: g, c: g.Cin, mode: 2,
			off: g.Pad*wp + g.Pad, oh: g.H, ow: g.W})
	}
}

const (
	tapForward = iota // yp = Σ_k W_k·shift_k(xp), rows are output channels
	tapFilter         // wg[k] = yp·shift_k(xp)ᵀ, rows are output channels
	tapData           // shift_k(dxp) += W_kᵀ·yp, rows are input channels
)

// tapJob runs the K² tap sgemms of one pass for a range of matrix rows
// (channels), so that workers with single-threaded BLAS never write the
// same memory and every value keeps the same summation order.
type tapJob struct {
	mode int
	s    convWS
	g    ConvGeom
}

func (j *tapJob) run(lo, hi int) {
	g, s := j.g, j.s
	_, wp, np := g.padded()
	cols := g.cols()
	m := hi - lo
	kk := g.Cout * g.Cin
	if j.mode == tapData {
		clear(s.dxp[lo*np : hi*np])
	}
	for ky := 0; ky < g.K; ky++ {
		for kx := 0; kx < g.K; kx++ {
			k, off := ky*g.K+kx, ky*wp+kx
			switch j.mode {
			case tapForward:
				beta := float32(1)
				if k == 0 {
					beta = 0
				}
				sblas.Sgemm(tr(false), tr(false), m, cols, g.Cin, 1, s.wt[k*kk+lo*g.Cin:], g.Cin,
					s.xp[off:], np, beta, s.yp[lo*np:], np)
			case tapFilter:
				sblas.Sgemm(tr(false), tr(true), m, g.Cin, cols, 1, s.yp[lo*np:], np, s.xp[off:], np,
					0, s.wg[k*kk+lo*g.Cin:], g.Cin)
			case tapData:
				sblas.Sgemm(tr(true), tr(false), m, cols, g.Cout, 1, s.wt[k*kk+lo:], g.Cin,
					s.yp, np, 1, s.dxp[lo*np+off:], np)
			}
		}
	}
}

var tapJobs jobPool[tapJob]

// taps runs one pass over rows channels: split across the worker pool when
// BLAS is single-threaded, else as one call per tap that OpenBLAS threads.
func (c *CPU) taps(mode int, s convWS, g ConvGeom, rows int) {
	grain := rows
	if c.goSplit {
		grain = 8
	}
	dispatch(c.p, &tapJobs, rows, grain, tapJob{mode: mode, s: s, g: g})
}
