package nn

import "math"

type gnJob struct {
	y, mean, rstd, x, gamma, beta []float32
	dx, dgamma, dbeta, dy         []float32
	n, c, hw, groups              int
	eps                           float32
}

// run does groups [lo, hi) of every image. Each worker owns whole groups, so
// the per-channel gamma and beta gradients have one writer and a fixed order.
func (j *gnJob) run(lo, hi int) {
	cg := j.c / j.groups
	size := cg * j.hw
	for g := lo; g < hi; g++ {
		for b := 0; b < j.n; b++ {
			off := (b*j.c + g*cg) * j.hw
			x := j.x[off : off+size]
			st := b*j.groups + g
			if j.dy == nil {
				j.forward(x, j.y[off:off+size], st, g*cg)
			} else {
				j.backward(x, off, st, g*cg)
			}
		}
	}
}

func (j *gnJob) forward(x, y []float32, st, c0 int) {
	var s float64
	for _, v := range x {
		s += float64(v)
	}
	m := s / float64(len(x))
	var q float64
	for _, v := range x {
		d := float64(v) - m
		q += d * d
	}
	r := 1 / math.Sqrt(q/float64(len(x))+float64(j.eps))
	j.mean[st], j.rstd[st] = float32(m), float32(r)
	mf, rf := float32(m), float32(r)
	for k := 0; k < len(x)/j.hw; k++ {
		a := rf * j.gamma[c0+k]
		bb := j.beta[c0+k] - mf*a
		xs, ys := x[k*j.hw:(k+1)*j.hw], y[k*j.hw:(k+1)*j.hw]
		for i, v := range xs {
			ys[i] = v*a + bb
		}
	}
}

// backward: with ĝ = dy·γ and x̂ the normalised input,
// dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) over the group.
func (j *gnJob) backward(x []float32, off, st, c0 int) {
	hw := j.hw
	m, r := j.mean[st], j.rstd[st]
	dy := j.dy[off : off+len(x)]
	var sg, sgx float64
	for k := 0; k < len(x)/hw; k++ {
		xs, ds := x[k*hw:(k+1)*hw], dy[k*hw:(k+1)*hw]
		var sd, sdx float32
		for i, v := range xs {
			xh := (v - m) * r
			sd += ds[i]
			sdx += ds[i] * xh
		}
		if j.dgamma != nil {
			j.dgamma[c0+k] += sdx
		}
		if j.dbeta != nil {
			j.dbeta[c0+k] += sd
		}
		gm := float64(j.gamma[c0+k])
		sg += gm * float64(sd)
		sgx += gm * float64(sdx)
	}
	if j.dx == nil {
		return
	}
	inv := 1 / float64(len(x))
	mg, mgx := float32(sg*inv), float32(sgx*inv)
	dx := j.dx[off : off+len(x)]
	for k := 0; k < len(x)/hw; k++ {
		gm := j.gamma[c0+k]
		xs, ds, os := x[k*hw:(k+1)*hw], dy[k*hw:(k+1)*hw], dx[k*hw:(k+1)*hw]
		for i, v := range xs {
			xh := (v - m) * r
			os[i] += r * (ds[i]*gm - mg - xh*mgx)
		}
	}
}

var gnJobs jobPool[gnJob]

// GroupNorm implements Backend.
func (c *CPU) GroupNorm(y, mean, rstd, x, gamma, beta Buffer, n, ch, hw, groups int, eps float32) {
	dispatch(c.p, &gnJobs, groups, 1, gnJob{y: y.Host, mean: mean.Host, rstd: rstd.Host, x: x.Host,
		gamma: gamma.Host, beta: beta.Host, n: n, c: ch, hw: hw, groups: groups, eps: eps})
}

// GroupNormBackward implements Backend.
func (c *CPU) GroupNormBackward(dx, dgamma, dbeta, dy, x, mean, rstd, gamma Buffer, n, ch, hw, groups int) {
	dispatch(c.p, &gnJobs, groups, 1, gnJob{dx: dx.Host, dgamma: dgamma.Host, dbeta: dbeta.Host, dy: dy.Host,
		x: x.Host, mean: mean.Host, rstd: rstd.Host, gamma: gamma.Host, n: n, c: ch, hw: hw, groups: groups})
}
