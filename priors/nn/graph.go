package nn

import (
	"errors"
	"fmt"
	"unsafe"
)

// Tensor is a float32 array of shape [N][C][H][W] inside a Graph; vectors are
// [N][C][1][1]. Its value lives as long as the graph; its gradient buffer is
// lent only during Backward.
type Tensor struct {
	Shape [4]int
	val   Buffer
	grad  Buffer
	// inputDep: depends on an input that wants a gradient; paramDep: on a Param.
	inputDep, paramDep bool
	producer           int // node index, or -1 for inputs
	consumers          []int
	dedicated          bool // input gradient owned by the tensor, not pooled
}

// Len is the number of values.
func (t *Tensor) Len() int { return t.Shape[0] * t.Shape[1] * t.Shape[2] * t.Shape[3] }

// Value is the tensor's storage.
func (t *Tensor) Value() Buffer { return t.val }

// Grad is the gradient of an input created with needGrad, valid after
// Backward.
func (t *Tensor) Grad() Buffer { return t.grad }

// Param is a named trainable array shared by every graph built from it.
// Gradients accumulate into Grad until the caller clears it.
type Param struct {
	Name  string
	Shape []int
	Value Buffer
	Grad  Buffer
}

// NewParam allocates a zeroed parameter and its gradient on be.
func NewParam(be Backend, name string, shape ...int) *Param {
	n := 1
	for _, s := range shape {
		n *= s
	}
	return &Param{Name: name, Shape: append([]int(nil), shape...), Value: be.Alloc(n), Grad: be.Alloc(n)}
}

// Len is the number of values.
func (p *Param) Len() int { return p.Value.N }

type node interface {
	inputs() []*Tensor
	output() *Tensor
	forward(g *Graph)
	backward(g *Graph)
}

// Graph is a fixed sequence of ops on tensors of fixed shapes, built once and
// run many times: Forward and Backward allocate nothing. Build errors (shape
// mismatches) are sticky and reported by Err; after one, further ops are
// no-ops. A Graph is not safe for concurrent use.
type Graph struct {
	be      Backend
	nodes   []node
	ins     []*Tensor
	err     error
	dummy   *Tensor
	wsNeed  int
	ws      Buffer
	planned bool
	seed    *Tensor
	zeroAt  [][]*Tensor // per node: gradients to clear before its backward
	freeAt  [][]*Tensor // per node: gradients to return to the pool after it
	// params is true while Backward computes parameter gradients.
	params bool
}

// NewGraph starts an empty graph on be.
func NewGraph(be Backend) *Graph { return &Graph{be: be} }

// Backend is the graph's backend.
func (g *Graph) Backend() Backend { return g.be }

// Err is the first build error, if any.
func (g *Graph) Err() error { return g.err }

func (g *Graph) failf(format string, args ...any) *Tensor {
	if g.err == nil {
		g.err = fmt.Errorf("nn: "+format, args...)
	}
	return g.stub()
}

func (g *Graph) stub() *Tensor {
	if g.dummy == nil {
		g.dummy = &Tensor{Shape: [4]int{1, 1, 1, 1}, val: g.be.Alloc(1), producer: -1}
	}
	return g.dummy
}

func (g *Graph) bad(ts ...*Tensor) bool {
	if g.err != nil {
		return true
	}
	for _, t := range ts {
		if t == nil {
			g.failf("nil tensor")
			return true
		}
	}
	return false
}

// Input adds an input of shape n×c×h×w. With needGrad, Backward computes the
// gradient with respect to it (the vector–Jacobian product) into Grad.
func (g *Graph) Input(n, c, h, w int, needGrad bool) *Tensor {
	if g.err != nil {
		return g.stub()
	}
	if n <= 0 || c <= 0 || h <= 0 || w <= 0 {
		return g.failf("input shape %d×%d×%d×%d", n, c, h, w)
	}
	t := &Tensor{Shape: [4]int{n, c, h, w}, producer: -1, inputDep: needGrad, dedicated: needGrad}
	t.val = g.be.Alloc(t.Len())
	if needGrad {
		t.grad = g.be.Alloc(t.Len())
	}
	g.ins = append(g.ins, t)
	return t
}

// add appends a node whose output has the given shape and returns the output.
func (g *Graph) add(nd node, out *Tensor, params bool) *Tensor {
	out.producer = len(g.nodes)
	out.paramDep = params
	for _, in := range nd.inputs() {
		out.inputDep = out.inputDep || in.inputDep
		out.paramDep = out.paramDep || in.paramDep
		in.consumers = append(in.consumers, len(g.nodes))
	}
	out.val = g.be.Alloc(out.Len())
	g.nodes = append(g.nodes, nd)
	g.planned = false
	return out
}

func newTensor(n, c, h, w int) *Tensor { return &Tensor{Shape: [4]int{n, c, h, w}} }

// Forward runs every op in order.
func (g *Graph) Forward() error {
	if g.err != nil {
		return g.err
	}
	if g.ws.N < g.wsNeed {
		g.ws = g.be.Alloc(g.wsNeed)
	}
	for _, nd := range g.nodes {
		nd.forward(g)
	}
	return nil
}

// wants reports whether the current Backward needs t's gradient.
func (g *Graph) wants(t *Tensor) bool { return t.inputDep || (g.params && t.paramDep) }

// Backward propagates dOut, the gradient of some scalar with respect to out,
// back through the graph after Forward. It writes the gradients of needGrad
// inputs (overwriting them) and, when params is true, adds parameter
// gradients into each Param.Grad. out must be produced by the graph and
// consumed by none of its ops; dOut must have out's length and is read only.
func (g *Graph) Backward(out *Tensor, dOut Buffer, params bool) error {
	if g.err != nil {
		return g.err
	}
	if !g.produced(out) {
		return errors.New("nn: backward from a tensor this graph did not produce")
	}
	if len(out.consumers) > 0 {
		return errors.New("nn: backward from a tensor that other ops consume")
	}
	if dOut.N != out.Len() {
		return fmt.Errorf("nn: backward seed has %d values, output %d", dOut.N, out.Len())
	}
	if err := g.PlanBackward(out); err != nil {
		return err
	}
	out.grad = dOut
	g.params = params
	for _, in := range g.ins {
		if in.dedicated {
			g.be.Fill(in.grad, 0)
		}
	}
	for i := len(g.nodes) - 1; i >= 0; i-- {
		for _, t := range g.zeroAt[i] {
			g.be.Fill(t.grad, 0)
		}
		if nd := g.nodes[i]; g.wants(nd.output()) {
			nd.backward(g)
		}
	}
	out.grad = Buffer{}
	return nil
}

// PlanBackward allocates the gradient pool a Backward from out needs
// (Backward does so on first use), so that Bytes counts it before any
// backward pass has run.
func (g *Graph) PlanBackward(out *Tensor) error {
	if g.err != nil {
		return g.err
	}
	if !g.produced(out) {
		return errors.New("nn: backward from a tensor this graph did not produce")
	}
	if !g.planned || g.seed != out {
		g.plan(out)
	}
	return nil
}

// produced reports whether out is the output of one of g's ops.
func (g *Graph) produced(out *Tensor) bool {
	return out != nil && out.producer >= 0 && out.producer < len(g.nodes) && g.nodes[out.producer].output() == out
}

// plan assigns pooled gradient buffers: a tensor's gradient is live from the
// backward of its last consumer to that of its producer, and tensors whose
// lifetimes do not overlap share storage.
func (g *Graph) plan(out *Tensor) {
	n := len(g.nodes)
	g.zeroAt = make([][]*Tensor, n)
	g.freeAt = make([][]*Tensor, n)
	var ts []*Tensor
	for _, nd := range g.nodes {
		t := nd.output()
		t.grad = Buffer{}
		if t == out || !(t.inputDep || t.paramDep) {
			continue
		}
		z := t.producer
		for _, c := range t.consumers {
			z = max(z, c)
		}
		g.zeroAt[z] = append(g.zeroAt[z], t)
		g.freeAt[t.producer] = append(g.freeAt[t.producer], t)
		ts = append(ts, t)
	}
	free := map[int][]Buffer{}
	for i := n - 1; i >= 0; i-- {
		for _, t := range g.zeroAt[i] {
			if l := free[t.Len()]; len(l) > 0 {
				t.grad, free[t.Len()] = l[len(l)-1], l[:len(l)-1]
			} else {
				t.grad = g.be.Alloc(t.Len())
			}
		}
		for _, t := range g.freeAt[i] {
			free[t.Len()] = append(free[t.Len()], t.grad)
		}
	}
	g.seed = out
	g.planned = true
}

// FLOPs is the floating-point operation count of one Forward through the
// GEMM-shaped ops (convolutions, linear layers, attention); a backward pass
// with parameter gradients costs about twice as much.
func (g *Graph) FLOPs() float64 {
	var f float64
	for _, nd := range g.nodes {
		switch n := nd.(type) {
		case *convNode:
			gm := n.geom
			f += 2 * float64(gm.N*gm.Cout*gm.OutH()*gm.OutW()) * float64(gm.Cin*gm.K*gm.K)
		case *linearNode:
			f += 2 * float64(n.in[0].Shape[0]*n.in[0].Shape[1]*n.out.Shape[1])
		case *attnNode:
			nb, d, l, _ := n.dims()
			f += 4 * float64(nb*n.heads) * float64(d) * float64(l) * float64(l)
		}
	}
	return f
}

// Bytes is the backend memory the graph holds: values, gradient pool (once
// Backward has run), per-op state and the convolution workspace.
func (g *Graph) Bytes() int64 {
	var n int
	seen := map[uintptr]bool{} // pooled gradients share storage
	count := func(b Buffer) {
		if b.N == 0 {
			return
		}
		key := b.Dev
		if b.Host != nil {
			key = uintptr(unsafe.Pointer(&b.Host[0]))
		}
		if !seen[key] {
			seen[key] = true
			n += b.N
		}
	}
	for _, t := range g.ins {
		count(t.val)
		count(t.grad)
	}
	for _, nd := range g.nodes {
		t := nd.output()
		count(t.val)
		if t != g.seed {
			count(t.grad)
		}
		switch x := nd.(type) {
		case *groupNormNode:
			count(x.mean)
			count(x.rstd)
		case *attnNode:
			count(x.p)
			count(x.dp)
			count(x.ds)
		}
	}
	count(g.ws)
	return 4 * int64(n)
}
