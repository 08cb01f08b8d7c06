package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// CompareBackends runs every Backend operation on the same random inputs on
// ref (normally the CPU backend) and test, and returns one error per output
// that differs by more than tol relative to the output's largest magnitude.
// It is how an accelerator backend is checked against the reference.
func CompareBackends(ref, test Backend, tol float64) []error {
	c := &backendCheck{ref: ref, test: test, tol: tol, r: rand.New(rand.NewPCG(11, 13))}
	c.run()
	return c.errs
}

type twin struct{ a, b Buffer }

type backendCheck struct {
	ref, test Backend
	tol       float64
	r         *rand.Rand
	errs      []error
}

func (c *backendCheck) rand(n int, scale float64) twin {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(scale * c.r.NormFloat64())
	}
	return c.from(v)
}

func (c *backendCheck) from(v []float32) twin {
	t := twin{c.ref.Alloc(len(v)), c.test.Alloc(len(v))}
	c.ref.Upload(t.a, v)
	c.test.Upload(t.b, v)
	return t
}

func (c *backendCheck) cmp(name string, t twin) {
	a, b := make([]float32, t.a.N), make([]float32, t.b.N)
	c.ref.Download(a, t.a)
	c.test.Download(b, t.b)
	scale, worst := 1.0, 0.0
	for _, v := range a {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	for i := range a {
		d := math.Abs(float64(a[i]) - float64(b[i]))
		if math.IsNaN(d) {
			d = math.Inf(1)
		}
		worst = math.Max(worst, d)
	}
	if worst > c.tol*scale {
		c.errs = append(c.errs, fmt.Errorf("%s: %s and %s differ by %.3g (scale %.3g)", name, c.ref.Name(), c.test.Name(), worst, scale))
	}
}

func (c *backendCheck) run() {
	// Elementwise, reductions, BLAS.
	x, y := c.rand(1000, 1), c.rand(1000, 1)
	c.ref.Axpby(y.a, 0.5, x.a, -2)
	c.test.Axpby(y.b, 0.5, x.b, -2)
	c.cmp("Axpby", y)
	if da, db := c.ref.Dot(x.a, y.a), c.test.Dot(x.b, y.b); math.Abs(da-db) > c.tol*math.Max(1, math.Abs(da)) {
		c.errs = append(c.errs, fmt.Errorf("Dot: %g vs %g", da, db))
	}
	f := c.rand(77, 1)
	c.ref.Fill(f.a, 3)
	c.test.Fill(f.b, 3)
	c.cmp("Fill", f)
	cp := c.rand(1000, 1)
	c.ref.Copy(cp.a, x.a)
	c.test.Copy(cp.b, x.b)
	c.cmp("Copy", cp)
	for _, ta := range []bool{false, true} {
		for _, tb := range []bool{false, true} {
			m, n, k := 13, 17, 11
			a, b, cc := c.rand(m*k, 1), c.rand(k*n, 1), c.rand(m*n, 1)
			lda, ldb := k, n
			if ta {
				lda = m
			}
			if tb {
				ldb = k
			}
			c.ref.Gemm(ta, tb, m, n, k, 0.7, a.a, lda, b.a, ldb, 0.3, cc.a, n)
			c.test.Gemm(ta, tb, m, n, k, 0.7, a.b, lda, b.b, ldb, 0.3, cc.b, n)
			c.cmp(fmt.Sprintf("Gemm(transA=%v, transB=%v)", ta, tb), cc)
		}
	}
	s, ds := c.rand(1000, 2), c.rand(1000, 1)
	sy, sdx := c.rand(1000, 1), c.rand(1000, 1)
	c.ref.SiLU(sy.a, s.a)
	c.test.SiLU(sy.b, s.b)
	c.cmp("SiLU", sy)
	c.ref.SiLUBackward(sdx.a, ds.a, s.a)
	c.test.SiLUBackward(sdx.b, ds.b, s.b)
	c.cmp("SiLUBackward", sdx)

	// Convolutions.
	for _, g := range []ConvGeom{
		{N: 3, Cin: 5, H: 9, W: 7, Cout: 6, K: 3, Pad: 1},
		{N: 2, Cin: 4, H: 6, W: 6, Cout: 3, K: 3, Pad: 0},
		{N: 2, Cin: 7, H: 5, W: 4, Cout: 9, K: 1, Pad: 0},
	} {
		xs, ws := g.N*g.Cin*g.H*g.W, g.Cout*g.Cin*g.K*g.K
		ys := g.N * g.Cout * g.OutH() * g.OutW()
		cx, cw, cb, cy := c.rand(xs, 1), c.rand(ws, 1), c.rand(g.Cout, 1), c.rand(ys, 1)
		wsA, wsB := c.ref.Alloc(c.ref.ConvWorkspace(g)), c.test.Alloc(c.test.ConvWorkspace(g))
		c.ref.ConvForward(cy.a, cx.a, cw.a, cb.a, wsA, g)
		c.test.ConvForward(cy.b, cx.b, cw.b, cb.b, wsB, g)
		c.cmp(fmt.Sprintf("ConvForward %+v", g), cy)
		dy, dx, dw, db := c.rand(ys, 1), c.rand(xs, 1), c.rand(ws, 1), c.rand(g.Cout, 1)
		c.ref.ConvBackward(dx.a, dw.a, db.a, dy.a, cx.a, cw.a, wsA, g)
		c.test.ConvBackward(dx.b, dw.b, db.b, dy.b, cx.b, cw.b, wsB, g)
		c.cmp(fmt.Sprintf("ConvBackward dx %+v", g), dx)
		c.cmp(fmt.Sprintf("ConvBackward dw %+v", g), dw)
		c.cmp(fmt.Sprintf("ConvBackward db %+v", g), db)
	}

	// Group norm.
	n, ch, hw, groups := 3, 8, 20, 4
	gx, gy := c.rand(n*ch*hw, 2), c.rand(n*ch*hw, 1)
	gamma, beta := c.rand(ch, 1), c.rand(ch, 1)
	mean, rstd := c.rand(n*groups, 1), c.rand(n*groups, 1)
	c.ref.GroupNorm(gy.a, mean.a, rstd.a, gx.a, gamma.a, beta.a, n, ch, hw, groups, GroupNormEps)
	c.test.GroupNorm(gy.b, mean.b, rstd.b, gx.b, gamma.b, beta.b, n, ch, hw, groups, GroupNormEps)
	c.cmp("GroupNorm", gy)
	c.cmp("GroupNorm mean", mean)
	c.cmp("GroupNorm rstd", rstd)
	gdy, gdx, dg, dbt := c.rand(n*ch*hw, 1), c.rand(n*ch*hw, 1), c.rand(ch, 1), c.rand(ch, 1)
	c.ref.GroupNormBackward(gdx.a, dg.a, dbt.a, gdy.a, gx.a, mean.a, rstd.a, gamma.a, n, ch, hw, groups)
	c.test.GroupNormBackward(gdx.b, dg.b, dbt.b, gdy.b, gx.b, mean.b, rstd.b, gamma.b, n, ch, hw, groups)
	c.cmp("GroupNormBackward dx", gdx)
	c.cmp("GroupNormBackward dgamma", dg)
	c.cmp("GroupNormBackward dbeta", dbt)

	// Broadcasts.
	for _, per := range []bool{false, true} {
		bl := ch
		if per {
			bl = n * ch
		}
		by, bb := c.rand(n*ch*hw, 1), c.rand(bl, 1)
		c.ref.AddBroadcast(by.a, bb.a, n, ch, hw, per)
		c.test.AddBroadcast(by.b, bb.b, n, ch, hw, per)
		c.cmp(fmt.Sprintf("AddBroadcast(perSample=%v)", per), by)
		c.ref.SumBroadcast(bb.a, by.a, n, ch, hw, per)
		c.test.SumBroadcast(bb.b, by.b, n, ch, hw, per)
		c.cmp(fmt.Sprintf("SumBroadcast(perSample=%v)", per), bb)
	}

	// Softmax.
	rows, cols := 9, 31
	sx, sm := c.rand(rows*cols, 3), c.rand(rows*cols, 1)
	c.ref.Softmax(sm.a, sx.a, rows, cols)
	c.test.Softmax(sm.b, sx.b, rows, cols)
	c.cmp("Softmax", sm)
	sdy, sdx2 := c.rand(rows*cols, 1), c.rand(rows*cols, 1)
	c.ref.SoftmaxBackward(sdx2.a, sdy.a, sm.a, rows, cols)
	c.test.SoftmaxBackward(sdx2.b, sdy.b, sm.b, rows, cols)
	c.cmp("SoftmaxBackward", sdx2)

	// Resampling and shuffles.
	planes, h, w := 6, 8, 10
	fine, coarse := c.rand(planes*h*w, 1), c.rand(planes*h*w/4, 1)
	c.ref.AvgPool2(coarse.a, fine.a, planes, h, w)
	c.test.AvgPool2(coarse.b, fine.b, planes, h, w)
	c.cmp("AvgPool2", coarse)
	c.ref.AvgPool2Backward(fine.a, coarse.a, planes, h, w)
	c.test.AvgPool2Backward(fine.b, coarse.b, planes, h, w)
	c.cmp("AvgPool2Backward", fine)
	c.ref.Upsample2(fine.a, coarse.a, planes, h/2, w/2)
	c.test.Upsample2(fine.b, coarse.b, planes, h/2, w/2)
	c.cmp("Upsample2", fine)
	c.ref.Upsample2Backward(coarse.a, fine.a, planes, h/2, w/2)
	c.test.Upsample2Backward(coarse.b, fine.b, planes, h/2, w/2)
	c.cmp("Upsample2Backward", coarse)
	for _, inv := range []bool{false, true} {
		for _, acc := range []bool{false, true} {
			px, py := c.rand(2*3*8*6, 1), c.rand(2*3*8*6, 1)
			c.ref.PixelUnshuffle(py.a, px.a, 2, 3, 8, 6, 2, inv, acc)
			c.test.PixelUnshuffle(py.b, px.b, 2, 3, 8, 6, 2, inv, acc)
			c.cmp(fmt.Sprintf("PixelUnshuffle(inverse=%v, accumulate=%v) y", inv, acc), py)
			c.cmp(fmt.Sprintf("PixelUnshuffle(inverse=%v, accumulate=%v) x", inv, acc), px)
		}
	}

	// Embedding and Adam.
	ex, ey := c.rand(5, 2), c.rand(5*16, 1)
	c.ref.Embed(ey.a, ex.a, 5, 16, 1000)
	c.test.Embed(ey.b, ex.b, 5, 16, 1000)
	c.cmp("Embed", ey)
	edx := c.rand(5, 1)
	c.ref.EmbedBackward(edx.a, ey.a, ex.a, 5, 16, 1000)
	c.test.EmbedBackward(edx.b, ey.b, ex.b, 5, 16, 1000)
	c.cmp("EmbedBackward", edx)
	p, g, m := c.rand(500, 1), c.rand(500, 1), c.rand(500, 0.1)
	v := make([]float32, 500)
	for i := range v {
		v[i] = float32(c.r.Float64())
	}
	vv := c.from(v)
	c.ref.Adam(p.a, g.a, m.a, vv.a, 0.01, 0.9, 0.999, 1e-8, 0.5, 0.1)
	c.test.Adam(p.b, g.b, m.b, vv.b, 0.01, 0.9, 0.999, 1e-8, 0.5, 0.1)
	c.cmp("Adam p", p)
	c.cmp("Adam m", m)
	c.cmp("Adam v", vv)
}
