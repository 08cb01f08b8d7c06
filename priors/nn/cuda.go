//go:build cuda

package nn

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/kspaced/kspaced/internal/gpu"
)

// CUDAOptions configures NewCUDA.
type CUDAOptions struct {
	// TF32 lets GEMMs and convolutions multiply on TF32 tensor cores
	// (inputs rounded to 11 significant bits, FP32 accumulation): several
	// times faster on Ampere and later, relative error about 1e-3 instead
	// of 1e-6.
	TF32 bool
}

// CUDA is the GPU backend: buffers in device memory from the context's
// caching allocator, GEMM and convolutions through cuBLAS, everything else
// in NVRTC-compiled kernels, all queued on the context's stream. Only Dot
// and Download wait for the device.
//
// The Backend interface has no error results, so the first failure (out
// of memory, a kernel fault reported at the next synchronisation) is kept:
// Err returns it, later operations do nothing, and Download fills its
// destination with NaN so that the failure cannot pass as a result.
type CUDA struct {
	ctx  *gpu.Context
	blas *gpu.BLAS
	k    cudaKernels
	tf32 bool

	mu       sync.Mutex // scratch below, and multi-kernel ops using it
	dotPart  gpu.Ptr
	dotHost  []float64
	gnPart   gpu.Ptr
	gnPartN  int
	failed   atomic.Bool
	errMu    sync.Mutex
	firstErr error
}

const dotBlocks = 1024 // most partial sums a Dot downloads

type cudaKernels struct {
	fill, axpby, scaleRows, dot, silu, siluBwd, addBcast, sumBcast                  *gpu.Kernel
	softmax, softmaxBwd, pool, poolBwd, up, upBwd, unshuffle, embed, embedBwd, adam *gpu.Kernel
	gnFwd, gnBwdPart, gnBwdParams, gnBwdDx, pad, unpad, taps                        *gpu.Kernel
}

// NewCUDA compiles the backend's kernels on ctx and creates its cuBLAS
// handle. Several backends may share a context.
func NewCUDA(ctx *gpu.Context, opt CUDAOptions) (*CUDA, error) {
	m, err := ctx.Compile("nn", cudaSource)
	if err != nil {
		return nil, err
	}
	var missing []string
	get := func(name string) *gpu.Kernel {
		k := m.Kernel(name)
		if k == nil {
			missing = append(missing, name)
		}
		return k
	}
	k := cudaKernels{
		fill: get("nn_fill"), axpby: get("nn_axpby"), scaleRows: get("nn_scale_rows"), dot: get("nn_dot"),
		silu: get("nn_silu"), siluBwd: get("nn_silu_bwd"), addBcast: get("nn_add_bcast"), sumBcast: get("nn_sum_bcast"),
		softmax: get("nn_softmax"), softmaxBwd: get("nn_softmax_bwd"), pool: get("nn_avgpool2"),
		poolBwd: get("nn_avgpool2_bwd"), up: get("nn_upsample2"), upBwd: get("nn_upsample2_bwd"),
		unshuffle: get("nn_unshuffle"), embed: get("nn_embed"), embedBwd: get("nn_embed_bwd"), adam: get("nn_adam"),
		gnFwd: get("nn_gn_fwd"), gnBwdPart: get("nn_gn_bwd_part"), gnBwdParams: get("nn_gn_bwd_params"),
		gnBwdDx: get("nn_gn_bwd_dx"), pad: get("nn_pad"), unpad: get("nn_unpad"), taps: get("nn_taps"),
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("nn: CUDA kernels missing from the source: %v", missing)
	}
	b, err := ctx.NewBLAS(opt.TF32)
	if err != nil {
		return nil, err
	}
	c := &CUDA{ctx: ctx, blas: b, k: k, tf32: opt.TF32, dotHost: make([]float64, dotBlocks)}
	if c.dotPart, err = ctx.Alloc(8 * dotBlocks); err != nil {
		b.Close()
		return nil, err
	}
	return c, nil
}

// Name implements Backend.
func (c *CUDA) Name() string {
	if c.tf32 {
		return "cuda-tf32"
	}
	return "cuda"
}

// Context is the device context the backend runs on.
func (c *CUDA) Context() *gpu.Context { return c.ctx }

// Err is the first error the backend met, if any.
func (c *CUDA) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.firstErr
}

func (c *CUDA) fail(err error) {
	c.errMu.Lock()
	if c.firstErr == nil {
		c.firstErr = fmt.Errorf("nn: cuda backend: %w", err)
	}
	c.errMu.Unlock()
	c.failed.Store(true)
}

// Sync waits for queued work and returns Err.
func (c *CUDA) Sync() error {
	if !c.failed.Load() {
		if err := c.ctx.Sync(); err != nil {
			c.fail(err)
		}
	}
	return c.Err()
}

// Free returns a buffer from Alloc (not a slice of one) to the context's
// cache. The Backend interface has no Free: graphs keep their buffers for
// their lifetime, and a dropped graph's device memory stays allocated until
// its owner frees it through this.
func (c *CUDA) Free(b Buffer) error {
	if b.Dev == 0 {
		return nil
	}
	return c.ctx.Free(gpu.Ptr(b.Dev))
}

// Close releases the backend's scratch and cuBLAS handle (not the context).
func (c *CUDA) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	err := errors.Join(c.ctx.Free(c.dotPart), c.ctx.Free(c.gnPart), c.blas.Close())
	c.dotPart, c.gnPart, c.gnPartN = 0, 0, 0
	return err
}

func dev(b Buffer) gpu.Ptr { return gpu.Ptr(b.Dev) }

// run queues one grid-stride or one-block-per-row kernel.
func (c *CUDA) run(k *gpu.Kernel, grid gpu.Dim3, args ...gpu.Arg) {
	if c.failed.Load() {
		return
	}
	if err := k.Launch(grid, gpu.D1(gpu.Block), 0, args...); err != nil {
		c.fail(err)
	}
}

func (c *CUDA) rows(n int) gpu.Dim3 {
	g, err := gpu.GridRows(n)
	if err != nil {
		c.fail(err)
	}
	return g
}

// Alloc implements Backend.
func (c *CUDA) Alloc(n int) Buffer {
	if n <= 0 {
		return Buffer{}
	}
	if c.failed.Load() {
		return Buffer{N: n}
	}
	p, err := c.ctx.Alloc(4 * n)
	if err == nil {
		err = c.ctx.Memset32(p, 0, n)
	}
	if err != nil {
		c.fail(fmt.Errorf("allocate %d values: %w", n, err))
		return Buffer{N: n}
	}
	return Buffer{Dev: uintptr(p), N: n}
}

// Upload implements Backend.
func (c *CUDA) Upload(dst Buffer, src []float32) {
	if c.failed.Load() || dst.N == 0 {
		return
	}
	if err := gpu.Upload(c.ctx, dev(dst), src[:dst.N]); err != nil {
		c.fail(err)
	}
}

// Download implements Backend.
func (c *CUDA) Download(dst []float32, src Buffer) {
	d := dst[:src.N]
	if !c.failed.Load() {
		err := gpu.Download(c.ctx, d, dev(src))
		if err == nil {
			return
		}
		c.fail(err)
	}
	nan := float32(math.NaN())
	for i := range d {
		d[i] = nan
	}
}

// Fill implements Backend.
func (c *CUDA) Fill(dst Buffer, v float32) {
	if c.failed.Load() {
		return
	}
	if err := c.ctx.Memset32(dev(dst), math.Float32bits(v), dst.N); err != nil {
		c.fail(err)
	}
}

// Copy implements Backend.
func (c *CUDA) Copy(dst, src Buffer) {
	if c.failed.Load() {
		return
	}
	if err := c.ctx.Copy(dev(dst), dev(src), 4*dst.N); err != nil {
		c.fail(err)
	}
}

// Axpby implements Backend.
func (c *CUDA) Axpby(dst Buffer, alpha float32, x Buffer, beta float32) {
	c.run(c.k.axpby, gpu.Grid1D(dst.N), gpu.P(dev(dst)), gpu.P(dev(x)), gpu.F(alpha), gpu.F(beta), gpu.L(dst.N))
}

// Dot implements Backend: per-block double partial sums, added on the host.
func (c *CUDA) Dot(a, b Buffer) float64 {
	if a.N == 0 {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	nb := min((a.N+gpu.Block-1)/gpu.Block, dotBlocks)
	c.run(c.k.dot, gpu.D1(nb), gpu.P(c.dotPart), gpu.P(dev(a)), gpu.P(dev(b)), gpu.L(a.N))
	if c.failed.Load() {
		return math.NaN()
	}
	part := c.dotHost[:nb]
	if err := gpu.Download(c.ctx, part, c.dotPart); err != nil {
		c.fail(err)
		return math.NaN()
	}
	var s float64
	for _, v := range part {
		s += v
	}
	return s
}

// extent is how many values a row-major rows×cols matrix with leading
// dimension ld spans.
func extent(rows, cols, ld int) int {
	if rows == 0 || cols == 0 {
		return 0
	}
	return (rows-1)*ld + cols
}

// gemmExtents is how many values the operands of C(m×n) = op(A)·op(B) with
// inner dimension k span: A stored k×m when transposed, B n×k.
func gemmExtents(transA, transB bool, m, n, k, lda, ldb, ldc int) (ea, eb, ec int) {
	ra, ca, rb, cb := m, k, k, n
	if transA {
		ra, ca = k, m
	}
	if transB {
		rb, cb = n, k
	}
	return extent(ra, ca, lda), extent(rb, cb, ldb), extent(m, n, ldc)
}

// Gemm implements Backend. Operand views are checked against their buffers
// (the CPU backend gets that from Go's bounds checks; a GPU would silently
// read or write past them).
func (c *CUDA) Gemm(transA, transB bool, m, n, k int, alpha float32, a Buffer, lda int, b Buffer, ldb int, beta float32, cc Buffer, ldc int) {
	if c.failed.Load() || m == 0 || n == 0 {
		return
	}
	if k == 0 {
		c.run(c.k.scaleRows, gpu.Grid1D(m*n), gpu.P(dev(cc)), gpu.I(m), gpu.I(n), gpu.I(ldc), gpu.F(beta))
		return
	}
	ea, eb, ec := gemmExtents(transA, transB, m, n, k, lda, ldb, ldc)
	if ea > a.N || eb > b.N || ec > cc.N {
		c.fail(fmt.Errorf("gemm %d×%d×%d (ld %d, %d, %d) on buffers of %d, %d, %d values", m, n, k, lda, ldb, ldc, a.N, b.N, cc.N))
		return
	}
	if err := c.blas.Gemm(transA, transB, m, n, k, alpha, dev(a), lda, dev(b), ldb, beta, dev(cc), ldc); err != nil {
		c.fail(err)
	}
}

// SiLU implements Backend.
func (c *CUDA) SiLU(y, x Buffer) {
	c.run(c.k.silu, gpu.Grid1D(y.N), gpu.P(dev(y)), gpu.P(dev(x)), gpu.L(y.N))
}

// SiLUBackward implements Backend.
func (c *CUDA) SiLUBackward(dx, dy, x Buffer) {
	c.run(c.k.siluBwd, gpu.Grid1D(dx.N), gpu.P(dev(dx)), gpu.P(dev(dy)), gpu.P(dev(x)), gpu.L(dx.N))
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// AddBroadcast implements Backend.
func (c *CUDA) AddBroadcast(y, b Buffer, n, ch, inner int, perSample bool) {
	total := n * ch * inner
	c.run(c.k.addBcast, gpu.Grid1D(total), gpu.P(dev(y)), gpu.P(dev(b)), gpu.I(ch), gpu.L(inner), gpu.I(b2i(perSample)), gpu.L(total))
}

// SumBroadcast implements Backend.
func (c *CUDA) SumBroadcast(db, dy Buffer, n, ch, inner int, perSample bool) {
	outs := ch
	if perSample {
		outs = n * ch
	}
	c.run(c.k.sumBcast, c.rows(outs), gpu.P(dev(db)), gpu.P(dev(dy)), gpu.I(n), gpu.I(ch), gpu.L(inner), gpu.I(b2i(perSample)))
}

// Softmax implements Backend.
func (c *CUDA) Softmax(y, x Buffer, rows, cols int) {
	c.run(c.k.softmax, c.rows(rows), gpu.P(dev(y)), gpu.P(dev(x)), gpu.I(cols))
}

// SoftmaxBackward implements Backend.
func (c *CUDA) SoftmaxBackward(dx, dy, y Buffer, rows, cols int) {
	c.run(c.k.softmaxBwd, c.rows(rows), gpu.P(dev(dx)), gpu.P(dev(dy)), gpu.P(dev(y)), gpu.I(cols))
}

// AvgPool2 implements Backend.
func (c *CUDA) AvgPool2(y, x Buffer, planes, h, w int) {
	total := planes * (h / 2) * (w / 2)
	c.run(c.k.pool, gpu.Grid1D(total), gpu.P(dev(y)), gpu.P(dev(x)), gpu.I(h), gpu.I(w), gpu.L(total))
}

// AvgPool2Backward implements Backend.
func (c *CUDA) AvgPool2Backward(dx, dy Buffer, planes, h, w int) {
	total := planes * (h / 2) * (w / 2)
	c.run(c.k.poolBwd, gpu.Grid1D(total), gpu.P(dev(dx)), gpu.P(dev(dy)), gpu.I(h), gpu.I(w), gpu.L(total))
}

// Upsample2 implements Backend; h, w are the coarse size.
func (c *CUDA) Upsample2(y, x Buffer, planes, h, w int) {
	total := planes * h * w
	c.run(c.k.up, gpu.Grid1D(total), gpu.P(dev(y)), gpu.P(dev(x)), gpu.I(2*h), gpu.I(2*w), gpu.L(total))
}

// Upsample2Backward implements Backend; h, w are the coarse size.
func (c *CUDA) Upsample2Backward(dx, dy Buffer, planes, h, w int) {
	total := planes * h * w
	c.run(c.k.upBwd, gpu.Grid1D(total), gpu.P(dev(dx)), gpu.P(dev(dy)), gpu.I(2*h), gpu.I(2*w), gpu.L(total))
}

// PixelUnshuffle implements Backend.
func (c *CUDA) PixelUnshuffle(y, x Buffer, n, ch, h, w, r int, inverse, accumulate bool) {
	total := n * ch * h * w
	c.run(c.k.unshuffle, gpu.Grid1D(total), gpu.P(dev(y)), gpu.P(dev(x)), gpu.I(ch), gpu.I(h), gpu.I(w), gpu.I(r),
		gpu.I(b2i(inverse)), gpu.I(b2i(accumulate)), gpu.L(total))
}

// Embed implements Backend.
func (c *CUDA) Embed(y, x Buffer, n, dim int, maxPeriod float32) {
	c.run(c.k.embed, gpu.Grid1D(n*(dim/2)), gpu.P(dev(y)), gpu.P(dev(x)), gpu.I(n), gpu.I(dim), gpu.F(maxPeriod))
}

// EmbedBackward implements Backend.
func (c *CUDA) EmbedBackward(dx, dy, x Buffer, n, dim int, maxPeriod float32) {
	c.run(c.k.embedBwd, gpu.Grid1D(n), gpu.P(dev(dx)), gpu.P(dev(dy)), gpu.P(dev(x)), gpu.I(n), gpu.I(dim), gpu.F(maxPeriod))
}

// Adam implements Backend.
func (c *CUDA) Adam(p, g, m, v Buffer, lr, beta1, beta2, eps, bc1, bc2 float32) {
	c.run(c.k.adam, gpu.Grid1D(p.N), gpu.P(dev(p)), gpu.P(dev(g)), gpu.P(dev(m)), gpu.P(dev(v)), gpu.F(lr), gpu.F(beta1),
		gpu.F(beta2), gpu.F(eps), gpu.F(bc1), gpu.F(bc2), gpu.L(p.N))
}

// GroupNorm implements Backend.
func (c *CUDA) GroupNorm(y, mean, rstd, x, gamma, beta Buffer, n, ch, hw, groups int, eps float32) {
	c.run(c.k.gnFwd, c.rows(n*groups), gpu.P(dev(y)), gpu.P(dev(mean)), gpu.P(dev(rstd)), gpu.P(dev(x)),
		gpu.P(dev(gamma)), gpu.P(dev(beta)), gpu.I(ch), gpu.L(hw), gpu.I(groups), gpu.F(eps))
}

// GroupNormBackward implements Backend: per-channel partial sums into
// scratch, then the parameter gradients and the input gradient from them.
func (c *CUDA) GroupNormBackward(dx, dgamma, dbeta, dy, x, mean, rstd, gamma Buffer, n, ch, hw, groups int) {
	if c.failed.Load() || (dx.N == 0 && dgamma.N == 0 && dbeta.N == 0) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if need := 2 * n * ch; need > c.gnPartN {
		if err := c.ctx.Free(c.gnPart); err != nil {
			c.fail(err)
			return
		}
		p, err := c.ctx.Alloc(4 * need)
		if err != nil {
			c.gnPart, c.gnPartN = 0, 0
			c.fail(err)
			return
		}
		c.gnPart, c.gnPartN = p, need
	}
	c.run(c.k.gnBwdPart, c.rows(n*ch), gpu.P(c.gnPart), gpu.P(dev(dy)), gpu.P(dev(x)), gpu.P(dev(mean)), gpu.P(dev(rstd)),
		gpu.I(ch), gpu.L(hw), gpu.I(groups))
	if dgamma.N > 0 || dbeta.N > 0 {
		c.run(c.k.gnBwdParams, gpu.Grid1D(ch), gpu.P(dev(dgamma)), gpu.P(dev(dbeta)), gpu.P(c.gnPart), gpu.I(n), gpu.I(ch))
	}
	if dx.N > 0 {
		c.run(c.k.gnBwdDx, c.rows(n*groups), gpu.P(dev(dx)), gpu.P(dev(dy)), gpu.P(dev(x)), gpu.P(dev(mean)), gpu.P(dev(rstd)),
			gpu.P(dev(gamma)), gpu.P(c.gnPart), gpu.I(ch), gpu.L(hw), gpu.I(groups))
	}
}

// ---- convolution: the CPU backend's padded-layout scheme (cpu_conv.go) on
// cuBLAS, so both backends share one workspace size and one set of tap
// GEMMs. 1×1 convolutions are one strided-batched GEMM over the images.

// ConvWorkspace implements Backend.
func (c *CUDA) ConvWorkspace(g ConvGeom) int {
	if g.pointwise() {
		return 0
	}
	_, _, np := g.padded()
	kk := g.K * g.K * g.Cout * g.Cin
	return 2*g.Cin*np + g.Cout*np + 2*kk
}

type cudaConvWS struct{ xp, yp, dxp, wt, wg Buffer }

func (c *CUDA) convSplit(ws Buffer, g ConvGeom) cudaConvWS {
	_, _, np := g.padded()
	kk := g.K * g.K * g.Cout * g.Cin
	var s cudaConvWS
	o := 0
	take := func(n int) Buffer {
		b := ws.Slice(o, o+n)
		o += n
		return b
	}
	s.xp, s.yp, s.dxp = take(g.Cin*np), take(g.Cout*np), take(g.Cin*np)
	s.wt, s.wg = take(kk), take(kk)
	return s
}

// pad lays out planes (n images of ch channels of h×w) in the padded
// channel-major layout at offset po.
func (c *CUDA) pad(dst, src Buffer, g ConvGeom, ch, h, w, po int) {
	hp, wp, np := g.padded()
	total := ch * np
	c.run(c.k.pad, gpu.Grid1D(total), gpu.P(dev(dst)), gpu.P(dev(src)), gpu.I(g.N), gpu.I(ch), gpu.I(h), gpu.I(w),
		gpu.I(hp), gpu.I(wp), gpu.I(po), gpu.L(total))
}

func (c *CUDA) unpad(dst, src, bias Buffer, g ConvGeom, ch, h, w, po int, accumulate bool) {
	hp, wp, _ := g.padded()
	total := g.N * ch * h * w
	c.run(c.k.unpad, gpu.Grid1D(total), gpu.P(dev(dst)), gpu.P(dev(src)), gpu.P(dev(bias)), gpu.I(g.N), gpu.I(ch),
		gpu.I(h), gpu.I(w), gpu.I(hp), gpu.I(wp), gpu.I(po), gpu.I(b2i(accumulate)), gpu.L(total))
}

func (c *CUDA) transposeTaps(wt, w Buffer, g ConvGeom, back bool) {
	total := g.Cout * g.Cin * g.K * g.K
	c.run(c.k.taps, gpu.Grid1D(total), gpu.P(dev(wt)), gpu.P(dev(w)), gpu.I(g.Cout), gpu.I(g.Cin), gpu.I(g.K*g.K),
		gpu.I(b2i(back)), gpu.L(total))
}

func (c *CUDA) batched(transA, transB bool, m, n, k int, a Buffer, lda, sa int, b Buffer, ldb, sb int, beta float32, cc Buffer, ldc, sc, batch int) {
	if c.failed.Load() {
		return
	}
	ea, eb, ec := gemmExtents(transA, transB, m, n, k, lda, ldb, ldc)
	last := func(s, e int) int { return (batch-1)*s + e }
	if last(sa, ea) > a.N || last(sb, eb) > b.N || last(sc, ec) > cc.N {
		c.fail(fmt.Errorf("batched gemm %d×%d×%d ×%d on buffers of %d, %d, %d values", m, n, k, batch, a.N, b.N, cc.N))
		return
	}
	if err := c.blas.GemmStridedBatched(transA, transB, m, n, k, 1, dev(a), lda, sa, dev(b), ldb, sb, beta, dev(cc), ldc, sc, batch); err != nil {
		c.fail(err)
	}
}

// ConvForward implements Backend.
func (c *CUDA) ConvForward(y, x, w, bias, ws Buffer, g ConvGeom) {
	if c.failed.Load() {
		return
	}
	if g.pointwise() {
		hw := g.H * g.W
		c.batched(false, false, g.Cout, hw, g.Cin, w, g.Cin, 0, x, hw, g.Cin*hw, 0, y, hw, g.Cout*hw, g.N)
		if bias.N > 0 {
			c.AddBroadcast(y, bias, g.N, g.Cout, hw, false)
		}
		return
	}
	s := c.convSplit(ws, g)
	_, wp, np := g.padded()
	cols, kk := g.cols(), g.Cout*g.Cin
	c.pad(s.xp, x, g, g.Cin, g.H, g.W, g.Pad)
	c.transposeTaps(s.wt, w, g, false)
	for ky := 0; ky < g.K; ky++ {
		for kx := 0; kx < g.K; kx++ {
			k, off := ky*g.K+kx, ky*wp+kx
			beta := float32(1)
			if k == 0 {
				beta = 0
			}
			c.Gemm(false, false, g.Cout, cols, g.Cin, 1, s.wt.Slice(k*kk, (k+1)*kk), g.Cin, s.xp.Slice(off, s.xp.N), np,
				beta, s.yp, np)
		}
	}
	c.unpad(y, s.yp, bias, g, g.Cout, g.OutH(), g.OutW(), 0, false)
}

// ConvBackward implements Backend.
func (c *CUDA) ConvBackward(dx, dw, db, dy, x, w, ws Buffer, g ConvGeom) {
	if c.failed.Load() {
		return
	}
	if db.N > 0 {
		c.SumBroadcast(db, dy, g.N, g.Cout, g.OutH()*g.OutW(), false)
	}
	if g.pointwise() {
		hw := g.H * g.W
		if dw.N > 0 {
			for b := 0; b < g.N; b++ {
				c.Gemm(false, true, g.Cout, g.Cin, hw, 1, dy.Slice(b*g.Cout*hw, (b+1)*g.Cout*hw), hw,
					x.Slice(b*g.Cin*hw, (b+1)*g.Cin*hw), hw, 1, dw, g.Cin)
			}
		}
		if dx.N > 0 {
			c.batched(true, false, g.Cin, hw, g.Cout, w, g.Cin, 0, dy, hw, g.Cout*hw, 1, dx, hw, g.Cin*hw, g.N)
		}
		return
	}
	if dw.N == 0 && dx.N == 0 {
		return
	}
	s := c.convSplit(ws, g)
	_, wp, np := g.padded()
	cols, kk := g.cols(), g.Cout*g.Cin
	c.pad(s.yp, dy, g, g.Cout, g.OutH(), g.OutW(), 0)
	if dw.N > 0 {
		c.pad(s.xp, x, g, g.Cin, g.H, g.W, g.Pad)
		for ky := 0; ky < g.K; ky++ {
			for kx := 0; kx < g.K; kx++ {
				k, off := ky*g.K+kx, ky*wp+kx
				c.Gemm(false, true, g.Cout, g.Cin, cols, 1, s.yp, np, s.xp.Slice(off, s.xp.N), np, 0,
					s.wg.Slice(k*kk, (k+1)*kk), g.Cin)
			}
		}
		c.transposeTaps(s.wg, dw, g, true)
	}
	if dx.N > 0 {
		c.transposeTaps(s.wt, w, g, false)
		c.Fill(s.dxp, 0)
		for ky := 0; ky < g.K; ky++ {
			for kx := 0; kx < g.K; kx++ {
				k, off := ky*g.K+kx, ky*wp+kx
				c.Gemm(true, false, g.Cin, cols, g.Cout, 1, s.wt.Slice(k*kk, (k+1)*kk), g.Cin, s.yp, np, 1,
					s.dxp.Slice(off, s.dxp.N), np)
			}
		}
		c.unpad(dx, s.dxp, Buffer{}, g, g.Cin, g.H, g.W, g.Pad, true)
	}
}
