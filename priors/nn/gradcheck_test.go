package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// opCase is one op (or small composite) checked three ways: the float32
// forward against the float64 reference, and the float32 backward (input and
// parameter gradients) against central differences of the reference.
type opCase struct {
	name   string
	inputs [][4]int
	params [][]int
	build  func(g *Graph, in []*Tensor, p []*Param) *Tensor
	ref    func(in, p [][]float64) []float64
}

func randVals(r *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(scale * r.NormFloat64())
	}
	return v
}

func to64(v []float32) []float64 {
	o := make([]float64, len(v))
	for i, x := range v {
		o[i] = float64(x)
	}
	return o
}

func maxAbs(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(x))
	}
	return m
}

// closeTo reports the worst |got−want| relative to max(1, max|want|).
func closeTo(got []float32, want []float64) float64 {
	s := math.Max(1, maxAbs(want))
	e := 0.0
	for i := range want {
		e = math.Max(e, math.Abs(float64(got[i])-want[i]))
	}
	return e / s
}

func shapeLen(s []int) int {
	n := 1
	for _, v := range s {
		n *= v
	}
	return n
}

func runGradCheck(t *testing.T, tc opCase, seed uint64) { runGradCheckN(t, tc, seed, 0) }

// runGradCheckN checks at most maxFD random coordinates of each gradient by
// finite differences (all when maxFD is 0).
func runGradCheckN(t *testing.T, tc opCase, seed uint64, maxFD int) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	be := NewCPU()
	g := NewGraph(be)
	var ins []*Tensor
	var in64 [][]float64
	for _, s := range tc.inputs {
		x := g.Input(s[0], s[1], s[2], s[3], true)
		v := randVals(r, x.Len(), 1)
		be.Upload(x.Value(), v)
		ins = append(ins, x)
		in64 = append(in64, to64(v))
	}
	var ps []*Param
	var p64 [][]float64
	for i, s := range tc.params {
		p := NewParam(be, fmt.Sprint("p", i), s...)
		v := randVals(r, p.Len(), 0.5)
		be.Upload(p.Value, v)
		ps = append(ps, p)
		p64 = append(p64, to64(v))
	}
	out := tc.build(g, ins, ps)
	if err := g.Err(); err != nil {
		t.Fatal(err)
	}
	if err := g.Forward(); err != nil {
		t.Fatal(err)
	}
	want := tc.ref(in64, p64)
	if len(want) != out.Len() {
		t.Fatalf("reference has %d values, engine %d", len(want), out.Len())
	}
	got := make([]float32, out.Len())
	be.Download(got, out.Value())
	if e := closeTo(got, want); e > 1e-5 {
		t.Errorf("forward differs from float64 reference by %.3g", e)
	}

	u := randVals(r, out.Len(), 1)
	u64 := to64(u)
	seedBuf := be.Alloc(len(u))
	be.Upload(seedBuf, u)
	if err := g.Backward(out, seedBuf, true); err != nil {
		t.Fatal(err)
	}
	loss := func() float64 {
		y := tc.ref(in64, p64)
		s := 0.0
		for i := range y {
			s += u64[i] * y[i]
		}
		return s
	}
	// fd returns the finite-difference gradient at the checked coordinates
	// and the engine's gradient at the same ones.
	fd := func(v []float64, got []float32) ([]float32, []float64) {
		idx := make([]int, len(v))
		for i := range idx {
			idx[i] = i
		}
		if maxFD > 0 && maxFD < len(v) {
			r.Shuffle(len(idx), func(a, b int) { idx[a], idx[b] = idx[b], idx[a] })
			idx = idx[:maxFD]
		}
		d := make([]float64, len(idx))
		sub := make([]float32, len(idx))
		for k, i := range idx {
			sub[k] = got[i]
			old := v[i]
			h := 1e-6 * math.Max(1, math.Abs(old))
			v[i] = old + h
			lp := loss()
			v[i] = old - h
			lm := loss()
			v[i] = old
			d[k] = (lp - lm) / (2 * h)
		}
		return sub, d
	}
	const tol = 2e-4
	for i, x := range ins {
		got := make([]float32, x.Len())
		be.Download(got, x.Grad())
		if e := closeTo(fd(in64[i], got)); e > tol {
			t.Errorf("input %d gradient differs from finite differences by %.3g", i, e)
		}
	}
	for i, p := range ps {
		got := make([]float32, p.Len())
		be.Download(got, p.Grad)
		if e := closeTo(fd(p64[i], got)); e > tol {
			t.Errorf("param %d gradient differs from finite differences by %.3g", i, e)
		}
	}

	// Input-only backward (the VJP mode) must give the same input gradients
	// and leave parameter gradients alone.
	saved := make([][]float32, len(ins))
	for i, x := range ins {
		saved[i] = make([]float32, x.Len())
		be.Download(saved[i], x.Grad())
	}
	pg := make([][]float32, len(ps))
	for i, p := range ps {
		pg[i] = make([]float32, p.Len())
		be.Download(pg[i], p.Grad)
	}
	if err := g.Backward(out, seedBuf, false); err != nil {
		t.Fatal(err)
	}
	for i, x := range ins {
		got := make([]float32, x.Len())
		be.Download(got, x.Grad())
		for k := range got {
			if got[k] != saved[i][k] {
				t.Fatalf("input %d gradient changes between backward modes at %d: %g vs %g", i, k, got[k], saved[i][k])
			}
		}
	}
	for i, p := range ps {
		got := make([]float32, p.Len())
		be.Download(got, p.Grad)
		for k := range got {
			if got[k] != pg[i][k] {
				t.Fatalf("param %d gradient touched by input-only backward", i)
			}
		}
	}
}

func convCase(n, cin, h, w, cout, k, pad int, bias bool) opCase {
	ps := [][]int{{cout, cin, k, k}}
	if bias {
		ps = append(ps, []int{cout})
	}
	return opCase{
		name:   fmt.Sprintf("conv%dx%d_pad%d_%dx%dx%dx%d_to%d", k, k, pad, n, cin, h, w, cout),
		inputs: [][4]int{{n, cin, h, w}},
		params: ps,
		build: func(g *Graph, in []*Tensor, p []*Param) *Tensor {
			var b *Param
			if bias {
				b = p[1]
			}
			return g.Conv(in[0], p[0], b, pad)
		},
		ref: func(in, p [][]float64) []float64 {
			var b []float64
			if bias {
				b = p[1]
			}
			return refConv(in[0], p[0], b, n, cin, h, w, cout, k, pad)
		},
	}
}

func opCases() []opCase {
	cases := []opCase{
		convCase(2, 3, 5, 6, 4, 3, 1, true),
		convCase(1, 2, 4, 4, 3, 3, 0, false),
		convCase(3, 2, 3, 5, 2, 5, 2, true),
		convCase(2, 5, 3, 4, 3, 1, 0, true),
		{
			name:   "linear",
			inputs: [][4]int{{3, 5, 1, 1}},
			params: [][]int{{4, 5}, {4}},
			build:  func(g *Graph, in []*Tensor, p []*Param) *Tensor { return g.Linear(in[0], p[0], p[1]) },
			ref:    func(in, p [][]float64) []float64 { return refLinear(in[0], p[0], p[1], 3, 5, 4) },
		},
		{
			name:   "groupnorm",
			inputs: [][4]int{{2, 6, 3, 4}},
			params: [][]int{{6}, {6}},
			build:  func(g *Graph, in []*Tensor, p []*Param) *Tensor { return g.GroupNorm(in[0], p[0], p[1], 3) },
			ref:    func(in, p [][]float64) []float64 { return refGroupNorm(in[0], p[0], p[1], 2, 6, 12, 3) },
		},
		{
			name:   "silu",
			inputs: [][4]int{{2, 3, 4, 5}},
			build:  func(g *Graph, in []*Tensor, p []*Param) *Tensor { return g.SiLU(in[0]) },
			ref:    func(in, p [][]float64) []float64 { return refSiLU(in[0]) },
		},
		{
			name:   "add",
			inputs: [][4]int{{2, 3, 2, 2}, {2, 3, 2, 2}},
			build:  func(g *Graph, in []*Tensor, p []*Param) *Tensor { return g.Add(in[0], in[1]) },
			ref:    func(in, p [][]float64) []float64 { return refAdd(in[0], in[1]) },
		},
		{
			name:   "concat",
			inputs: [][4]int{{2, 3, 2, 3}, {2, 2, 2, 3}},
			build:  func(g *Graph, in []*Tensor, p []*Param) *Tensor { return g.Concat(in[0], in[1]) },
			ref:    func(in, p [][]float64) []float64 { return refConcat(in[0], in[1], 2) },
		},
		{
			name:   "addchannel",
			inputs: [][4]int{{2, 3, 2, 3}, {2, 3, 1, 1}},
			build:  func(g *Graph, in []*Tensor, p []*Param) *Tensor { return g.AddChannel(in[0], in[1]) },
			ref:    func(in, p [][]float64) []float64 { return refAddChannel(in[0], in[1], 6, 6) },
		},
		{
			name:   "embed",
			inputs: [][4]int{{3, 1, 1, 1}},
			build:  func(g *Graph, in []*Tensor, p []*Param) *Tensor { return g.Embed(in[0], 8, 1000) },
			ref:    func(in, p [][]float64) []float64 { return refEmbed(in[0], 8, 1000) },
		},
		{
			name:   "avgpool",
			inputs: [][4]int{{2, 3, 4, 6}},
			build:  func(g *Graph, in []*Tensor, p []*Param) *Tensor { return g.AvgPool2(in[0]) },
			ref:    func(in, p [][]float64) []float64 { return refAvgPool(in[0], 6, 4, 6) },
		},
		{
			name:   "upsample",
			inputs: [][4]int{{2, 3, 2, 3}},
			build:  func(g *Graph, in []*Tensor, p []*Param) *Tensor { return g.Upsample2(in[0]) },
			ref:    func(in, p [][]float64) []float64 { return refUpsample(in[0], 6, 2, 3) },
		},
		{
			name:   "pixelunshuffle",
			inputs: [][4]int{{2, 2, 4, 6}},
			build:  func(g *Graph, in []*Tensor, p []*Param) *Tensor { return g.PixelUnshuffle(in[0], 2) },
			ref:    func(in, p [][]float64) []float64 { return refUnshuffle(in[0], 2, 2, 4, 6, 2) },
		},
		{
			name:   "pixelshuffle",
			inputs: [][4]int{{2, 8, 2, 3}},
			build:  func(g *Graph, in []*Tensor, p []*Param) *Tensor { return g.PixelShuffle(in[0], 2) },
			ref:    func(in, p [][]float64) []float64 { return refShuffle(in[0], 2, 2, 2, 3, 2) },
		},
		{
			name:   "attention",
			inputs: [][4]int{{2, 12, 3, 3}},
			build:  func(g *Graph, in []*Tensor, p []*Param) *Tensor { return g.Attention(in[0], 2) },
			ref:    func(in, p [][]float64) []float64 { return refAttention(in[0], 2, 4, 9, 2) },
		},
		compositeCase(2, 4, 4),
	}
	return cases
}

// compositeCase chains most ops, with a tensor used twice (gradient
// accumulation and pooled gradient buffers); at size 32 the kernels split
// their work across workers.
func compositeCase(n, c, s int) opCase {
	return opCase{
		name:   fmt.Sprintf("composite%dx%dx%d", n, c, s),
		inputs: [][4]int{{n, c, s, s}, {n, 3, 1, 1}},
		params: [][]int{{c, c, 3, 3}, {c}, {c}, {c}, {c, 3}, {6, 2 * c, 1, 1}},
		build: func(g *Graph, in []*Tensor, p []*Param) *Tensor {
			x := in[0]
			h := g.Conv(x, p[0], p[1], 1)
			h = g.GroupNorm(h, p[2], p[3], c/2)
			h = g.AddChannel(h, g.Linear(g.SiLU(in[1]), p[4], nil))
			h = g.SiLU(h)
			h = g.Add(h, x)
			h = g.Upsample2(g.AvgPool2(h))
			return g.Conv(g.Concat(h, x), p[5], nil, 0)
		},
		ref: func(in, p [][]float64) []float64 {
			x := in[0]
			h := refConv(x, p[0], p[1], n, c, s, s, c, 3, 1)
			h = refGroupNorm(h, p[2], p[3], n, c, s*s, c/2)
			h = refAddChannel(h, refLinear(refSiLU(in[1]), p[4], nil, n, 3, c), n*c, s*s)
			h = refSiLU(h)
			h = refAdd(h, x)
			h = refUpsample(refAvgPool(h, n*c, s, s), n*c, s/2, s/2)
			return refConv(refConcat(h, x, n), p[5], nil, n, 2*c, s, s, 6, 1, 0)
		},
	}
}

func TestCompositeLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	runGradCheckN(t, compositeCase(2, 8, 32), 99, 10)
}

func TestOpGradients(t *testing.T) {
	for i, tc := range opCases() {
		t.Run(tc.name, func(t *testing.T) { runGradCheck(t, tc, uint64(i+1)) })
	}
}

// Forward of the padded-layout convolution against the reference over a
// spread of geometries, including ones where the tap shifts cross image
// boundaries in the batched layout.
func TestConvGeometries(t *testing.T) {
	for _, split := range []bool{false, true} {
		testConvGeometries(t, split)
	}
}

func testConvGeometries(t *testing.T, split bool) {
	r := rand.New(rand.NewPCG(3, 3))
	be := NewCPU()
	be.goSplit = split
	for _, gm := range []ConvGeom{
		{N: 1, Cin: 1, H: 1, W: 1, Cout: 1, K: 3, Pad: 1},
		{N: 4, Cin: 3, H: 7, W: 2, Cout: 5, K: 3, Pad: 1},
		{N: 2, Cin: 6, H: 8, W: 8, Cout: 4, K: 3, Pad: 0},
		{N: 3, Cin: 2, H: 6, W: 5, Cout: 3, K: 5, Pad: 1},
		{N: 2, Cin: 3, H: 4, W: 4, Cout: 2, K: 1, Pad: 1},
		{N: 5, Cin: 16, H: 9, W: 11, Cout: 8, K: 1, Pad: 0},
		{N: 2, Cin: 24, H: 6, W: 7, Cout: 40, K: 3, Pad: 1}, // enough channels to split
	} {
		g := NewGraph(be)
		x := g.Input(gm.N, gm.Cin, gm.H, gm.W, true)
		w := NewParam(be, "w", gm.Cout, gm.Cin, gm.K, gm.K)
		b := NewParam(be, "b", gm.Cout)
		xv, wv, bv := randVals(r, x.Len(), 1), randVals(r, w.Len(), 1), randVals(r, gm.Cout, 1)
		be.Upload(x.Value(), xv)
		be.Upload(w.Value, wv)
		be.Upload(b.Value, bv)
		y := g.Conv(x, w, b, gm.Pad)
		if err := g.Forward(); err != nil {
			t.Fatal(err)
		}
		got := make([]float32, y.Len())
		be.Download(got, y.Value())
		want := refConv(to64(xv), to64(wv), to64(bv), gm.N, gm.Cin, gm.H, gm.W, gm.Cout, gm.K, gm.Pad)
		if e := closeTo(got, want); e > 1e-5 {
			t.Errorf("%+v split %v: forward error %.3g", gm, split, e)
		}
		// Adjoint identity ⟨u, conv(x)⟩ = ⟨conv*(u), x⟩ for the data gradient.
		u := randVals(r, y.Len(), 1)
		ub := be.Alloc(len(u))
		be.Upload(ub, u)
		if err := g.Backward(y, ub, true); err != nil {
			t.Fatal(err)
		}
		dx := make([]float32, x.Len())
		be.Download(dx, x.Grad())
		noBias := refConv(to64(xv), to64(wv), nil, gm.N, gm.Cin, gm.H, gm.W, gm.Cout, gm.K, gm.Pad)
		var lhs, rhs float64
		for i := range u {
			lhs += float64(u[i]) * noBias[i]
		}
		for i := range dx {
			rhs += float64(dx[i]) * float64(xv[i])
		}
		if math.Abs(lhs-rhs) > 1e-4*math.Max(1, math.Abs(lhs)) {
			t.Errorf("%+v split %v: adjoint mismatch %g vs %g", gm, split, lhs, rhs)
		}
		// The filter gradient: ⟨u, conv_w(x)⟩ is linear in w, so it equals ⟨dw, w⟩.
		dw := make([]float32, w.Len())
		be.Download(dw, w.Grad)
		var wl float64
		for i := range dw {
			wl += float64(dw[i]) * float64(wv[i])
		}
		if math.Abs(lhs-wl) > 1e-4*math.Max(1, math.Abs(lhs)) {
			t.Errorf("%+v split %v: filter gradient mismatch %g vs %g", gm, split, lhs, wl)
		}
	}
}

func TestBuildErrors(t *testing.T) {
	be := NewCPU()
	g := NewGraph(be)
	x := g.Input(1, 3, 4, 4, false)
	w := NewParam(be, "w", 2, 4, 3, 3) // wrong Cin
	y := g.Conv(x, w, nil, 1)
	y = g.SiLU(y) // keeps going without panicking
	if g.Err() == nil {
		t.Fatal("no error for mismatched conv weight")
	}
	if err := g.Forward(); err == nil {
		t.Fatal("forward ran on a failed graph")
	}
	if err := g.Backward(y, be.Alloc(y.Len()), true); err == nil {
		t.Fatal("backward ran on a failed graph")
	}
	g2 := NewGraph(be)
	a := g2.Input(1, 2, 3, 3, false)
	if g2.AvgPool2(a); g2.Err() == nil {
		t.Error("no error for odd pooling")
	}
	g3 := NewGraph(be)
	a = g3.Input(1, 4, 2, 2, true)
	h := g3.SiLU(a)
	o := g3.SiLU(h)
	if err := g3.Backward(h, be.Alloc(h.Len()), false); err == nil {
		t.Error("backward from a consumed tensor accepted")
	}
	if err := g3.Backward(o, be.Alloc(3), false); err == nil {
		t.Error("short seed accepted")
	}
}
