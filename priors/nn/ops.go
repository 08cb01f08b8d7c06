package nn

import "math"

type base struct {
	in  []*Tensor
	out *Tensor
}

func (b *base) inputs() []*Tensor { return b.in }
func (b *base) output() *Tensor   { return b.out }

func sameShape(a, b *Tensor) bool { return a.Shape == b.Shape }

// ---- convolution ----

type convNode struct {
	base
	w, b *Param
	geom ConvGeom
}

// Conv is a stride-1 K×K convolution with zero padding pad; w is
// [Cout][Cin][K][K] and b (may be nil) [Cout].
func (g *Graph) Conv(x *Tensor, w, b *Param, pad int) *Tensor {
	if g.bad(x) {
		return g.stub()
	}
	if w == nil || len(w.Shape) != 4 || w.Shape[2] != w.Shape[3] || w.Shape[1] != x.Shape[1] {
		return g.failf("conv weight %v for input %v", shapeOf(w), x.Shape)
	}
	if b != nil && (len(b.Shape) != 1 || b.Shape[0] != w.Shape[0]) {
		return g.failf("conv bias %v for weight %v", b.Shape, w.Shape)
	}
	geom := ConvGeom{N: x.Shape[0], Cin: x.Shape[1], H: x.Shape[2], W: x.Shape[3], Cout: w.Shape[0], K: w.Shape[2], Pad: pad}
	if pad < 0 || geom.OutH() <= 0 || geom.OutW() <= 0 {
		return g.failf("conv %d×%d kernel, pad %d on %v", geom.K, geom.K, pad, x.Shape)
	}
	g.wsNeed = max(g.wsNeed, g.be.ConvWorkspace(geom))
	out := newTensor(geom.N, geom.Cout, geom.OutH(), geom.OutW())
	return g.add(&convNode{base: base{[]*Tensor{x}, out}, w: w, b: b, geom: geom}, out, true)
}

func shapeOf(p *Param) []int {
	if p == nil {
		return nil
	}
	return p.Shape
}

func (n *convNode) forward(g *Graph) {
	var b Buffer
	if n.b != nil {
		b = n.b.Value
	}
	g.be.ConvForward(n.out.val, n.in[0].val, n.w.Value, b, g.ws, n.geom)
}

func (n *convNode) backward(g *Graph) {
	var dx, dw, db Buffer
	if g.wants(n.in[0]) {
		dx = n.in[0].grad
	}
	if g.params {
		dw = n.w.Grad
		if n.b != nil {
			db = n.b.Grad
		}
	}
	g.be.ConvBackward(dx, dw, db, n.out.grad, n.in[0].val, n.w.Value, g.ws, n.geom)
}

// ---- linear ----

type linearNode struct {
	base
	w, b *Param
}

// Linear maps x ([N][in][1][1]) to x·wᵀ + b with w [out][in], b [out] (may be nil).
func (g *Graph) Linear(x *Tensor, w, b *Param) *Tensor {
	if g.bad(x) {
		return g.stub()
	}
	if x.Shape[2] != 1 || x.Shape[3] != 1 || w == nil || len(w.Shape) != 2 || w.Shape[1] != x.Shape[1] {
		return g.failf("linear weight %v for input %v", shapeOf(w), x.Shape)
	}
	if b != nil && (len(b.Shape) != 1 || b.Shape[0] != w.Shape[0]) {
		return g.failf("linear bias %v for weight %v", b.Shape, w.Shape)
	}
	out := newTensor(x.Shape[0], w.Shape[0], 1, 1)
	return g.add(&linearNode{base: base{[]*Tensor{x}, out}, w: w, b: b}, out, true)
}

func (n *linearNode) forward(g *Graph) {
	x, y := n.in[0], n.out
	N, in, out := x.Shape[0], x.Shape[1], y.Shape[1]
	g.be.Gemm(false, true, N, out, in, 1, x.val, in, n.w.Value, in, 0, y.val, out)
	if n.b != nil {
		g.be.AddBroadcast(y.val, n.b.Value, N, out, 1, false)
	}
}

func (n *linearNode) backward(g *Graph) {
	x, y := n.in[0], n.out
	N, in, out := x.Shape[0], x.Shape[1], y.Shape[1]
	if g.wants(x) {
		g.be.Gemm(false, false, N, in, out, 1, y.grad, out, n.w.Value, in, 1, x.grad, in)
	}
	if g.params {
		g.be.Gemm(true, false, out, in, N, 1, y.grad, out, x.val, in, 1, n.w.Grad, in)
		if n.b != nil {
			g.be.SumBroadcast(n.b.Grad, y.grad, N, out, 1, false)
		}
	}
}

// ---- group normalisation ----

type groupNormNode struct {
	base
	gamma, beta *Param
	groups      int
	mean, rstd  Buffer
}

// GroupNormEps is the variance floor of GroupNorm.
const GroupNormEps = 1e-5

// GroupNorm normalises groups groups of channels per image, then scales by
// gamma and shifts by beta (both [C]).
func (g *Graph) GroupNorm(x *Tensor, gamma, beta *Param, groups int) *Tensor {
	if g.bad(x) {
		return g.stub()
	}
	c := x.Shape[1]
	if groups <= 0 || c%groups != 0 {
		return g.failf("group norm: %d channels in %d groups", c, groups)
	}
	if gamma == nil || beta == nil || gamma.Len() != c || beta.Len() != c {
		return g.failf("group norm affine %v %v for %d channels", shapeOf(gamma), shapeOf(beta), c)
	}
	out := newTensor(x.Shape[0], c, x.Shape[2], x.Shape[3])
	nd := &groupNormNode{base: base{[]*Tensor{x}, out}, gamma: gamma, beta: beta, groups: groups,
		mean: g.be.Alloc(x.Shape[0] * groups), rstd: g.be.Alloc(x.Shape[0] * groups)}
	return g.add(nd, out, true)
}

func (n *groupNormNode) forward(g *Graph) {
	x := n.in[0]
	g.be.GroupNorm(n.out.val, n.mean, n.rstd, x.val, n.gamma.Value, n.beta.Value,
		x.Shape[0], x.Shape[1], x.Shape[2]*x.Shape[3], n.groups, GroupNormEps)
}

func (n *groupNormNode) backward(g *Graph) {
	x := n.in[0]
	var dx, dg, db Buffer
	if g.wants(x) {
		dx = x.grad
	}
	if g.params {
		dg, db = n.gamma.Grad, n.beta.Grad
	}
	if dx.N == 0 && dg.N == 0 {
		return
	}
	g.be.GroupNormBackward(dx, dg, db, n.out.grad, x.val, n.mean, n.rstd, n.gamma.Value,
		x.Shape[0], x.Shape[1], x.Shape[2]*x.Shape[3], n.groups)
}

// ---- SiLU ----

type siluNode struct{ base }

// SiLU is x·sigmoid(x).
func (g *Graph) SiLU(x *Tensor) *Tensor {
	if g.bad(x) {
		return g.stub()
	}
	out := newTensor(x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3])
	return g.add(&siluNode{base{[]*Tensor{x}, out}}, out, false)
}

func (n *siluNode) forward(g *Graph) { g.be.SiLU(n.out.val, n.in[0].val) }
func (n *siluNode) backward(g *Graph) {
	if g.wants(n.in[0]) {
		g.be.SiLUBackward(n.in[0].grad, n.out.grad, n.in[0].val)
	}
}

// ---- add ----

type addNode struct{ base }

// Add is a + b (same shapes), the residual connection.
func (g *Graph) Add(a, b *Tensor) *Tensor {
	if g.bad(a, b) {
		return g.stub()
	}
	if !sameShape(a, b) {
		return g.failf("add %v and %v", a.Shape, b.Shape)
	}
	out := newTensor(a.Shape[0], a.Shape[1], a.Shape[2], a.Shape[3])
	return g.add(&addNode{base{[]*Tensor{a, b}, out}}, out, false)
}

func (n *addNode) forward(g *Graph) {
	g.be.Copy(n.out.val, n.in[0].val)
	g.be.Axpby(n.out.val, 1, n.in[1].val, 1)
}

func (n *addNode) backward(g *Graph) {
	for _, in := range n.in {
		if g.wants(in) {
			g.be.Axpby(in.grad, 1, n.out.grad, 1)
		}
	}
}

// ---- channel concatenation ----

type concatNode struct{ base }

// Concat stacks a and b along channels (same N, H, W).
func (g *Graph) Concat(a, b *Tensor) *Tensor {
	if g.bad(a, b) {
		return g.stub()
	}
	if a.Shape[0] != b.Shape[0] || a.Shape[2] != b.Shape[2] || a.Shape[3] != b.Shape[3] {
		return g.failf("concat %v and %v", a.Shape, b.Shape)
	}
	out := newTensor(a.Shape[0], a.Shape[1]+b.Shape[1], a.Shape[2], a.Shape[3])
	return g.add(&concatNode{base{[]*Tensor{a, b}, out}}, out, false)
}

func (n *concatNode) forward(g *Graph)  { n.move(g, false) }
func (n *concatNode) backward(g *Graph) { n.move(g, true) }

func (n *concatNode) move(g *Graph, back bool) {
	a, b, y := n.in[0], n.in[1], n.out
	la, lb := a.Len()/a.Shape[0], b.Len()/b.Shape[0]
	for i := 0; i < y.Shape[0]; i++ {
		o := i * (la + lb)
		if !back {
			g.be.Copy(y.val.Slice(o, o+la), a.val.Slice(i*la, (i+1)*la))
			g.be.Copy(y.val.Slice(o+la, o+la+lb), b.val.Slice(i*lb, (i+1)*lb))
			continue
		}
		if g.wants(a) {
			g.be.Axpby(a.grad.Slice(i*la, (i+1)*la), 1, y.grad.Slice(o, o+la), 1)
		}
		if g.wants(b) {
			g.be.Axpby(b.grad.Slice(i*lb, (i+1)*lb), 1, y.grad.Slice(o+la, o+la+lb), 1)
		}
	}
}

// ---- per-image channel bias (noise embedding injection) ----

type addChannelNode struct{ base }

// AddChannel adds e ([N][C][1][1]) to every pixel of x ([N][C][H][W]).
func (g *Graph) AddChannel(x, e *Tensor) *Tensor {
	if g.bad(x, e) {
		return g.stub()
	}
	if e.Shape != [4]int{x.Shape[0], x.Shape[1], 1, 1} {
		return g.failf("add channel %v to %v", e.Shape, x.Shape)
	}
	out := newTensor(x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3])
	return g.add(&addChannelNode{base{[]*Tensor{x, e}, out}}, out, false)
}

func (n *addChannelNode) forward(g *Graph) {
	x := n.in[0]
	g.be.Copy(n.out.val, x.val)
	g.be.AddBroadcast(n.out.val, n.in[1].val, x.Shape[0], x.Shape[1], x.Shape[2]*x.Shape[3], true)
}

func (n *addChannelNode) backward(g *Graph) {
	x, e := n.in[0], n.in[1]
	if g.wants(x) {
		g.be.Axpby(x.grad, 1, n.out.grad, 1)
	}
	if g.wants(e) {
		g.be.SumBroadcast(e.grad, n.out.grad, x.Shape[0], x.Shape[1], x.Shape[2]*x.Shape[3], true)
	}
}

// ---- sinusoidal embedding ----

type embedNode struct {
	base
	maxPeriod float32
}

// Embed maps each of the N scalars of x ([N][1][1][1]) to dim (even)
// sinusoidal features with periods from 2π up to 2π·maxPeriod.
func (g *Graph) Embed(x *Tensor, dim int, maxPeriod float32) *Tensor {
	if g.bad(x) {
		return g.stub()
	}
	if x.Len() != x.Shape[0] || dim <= 0 || dim%2 != 0 || !(maxPeriod > 1) {
		return g.failf("embed %v into %d features, max period %g", x.Shape, dim, maxPeriod)
	}
	out := newTensor(x.Shape[0], dim, 1, 1)
	return g.add(&embedNode{base{[]*Tensor{x}, out}, maxPeriod}, out, false)
}

func (n *embedNode) forward(g *Graph) {
	g.be.Embed(n.out.val, n.in[0].val, n.in[0].Shape[0], n.out.Shape[1], n.maxPeriod)
}

func (n *embedNode) backward(g *Graph) {
	if g.wants(n.in[0]) {
		g.be.EmbedBackward(n.in[0].grad, n.out.grad, n.in[0].val, n.in[0].Shape[0], n.out.Shape[1], n.maxPeriod)
	}
}

// ---- resampling ----

type poolNode struct{ base }

// AvgPool2 halves H and W by averaging 2×2 blocks (H, W even).
func (g *Graph) AvgPool2(x *Tensor) *Tensor {
	if g.bad(x) {
		return g.stub()
	}
	if x.Shape[2]%2 != 0 || x.Shape[3]%2 != 0 {
		return g.failf("average pool of odd size %v", x.Shape)
	}
	out := newTensor(x.Shape[0], x.Shape[1], x.Shape[2]/2, x.Shape[3]/2)
	return g.add(&poolNode{base{[]*Tensor{x}, out}}, out, false)
}

func (n *poolNode) forward(g *Graph) {
	x := n.in[0]
	g.be.AvgPool2(n.out.val, x.val, x.Shape[0]*x.Shape[1], x.Shape[2], x.Shape[3])
}

func (n *poolNode) backward(g *Graph) {
	x := n.in[0]
	if g.wants(x) {
		g.be.AvgPool2Backward(x.grad, n.out.grad, x.Shape[0]*x.Shape[1], x.Shape[2], x.Shape[3])
	}
}

type upNode struct{ base }

// Upsample2 doubles H and W by nearest-neighbour repetition.
func (g *Graph) Upsample2(x *Tensor) *Tensor {
	if g.bad(x) {
		return g.stub()
	}
	out := newTensor(x.Shape[0], x.Shape[1], 2*x.Shape[2], 2*x.Shape[3])
	return g.add(&upNode{base{[]*Tensor{x}, out}}, out, false)
}

func (n *upNode) forward(g *Graph) {
	x := n.in[0]
	g.be.Upsample2(n.out.val, x.val, x.Shape[0]*x.Shape[1], x.Shape[2], x.Shape[3])
}

func (n *upNode) backward(g *Graph) {
	x := n.in[0]
	if g.wants(x) {
		g.be.Upsample2Backward(x.grad, n.out.grad, x.Shape[0]*x.Shape[1], x.Shape[2], x.Shape[3])
	}
}

type shuffleNode struct {
	base
	r       int
	inverse bool
}

// PixelUnshuffle moves r×r pixel blocks into channels: [N][C][H][W] →
// [N][C·r²][H/r][W/r].
func (g *Graph) PixelUnshuffle(x *Tensor, r int) *Tensor {
	if g.bad(x) {
		return g.stub()
	}
	if r < 1 || x.Shape[2]%r != 0 || x.Shape[3]%r != 0 {
		return g.failf("pixel unshuffle %v by %d", x.Shape, r)
	}
	out := newTensor(x.Shape[0], x.Shape[1]*r*r, x.Shape[2]/r, x.Shape[3]/r)
	return g.add(&shuffleNode{base{[]*Tensor{x}, out}, r, false}, out, false)
}

// PixelShuffle is the inverse of PixelUnshuffle: [N][C·r²][H][W] → [N][C][H·r][W·r].
func (g *Graph) PixelShuffle(x *Tensor, r int) *Tensor {
	if g.bad(x) {
		return g.stub()
	}
	if r < 1 || x.Shape[1]%(r*r) != 0 {
		return g.failf("pixel shuffle %v by %d", x.Shape, r)
	}
	out := newTensor(x.Shape[0], x.Shape[1]/(r*r), x.Shape[2]*r, x.Shape[3]*r)
	return g.add(&shuffleNode{base{[]*Tensor{x}, out}, r, true}, out, false)
}

func (n *shuffleNode) forward(g *Graph) {
	// The backend op is written from the fine layout's view: fine = [N][C][H][W].
	if !n.inverse {
		x := n.in[0]
		g.be.PixelUnshuffle(n.out.val, x.val, x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3], n.r, false, false)
		return
	}
	y := n.out
	g.be.PixelUnshuffle(n.in[0].val, y.val, y.Shape[0], y.Shape[1], y.Shape[2], y.Shape[3], n.r, true, false)
}

func (n *shuffleNode) backward(g *Graph) {
	if !g.wants(n.in[0]) {
		return
	}
	if !n.inverse {
		x := n.in[0]
		g.be.PixelUnshuffle(n.out.grad, x.grad, x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3], n.r, true, true)
		return
	}
	y := n.out
	g.be.PixelUnshuffle(n.in[0].grad, y.grad, y.Shape[0], y.Shape[1], y.Shape[2], y.Shape[3], n.r, false, true)
}

// ---- self-attention ----

type attnNode struct {
	base
	heads int
	p     Buffer // softmax weights [N·heads][L][L]
	dp    Buffer // scratch [L][L]: gradient of P
	ds    Buffer // scratch [L][L]: gradient of the scores
}

// Attention is multi-head dot-product self-attention over the H·W positions
// of qkv ([N][3C][H][W], queries, keys and values stacked on channels);
// the output is [N][C][H][W]. Meant for the coarsest resolution: it stores
// N·heads·(HW)² weights.
func (g *Graph) Attention(qkv *Tensor, heads int) *Tensor {
	if g.bad(qkv) {
		return g.stub()
	}
	if qkv.Shape[1]%3 != 0 || heads <= 0 || (qkv.Shape[1]/3)%heads != 0 {
		return g.failf("attention on %v with %d heads", qkv.Shape, heads)
	}
	n, c, l := qkv.Shape[0], qkv.Shape[1]/3, qkv.Shape[2]*qkv.Shape[3]
	out := newTensor(n, c, qkv.Shape[2], qkv.Shape[3])
	nd := &attnNode{base: base{[]*Tensor{qkv}, out}, heads: heads, p: g.be.Alloc(n * heads * l * l), dp: g.be.Alloc(l * l), ds: g.be.Alloc(l * l)}
	return g.add(nd, out, false)
}

// views returns, for image b and head h, Q, K, V ([d][L] each) of buf and the
// output block ([d][L]) of obuf.
func (n *attnNode) views(qkv, out Buffer, b, h int) (q, k, v, o Buffer) {
	s := n.in[0].Shape
	c, l := s[1]/3, s[2]*s[3]
	d := c / n.heads
	img := qkv.Slice(b*3*c*l, (b+1)*3*c*l)
	q = img.Slice(h*d*l, (h+1)*d*l)
	k = img.Slice((c+h*d)*l, (c+(h+1)*d)*l)
	v = img.Slice((2*c+h*d)*l, (2*c+(h+1)*d)*l)
	o = out.Slice((b*c+h*d)*l, (b*c+(h+1)*d)*l)
	return
}

func (n *attnNode) dims() (nb, d, l int, scale float32) {
	s := n.in[0].Shape
	d = s[1] / 3 / n.heads
	return s[0], d, s[2] * s[3], float32(1 / math.Sqrt(float64(d)))
}

func (n *attnNode) forward(g *Graph) {
	nb, d, l, scale := n.dims()
	for b := 0; b < nb; b++ {
		for h := 0; h < n.heads; h++ {
			q, k, v, o := n.views(n.in[0].val, n.out.val, b, h)
			p := n.p.Slice((b*n.heads+h)*l*l, (b*n.heads+h+1)*l*l)
			// S = QᵀK/√d, P = softmax rows, O = V·Pᵀ.
			g.be.Gemm(true, false, l, l, d, scale, q, l, k, l, 0, p, l)
			g.be.Softmax(p, p, l, l)
			g.be.Gemm(false, true, d, l, l, 1, v, l, p, l, 0, o, l)
		}
	}
}

func (n *attnNode) backward(g *Graph) {
	if !g.wants(n.in[0]) {
		return
	}
	nb, d, l, scale := n.dims()
	for b := 0; b < nb; b++ {
		for h := 0; h < n.heads; h++ {
			q, k, v, _ := n.views(n.in[0].val, n.out.val, b, h)
			dq, dk, dv, do := n.views(n.in[0].grad, n.out.grad, b, h)
			p := n.p.Slice((b*n.heads+h)*l*l, (b*n.heads+h+1)*l*l)
			// dV += dO·P; dP = dOᵀ·V; dS = softmax'(dP)·scale; dQ += K·dSᵀ; dK += Q·dS.
			g.be.Gemm(false, false, d, l, l, 1, do, l, p, l, 1, dv, l)
			g.be.Gemm(true, false, l, l, d, 1, do, l, v, l, 0, n.dp, l)
			g.be.Fill(n.ds, 0)
			g.be.SoftmaxBackward(n.ds, n.dp, p, l, l)
			g.be.Gemm(false, true, d, l, l, scale, k, l, n.ds, l, 1, dq, l)
			g.be.Gemm(false, false, d, l, l, scale, q, l, n.ds, l, 1, dk, l)
		}
	}
}
